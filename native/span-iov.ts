// A scatter/gather list for readv/writev that costs the addon no property lookups when it
// can: views that all lie in one buffer (a guest's memory: FUSE's receive pages, a READ's
// data pages) go as (offset, length) spans of that buffer (readvSegs/writevSegs); a list that
// mixes buffers falls back to an array of views. A FUSE request read into 257 pages through
// the array form cost the guest kernel ~40 us of V8 lookups per request.
import { native } from './index.js';

const wholeViews = new WeakMap<ArrayBufferLike, Uint8Array>();

/** A Uint8Array over all of `buffer` (cached: one per buffer). */
function whole(buffer: ArrayBufferLike): Uint8Array {
  let w = wholeViews.get(buffer);
  if (!w) wholeViews.set(buffer, (w = new Uint8Array(buffer)));
  return w;
}

export class SpanIov {
  /** A leading view outside the shared buffer (a header), or null. */
  private head: Uint8Array | null = null;
  private readonly segs: Float64Array;
  private n = 0;
  private buffer: ArrayBufferLike | null = null;
  /** Everything added, in order, for the fallback. */
  private readonly views: Uint8Array[] = [];
  private mixed = false;

  constructor(readonly capacity: number) {
    this.segs = new Float64Array(capacity * 2);
  }

  reset(): void {
    this.head = null;
    this.n = 0;
    this.buffer = null;
    this.views.length = 0;
    this.mixed = false;
  }

  /** Adds a view. The first may lie anywhere (a header); the rest should share one buffer. */
  add(v: Uint8Array): void {
    this.views.push(v);
    if (this.mixed) return;
    if (this.views.length === 1 && this.head === null && this.buffer === null) {
      this.head = v;
      return;
    }
    if (this.buffer === null) this.buffer = v.buffer;
    else if (v.buffer !== this.buffer) {
      this.mixed = true;
      return;
    }
    if (this.n >= this.capacity) {
      this.mixed = true;
      return;
    }
    this.segs[2 * this.n] = v.byteOffset;
    this.segs[2 * this.n + 1] = v.length;
    this.n++;
  }

  readv(fd: number): number | null {
    if (this.mixed || this.buffer === null) return native().readv(fd, this.views);
    return native().readvSegs(fd, this.head, whole(this.buffer), this.segs, this.n);
  }

  writev(fd: number): number | null {
    if (this.mixed || this.buffer === null) return native().writev(fd, this.views);
    return native().writevSegs(fd, this.head, null, whole(this.buffer), this.segs, this.n);
  }
}
