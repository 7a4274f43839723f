// Host-side views of a private xenode instance for the platform suites: its processes, its
// domains' cgroups, and a tmux-driven `xl console`. Everything here reads /proc and
// /sys/fs/cgroup directly, the way an administrator would check what xenode claims.
import { closeSync, constants, existsSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { XL, type Instance } from './instance.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** /sys/fs/cgroup/<controller>/<instance group>/d<domid>[/file] */
export function cgPath(xn: Instance, controller: string, domid: number, file = ''): string {
  return join('/sys/fs/cgroup', controller, xn.cgroup, `d${domid}`, file);
}

export function cgRead(xn: Instance, controller: string, domid: number, file: string): string {
  return readFileSync(cgPath(xn, controller, domid, file), 'utf8').trim();
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every process of a domain, as its pids cgroup lists them. */
export function domainPids(xn: Instance, domid: number): number[] {
  try {
    return cgRead(xn, 'pids', domid, 'cgroup.procs').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The host pid of a domain's guest kernel (the node process running /boot/kernel.mjs). */
export function kernelPid(xn: Instance, domid: number): number {
  const pid = domainPids(xn, domid).find((p) => /node .*\/boot\/kernel\.mjs/.test(cmdline(p)));
  if (!pid) throw new Error(`no kernel process for d${domid}: ${domainPids(xn, domid).map((p) => `${p}=${cmdline(p)}`).join('; ')}`);
  return pid;
}

export function hypervisorPid(xn: Instance): number {
  return Number(readFileSync(join(xn.dir, 'run', 'hypervisor.pid'), 'utf8').trim());
}

export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** dom0 is the hypervisor's child running dom0/main.js. */
export function dom0Pid(xn: Instance): number {
  const pid = childrenOf(hypervisorPid(xn)).find((p) => cmdline(p).includes('dom0/main.js'));
  if (!pid) throw new Error('dom0 process not found');
  return pid;
}

/** Kill dom0 again each time the hypervisor starts a new one, until it gives up (a crash
 * loop: it stops xenode). */
export async function killDom0UntilStopped(xn: Instance): Promise<void> {
  const hv = hypervisorPid(xn);
  for (let i = 0; i < 6 && alive(hv); i++) {
    let pid = 0;
    await xn.waitFor('a dom0', () => {
      try {
        pid = dom0Pid(xn);
        return true;
      } catch {
        return !alive(hv);
      }
    }, 10_000);
    if (pid) process.kill(pid, 'SIGKILL');
    await sleep(300);
  }
  await xn.waitFor('the hypervisor to stop', () => !alive(hv), 30_000);
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function fdTargets(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(`${fd} -> ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** A guest's memory file as /proc/PID/fd and /proc/PID/maps name it: a memfd
 * ("memfd:xenode-dN-gnttab") or guest RAM on its own tmpfs ("/xenode-dN-ram (deleted)",
 * hypervisor/guest-ram.ts). */
export const GUEST_MEMORY_FILE = /(memfd:|\/)xenode-d\d+-/;

/** Host processes whose fds hold a xenode guest memory file (GUEST_MEMORY_FILE). */
export function memfdHolders(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const t = readlinkSync(`/proc/${p}/fd/${fd}`);
        if (GUEST_MEMORY_FILE.test(t)) out.push(`${p}:${fd} ${t}`);
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

/** Memfds of this instance: held by its hypervisor or dom0 (the only host processes that may). */
export function instanceMemfds(xn: Instance): string[] {
  const mine = new Set([hypervisorPid(xn), dom0Pid(xn)].map(String));
  return memfdHolders().filter((l) => mine.has(l.split(':')[0]!));
}

/**
 * Processes that belong to this instance other than the hypervisor and dom0: anything in its
 * cgroups, started from its run dir, or whose mounts come from its dir (a guest sandbox
 * bind-mounts <dir>/run/boot, so even a process that escaped its cgroup shows up).
 */
export function instanceProcesses(xn: Instance): { pid: number; cmd: string; ns: string[] }[] {
  const skip = new Set([hypervisorPidSafe(xn), dom0PidSafe(xn), process.pid]);
  const out: { pid: number; cmd: string; ns: string[] }[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    if (skip.has(p)) continue;
    let mine = false;
    try {
      if (readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${xn.cgroup}/`)) mine = true;
      else if (cmdline(p).includes(xn.dir)) mine = true;
      else if (readFileSync(`/proc/${p}/mountinfo`, 'utf8').includes(xn.dir)) mine = true;
    } catch {
      continue;
    }
    if (!mine) continue;
    const ns: string[] = [];
    for (const n of ['user', 'pid', 'mnt', 'net', 'uts', 'ipc']) {
      try {
        ns.push(readlinkSync(`/proc/${p}/ns/${n}`));
      } catch {
        /* gone */
      }
    }
    out.push({ pid: p, cmd: cmdline(p), ns });
  }
  return out;
}

function hypervisorPidSafe(xn: Instance): number {
  try {
    return hypervisorPid(xn);
  } catch {
    return -1;
  }
}
function dom0PidSafe(xn: Instance): number {
  try {
    return dom0Pid(xn);
  } catch {
    return -1;
  }
}

/** Namespaces (e.g. "net:[4026532…]") held by a process that are not the host's own. */
export function foreignNamespaces(pid: number): string[] {
  const out: string[] = [];
  for (const n of ['user', 'pid', 'mnt', 'net', 'uts', 'ipc']) {
    try {
      const mine = readlinkSync(`/proc/1/ns/${n}`);
      const theirs = readlinkSync(`/proc/${pid}/ns/${n}`);
      if (mine !== theirs) out.push(theirs);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The cgroup directories of this instance, under every controller. */
export function instanceCgroups(xn: Instance): string[] {
  const out: string[] = [];
  for (const c of ['freezer', 'memory', 'cpu', 'cpuset', 'cpuacct', 'pids']) {
    const base = join('/sys/fs/cgroup', c, xn.cgroup);
    if (!existsSync(base)) continue;
    out.push(base);
    for (const e of readdirSync(base, { withFileTypes: true })) if (e.isDirectory()) out.push(join(base, e.name));
  }
  return [...new Set(out)];
}

/** Host mounts under this instance's dir (there should be none: sandboxes are private). */
export function instanceMounts(xn: Instance): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(xn.dir));
}

export function cpuUsageNs(xn: Instance, domid: number): number {
  return Number(cgRead(xn, 'cpuacct', domid, 'cpuacct.usage'));
}

/** The Time(s) column of `xl list` for one domain. */
export async function listTime(xn: Instance, name: string): Promise<number> {
  const row = (await xn.list()).find((r) => r.name === name);
  if (!row) throw new Error(`${name} not listed`);
  return row.time;
}

export async function waitGone(xn: Instance, name: string, timeoutMs = 10_000): Promise<void> {
  await xn.waitFor(`${name} to go`, async () => !(await xn.list()).some((r) => r.name === name), timeoutMs);
}

export async function domidOf(xn: Instance, name: string): Promise<number | null> {
  const r = await xn.xl('domid', name);
  return r.code === 0 ? Number(r.stdout.trim()) : null;
}

// ------------------------------------------------------------------ tmux

/** A tmux server of our own (-L socket name) so we never touch a user's sessions. */
export class Tmux {
  readonly socket = `xenode-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  static available(): boolean {
    return spawnSync('tmux', ['-V']).status === 0;
  }

  run(...args: string[]): string {
    const r = spawnSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** Start `xl ARGS` in a detached session with the instance's environment. */
  startXl(xn: Instance, session: string, ...xlArgs: string[]): void {
    const env = Object.entries(xn.env)
      .filter(([k]) => k.startsWith('XENODE_') || k === 'XENSTORED_PATH')
      .map(([k, v]) => `${k}=${shellQuote(String(v))}`)
      .join(' ');
    const cmd = `env ${env} ${shellQuote(process.execPath)} ${shellQuote(XL)} ${xlArgs.map(shellQuote).join(' ')}; echo "xl exited with $?"; sleep 600`;
    this.run('new-session', '-d', '-s', session, '-x', '160', '-y', '40', cmd);
  }

  capture(session: string): string {
    return this.run('capture-pane', '-p', '-J', '-S', '-200', '-t', session);
  }

  sendKeys(session: string, ...keys: string[]): void {
    this.run('send-keys', '-t', session, ...keys);
  }

  kill(): void {
    spawnSync('tmux', ['-L', this.socket, 'kill-server']);
    // tmux leaves its socket behind in /tmp/tmux-<uid>/.
    rmSync(join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`, this.socket), { force: true });
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Type a line on a guest's console without waiting for an answer (e.g. `reboot`, a fork bomb). */
export async function consoleType(xn: Instance, dom: string, line: string): Promise<void> {
  const tty = await xn.consoleTty(dom);
  const fd = openSync(tty, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  try {
    writeSync(fd, line.endsWith('\n') ? line : `${line}\n`);
  } finally {
    closeSync(fd);
  }
}
