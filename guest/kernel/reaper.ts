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

/** Reap orphans every `intervalMs`; returns a function that stops it. */
export function startOrphanReaper(ownChildren: () => ReadonlySet<number>, intervalMs = 1000): () => void {
  const timer = setInterval(() => {
    const own = ownChildren();
    for (const pid of orphanZombies()) if (!own.has(pid)) native().reap(pid);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
