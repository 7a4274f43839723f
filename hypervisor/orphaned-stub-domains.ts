// Stub domains a dead dom0 leaves behind stay the hypervisor's: it is their subreaper, so a
// stub domain's sandbox (native/stubdom-sandbox.c, dom0's child) becomes the hypervisor's
// child when dom0 dies, instead of going to the host's init, which in a container may never
// reap it. The hypervisor collects those sandboxes when they exit (and a stub domain whose
// sandbox died first), and nothing else: libuv waits for the children Node started (dom0,
// the domains' jailers) by pid, and taking one of their exits would lose it. When it stops
// with no dom0 left to do it (dom0 died in a loop), it also removes what those stub domains
// leave: their cgroups and root mount points.
import { readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native/index.js';
import { stubdomCgroupName, stubdomRootsDir } from '../common/paths.js';

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

/** An exited stub domain sandbox, or the stub domain itself when its sandbox died first (it
 * ran in a pid namespace of its own: NSpid has more than one entry). Node starts nothing in a
 * nested pid namespace, so neither can be one of libuv's children. */
function isOrphanedStubZombie(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (!/^State:\s+Z/m.test(status)) return false;
    const nsPids = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
    return nsPids.length > 1 || readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === SANDBOX_COMM;
  } catch {
    return false;
  }
}

function sweep(): void {
  for (const pid of children()) if (isOrphanedStubZombie(pid)) native().reap(pid);
}

/** Become the subreaper and collect orphaned stub-domain sandboxes as they exit. */
export function reapOrphanedStubDomains(): void {
  native().setChildSubreaper();
  process.on('SIGCHLD', sweep);
  // SIGCHLD can coalesce with one libuv handles for its own child: a sweep now and then too.
  setInterval(sweep, SWEEP_MS).unref();
}

const GROUP_PARENTS = ['memory', 'pids'].map((c) => join('/sys/fs/cgroup', c, stubdomCgroupName()));

function leftoverGroups(): string[] {
  return GROUP_PARENTS.flatMap((p) => {
    try {
      return readdirSync(p).filter((n) => /^d\d+$/.test(n)).map((n) => join(p, n));
    } catch {
      return [];
    }
  });
}

function procsOf(group: string): number[] {
  try {
    return readFileSync(join(group, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** After every domain is destroyed (their stub domains' channels are closed, so they are
 * ending): wait for them briefly, kill what is left, and remove their groups and root dirs. */
export async function removeOrphanedStubDomains(waitMs = 3000): Promise<void> {
  const groups = leftoverGroups();
  if (groups.length === 0) return;
  const end = Date.now() + waitMs;
  while (Date.now() < end && groups.some((g) => procsOf(g).length > 0)) await new Promise((r) => setTimeout(r, 50));
  for (const g of groups) for (const pid of procsOf(g)) native().kill(pid, 9);
  for (let attempt = 0; attempt < 50; attempt++) {
    // What was killed may have become ours to reap (a stub domain whose sandbox died first).
    sweep();
    let busy = false;
    for (const dir of [...groups, ...GROUP_PARENTS]) {
      try {
        rmdirSync(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EBUSY') busy = true;
      }
    }
    if (!busy) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    for (const n of readdirSync(stubdomRootsDir())) rmdirSync(join(stubdomRootsDir(), n));
    rmdirSync(stubdomRootsDir());
  } catch {
    /* none, or still mounted */
  }
}
