// Log lines from device models. A hostile guest can make a device misbehave millions of times
// a second, so every "the guest did something wrong" line goes through a limiter: every
// occurrence is counted by kind, and at most 10 lines per 5 s per device are printed.
import { logger } from '../../common/log.js';
import { LogRateLimit } from '../../common/log-ratelimit.js';

export interface DeviceLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** The stub domain's default sink: one line on stderr with a component prefix. */
export function defaultLogger(component = 'stubdom'): DeviceLogger {
  return logger(component);
}

/** A logger that drops everything (tests that provoke errors on purpose). */
export const silentLogger: DeviceLogger = { info() {}, warn() {}, error() {} };

/** The device models' share of the one policy for errors a peer causes (common/peer-errors.ts,
 * as netback and blkback): every occurrence is counted under its kind, and the lines about them
 * are rate-limited per device, 10 per 5 s as Linux's printk_ratelimit (common/log-ratelimit.ts),
 * with a note of how many were suppressed. */
export class LimitedLog {
  private readonly seen = new Map<string, number>();
  private readonly limit = new LogRateLimit();

  constructor(
    private readonly sink: DeviceLogger,
    private readonly prefix: string,
  ) {}

  warn(key: string, msg: string): void {
    // Bound the map itself: the kinds come from our own code, but be safe.
    if (this.seen.size < 1024 || this.seen.has(key)) this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
    this.limit.log((line) => this.sink.warn(`${this.prefix}: ${line}`), msg, 'messages about bad input');
  }

  info(msg: string): void {
    this.sink.info(`${this.prefix}: ${msg}`);
  }

  error(msg: string): void {
    this.sink.error(`${this.prefix}: ${msg}`);
  }

  /** How many times `key` was reported (printed or not). */
  count(key: string): number {
    return this.seen.get(key) ?? 0;
  }
}
