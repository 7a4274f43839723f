// The FUSE directory the guest kernel serves its /proc files from, mounted on the host and
// read with the tools a guest uses (cat, dd, stat, ls, sh) in child processes: the server
// runs on this test's event loop, which must stay free to answer them.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FuseTextDir } from '../../guest/kernel/fuse/fuse-text-dir.js';
import { shouldSkip } from '../helpers/instance.js';

const sh = (cmd: string) =>
  new Promise<{ code: number; out: string; err: string }>((resolve) =>
    execFile('/bin/sh', ['-c', cmd], { timeout: 10_000 }, (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err })),
  );

describe.skipIf(shouldSkip() || !existsSync('/dev/fuse') || !existsSync('/usr/bin/busybox'))('a FUSE directory of generated files', () => {
  const base = mkdtempSync(join(tmpdir(), 'xenode-fuse-text-'));
  chmodSync(base, 0o755); // mkdtemp makes it 0700: another user could not reach the files
  const dir = join(base, 'proc');
  const log: string[] = [];
  let opens = 0;
  let shrinks = 0;
  let hang: (v: string) => void = () => {};
  const fs = new FuseTextDir(
    dir,
    [
      { name: 'counter', generate: () => `opened ${++opens}\n` },
      { name: 'big', generate: () => Array.from({ length: 5000 }, (_, i) => `line ${i}\n`).join('') },
      { name: 'slow', generate: () => new Promise<string>((r) => setTimeout(() => r('late\n'), 50)) },
      { name: 'broken', generate: () => { throw new Error('no numbers today'); } },
      { name: 'stuck', generate: () => new Promise<string>((r) => (hang = r)) },
      { name: 'shrinking', generate: () => (++shrinks % 2 ? `long ${shrinks}\n`.repeat(1000) : `short ${shrinks}\n`) },
    ],
    { name: 'test', subtype: 'xenode-test', log: (m) => log.push(m) },
  );
  beforeAll(() => fs.mount());
  afterAll(() => {
    hang('');
    fs.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('lists its files, read-only and of size 0 as procfs files are', async () => {
    expect((await sh(`ls ${dir}`)).out.split('\n').filter(Boolean).sort()).toEqual(['big', 'broken', 'counter', 'shrinking', 'slow', 'stuck']);
    expect((await sh(`stat -c '%s %A' ${dir}/big ${dir}`)).out).toBe('0 -r--r--r--\n0 dr-xr-xr-x\n');
  });

  it('cat reads the whole text, made anew for each open', async () => {
    expect((await sh(`cat ${dir}/counter`)).out).toBe('opened 1\n');
    expect((await sh(`cat ${dir}/counter; cat ${dir}/counter`)).out).toBe('opened 2\nopened 3\n');
    expect((await sh(`cat ${dir}/slow`)).out).toBe('late\n');
  });

  it("busybox's cat, which uses sendfile, gets the whole text, also when it shrank", async () => {
    // This host's FUSE splices direct-I/O files through the page cache up to i_size.
    expect((await sh(`busybox cat ${dir}/counter`)).out).toMatch(/^opened \d+\n$/);
    expect((await sh(`busybox cat ${dir}/big | wc -c`)).out.trim()).toBe('48890');
    expect((await sh(`busybox cat ${dir}/shrinking | wc -c`)).out.trim()).toBe('7000');
    expect((await sh(`busybox cat ${dir}/shrinking`)).out).toBe('short 2\n');
    expect((await sh(`busybox cat ${dir}/shrinking | wc -c`)).out.trim()).toBe('7000');
  });

  it('a text longer than one read, read in odd pieces, is the same text', async () => {
    const whole = await sh(`md5sum < ${dir}/big; wc -c < ${dir}/big`);
    expect(whole.out.split('\n')[1]).toBe('48890');
    expect((await sh(`dd if=${dir}/big bs=7 2>/dev/null | md5sum; wc -c < ${dir}/big`)).out).toBe(whole.out);
    expect((await sh(`head -2 ${dir}/big; tail -1 ${dir}/big`)).out).toBe('line 0\nline 1\nline 4999\n');
  });

  it('a reader that goes back to the start of the open file reads fresh values, as free -s and top do', async () => {
    // procps keeps /proc/meminfo open and, for each refresh, seeks to 0 and reads again.
    const py = `import os; fd = os.open('${dir}/counter', os.O_RDONLY); a = os.read(fd, 64); os.read(fd, 64); os.lseek(fd, 0, 0); b = os.read(fd, 64); print(a.decode() + b.decode(), end='')`;
    const [first, second] = (await sh(`python3 -c "${py}"`)).out.split('\n');
    expect(Number(/^opened (\d+)$/.exec(second!)?.[1])).toBe(Number(/^opened (\d+)$/.exec(first!)?.[1]) + 1);
  });

  it('another user reads them; nobody writes, truncates or creates', async () => {
    expect((await sh(`setpriv --reuid=65534 --regid=65534 --clear-groups cat ${dir}/slow`)).out).toBe('late\n');
    const w = await sh(`echo x > ${dir}/counter`);
    expect(w.code).not.toBe(0);
    expect(w.err).toMatch(/Permission denied/);
    expect((await sh(`truncate -s 0 ${dir}/big`)).code).not.toBe(0);
    expect((await sh(`touch ${dir}/new`)).err).toMatch(/Permission denied|No such file|Function not implemented/);
    expect((await sh(`cat ${dir}/nothing`)).err).toMatch(/No such file/);
  });

  it('a file whose numbers cannot be had reads as an I/O error, and says why in the log', async () => {
    const r = await sh(`cat ${dir}/broken`);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/Input\/output error/);
    expect(log.join('\n')).toMatch(/broken: no numbers today/);
    await sh(`cat ${dir}/broken; cat ${dir}/broken`);
    expect(log.filter((l) => l.includes('no numbers today'))).toHaveLength(1); // said once
  });

  it('closing while a reader waits ends its read with an error, and the mount is gone', async () => {
    const reader = sh(`cat ${dir}/stuck`);
    await new Promise((r) => setTimeout(r, 200));
    fs.close();
    const r = await reader;
    expect(r.code).not.toBe(0);
    expect((await sh(`grep -c ' ${dir} ' /proc/self/mounts`)).out.trim()).toBe('0');
  });
});
