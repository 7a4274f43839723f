// The guest's userland: init runs as a session leader on the console pty (its controlling
// terminal, so ^C and job control work), inside the domain's sandbox set up by the jailer,
// started through xenode-rootboot's `userland` command: in the userland's user namespace, its
// memory cgroup and its seccomp filter (native/rootboot.c), out of the kernel's reach.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readdirSync, realpathSync } from 'node:fs';
import { native, type PtyPair } from '../../native/index.js';
import { DEFAULT_INITS, type InitSpec } from './cmdline.js';
import { printk } from './printk.js';
import { startOrphanReaper } from './reaper.js';
import { ROOTBOOT } from './boot/own-init.js';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface Userland {
  pty: PtyPair;
  init: ChildProcess;
}

/** A host's /sbin/init (systemd) cannot boot inside a domain's sandbox: there, /sbin/init is
 * xenode's minimal init, a login shell on hvc0 (as busybox init with a single askfirst line). */
function isSystemInit(path: string): boolean {
  try {
    return path === '/sbin/init' || realpathSync(path).includes('systemd');
  } catch {
    return false;
  }
}

export function startInit(spec: InitSpec, onExit: (code: number | null, signal: NodeJS.Signals | null) => void): Userland {
  let path: string | undefined;
  let argv: string[] = [];
  if (spec.init === null || isSystemInit(spec.init)) {
    printk('Run /sbin/init as init process (xenode init: a login shell on the console)');
    path = '/bin/sh';
    argv = ['-l'];
  } else if (executable(spec.init)) {
    path = spec.init;
    argv = spec.argv;
  } else {
    printk(`Failed to execute ${spec.init} (error -2).  Attempting defaults...`);
    path = DEFAULT_INITS.find((c) => !isSystemInit(c) && executable(c));
    if (!path) throw new Error('No working init found.  Try passing init= option to kernel.');
    argv = path === '/bin/sh' ? ['-l'] : [];
  }
  printk(`Run ${path} as init process`);
  const pty = native().openpty(false);
  const env = {
    HOME: '/root',
    TERM: 'linux',
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...spec.env,
  };
  const init = spawn(ROOTBOOT, ['userland', '--', '/usr/bin/setsid', '--ctty', '--wait', path, ...argv], {
    stdio: [pty.slave, pty.slave, pty.slave],
    env,
    cwd: '/',
  });
  // The kernel keeps only the master: the slave lives on in init's session.
  native().close(pty.slave);
  init.on('exit', onExit);
  // As PID 1 the kernel adopts the domain's orphans; init itself is libuv's to wait for.
  const initPid = init.pid ?? -1;
  startOrphanReaper(() => new Set([initPid]));
  return { pty, init };
}

/** Stop every process in the domain but the kernel: SIGTERM, a grace period, then SIGKILL. */
export async function killAllProcesses(graceMs: number): Promise<void> {
  try {
    process.kill(-1, 'SIGTERM');
    process.kill(-1, 'SIGHUP'); // interactive shells ignore SIGTERM; a console hangup ends them
  } catch {
    return; // nothing left
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    try {
      process.kill(-1, 0);
    } catch {
      return;
    }
  }
  try {
    process.kill(-1, 'SIGKILL');
  } catch {
    /* all gone */
  }
}

/** Signal every process of the domain but the kernel and `spare` (init): sysrq e / i. */
export function signalAllBut(spare: number, signal: 'SIGTERM' | 'SIGKILL'): void {
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === spare || pid === process.pid) continue;
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

/** What init's exit means, as Linux decides it: status 0 powers the domain off (xenode's
 * choice; Linux panics on any exit), anything else is "Attempted to kill init", a crash. */
export function initExitVerdict(code: number | null, signal: NodeJS.Signals | null): { reason: 'poweroff' | 'crash'; message: string } {
  const status = signal ? 128 : (code ?? 0);
  if (status === 0) return { reason: 'poweroff', message: 'init exited: powering off' };
  return { reason: 'crash', message: `Kernel panic - not syncing: Attempted to kill init! exitcode=0x${(status << 8).toString(16).padStart(8, '0')}` };
}

