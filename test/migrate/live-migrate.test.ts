// xl migrate between two xenode hosts on this machine (docs/kvm.md, "Save, restore,
// migration"): two private instances; the destination's `xl migrate-receive` runs behind a TCP
// listener in a network namespace of its own (xnmig-dst, reached over a veth), and the source's
// `xl migrate -s "node tcp-connect.mjs" DOM 198.18.77.2:PORT` carries the stream there, as ssh
// would. A guest counting on its serial line moves while it counts and goes on on the
// destination's `xl console`; a destination that dies mid-stream, or has no room, leaves it
// running on the source.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, ROOT, XL, shouldSkip } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';
import { COUNTER_GPA, DIRTY_REGION_GPA, counterKernel } from '../../hypervisor/kvm/tiny-guest.js';
import { kvmMustRunButCannot, kvmSkipReason } from '../kvm/helpers.js';

const integrationSkip = shouldSkip();
const kvmSkip = kvmMustRunButCannot() ? '' : kvmSkipReason();
const NS = 'xnmig-dst';
const HOST_IF = 'xnmig-h';
const NS_IF = 'xnmig-n';
const DST_ADDR = '198.18.77.2';
const CONNECT = `${process.execPath} ${join(ROOT, 'test', 'migrate', 'fixtures', 'tcp-connect.mjs')}`;

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

function counts(text: string): number[] {
  return [...text.matchAll(/(?:^|\n)([0-9a-f]{8})\r/g)].map((m) => parseInt(m[1]!, 16));
}

/** The destination's listener in its namespace, running `xl migrate-receive -e` of `xn`. */
async function listen(xn: Instance, port: number, dieAfter?: number): Promise<ChildProcess> {
  const argv = ['netns', 'exec', NS, process.execPath, join(ROOT, 'test', 'migrate', 'fixtures', 'tcp-listen.mjs'), `${DST_ADDR}:${port}`];
  if (dieAfter !== undefined) argv.push('--die-after', String(dieAfter));
  argv.push(process.execPath, XL, 'migrate-receive', '-e');
  const child = spawn('ip', argv, { env: xn.env, stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`listener exited (${c})`)));
  });
  return child;
}

describe.skipIf(integrationSkip || kvmSkip !== '')(`xl migrate between two xenode hosts${kvmSkip ? ` (skipped: ${kvmSkip})` : ''}`, () => {
  const src = new Instance('migsrc');
  const dst = new Instance('migdst');
  const full = new Instance('migfull');
  const listeners: ChildProcess[] = [];
  let cfg = '';

  beforeAll(async () => {
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['link', 'del', HOST_IF]);
    ip('netns', 'add', NS);
    ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
    ip('link', 'set', NS_IF, 'netns', NS);
    ip('addr', 'add', '198.18.77.1/30', 'dev', HOST_IF);
    ip('link', 'set', HOST_IF, 'up');
    ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${DST_ADDR}/30`, 'dev', NS_IF);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', NS_IF, 'up');
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    const kernel = join(src.dir, 'count.bzImage');
    writeFileSync(kernel, counterKernel());
    cfg = src.config('count', [`name = 'count'`, `builder = 'hvm'`, `kernel = '${kernel}'`, `memory = 64`, `vcpus = 1`, `serial = 'pty'`, `vga = 'none'`, ''].join('\n'));
    // A host with room for only 32 MiB of guests.
    full.env.XENODE_MEMORY_MIB = '32';
    await Promise.all([src.start(), dst.start(), full.start()]);
  }, 90_000);

  afterAll(async () => {
    for (const l of listeners) l.kill('SIGKILL');
    await Promise.all([src.stop(), dst.stop(), full.stop()]);
    spawnSync('ip', ['link', 'del', HOST_IF]);
    spawnSync('ip', ['netns', 'del', NS]);
  }, 90_000);

  const on = async (xn: Instance) => (await xn.list()).find((d) => d.name === 'count');
  const lastCount = (xn: Instance) => counts(xn.consoleLog('count')).at(-1) ?? 0;

  it('a destination that dies mid-stream leaves the guest running on the source', async () => {
    await src.xlOk('create', cfg);
    await src.waitFor('counting', () => lastCount(src) >= 3, 30_000);
    const l = await listen(dst, 7711, 20_000);
    listeners.push(l);
    const r = await src.xl('migrate', '-s', CONNECT, 'count', `${DST_ADDR}:7711`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/migration failed, the domain keeps running here/);
    expect(r.stderr).toContain('Migration failed, resuming at sender.');
    const at = lastCount(src);
    await src.waitFor('the source guest to count on', () => lastCount(src) > at + 2, 20_000);
    expect((await on(src))?.state).not.toContain('p');
    expect(await on(dst)).toBeUndefined();
  }, 120_000);

  it('a destination without room refuses; the guest keeps running on the source', async () => {
    const l = await listen(full, 7712);
    listeners.push(l);
    const r = await src.xl('migrate', '-s', CONNECT, 'count', `${DST_ADDR}:7712`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the receiver refused: .*not enough free memory for a 64 MiB domain/);
    const at = lastCount(src);
    await src.waitFor('the source guest to count on', () => lastCount(src) > at + 2, 20_000);
    expect(await on(full)).toBeUndefined();
  }, 120_000);

  it('moves a counting guest live; it goes on counting on the destination\'s xl console', async () => {
    const l = await listen(dst, 7713);
    listeners.push(l);
    const r = await src.xl('migrate', '--debug', '-s', CONNECT, 'count', `${DST_ADDR}:7713`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Migration successful.');
    console.log(r.stderr.split('\n').filter((x) => x.startsWith('migration sender')).join('\n'));
    expect(await on(src)).toBeUndefined(); // destroyed only after the destination confirmed
    expect(await on(dst)).toBeDefined();
    const lastOnSource = lastCount(src);
    const con = new XlConsole(dst, 'count').attach();
    try {
      await con.waitFor(new RegExp((lastOnSource + 3).toString(16).padStart(8, '0')), 30_000);
    } finally {
      con.close();
    }
    const there = counts(dst.consoleLog('count'));
    // The line being printed at the stop-and-copy may be split between the two consoles.
    expect(there[0]).toBeGreaterThanOrEqual(lastOnSource + 1);
    expect(there[0]).toBeLessThanOrEqual(lastOnSource + 2);
    await dst.xlOk('destroy', 'count');
  }, 180_000);

  it('a guest dirtying memory while it moves arrives with every page it wrote (KVM dirty log)', async () => {
    const PAGES = 512;
    const kernel = join(src.dir, 'dirty.bzImage');
    writeFileSync(kernel, counterKernel(20_000, 0x3f8, PAGES));
    const dcfg = src.config('dirty', readFileSync(cfg, 'utf8').replace("name = 'count'", "name = 'dirty'").replace(/kernel = '[^']*'/, `kernel = '${kernel}'`));
    await src.xlOk('create', dcfg);
    await src.waitFor('dirtying', () => (counts(src.consoleLog('dirty')).at(-1) ?? 0) >= 10, 30_000);
    const l = await listen(dst, 7714);
    listeners.push(l);
    const r = await src.xl('migrate', '--debug', '-s', CONNECT, 'dirty', `${DST_ADDR}:7714`);
    expect(r.code, r.stderr).toBe(0);
    console.log(r.stderr.split('\n').filter((x) => x.startsWith('migration sender')).join('\n'));
    await dst.waitFor('counting there', () => counts(dst.consoleLog('dirty')).length >= 3, 30_000);
    // Stop it and look at its memory: the count, and the region it sweeps.
    await dst.xlOk('pause', 'dirty');
    const core = join(dst.dir, 'dirty.core');
    await dst.xlOk('dump-core', 'dirty', core);
    const mem = readFileSync(core);
    const c = mem.readBigUInt64LE(COUNTER_GPA);
    expect(c).toBeGreaterThan(10n);
    for (let i = 0; i < PAGES; i++) {
      const v = mem.readBigUInt64LE(DIRTY_REGION_GPA + i * 4096);
      if (v !== c && v !== c - 1n) throw new Error(`page ${i} of the region holds ${v}, the count is ${c}: a dirty page was lost`);
    }
    await dst.xlOk('destroy', 'dirty');
  }, 180_000);
});
