// The HVM kernel's own counters, for the PV-vs-emulated comparison: VM exits by device (what
// the vCPU runtime forwarded), interrupts by line, and each driver's counters. The device
// model's metrics (PcMachine.metrics(), in the stub domain) are the authoritative count of
// exits and interrupts; these are the guest's view of the same, optional.
//
// With `xenode.hvm_stats=<ms>` on the command line the kernel writes them as JSON to
// /run/xenode/hvm-stats.json every <ms> milliseconds (and once more at shutdown), so a
// benchmark inside the guest can `cat` them before and after a run.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';

export const STATS_PATH = '/run/xenode/hvm-stats.json';

export type StatsSource = () => Record<string, unknown>;

export class StatsWriter {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly collect: StatsSource,
    private readonly path = STATS_PATH,
  ) {}

  /** Parses xenode.hvm_stats= (milliseconds; 0 or absent = off). */
  static interval(v: string | undefined): number {
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? Math.max(100, Math.floor(n)) : 0;
  }

  start(ms: number): void {
    if (ms <= 0) return;
    this.write();
    this.timer = setInterval(() => this.write(), ms);
    this.timer.unref();
  }

  write(): void {
    try {
      const dir = this.path.slice(0, this.path.lastIndexOf('/'));
      mkdirSync(dir, { recursive: true });
      const tmp = `${this.path}.tmp`;
      writeFileSync(tmp, JSON.stringify({ time: Date.now(), ...this.collect() }, null, 1) + '\n');
      renameSync(tmp, this.path);
    } catch {
      /* no writable /run: counters stay in memory */
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
