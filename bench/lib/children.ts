// Helper processes a benchmark starts (ping-pong peers, echo servers): tracked so that an
// interrupted run kills them too, instead of leaving them to their own time limits.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

export function track(c: ChildProcess): ChildProcess {
  live.add(c);
  c.once('exit', () => live.delete(c));
  return c;
}

export function kill(c: ChildProcess): void {
  if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function killAll(): void {
  for (const c of live) kill(c);
  live.clear();
}
