// A guest booted from its own image is confined as the minimal userland is, probed through
// `xl console` as its root would: it runs in a user namespace nested in its kernel's, cannot
// see the kernel's process at all, runs under the seccomp filter (a static probe on the image
// makes the blocked calls), and its memory behaves as a machine's: /dev/shm is half its RAM, a
// full /dev/shm is ENOSPC, a memory hog is killed with Linux's OOM line and the guest stays up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip, XENODE } from '../helpers/instance.js';
import { kernelPid } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';
import { busyboxAvailable, busyboxRoot } from '../helpers/busybox-root.js';

const PROBE_SOURCE = join(import.meta.dirname, 'fixtures', 'syscall-probe.c');

function probeResults(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const m of out.matchAll(/^(\w+)=(-?\d+)\/(\w+)$/gm)) r[m[1]!] = Number(m[2]) < 0 ? m[3]! : 'ok';
  return r;
}

describe.skipIf(shouldSkip() || !busyboxAvailable())('a guest booted from its own image, confined', () => {
  const xn = new Instance('ownconf');
  let con: XlConsole;
  let root = '';
  let domid = 0;
  let kernel = 0;
  beforeAll(async () => {
    await xn.start();
    root = busyboxRoot();
    const cc = spawnSync('gcc', ['-static', '-O2', '-o', join(root, 'bin', 'probe'), PROBE_SOURCE], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`gcc -static: ${cc.stderr}`);
    chmodSync(join(root, 'bin', 'probe'), 0o755);
    const image = join(xn.dir, 'conf.img');
    const mk = spawnSync(process.execPath, [XENODE, 'mkimage', root, image, '32M'], { encoding: 'utf8' });
    if (mk.status !== 0) throw new Error(`xenode mkimage: ${mk.stderr}`);
    await xn.xlOk('create', xn.config('conf', `name = "conf"\nmemory = 128\ndisk = [ 'file:${image},xvda,w' ]\nextra = "root=/dev/xvda console=hvc0"\n`));
    domid = Number((await xn.xlOk('domid', 'conf')).trim());
    kernel = kernelPid(xn, domid);
    con = new XlConsole(xn, 'conf').attach();
    await con.waitFor(/# $/m, 20_000);
  }, 60_000);
  afterAll(async () => {
    con?.close();
    await xn.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('runs in a user namespace nested in the kernel\'s, where the kernel\'s process does not exist', async () => {
    expect((await con.run('cat /proc/self/uid_map')).trim().split(/\s+/)).toEqual(['0', '0', '65536']);
    // Every process the guest can see is its own: init is PID 1, no node, no fuse2fs.
    expect((await con.run('cat /proc/1/comm')).trim()).toBe('init');
    expect((await con.run('cat /proc/[0-9]*/comm | grep -c -E "^(node|fuse2fs|xenode-rootboot)$"')).trim()).toBe('0');
    // init itself runs under the filter, as does everything it starts.
    expect((await con.run("awk '/^Seccomp:/ {print $2}' /proc/1/status /proc/self/status")).trim().split(/\s+/)).toEqual(['2', '2']);
  });

  it('gets EPERM (io_uring: ENOSYS) for the blocked calls, and keeps its own prlimit', async () => {
    const r = probeResults(await con.run('probe 1'));
    for (const name of ['userfaultfd', 'keyctl', 'add_key', 'bpf', 'perf_event_open', 'kexec_load', 'init_module', 'finit_module', 'open_by_handle_at', 'prlimit64_other'])
      expect([name, r[name]]).toEqual([name, 'EPERM']);
    expect(r.io_uring_setup).toBe('ENOSYS');
    expect(r.prlimit64_read).toBe('ok');
    expect(r.prlimit64_self).toBe('ok');
  });

  it('has /dev/shm of half its RAM and /run of a tenth; a full /dev/shm is ENOSPC', async () => {
    const df = await con.run('df -k /dev/shm /run | tail -n +2');
    expect(df.trim().split('\n').map((l) => l.trim().split(/\s+/)[1])).toEqual(['65536', '13108']);
    expect(await con.run('dd if=/dev/zero of=/dev/shm/big bs=1M count=400 2>&1; rm -f /dev/shm/big', 30_000)).toMatch(/No space left on device/);
  }, 40_000);

  it('kills a memory hog with the OOM line naming it by its own pid, and stays up', async () => {
    const out = await con.run('dd if=/dev/zero of=/dev/null bs=200M count=1 2>&1; echo "status $?"', 30_000);
    expect(out).toMatch(/status 137/);
    const m = await con.waitFor(/Memory cgroup out of memory: Killed process (\d+) \(dd\) total-vm:\d+kB, anon-rss:(\d+)kB/);
    expect(Number(m[1])).toBeLessThan(1000); // a pid of the guest's own pid namespace
    expect(Number(m[2])).toBeGreaterThan(64 * 1024);
    expect((await con.run('echo alive after the hog')).trim()).toBe('alive after the hog');
    expect(kernelPid(xn, domid)).toBe(kernel);
    expect((await xn.xl('shutdown', '-w', 'conf')).code).toBe(0);
  }, 60_000);
});
