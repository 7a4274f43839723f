// One policy for errors a peer causes (a guest's frontend on a ring, a guest's driver poking
// an emulated device): each is counted under its reason, from a closed list the component
// declares, and logged at a bounded rate. The counters say what a guest did wrong however
// often it does it; the log says so without letting a guest write the host's disk full
// (10 lines per 5 s per device, as Linux's printk_ratelimit: common/log-ratelimit.ts).
//
// A reason is also the name of its counter wherever the component's counters are shown
// (xl network-stats, device-stats, the device model's metrics): one name, one meaning.
import { LogRateLimit } from './log-ratelimit.js';

export class PeerErrors<R extends string> {
  /** Occurrences of each reason (every one, logged or not). */
  readonly counts: Record<R, number>;
  private readonly limit = new LogRateLimit();

  constructor(
    readonly reasons: readonly R[],
    /** Where a line goes (the component's logger, with its own prefix). */
    private readonly out: (line: string) => void,
    /** Counters to count into, when the reasons are fields of the component's own counter
     * set (default: a record of our own, starting at 0). */
    counts?: Record<R, number>,
  ) {
    this.counts = counts ?? (Object.fromEntries(reasons.map((r) => [r, 0])) as Record<R, number>);
  }

  /** Counts `reason` and logs `detail` if the rate allows. */
  report(reason: R, detail: string): void {
    this.counts[reason]++;
    this.limit.log(this.out, detail, 'messages about bad input');
  }

  /** Counts `reason` without a log line (a fatal error logs once elsewhere). */
  count(reason: R): void {
    this.counts[reason]++;
  }

  /** All occurrences, whatever the reason. */
  get total(): number {
    let n = 0;
    for (const r of this.reasons) n += this.counts[r];
    return n;
  }
}
