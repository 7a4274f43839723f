// A vif's `rate=` (xl-network-configuration.5: `10Mb/s@20ms`): libxl writes the backend key
// `rate` = "<bytes per interval>,<interval in us>" and netback enforces it on what the guest
// transmits, as Linux netback's credit scheduler does (tx_credit_exceeded): the vif may send
// `bytes` every `interval`, tokens refill continuously, and the bucket holds at most
// max(bytes per interval, 128 KiB) so that a full-size GSO packet can always pass eventually
// (Linux's max_burst). A packet larger than the tokens waits, in netback's own queue of one,
// until the tokens are there: it is charged exactly once, when it goes.

/** Linux netback lets at least this much accumulate, so 64 KiB GSO packets are never stuck. */
export const MIN_BURST_BYTES = 131072;

export interface VifRateConfig {
  bytesPerInterval: number;
  intervalUsecs: number;
}

/** Parses the backend `rate` key ("bytes,usecs"); undefined = no limit or a bad value. */
export function parseRateKey(v: string | undefined): VifRateConfig | undefined {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v ?? '');
  if (!m) return undefined;
  const bytesPerInterval = Number(m[1]);
  const intervalUsecs = Number(m[2]);
  if (!Number.isSafeInteger(bytesPerInterval) || bytesPerInterval <= 0 || intervalUsecs <= 0 || intervalUsecs > 0xffffffff) return undefined;
  return { bytesPerInterval, intervalUsecs };
}

export class TokenBucket {
  /** Bytes per millisecond. */
  readonly ratePerMs: number;
  readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(cfg: VifRateConfig, now: number = performance.now()) {
    this.ratePerMs = (cfg.bytesPerInterval * 1000) / cfg.intervalUsecs;
    this.burst = Math.max(cfg.bytesPerInterval, MIN_BURST_BYTES);
    // Start with one interval's worth, as Linux netback starts with credit_bytes.
    this.tokens = Math.min(cfg.bytesPerInterval, this.burst);
    this.last = now;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.ratePerMs);
      this.last = now;
    }
  }

  /** Takes `bytes` and returns 0 if they may go now; otherwise takes nothing and returns the
   * milliseconds until they may. */
  take(bytes: number, now: number = performance.now()): number {
    this.refill(now);
    const need = Math.min(bytes, this.burst);
    if (this.tokens >= need) {
      this.tokens -= bytes;
      return 0;
    }
    return Math.max(1, Math.ceil((need - this.tokens) / this.ratePerMs));
  }

  /** Bytes per second this bucket lets through on average. */
  get bytesPerSecond(): number {
    return this.ratePerMs * 1000;
  }
}
