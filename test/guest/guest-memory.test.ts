// A guest's memory behaves as a machine's, seen from its console: its tmpfs mounts are half
// its RAM (Linux's tmpfs default), so filling /tmp is ENOSPC; a userland program that takes
// more memory than the guest has is killed by the guest's OOM killer, which says so with
// Linux's line; the guest kernel (PID 1, the same process throughout) is never the victim.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { kernelPid } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';

describe.skipIf(shouldSkip())("a guest's memory", () => {
  const xn = new Instance('gmem');
  let con: XlConsole;
  let kernel = 0;
  let domid = 0;
  beforeAll(async () => {
    await xn.start();
    domid = await xn.create('mem', { memory: 128 });
    kernel = kernelPid(xn, domid);
    con = new XlConsole(xn, 'mem').attach();
    await con.waitFor(/# $/m, 20_000);
  }, 60_000);
  afterAll(async () => {
    con?.close();
    await xn.stop();
  });

  it('has /tmp, /var/tmp and /dev/shm of half its 128 MiB', async () => {
    const df = await con.run('df -k /tmp /var/tmp /dev/shm | tail -n +2');
    expect(df.trim().split('\n').map((l) => l.split(/\s+/)[1])).toEqual(['65536', '65536', '65536']);
  });

  it('says "No space left on device" when 400 MB are written to /tmp, and stays up', async () => {
    const out = await con.run('dd if=/dev/zero of=/tmp/big bs=1M count=400 2>&1; ls -l /tmp/big', 30_000);
    expect(out).toMatch(/No space left on device/);
    expect(out).toMatch(/67108864/);
    expect((await con.run('rm /tmp/big && echo removed')).trim()).toBe('removed');
    expect(kernelPid(xn, domid)).toBe(kernel);
  }, 40_000);

  it('kills a memory hog with the OOM line, and the guest answers on its console', async () => {
    // dd's 200 MiB block is read into from /dev/zero: every page touched, more than the guest has.
    const out = await con.run('dd if=/dev/zero of=/dev/null bs=200M count=1 2>&1; echo "status $?"', 30_000);
    expect(out).toMatch(/Killed/);
    expect(out).toMatch(/status 137/);
    const line = await con.waitFor(/Memory cgroup out of memory: Killed process (\d+) \(dd\) total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:\d+kB, shmem-rss:\d+kB, UID:0 pgtables:\d+kB oom_score_adj:0/);
    expect(Number(line[3])).toBeGreaterThan(64 * 1024); // it was the one holding the memory
    expect(xn.consoleLog('mem')).toMatch(/Memory cgroup out of memory: Killed process \d+ \(dd\)/);
    expect((await con.run('echo alive after the hog')).trim()).toBe('alive after the hog');
    expect(kernelPid(xn, domid)).toBe(kernel);
    expect((await xn.list()).find((d) => d.name === 'mem')?.state).toMatch(/^[rb-]+$/);
  }, 60_000);
});
