// A guest's /proc describes its domain, as a user inside checks it: `free` shows the domain's
// memory and follows `xl mem-set` and what the guest's programs hold, `nproc` and cpuinfo
// count its vCPUs, /proc/cmdline is its command line, /proc/uptime (and ps's process times)
// start at its boot, /proc/partitions lists its disks, `top` reads them all, and a non-root
// guest user can read every file but write none.
import { readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, ROOT, shouldSkip } from '../helpers/instance.js';
import { cgRead } from '../helpers/platform.js';

const FILES = ['cmdline', 'meminfo', 'cpuinfo', 'stat', 'uptime', 'loadavg', 'partitions'];
const CMDLINE = 'console=hvc0 quiet xenode.test=procviews';

/** Whether a block driver on this branch fills the kernel's block-device table (blkfront does
 * once it registers its disks; block-devices.ts alone only holds the table). */
function driversFillBlockTable(): boolean {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  return walk(join(ROOT, 'guest')).some((f) => !f.endsWith('block-devices.ts') && /registerBlockDevice\(\{/.test(readFileSync(f, 'utf8')));
}

describe.skipIf(shouldSkip())("a guest's /proc shows its domain", () => {
  const xn = new Instance('procviews');
  const hostCpus = cpus().length;
  let createdAt = 0;
  let one = 0;
  beforeAll(async () => {
    await xn.start();
    const disk = join(xn.dir, 'disk.img');
    writeFileSync(disk, '');
    truncateSync(disk, 48 * 1024 * 1024);
    createdAt = Date.now();
    const cfg = xn.config('one', ['name = "one"', 'type = "pv"', 'memory = 128', 'vcpus = 1', `extra = "${CMDLINE}"`, `disk = [ 'file:${disk},xvda,w' ]`, ''].join('\n'));
    await xn.xlOk('create', cfg);
    one = Number((await xn.xlOk('domid', 'one')).trim());
    await xn.create('two', { memory: 96, vcpus: 2, maxvcpus: 3 });
    await xn.waitForShell('one');
    await xn.waitForShell('two');
  });
  afterAll(() => xn.stop());

  const run = (dom: string, cmd: string) => xn.consoleRun(dom, cmd, 15_000);
  const memTotalKiB = async (dom: string) => Number(/^MemTotal:\s+(\d+) kB$/m.exec(await run(dom, 'cat /proc/meminfo'))?.[1]);

  it('/proc/uptime starts at the domain\'s boot, not the host\'s', async () => {
    const [up, idle] = (await run('one', 'cat /proc/uptime')).trim().split(/\s+/).map(Number);
    const sinceCreate = (Date.now() - createdAt) / 1000;
    expect(up).toBeGreaterThan(0);
    expect(up).toBeLessThanOrEqual(sinceCreate + 0.5);
    expect(idle).toBeLessThanOrEqual(up! * 1 + 0.01); // one vCPU: idle can never exceed uptime
    const hostUp = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    if (hostUp > sinceCreate + 60) expect(up).toBeLessThan(hostUp - 30);
    // Process start times count from the same boot (the domain's time namespace): ps's
    // ELAPSED of a process just started is 0-1 s, not the host's uptime or a wrapped number.
    expect((await run('one', 'sleep 5 & ps -o etime= -p $!; kill $!')).trim()).toMatch(/^00:0[01]$/);
  });

  it('/proc/cmdline is the guest\'s command line', async () => {
    expect((await run('one', 'cat /proc/cmdline')).trim()).toBe(CMDLINE);
    expect((await run('two', 'cat /proc/cmdline')).trim()).toBe('console=hvc0');
  });

  it('free shows the domain\'s memory', async () => {
    const free = await run('one', 'free -m');
    const total = Number(/^Mem:\s+(\d+)/m.exec(free)?.[1]);
    expect(total).toBe(128);
    expect(Number(/^Mem:\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)/m.exec(await run('two', 'free -m'))?.[1])).toBeLessThanOrEqual(96);
  });

  it('free follows what the guest\'s programs hold', async () => {
    const usedNow = () => run('one', 'free -m').then((t) => Number(/^Mem:\s+\d+\s+(\d+)/m.exec(t)?.[1]));
    const before = await usedNow();
    // A program holding 48 MiB: `free` run while it holds them shows them used.
    const during = await run('one', `python3 -c 'b = bytearray(48 << 20); b[::4096] = b"x" * len(b[::4096]); import subprocess; subprocess.run(["free", "-m"])'`);
    const usedDuring = Number(/^Mem:\s+\d+\s+(\d+)/m.exec(during)?.[1]);
    expect(usedDuring - before, during).toBeGreaterThanOrEqual(40);
    expect(usedDuring - before).toBeLessThanOrEqual(64);
    // Freed when it exits.
    expect((await usedNow()) - before).toBeLessThan(8);
    // `free -s 1` keeps /proc/meminfo open and reads it again each second: its later lines
    // follow a program that starts meanwhile.
    const hold = `python3 -c 'b = bytearray(48 << 20); b[::4096] = b"x" * len(b[::4096]); import time; time.sleep(4)'`;
    const lines = await run('one', `(sleep 1.5; ${hold}) & free -m -s 1 -c 6 | grep ^Mem:; wait`);
    const used = [...lines.matchAll(/^Mem:\s+\d+\s+(\d+)/gm)].map((m) => Number(m[1]));
    expect(used, lines).toHaveLength(6);
    expect(Math.max(...used) - used[0]!, lines).toBeGreaterThanOrEqual(40);
  });

  it('xl mem-set changes MemTotal', async () => {
    expect(await memTotalKiB('one')).toBe(128 * 1024);
    await xn.xlOk('mem-set', 'one', '100m');
    expect(await memTotalKiB('one')).toBe(100 * 1024);
    await xn.xlOk('mem-set', 'one', '128m');
    expect(await memTotalKiB('one')).toBe(128 * 1024);
  });

  it('nproc, cpuinfo and /proc/stat count the vCPUs; the guest\'s programs run on that many host CPUs', async () => {
    expect((await run('one', 'nproc; grep -c ^processor /proc/cpuinfo; grep -c "^cpu[0-9]" /proc/stat')).trim().split(/\s+/)).toEqual(['1', '1', '1']);
    // The programs are on one CPU; the guest kernel (PID 1) keeps the domain's whole cpuset.
    const allowed = (await run('one', 'grep Cpus_allowed_list /proc/1/status /proc/$$/status')).replace(/\s+/g, ' ');
    const all = cgRead(xn, 'cpuset', one, 'cpuset.cpus');
    expect(allowed).toContain(`/proc/1/status:Cpus_allowed_list: ${all}`);
    expect(allowed).toMatch(/\/proc\/\d+\/status:Cpus_allowed_list: \d+ ?$/);
    // nproc is the affinity, which cannot hold more CPUs than the host has; the counts that
    // come from /proc (getconf, Python's os.cpu_count) say 2 whatever the host.
    const two = (await run('two', 'nproc; grep -c ^processor /proc/cpuinfo; getconf _NPROCESSORS_ONLN; python3 -c "import os; print(os.cpu_count())"')).trim().split(/\s+/);
    expect(two).toEqual([String(Math.min(2, hostCpus)), '2', '2', '2']);
    // cpuinfo keeps the host's model, so programs that parse it still find their fields.
    const host = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /^model name\s*:\s*(.*)$/m.exec(host)?.[1];
    const flags = /^flags\s*:\s*(.*)$/m.exec(host)?.[1];
    const guest = await run('two', 'cat /proc/cpuinfo');
    expect(guest).toMatch(/^processor\s*: 1$/m);
    expect(guest).toMatch(/^siblings\s*: 2$/m);
    if (model) expect(guest).toContain(model);
    if (flags) expect(guest).toContain(flags);
    // xl vcpu-set: one vCPU more online is one processor more.
    await xn.xlOk('vcpu-set', '--ignore-host', 'two', '3'); // more vCPUs than this host's CPUs
    await xn.waitFor('a third processor in cpuinfo', async () => (await run('two', 'grep -c ^processor /proc/cpuinfo')).trim() === '3');
  });

  it('top reads the domain\'s memory, load and CPU lines', async () => {
    const top = await run('one', 'COLUMNS=200 top -bn1 | head -5');
    expect(top).toMatch(/load average: \d+\.\d\d, /);
    expect(top).toMatch(/MiB Mem :\s+128\.0 total/);
    expect(top).toMatch(/%Cpu\(s\):/);
  });

  it('a non-root guest user reads every file and can write none', async () => {
    const out = await run('one', `setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'id -u; for f in ${FILES.join(' ')}; do head -c 64 /proc/$f >/dev/null && echo read $f; echo x 2>/dev/null >/proc/$f && echo WROTE $f; done'`);
    expect(out.trim().split('\n')).toEqual(['65534', ...FILES.map((f) => `read ${f}`)]);
    // Root may not write either; a procfs file has size 0, and reads in pieces still add up.
    expect(await run('one', 'echo x > /proc/meminfo 2>/dev/null || echo refused')).toContain('refused');
    expect((await run('one', 'stat -c %s /proc/meminfo')).trim()).toBe('0');
    const whole = await run('one', 'md5sum < /proc/cpuinfo');
    const pieces = await run('one', 'dd if=/proc/cpuinfo bs=7 2>/dev/null | md5sum');
    expect(pieces).toBe(whole);
  });

  it.skipIf(!driversFillBlockTable())('/proc/partitions lists the guest\'s disk with its size', async () => {
    const parts = await run('one', 'cat /proc/partitions');
    expect(parts).toMatch(/^major minor {2}#blocks {2}name\n\n/);
    expect(parts).toMatch(/^ 202 +0 +49152 xvda$/m);
    expect(parts).not.toMatch(/\bvda\b|\bsda\b|\bnvme/); // none of the host's disks
  });

  it('the load average is the domain\'s own', async () => {
    // A spinning task over one 5-second sample raises the 1-minute average above 0.
    await run('one', 'timeout 6 sh -c "while :; do :; done"; true');
    expect(Number((await run('one', 'cat /proc/loadavg')).split(' ')[0])).toBeGreaterThan(0);
    expect((await run('two', 'cat /proc/loadavg')).trim()).toMatch(/^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+\/\d+ \d+$/);
  });
});
