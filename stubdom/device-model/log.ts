// Log lines from device models. A hostile guest can make a device misbehave millions of times
// a second, so every "the guest did something wrong" line goes through a limiter: the first
// few occurrences of each kind are printed, later ones only counted (and summarised once).
import { logger } from '../../common/log.js';

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

/** Per-key rate limit: `burst` lines per key, then a single "suppressing" line. */
export class LimitedLog {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly sink: DeviceLogger,
    private readonly prefix: string,
    private readonly burst = 8,
  ) {}

  warn(key: string, msg: string): void {
    const n = (this.seen.get(key) ?? 0) + 1;
    // Bound the map itself: a guest can make up keys only through our own code, but be safe.
    if (this.seen.size < 1024 || this.seen.has(key)) this.seen.set(key, n);
    if (n <= this.burst) this.sink.warn(`${this.prefix}: ${msg}`);
    else if (n === this.burst + 1) this.sink.warn(`${this.prefix}: ${key}: further messages suppressed`);
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
