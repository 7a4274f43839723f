// The domain's load average, computed as Linux computes its own (kernel/sched/loadavg.c):
// every 5 seconds the number of tasks running or waiting on I/O is folded into three
// exponentially decaying averages (1, 5 and 15 minutes) in fixed point with 11 fractional
// bits. Here the tasks counted are the domain's own, so a busy guest shows its load and an
// idle one 0.00 whatever the host is doing.

export const LOAD_FREQ_MS = 5000;
const FSHIFT = 11;
const FIXED_1 = 1 << FSHIFT;
/** 1/exp(5s/1min), 1/exp(5s/5min), 1/exp(5s/15min) in fixed point. */
const EXP = [1884, 2014, 2037] as const;

export class LoadAverage {
  /** avenrun[], fixed point. */
  readonly avenrun: [number, number, number] = [0, 0, 0];

  /** Fold one sample of `active` tasks in (calc_load, rounding up while the load rises). */
  sample(active: number): void {
    const a = Math.max(0, Math.floor(active)) * FIXED_1;
    for (let i = 0; i < 3; i++) {
      const load = this.avenrun[i]!;
      let next = load * EXP[i]! + a * (FIXED_1 - EXP[i]!);
      if (a >= load) next += FIXED_1 - 1;
      this.avenrun[i] = Math.floor(next / FIXED_1);
    }
  }
}
