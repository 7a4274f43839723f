// Busy polling after a driver has handed its peer a lone request that will probably be
// answered within microseconds: a request delivered to a guest whose service will reply, the
// reply netback will forward. Sleeping on the event instead costs a process wake-up per hop,
// which on these VMs is 15-50 us when the vCPU had halted (docs/benchmarks.md): for one UDP
// request/response that is four wake-ups a plain veth does not pay. Linux makes the same
// trade with net.core.busy_poll.
//
// Bounded four ways: a poll spins at most `maxUs`, yielding the CPU every turn so the peer
// that will answer can run on this CPU; it is only tried when the last batch each way was
// small and this one followed a quiet gap (an exchange of lone requests and answers: a bulk
// transfer, whose data goes one way in big batches while only ACKs come back, and floods keep
// both sides busy without it); it ends as soon as anything else arrives; and after a run of
// polls that found no answer (one-way traffic) it backs off for a while.
import { native } from '../../native/index.js';
import type { SharedRing } from './shared-ring.js';

/** Header word indices (Int32) of a Xen shared ring. */
const REQ_PROD = 0;
const RSP_PROD = 2;
/** A delivery this soon after the previous one is part of a stream, not a lone request. */
const MIN_GAP_MS = 0.02;
/** Consecutive polls without a reply before backing off, and how many chances are skipped. */
const MISSES_BEFORE_BACKOFF = 4;
const BACKOFF_SKIPS = 64;

export type BusyPollResult = 'ring' | 'fd' | 'none';

const headers = new WeakMap<SharedRing, Int32Array>();
function headerWords(ring: SharedRing): Int32Array {
  let w = headers.get(ring);
  if (!w) headers.set(ring, (w = new Int32Array(ring.buffer, ring.byteOffset, 4)));
  return w;
}

export class BusyPoller {
  /** Polls made, and those that found the reply. */
  polls = 0;
  hits = 0;
  private misses = 0;
  private skip = 0;
  private lastDelivery = 0;
  private chaining = false;
  /** Whether the last batch moved on each side (ring / descriptor) was small. */
  private readonly smallLast = { ring: true, fd: true };

  constructor(readonly maxUs: number) {}

  /** Call after every batch moved (`moved`: the ring side or the descriptor side): true if it
   * looks like a lone request worth polling for the answer to (small, the last batch the
   * other way small too, after a quiet gap, not backed off). */
  shouldPoll(moved: 'ring' | 'fd', small: boolean): boolean {
    const now = performance.now();
    const gap = now - this.lastDelivery;
    this.lastDelivery = now;
    this.smallLast[moved] = small;
    const other = moved === 'ring' ? 'fd' : 'ring';
    if (this.maxUs <= 0 || !small || !this.smallLast[other] || gap < MIN_GAP_MS) return false;
    if (this.skip > 0) {
      this.skip--;
      return false;
    }
    return true;
  }

  /** Spin until the ring's producer index (`which` side) moves, `fd` is readable, or the
   * budget runs out. `reply` says which of the two is the answer we wait for; the other just
   * ends the poll early (more requests arriving). */
  wait(ring: SharedRing, which: 'requests' | 'responses', fd: number, reply: 'ring' | 'fd'): BusyPollResult {
    const words = headerWords(ring);
    const index = which === 'requests' ? REQ_PROD : RSP_PROD;
    const r = native().busyPoll(words, index, Atomics.load(words, index), fd, this.maxUs);
    const found: BusyPollResult = r === 1 ? 'ring' : r === 2 ? 'fd' : 'none';
    this.polls++;
    if (found === reply) {
      this.hits++;
      this.misses = 0;
    } else if (found === 'none' && ++this.misses >= MISSES_BEFORE_BACKOFF) {
      this.misses = 0;
      this.skip = BACKOFF_SKIPS;
    }
    return found;
  }

  /**
   * Request/response traffic between a ring and a descriptor, polled instead of slept on: wait
   * for `want` (the ring's producer index, or `fd` readable), run its handler, then wait for
   * the other one, and so on, while batches stay small and each wait finds something, for at
   * most `maxMs` in all. Drivers alternate like this: netback hands a request to the guest
   * (the TAP side), then waits for the answer on the TX ring, then for the next request on the
   * TAP. `moved` is the side the caller just moved a batch of `batch` on (the chain waits
   * for the other). A handler returns the size of the batch it moved (0 ends the chain).
   * Handlers that deliver and would start a chain of their own do not nest into this one.
   */
  chain(
    p: {
      ring: SharedRing;
      which: 'requests' | 'responses';
      fd: number;
      small: (batch: number) => boolean;
      onRing: () => number;
      onFd: () => number;
      alive: () => boolean;
      maxMs: number;
    },
    moved: 'ring' | 'fd',
    batch: number,
  ): void {
    if (this.chaining) return;
    this.chaining = true;
    const until = performance.now() + p.maxMs;
    try {
      while (p.alive() && performance.now() < until) {
        if (!this.shouldPoll(moved, p.small(batch))) break;
        const want = moved === 'ring' ? 'fd' : 'ring';
        const found = this.wait(p.ring, p.which, p.fd, want);
        if (found === 'none') break;
        batch = found === 'ring' ? p.onRing() : p.onFd();
        moved = found;
        if (batch === 0) break;
      }
    } finally {
      this.chaining = false;
    }
  }
}
