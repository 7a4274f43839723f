// Interop with Debian's stock xenstore tools (package xenstore-utils, libxenstore 4.17), which
// find the daemon through $XENSTORED_PATH. They run as child processes against a Xenstored
// in this process, so every call is asynchronous (a blocking exec would starve the server).
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { listening, onCleanup } from './helpers.js';

const TOOLS = [
  'xenstore-write', 'xenstore-read', 'xenstore-ls', 'xenstore-list', 'xenstore-rm',
  'xenstore-exists', 'xenstore-chmod', 'xenstore-watch',
];

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const missing = TOOLS.filter((t) => !onPath(t));
const inCI = process.env.CI === 'true';
const skipReason = missing.length
  ? ` (skipped: ${missing.join(', ')} not installed; apt-get install xenstore-utils)`
  : '';

const run = promisify(execFile);

async function tool(path: string, cmd: string, ...args: string[]) {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      env: { ...process.env, XENSTORED_PATH: path },
      timeout: 10_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

describe('Debian xenstore-utils', () => {
  it.runIf(inCI)('are installed (required under CI)', () => {
    expect(missing, 'install them: apt-get install -y xenstore-utils').toEqual([]);
  });
});

describe.skipIf(missing.length > 0)(`Debian xenstore-utils interop${skipReason}`, () => {
  it('xenstore-write / -read / -ls / -list / -exists / -rm', async () => {
    const { path, dom0 } = await listening();
    expect((await tool(path, 'xenstore-write', '/a/b', 'hello', '/a/c', 'x y')).code).toBe(0);
    expect(await dom0.read('/a/b')).toBe('hello');
    await dom0.write('/a/d', 'from node');
    expect((await tool(path, 'xenstore-read', '/a/b', '/a/d')).stdout).toBe('hello\nfrom node\n');
    expect((await tool(path, 'xenstore-ls', '/a')).stdout).toBe('b = "hello"\nc = "x y"\nd = "from node"\n');
    expect((await tool(path, 'xenstore-ls', '-f', '/a')).stdout).toBe(
      '/a/b = "hello"\n/a/c = "x y"\n/a/d = "from node"\n',
    );
    expect((await tool(path, 'xenstore-list', '/a')).stdout).toBe('b\nc\nd\n');
    expect((await tool(path, 'xenstore-exists', '/a/b')).code).toBe(0);
    expect((await tool(path, 'xenstore-exists', '/a/zz')).code).not.toBe(0);
    expect((await tool(path, 'xenstore-rm', '/a/c')).code).toBe(0);
    expect(await dom0.directory('/a')).toEqual(['b', 'd']);
    const missingRead = await tool(path, 'xenstore-read', '/no/such');
    expect(missingRead.code).not.toBe(0);
    expect(missingRead.stderr).toMatch(/couldn't read path \/no\/such/);
    expect((await tool(path, 'xenstore-ls', '/')).stdout).toContain('tool = ""\n xenstored = ""\n');
  });

  it('xenstore-chmod sets owner-first permissions that xenstored enforces', async () => {
    const { path, dom0, as } = await listening();
    await dom0.write('/perm/node', 'v');
    expect((await tool(path, 'xenstore-chmod', '/perm/node', 'b5', 'r6')).code).toBe(0);
    expect(await dom0.getPerms('/perm/node')).toEqual([{ id: 5, access: 'b' }, { id: 6, access: 'r' }]);
    expect((await tool(path, 'xenstore-ls', '-p', '/perm')).stdout).toMatch(/^node = "v"\s[ .]*\(b5,r6\)\n$/);
    expect(await as(6).read('/perm/node')).toBe('v');
    await expect(as(6).write('/perm/node', 'no')).rejects.toMatchObject({ code: 'EACCES' });
    expect((await tool(path, 'xenstore-chmod', '-r', '/perm', 'n0', 'r7')).code).toBe(0);
    expect(await dom0.getPerms('/perm/node')).toEqual([{ id: 0, access: 'n' }, { id: 7, access: 'r' }]);
  });

  it('xenstore-watch prints the initial event and then changes below the path', async () => {
    const { path, dom0 } = await listening();
    await dom0.mkdir('/w');
    const child = spawn('xenstore-watch', ['-n', '2', '/w'], { env: { ...process.env, XENSTORED_PATH: path } });
    onCleanup(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 5000;
    while (!out.includes('/w\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await dom0.write('/w/x', '1');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
    expect(code).toBe(0);
    expect(out).toBe('/w\n/w/x\n');
  });

  it('lists a directory too large for one reply (the C library falls back to DIRECTORY_PART)', async () => {
    const { path, dom0 } = await listening();
    const names = Array.from({ length: 300 }, (_, i) => `child-with-a-long-name-${i}`);
    await dom0.transaction(async (t) => {
      for (const n of names) await t.write(`/big/${n}`, '');
    });
    const r = await tool(path, 'xenstore-list', '/big');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(names.map((n) => `${n}\n`).join(''));
  });

  it('a stock tool sees writes made by another stock tool, under concurrent load', async () => {
    const { path } = await listening();
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => tool(path, 'xenstore-write', `/par/k${i}`, `v${i}`)),
    );
    const r = await tool(path, 'xenstore-ls', '/par');
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(
      Array.from({ length: 8 }, (_, i) => `k${i} = "v${i}"`).sort(),
    );
  });
});
