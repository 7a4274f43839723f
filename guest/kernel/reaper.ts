// The guest kernel is PID 1 of its domain, so every orphaned process in the guest becomes its
// child, and a child nobody waits for stays a zombie, holding a pid (and pids.max is 512).
// Linux's init reaps them; libuv reaps only the children Node spawned itself. So the kernel
// collects the rest: zombies whose parent is PID 1 and that are not one of its own children
// (init, whose exit status libuv must see: it decides poweroff or panic).
import { readdirSync, readFileSync } from 'node:fs';
import { native } from '../../native/index.js';

/** Zombie children of PID 1, from /proc (pid, state and ppid of /proc/N/stat). */
export function orphanZombies(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && fields[1] === '1') out.push(Number(name));
  }
  return out;
}

/** Reap orphans every `intervalMs`; returns a function that stops it.
 * A zombie is reaped only when it was already a zombie at the previous scan. The kernel's own
 * children (the `ip` commands a frontend runs, ...) also have PID 1 as their parent, and libuv
 * collects them when it handles SIGCHLD in its poll phase, after the timers. Reaped by us
 * first, their exit was never seen, and the frontend waiting on one hung (a hot-plugged NIC
 * that never connected). Between two scans the loop has polled at least once, so a zombie
 * still there is nobody's but ours. */
export function startOrphanReaper(ownChildren: () => ReadonlySet<number>, intervalMs = 500): () => void {
  let seen = new Set<number>();
  const timer = setInterval(() => {
    const own = ownChildren();
    const now = new Set(orphanZombies());
    for (const pid of now) if (seen.has(pid) && !own.has(pid)) native().reap(pid);
    seen = now;
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
