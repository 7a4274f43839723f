// Stub domains a dead dom0 leaves behind stay the hypervisor's: it is their subreaper, so a
// stub domain's sandbox (native/stubdom-sandbox.c, dom0's child) becomes the hypervisor's
// child when dom0 dies, instead of going to the host's init, which in a container may never
// reap it. The hypervisor collects those sandboxes when they exit, and nothing else: libuv
// waits for the children Node started (dom0, the domains' jailers) by pid, and taking one of
// their exits would lose it.
import { readFileSync, readdirSync } from 'node:fs';
import { native } from '../native/index.js';

/** /proc/PID/comm of a stub domain's sandbox (15 characters of xenode-stubdom-sandbox). */
const SANDBOX_COMM = 'xenode-stubdom-';
const SWEEP_MS = 5000;

function children(): number[] {
  const out: number[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      out.push(...readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      /* thread gone */
    }
  }
  return out;
}

function isExitedSandbox(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === SANDBOX_COMM;
  } catch {
    return false;
  }
}

function sweep(): void {
  for (const pid of children()) if (isExitedSandbox(pid)) native().reap(pid);
}

/** Become the subreaper and collect orphaned stub-domain sandboxes as they exit. */
export function reapOrphanedStubDomains(): void {
  native().setChildSubreaper();
  process.on('SIGCHLD', sweep);
  // SIGCHLD can coalesce with one libuv handles for its own child: a sweep now and then too.
  setInterval(sweep, SWEEP_MS).unref();
}
