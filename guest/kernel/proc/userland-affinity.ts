// The guest's programs run on their domain's vCPUs: the guest kernel sets every userland
// task's CPU affinity to the host CPUs the hypervisor placed its vCPUs on (vcpu.runstate's
// `cpus`), so sched_getaffinity, and with it `nproc`, thread-pool sizes and the like, count
// the vCPUs. The kernel itself (PID 1 and its threads) keeps the domain's whole cpuset: with
// its programs on one CPU beside it, a 1-vCPU guest's queue-depth-1 disk reads halved. The
// domain's CPU time stays capped at its vCPUs' worth by the hypervisor either way.
//
// Tasks inherit their parent's affinity, so confining init confines its descendants. Each
// task is set once, when first seen (a guest may widen its own programs' affinity within
// the cpuset afterwards, as on Linux); all of them again when the vCPUs change (xl vcpu-set).
import { readFileSync, readdirSync } from 'node:fs';
import { native } from '../../../native/index.js';
import { parseCpuList } from '../../../common/cpu-list.js';

/** How often new tasks are looked for (init's first children may come before it was set). */
export const CONFINE_SCAN_MS = 1000;

export class UserlandAffinity {
  private cpus: number[] = [];
  private readonly confined = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private lastError = '';
  /** The kernel's own affinity (the domain's cpuset), read before anything changed it. */
  private readonly kernelCpus = parseCpuList(/^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1] ?? '0');

  constructor(private readonly log: (msg: string) => void) {}

  /** The vCPUs' host CPUs; a change re-confines every task. */
  setCpus(cpus: number[]): void {
    const next = [...new Set(cpus)].sort((a, b) => a - b);
    if (next.length === 0 || next.join() === this.cpus.join()) return;
    this.cpus = next;
    this.confined.clear();
    this.scan();
  }

  start(): void {
    this.timer ??= setInterval(() => this.scan(), CONFINE_SCAN_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Until the next turn of the event loop, whatever the kernel's main thread spawns (init)
   * starts on the vCPUs' CPUs; then the kernel has its whole cpuset back. */
  confineNextSpawns(): void {
    if (this.cpus.length === 0 || !this.set(0, this.cpus)) return;
    setImmediate(() => this.set(0, this.kernelCpus));
  }

  /** Set every task not yet set (all but the kernel, PID 1, and its threads). */
  scan(): void {
    if (this.cpus.length === 0) return;
    const seen = new Set<number>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || name === '1') continue;
      const pid = Number(name);
      seen.add(pid);
      if (this.confined.has(pid)) continue;
      let tids: string[];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue; // exited
      }
      for (const tid of tids) this.set(Number(tid), this.cpus);
      this.confined.add(pid);
    }
    for (const pid of this.confined) if (!seen.has(pid)) this.confined.delete(pid);
  }

  private set(tid: number, cpus: number[]): boolean {
    try {
      return native().setAffinity(tid, cpus);
    } catch (e) {
      const why = `CPU affinity ${cpus.join(',')}: ${(e as Error).message}`;
      if (why !== this.lastError) this.log(why);
      this.lastError = why;
      return false;
    }
  }
}
