// XSA-332's answer to event storms, for any end that handles a peer's events: an event that
// finds no work is spurious; a few are normal (races with our own polling), a run of them is a
// peer ringing for nothing. Then stop listening for a moment, longer each time the run goes
// on (1 ms doubling to 100 ms), as Xen's lateeoi delays the EOI of spurious events. Whatever
// the peer rang meanwhile is delivered once when listening resumes (the doorbell counts).

/** Consecutive events that find no work before we stop listening for a moment. */
export const SPURIOUS_LIMIT = 16;
export const HOLD_OFF_MIN_MS = 1;
export const HOLD_OFF_MAX_MS = 100;

export class EventStormGuard {
  private run = 0;
  private holdOffMs = HOLD_OFF_MIN_MS;
  /** Events that found no work, and hold-offs, since creation (for counters). */
  spurious = 0;
  throttles = 0;

  /** `holdOff(ms)` stops listening on the port for that long. */
  constructor(private readonly holdOff: (ms: number) => void) {}

  /** One event was handled and found `work` to do (requests, bytes: anything but 0 is work). */
  handled(work: number): void {
    if (work > 0) {
      this.run = 0;
      this.holdOffMs = HOLD_OFF_MIN_MS;
      return;
    }
    this.spurious++;
    if (++this.run < SPURIOUS_LIMIT) return;
    this.run = 0;
    this.throttles++;
    this.holdOff(this.holdOffMs);
    this.holdOffMs = Math.min(HOLD_OFF_MAX_MS, this.holdOffMs * 2);
  }
}
