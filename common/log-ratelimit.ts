// Linux's ___ratelimit() (printk_ratelimit) and Xen's guest console limit: at most `burst`
// lines per `intervalMs` from one source; the first line allowed after a suppressed stretch
// says how many were dropped. For every log line a guest (or any peer) can cause: without it,
// a guest writes the host's disk full through the host's own logs.

/** Linux's and Xen's defaults: 10 lines per 5 s. */
export const DEFAULT_BURST = 10;
export const DEFAULT_INTERVAL_MS = 5000;

export class LogRateLimit {
  private windowStart = -Infinity;
  private printed = 0;
  private missed = 0;

  constructor(
    private readonly burst = DEFAULT_BURST,
    private readonly intervalMs = DEFAULT_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether a line may go out now. When it may and earlier ones were dropped, `suppressed`
   * says how many, for a "N lines suppressed" note (as Linux prints "N callbacks suppressed").
   */
  take(): { ok: boolean; suppressed: number } {
    const t = this.now();
    let suppressed = 0;
    if (t - this.windowStart >= this.intervalMs) {
      suppressed = this.missed;
      this.windowStart = t;
      this.printed = 0;
      this.missed = 0;
    }
    if (this.printed < this.burst) {
      this.printed++;
      return { ok: true, suppressed };
    }
    this.missed++;
    return { ok: false, suppressed: 0 };
  }

  /** Log `line` through `out` if allowed, with a note of what was suppressed before it. */
  log(out: (line: string) => void, line: string, what = 'lines'): void {
    const { ok, suppressed } = this.take();
    if (!ok) return;
    if (suppressed > 0) out(`${suppressed} ${what} suppressed (rate limit)`);
    out(line);
  }
}

/** One LogRateLimit per source (a domain, a connection), created on first use. */
export class LogRateLimits<K> {
  private readonly limits = new Map<K, LogRateLimit>();

  constructor(
    private readonly burst = DEFAULT_BURST,
    private readonly intervalMs = DEFAULT_INTERVAL_MS,
  ) {}

  for(key: K): LogRateLimit {
    let l = this.limits.get(key);
    if (!l) {
      l = new LogRateLimit(this.burst, this.intervalMs);
      this.limits.set(key, l);
    }
    return l;
  }

  /** The source is gone (a destroyed domain): forget its state. */
  forget(key: K): void {
    this.limits.delete(key);
  }
}
