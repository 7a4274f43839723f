// The stub domain confined (issue 19, items 1 and 5): every HVM guest gets a stub domain of its
// own, running as unprivileged uids of its own with no capabilities, no_new_privs, a seccomp
// allowlist, its own mount, network, pid and IPC namespaces and its own memory and pids
// cgroup, holding its guest's image, RAM and pty as fds. A device model that tries what an
// attacker would gets refused; one that makes a call outside the allowlist dies, and only its
// guest crashes; kill -9 of a stub domain crashes its guest within a second (on_crash applies)
// and the restarted guest gets a new stub domain. Checked from the host, as an administrator
// would look: /proc/PID/status, ns links, cgroups, `xl list`, `xl dmesg`, `xl console`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Instance, ROOT, shouldSkip } from '../helpers/instance.js';
import { rpcCall } from '../../dom0/toolstack/rpc.js';
import { DEFAULT_POOL } from '../../common/uid-ranges.js';
import { STUBDOM_BASE_MEMORY } from '../../dom0/stubdom-host.js';
import { STUBDOM_PIDS_MAX } from '../../dom0/stubdom-cgroup.js';
import type { EscapeResults } from '../../stubdom/escape-probe.js';

const MEMORY_MIB = 128;
const VRAM = 16 << 20;

/** Fields of /proc/PID/status. */
function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

describe.skipIf(shouldSkip())('the stub domain, confined (one per HVM guest)', () => {
  const xn = new Instance('confine');
  const sock = () => join(xn.dir, 'run', 'toolstack.sock');
  let host: Server;
  let hostPort = 0;

  const config = (name: string, onCrash: string) => {
    const image = join(xn.dir, `${name}.img`);
    writeFileSync(image, Buffer.alloc(8 << 20));
    return xn.config(
      name,
      [`type = 'hvm'`, `name = '${name}'`, `memory = ${MEMORY_MIB}`, `serial = 'pty'`, `disk = [ 'file:${image},hda,w' ]`, `on_crash = '${onCrash}'`, ''].join('\n'),
    );
  };
  const boot = async (name: string, onCrash: string) => {
    const before = xn.consoleLog(name).length;
    await xn.xlOk('create', config(name, onCrash));
    await xn.waitFor(`${name}'s init`, () => /Run .* as init process/.test(xn.consoleLog(name).slice(before)), 60_000);
  };
  const domid = async (name: string) => Number((await xn.xlOk('domid', name)).trim());
  const xsRead = async (path: string) => {
    const r = await xn.xenstore('xenstore-read', path);
    if (r.code !== 0) throw new Error(`xenstore-read ${path}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const dmPid = async (name: string) => Number(await xsRead(`/local/domain/${await domid(name)}/image/device-model-pid`));
  const fault = <T>(name: string, f: object) => rpcCall<T>(sock(), 'dm-fault', { dom: name, fault: f });
  const list = () => rpcCall<{ domid: number; name: string; crashed: boolean }[]>(sock(), 'list');
  /** ms from now until the domain is crashed or gone. */
  const msUntilCrashed = async (id: number, limitMs: number) => {
    const t0 = Date.now();
    while (Date.now() - t0 < limitMs) {
      const d = (await list()).find((x) => x.domid === id);
      if (!d || d.crashed) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 20));
    }
    return Infinity;
  };

  beforeAll(async () => {
    host = createServer((s) => s.end('host service\n'));
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
    hostPort = (host.address() as { port: number }).port;
    await xn.start();
    await boot('conf-a', 'restart');
    await boot('conf-b', 'preserve');
  }, 150_000);

  afterAll(async () => {
    host?.close();
    await xn.stop();
  }, 60_000);

  it('runs each guest\'s device model in a stub domain of its own: own uids, no capabilities, no_new_privs, seccomp', async () => {
    const [a, b] = [await dmPid('conf-a'), await dmPid('conf-b')];
    expect(a).not.toBe(b);
    const guestKernelUids = new Set<number>();
    for (const info of await list()) {
      if (!info.domid) continue;
      const jailer = (info as unknown as { pid: number }).pid;
      const kernel = Number(readFileSync(`/proc/${jailer}/task/${jailer}/children`, 'utf8').trim().split(/\s+/)[0]);
      guestKernelUids.add(Number(status(kernel).Uid!.split(/\s+/)[0]));
    }
    const uids: number[] = [];
    for (const pid of [a, b]) {
      const st = status(pid);
      const uid = st.Uid!.split(/\s+/).map(Number);
      expect(new Set(uid).size, 'real, effective, saved and fs uid are one').toBe(1);
      expect(uid[0]).toBeGreaterThanOrEqual(DEFAULT_POOL.first);
      expect(uid[0]).toBeLessThanOrEqual(DEFAULT_POOL.last);
      expect(guestKernelUids.has(uid[0]!), 'not a guest\'s uid').toBe(false);
      uids.push(uid[0]!);
      expect(st.Gid!.split(/\s+/).map(Number)[0]).toBe(uid[0]);
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) expect(st[set], set).toBe('0000000000000000');
      expect(st.NoNewPrivs).toBe('1');
      expect(st.Seccomp).toBe('2');
    }
    expect(uids[0]).not.toBe(uids[1]);
  });

  it('gives it its own mount, network, pid, IPC and UTS namespaces holding only what device models need', async () => {
    const [a, b] = [await dmPid('conf-a'), await dmPid('conf-b')];
    for (const ns of ['mnt', 'net', 'pid', 'ipc', 'uts']) {
      const mine = readlinkSync(`/proc/self/ns/${ns}`);
      expect(readlinkSync(`/proc/${a}/ns/${ns}`), ns).not.toBe(mine);
      expect(readlinkSync(`/proc/${a}/ns/${ns}`), ns).not.toBe(readlinkSync(`/proc/${b}/ns/${ns}`));
    }
    // Its network namespace has only a loopback, and it is down.
    const ifaces = readFileSync(`/proc/${a}/net/dev`, 'utf8').split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0]!.trim());
    expect(ifaces).toEqual(['lo']);
    // Its root: /usr, /proc, /dev with four nodes, and xenode's code; none of the host's files.
    const root = readdirSync(`/proc/${a}/root`);
    // (xenode's code is bound at its host path: the first directory of that path is there, empty
    // but for the way down to dist/, wherever the checkout is, e.g. /tmp in a CI clone.)
    const codeTop = ROOT.split('/')[1];
    for (const hostDir of ['home', 'root', 'tmp', 'var', 'run', 'sys', 'boot', 'srv', 'opt'].filter((d) => d !== codeTop)) expect(root, hostDir).not.toContain(hostDir);
    if (codeTop) expect(readdirSync(`/proc/${a}/root/${codeTop}`)).toEqual([ROOT.split('/')[2]]);
    expect(readdirSync(`/proc/${a}/root/dev`).sort()).toEqual(['null', 'random', 'urandom', 'zero']);
    expect(readdirSync(`/proc/${a}/root/etc`)).toEqual(existsSync('/etc/ld.so.cache') ? ['ld.so.cache'] : []);
    // Everything mounted read-only but /proc and the four device nodes.
    const writable = readFileSync(`/proc/${a}/mountinfo`, 'utf8').split('\n').filter(Boolean)
      .map((l) => l.split(' ')).filter((f) => !f[5]!.split(',').includes('ro')).map((f) => f[4]);
    expect(writable.sort()).toEqual(['/dev/null', '/dev/random', '/dev/urandom', '/dev/zero', '/proc']);
    // Its pid namespace holds itself only, and its /proc no kernel files (no sysctls).
    expect(readdirSync(`/proc/${a}/root/proc`).sort()).toEqual(['1', 'self', 'thread-self']);
    // Its guest's image is an fd dom0 opened, not a path it could open.
    const image = join(xn.dir, 'conf-a.img');
    expect(existsSync(`/proc/${a}/root${image}`)).toBe(false);
    const fds = readdirSync(`/proc/${a}/fd`).map((fd) => { try { return readlinkSync(`/proc/${a}/fd/${fd}`); } catch { return ''; } });
    expect(fds).toContain(image);
    // No host file it could fill or read beyond its guest's: its stdio are pipes, the console
    // log a socket dom0 reads (capped); the rest is its guest's image, RAM and pty.
    expect(fds.filter((f) => f.startsWith('/') && f !== image && !['/dev/null', '/dev/ptmx'].includes(f) && !/^\/(memfd:)?xenode-d\d+-(ram|ioreq)/.test(f))).toEqual([]);
    for (const stdio of [1, 2]) expect(readlinkSync(`/proc/${a}/fd/${stdio}`)).toMatch(/^(pipe|socket):/); // Node makes stdio pipes as socket pairs
  });

  it('puts it in a memory and a pids cgroup of its own, with limits', async () => {
    for (const name of ['conf-a', 'conf-b']) {
      const pid = await dmPid(name);
      const groups = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      const id = await domid(name);
      const own = `/${xn.cgroup}-stubdom/d${id}`;
      expect(groups).toMatch(new RegExp(`:memory:${own}\\n`));
      expect(groups).toMatch(new RegExp(`:pids:${own}\\n`));
      expect(Number(readFileSync(`/sys/fs/cgroup/memory${own}/memory.limit_in_bytes`, 'utf8'))).toBe(STUBDOM_BASE_MEMORY + MEMORY_MIB * 1048576 + VRAM);
      expect(readFileSync(`/sys/fs/cgroup/pids${own}/pids.max`, 'utf8').trim()).toBe(String(STUBDOM_PIDS_MAX));
      expect(Number(readFileSync(`/sys/fs/cgroup/pids${own}/pids.current`, 'utf8'))).toBeLessThan(STUBDOM_PIDS_MAX);
    }
  });

  it('keeps serving its guest: serial console, IDE disk, and the VNC display on the host\'s 127.0.0.1', async () => {
    const out = await xn.consoleRun('conf-a', 'echo confined-ok; dd if=/dev/hda bs=4096 count=16 2>/dev/null | wc -c');
    expect(out).toContain('confined-ok');
    expect(out).toContain('65536');
    const port = Number(await xsRead(`/local/domain/${await domid('conf-a')}/console/vnc-port`));
    const hello = await new Promise<string>((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {});
      s.once('data', (d) => (s.destroy(), resolve(d.toString())));
      s.once('error', reject);
    });
    expect(hello).toBe('RFB 003.008\n');
  });

  it('refuses a subverted device model what it would try: a shell, host files, other guests\' images, host processes, the host network', async () => {
    const r = await fault<EscapeResults>('conf-a', { kind: 'escape', tcpPort: hostPort, path: join(xn.dir, 'conf-b.img'), pid: process.pid });
    expect(r).toEqual({
      spawnShell: 'EPERM', // fork is outside the seccomp allowlist
      readHostShadow: 'ENOENT', // not in its mount namespace
      openHostFile: 'ENOENT',
      writeOwnCode: 'EACCES', // root's files; and mounted read-only (below)
      signalHostProcess: 'ESRCH', // not in its pid namespace
      connectHostLoopback: 'EPERM', // socket() is refused; its network namespace is empty anyway
    });
    expect(await xn.consoleRun('conf-a', 'echo still-served')).toContain('still-served');
  });

  it('kills a stub domain that makes a call outside its allowlist; only its guest crashes (on_crash = preserve)', async () => {
    const id = await domid('conf-b');
    await fault('conf-b', { kind: 'setuid' });
    expect(await msUntilCrashed(id, 5000)).toBeLessThan(1000);
    const row = (await xn.list()).find((d) => d.name === 'conf-b');
    expect(row?.state).toMatch(/c/);
    expect((await xn.xlOk('dmesg'))).toMatch(new RegExp(`device model of domain ${id} ended: its stub domain died \\(killed by SIGSYS`));
    expect(await xn.consoleRun('conf-a', 'echo neighbour-fine')).toContain('neighbour-fine');
    await xn.xlOk('destroy', 'conf-b');
  }, 30_000);

  it('crashes the guest of a stub domain killed with kill -9 within a second; on_crash = restart brings it back with a new stub domain', async () => {
    const id = await domid('conf-a');
    const pid = await dmPid('conf-a');
    const before = xn.consoleLog('conf-a').length;
    process.kill(pid, 'SIGKILL');
    expect(await msUntilCrashed(id, 5000)).toBeLessThan(1000);
    expect(await xn.xlOk('dmesg')).toMatch(new RegExp(`device model of domain ${id} ended: its stub domain died \\(killed by SIGKILL\\)`));
    expect(xn.log()).toMatch(/"conf-a" crashed; action restart/);
    await xn.waitFor('conf-a restarted', async () => (await list()).some((d) => d.name === 'conf-a' && d.domid !== id), 20_000);
    await xn.waitFor('conf-a\'s init again', () => /Run .* as init process/.test(xn.consoleLog('conf-a').slice(before)), 60_000);
    const again = await dmPid('conf-a');
    expect(again).not.toBe(pid);
    expect(status(again).Seccomp).toBe('2');
    expect(await xn.consoleRun('conf-a', 'echo back-again')).toContain('back-again');
  }, 90_000);
});
