// What a guest can see and do, checked from inside it (its console shell) and from the host:
// only its own processes; no /root, /etc/shadow, project checkout or dom0 socket of the host;
// no network interface but lo; and its root is an unprivileged uid on the host.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, ROOT, shouldSkip } from '../helpers/instance.js';
import { cmdline, dom0Pid, domainPids, hypervisorPid } from '../helpers/platform.js';

describe.skipIf(shouldSkip())('guest isolation', () => {
  const xn = new Instance('isolation');
  let a = 0;
  let b = 0;
  beforeAll(async () => {
    await xn.start();
    a = await xn.create('iso-a');
    b = await xn.create('iso-b');
    await xn.waitForShell('iso-a');
    await xn.waitForShell('iso-b');
  });
  afterAll(() => xn.stop());

  const sh = (cmd: string) => xn.consoleRun('iso-a', cmd);

  it('sees only its own processes', async () => {
    await xn.consoleRun('iso-b', 'sleep 4242 & echo started');
    const out = await sh('for p in /proc/[0-9]*; do echo "$(basename $p) $(tr "\\0" " " < $p/cmdline)"; done');
    const procs = out.trim().split('\n').filter((l) => /^\d+ /.test(l));
    // The kernel is PID 1; besides it only the shell and what it runs.
    expect(procs.find((l) => l.startsWith('1 '))).toMatch(/\/boot\/kernel\.mjs/);
    expect(procs.length).toBeLessThanOrEqual(8);
    expect(out).not.toContain('sleep 4242'); // the other guest's process
    expect(out).not.toContain('hypervisor/main.js');
    expect(out).not.toContain('dom0/main.js');
    // The host's pids mean nothing inside: the hypervisor cannot even be signalled.
    const hv = hypervisorPid(xn);
    expect(await sh(`kill -0 ${hv} 2>&1; cat /proc/${hv}/cmdline 2>&1`)).toMatch(/No such process[\s\S]*No such file/);
    expect(existsSync(`/proc/${hv}`)).toBe(true);
    // ps agrees with /proc.
    const ps = await sh('ps -e -o pid=,comm=');
    expect(ps).not.toMatch(/\bsleep\b/);
  });

  it('cannot reach /root, /etc/shadow, the project checkout or dom0\'s sockets', async () => {
    const hostRoot = readdirSync('/root');
    const guestRoot = (await sh('ls -A /root; echo END')).trim().split('\n').filter((l) => l && l !== 'END');
    for (const e of hostRoot) expect(guestRoot, `host /root/${e} visible`).not.toContain(e);
    expect(await sh('cat /etc/shadow 2>&1; echo rc=$?')).toMatch(/No such file[\s\S]*rc=1/);
    expect(await sh('ls /etc')).not.toMatch(/\b(shadow|gshadow|ssh|sudoers)\b/);
    const passwd = await sh('cat /etc/passwd');
    expect(passwd).not.toContain(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('daemon:')) ?? '@@');
    expect(await sh(`ls ${ROOT} 2>&1; echo rc=$?`)).toMatch(/No such file[\s\S]*rc=2/);
    // Not through the kernel's root either: its userland cannot even look into PID 1's.
    expect(await sh(`ls /proc/1/root${ROOT} 2>&1 | head -1`)).toMatch(/No such file|Permission denied/);
    for (const sock of [xn.env.XENSTORED_PATH!, `${xn.env.XENODE_RUN_DIR}/toolstack.sock`, '/var/run/xenstored/socket', '/run/xenstored/socket']) {
      const r = await sh(`python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('CONNECTED')" ${sock} 2>&1 | tail -1`);
      expect(r, sock).not.toContain('CONNECTED');
      expect(r, sock).toMatch(/FileNotFoundError|No such file/);
    }
    // Nothing of the host's writable: /usr is read-only.
    expect(await sh('touch /usr/bin/xenode-was-here 2>&1')).toMatch(/Read-only file system/);
    expect(existsSync('/usr/bin/xenode-was-here')).toBe(false);
  });

  it('has no network interface but lo', async () => {
    // Both views: sysfs (read-only, the guest's own network namespace) and the kernel's netlink.
    expect((await sh('ls /sys/class/net')).trim().split(/\s+/).filter(Boolean)).toEqual(['lo']);
    expect((await sh('ip -o link show | cut -d: -f2')).trim().split(/\s+/).filter(Boolean)).toEqual(['lo']);
    // ... and lo is up when init starts (the jailer brings it up, as early userspace does).
    expect(await sh('ip -o link show lo')).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    const dev = await sh('tail -n +3 /proc/net/dev | cut -d: -f1');
    expect(dev.trim().split(/\s+/)).toEqual(['lo']);
    // The host's network is not there: nothing routes out.
    const routes = (await sh('ip route show; ip -6 route show')).trim().split('\n').filter(Boolean);
    expect(routes.filter((r) => !/ dev lo /.test(` ${r} `))).toEqual([]);
    expect(await sh('python3 -c "import socket; socket.create_connection((\'1.1.1.1\', 80), timeout=1)" 2>&1 | tail -1')).toMatch(/unreachable|OSError/i);
  });

  it('its root is an unprivileged uid on the host', async () => {
    expect((await sh('id -u')).trim()).toBe('0');
    // From the host, every process of the domain runs as the first of the 65536 uids the
    // domain claimed (common/uid-ranges.ts), never root; another guest's are others.
    const guestShell = domainPids(xn, a).find((p) => cmdline(p) === '/bin/sh -l');
    expect(guestShell).toBeDefined();
    const hostUids = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m)?.slice(1).map(Number);
    const base = hostUids(guestShell!)![0]!;
    expect(base).toBeGreaterThanOrEqual(65_536);
    expect(hostUids(guestShell!)).toEqual([base, base, base, base]);
    const map = (await sh('cat /proc/self/uid_map')).trim().split(/\s+/).map(Number);
    expect([map[0], map[2]]).toEqual([0, 65536]);
    const otherShell = domainPids(xn, b).find((p) => cmdline(p) === '/bin/sh -l');
    expect(Math.abs(hostUids(otherShell!)![0]! - base)).toBeGreaterThanOrEqual(65_536);
    // Host-privileged operations fail.
    expect(await sh('mknod /tmp/null2 c 1 3 2>&1')).toMatch(/Operation not permitted/);
    expect(await sh('echo 3 > /proc/sys/vm/drop_caches 2>&1; echo rc=$?')).toMatch(/Permission denied|Read-only/);
    expect(await sh('mkdir -p /tmp/s && mount -t sysfs sysfs /tmp/s 2>&1; echo rc=$?')).toMatch(/rc=(32|1)\b/);
    expect(await sh('cat /proc/kcore 2>&1 | head -c 100; echo')).toMatch(/No such file|Permission denied/);
    // Its hostname is its own.
    await sh('hostname pwned');
    expect(hostname()).not.toBe('pwned');
    // The hypervisor and dom0 are still there after all that.
    expect(existsSync(`/proc/${hypervisorPid(xn)}`) && existsSync(`/proc/${dom0Pid(xn)}`)).toBe(true);
  });

  it("the guest kernel, as PID 1, reaps the processes orphaned in its domain, as init does", async () => {
    // Each `sh -c 'sleep 0.2 &'` exits at once and leaves its sleep to PID 1; when the sleeps
    // end, nobody but the kernel can collect them.
    await xn.consoleRun('iso-a', "for i in 1 2 3 4 5; do sh -c 'sleep 0.2 &'; done");
    await new Promise((r) => setTimeout(r, 2000));
    const zombies = await xn.consoleRun('iso-a', "ps -A -o stat= | grep -c '^Z'; true");
    expect(zombies.trim()).toBe('0');
  });
});
