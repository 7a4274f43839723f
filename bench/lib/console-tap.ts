// A guest's console pty read from dom0's side as output arrives, with the time each awaited
// pattern first appeared: how the benchmarks time boots (tests drive `xl console` in a
// terminal instead; a benchmark wants the timestamps, not the screen).
import { closeSync, constants, openSync } from 'node:fs';
import { native, type FdWatcher } from '../../native/index.js';
import { nowMs } from './stats.js';

/** Reads a guest's console pty (dom0 side) as it arrives; writes keystrokes to it. */
export class ConsoleTap {
  private readonly fd: number;
  private readonly watcher: FdWatcher;
  private out = '';
  private waiters: { re: RegExp; resolve: (t: number) => void }[] = [];
  private readonly buf = new Uint8Array(16384);

  constructor(tty: string) {
    this.fd = openSync(tty, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    this.watcher = native().watchFd(this.fd, () => this.drain());
    this.watcher.start(native().READABLE);
    this.drain();
  }

  private drain(): void {
    for (let i = 0; i < 64; i++) {
      let n: number | null;
      try {
        n = native().read(this.fd, this.buf, 0, this.buf.length);
      } catch {
        this.watcher.stop();
        return;
      }
      if (n === null || n === 0) break;
      this.out = (this.out + Buffer.from(this.buf.subarray(0, n)).toString('latin1')).slice(-65536);
    }
    const t = nowMs();
    this.waiters = this.waiters.filter((w) => {
      if (!w.re.test(this.out)) return true;
      w.resolve(t);
      return false;
    });
  }

  /** Resolves with the time the output first matched (or rejects after timeoutMs). */
  waitFor(re: RegExp, timeoutMs: number): Promise<number> {
    if (re.test(this.out)) return Promise.resolve(nowMs());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.re !== re);
        reject(new Error(`console: no ${re} within ${timeoutMs} ms; got: ${JSON.stringify(this.out.slice(-400))}`));
      }, timeoutMs);
      this.waiters.push({ re, resolve: (t) => (clearTimeout(timer), resolve(t)) });
    });
  }

  /** Everything read so far (the last 64 KiB). */
  text(): string {
    return this.out;
  }

  type(text: string): void {
    const b = Buffer.from(text);
    native().write(this.fd, b, 0, b.length);
  }

  close(): void {
    this.watcher.close();
    closeSync(this.fd);
  }
}

