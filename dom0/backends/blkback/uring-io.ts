// blkback's disk I/O through io_uring, with the frontend's whole memory registered once
// (native/uring.cc): each request's spans go to the disk without pinning its pages again and
// without a trip through libuv's thread pool; completions arrive on an eventfd the event
// loop watches. Against preadv on the pool this cut the CPU a 1 MiB O_DIRECT request costs
// from ~185 us to ~60 us (docs/block.md, "Disk I/O on io_uring").
//
// One ring per connected vbd, opened on the frontend's memory as dom0 maps it. When the kernel
// cannot (no io_uring, no READV_FIXED before Linux 6.15, memory that cannot be pinned) open()
// returns the reason instead, and the store keeps using the thread pool.
import { native, type FdWatcher } from '../../../native/index.js';

/** Requests a ring holds in flight: a blkif ring has 32 slots, one I/O each. */
const ENTRIES = 64;

/** XENODE_BLKBACK_URING=0 keeps blkback on libuv's thread pool (for comparison). */
export const URING_WANTED = process.env.XENODE_BLKBACK_URING !== '0';

type Done = (result: number) => void;

export class UringIo {
  private readonly waiting = new Map<number, Done>();
  private readonly out = new Float64Array(2 * ENTRIES);
  private nextToken = 1;
  /** Disk I/Os submitted (a short transfer's continuation counts again). */
  submitted = 0;
  private watcher: FdWatcher | null;
  private closed = false;
  private flushQueued = false;

  private constructor(
    /** The memory registered with the ring: spans of it, and only it, go through here. */
    readonly mem: Uint8Array,
    private readonly handle: number,
    private readonly eventfd: number,
    readonly entries: number,
    private readonly log: (msg: string) => void,
  ) {
    this.watcher = native().watchFd(eventfd, () => this.reap());
    this.watcher.start(native().READABLE);
  }

  /** A ring over `mem` handed to `ready` once its memory is registered, or the reason there
   * cannot be one. Registering pins the frontend's whole memory, a few hundred ms for a
   * guest's RAM: done on libuv's thread pool, so dom0's loop (and the guest's boot, whose
   * small reads the pool serves meanwhile) never waits for it. `cancel()` before `ready`
   * closes the ring once the registration is over. */
  static openAsync(mem: Uint8Array, log: (msg: string) => void, ready: (u: UringIo | string) => void): { cancel(): void } {
    let cancelled = false;
    let r: { handle: number; eventfd: number; entries: number };
    try {
      r = native().uring.open(ENTRIES, mem, (err) => {
        if (cancelled || err) {
          native().uring.close(r.handle);
          if (!cancelled) ready(err!.message);
          return;
        }
        ready(new UringIo(mem, r.handle, r.eventfd, r.entries, log));
      });
    } catch (e) {
      ready((e as Error).message);
      return { cancel() {} };
    }
    return {
      cancel() {
        cancelled = true;
      },
    };
  }

  /** A ring over `mem`, or the reason there cannot be one. */
  static open(mem: Uint8Array, log: (msg: string) => void = () => {}): UringIo | string {
    try {
      const r = native().uring.open(ENTRIES, mem);
      return new UringIo(mem, r.handle, r.eventfd, r.entries, log);
    } catch (e) {
      return (e as Error).message;
    }
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  /** Room for one more request now (else the caller uses the thread pool for this one). */
  get hasRoom(): boolean {
    return !this.closed && this.waiting.size < this.entries;
  }

  /** preadv/pwritev of the first `n` spans of `mem` at `pos`; `done` gets the bytes moved or
   * -errno, like the thread pool's calls. The span list is copied: the caller may reuse it. */
  run(write: boolean, fd: number, spans: Float64Array, n: number, pos: number, done: Done): void {
    const own = spans.slice(0, 2 * n);
    let want = 0;
    for (let k = 0; k < n; k++) want += own[2 * k + 1]!;
    let moved = 0;
    let first = 0;
    const step = (r: number): void => {
      if (r < 0) return done(moved > 0 ? moved : r);
      moved += r;
      if (r === 0 || moved >= want) return done(moved);
      // A short transfer (rare: a signal, the end of a file): go on from where it stopped.
      let skip = r;
      while (skip > 0 && skip >= own[2 * first + 1]!) skip -= own[2 * first++ + 1]!;
      own[2 * first] = own[2 * first]! + skip;
      own[2 * first + 1] = own[2 * first + 1]! - skip;
      try {
        this.submit(write, fd, own.subarray(2 * first), n - first, pos + moved, step);
      } catch {
        done(moved); // reported as a short transfer
      }
    };
    this.submit(write, fd, own, n, pos, step);
  }

  private submit(write: boolean, fd: number, spans: Float64Array, n: number, pos: number, done: Done): void {
    const token = this.nextToken++;
    if (this.nextToken > Number.MAX_SAFE_INTEGER) this.nextToken = 1;
    native().uring.submit(this.handle, write, fd, spans, n, pos, token);
    this.waiting.set(token, done);
    this.submitted++;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  }

  /** Once the code that queued requests returns (blkback's pass over its ring), start them all
   * with one system call: the block layer then plugs them and rings the device once, where a
   * call per request cost a device kick per 4 KiB read (QD32 fell from 37k to 23k IOPS). */
  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.closed) return;
    let left: number;
    try {
      left = native().uring.flush(this.handle);
    } catch (e) {
      // An error other than "not now": said, and retried as "not now" is.
      this.log(`io_uring_enter: ${(e as Error).message}`);
      left = 1;
    }
    if (left > 0) this.retryLater(left);
    else this.retryMs = 0;
  };

  /** The kernel took only part of the queue (EAGAIN/EBUSY: out of request memory until some
   * complete). A reap retries too, but with nothing else in flight no completion comes, and
   * the guest's request would wait for its next one (its 10 s timeout): retry on a timer,
   * 1 ms doubling to 64 ms. */
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | null = null;

  private retryLater(left: number): void {
    if (this.retryTimer) return;
    if (this.retryMs === 0) this.log(`io_uring_enter took only part of the queue: ${left} request(s) wait; retrying`);
    this.retryMs = Math.min(64, Math.max(1, this.retryMs * 2));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flush();
    }, this.retryMs);
  }

  private reap(): void {
    if (this.closed) return;
    native().eventfdRead(this.eventfd);
    for (;;) {
      const got = native().uring.reap(this.handle, this.out);
      for (let i = 0; i < got; i++) {
        const token = this.out[2 * i]!;
        const done = this.waiting.get(token);
        this.waiting.delete(token);
        // One callback failing must not lose the completions reaped with it (their requests
        // would never be answered, and the vbd could never disconnect).
        try {
          done?.(this.out[2 * i + 1]!);
        } catch (e) {
          this.log(`disk I/O completion: ${(e as Error).message}`);
        }
      }
      if (got < ENTRIES) break;
    }
    // reap() handed queued requests to the kernel too: if it still could not take them all,
    // they need the timer.
    if (!this.flushQueued && !this.retryTimer) this.flush();
  }

  /** Unpin and close. Call once nothing is in flight (blkback waits for its I/O first). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.watcher?.close();
    this.watcher = null;
    native().uring.close(this.handle);
  }
}
