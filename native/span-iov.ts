// A scatter/gather list for readv/writev that costs the addon no property lookups when it
// can: a header, then spans of one big buffer (a guest's memory: FUSE's receive pages, a
// READ's data pages) passed as (offset, length) pairs (readvSegs/writevSegs). A list whose
// spans lie in different buffers falls back to an array of views. A FUSE request read into
// 257 pages through the array form cost the guest kernel ~40 us of V8 lookups per request.
import { native } from './index.js';

const wholeViews = new WeakMap<ArrayBufferLike, Uint8Array>();

/** A Uint8Array over all of `buffer` (cached: one per buffer, so spans of views of the same
 * buffer compare equal). */
export function wholeView(buffer: ArrayBufferLike): Uint8Array {
  let w = wholeViews.get(buffer);
  if (!w) wholeViews.set(buffer, (w = new Uint8Array(buffer)));
  return w;
}

export class SpanIov {
  private head: Uint8Array | null = null;
  private mem: Uint8Array | null = null;
  private readonly segs: Float64Array;
  private n = 0;
  /** The whole list as views, once it cannot be spans of one buffer. */
  private views: Uint8Array[] | null = null;

  constructor(readonly capacity: number) {
    this.segs = new Float64Array(capacity * 2);
  }

  reset(): void {
    this.head = null;
    this.mem = null;
    this.n = 0;
    this.views = null;
  }

  /** The leading buffer (a header), from anywhere. */
  setHead(v: Uint8Array): void {
    this.head = v;
    if (this.views) this.views.unshift(v);
  }

  /** Appends a view (its `.buffer` is looked up: prefer addSpan on hot paths). */
  add(v: Uint8Array): void {
    if (this.views) this.views.push(v);
    else this.addSpan(wholeView(v.buffer), v.byteOffset, v.length);
  }

  /** Appends bytes [off, off + len) of `mem`. */
  addSpan(mem: Uint8Array, off: number, len: number): void {
    if (!this.views) {
      if (this.mem === null) this.mem = mem;
      if (mem === this.mem && this.n < this.capacity) {
        this.segs[2 * this.n] = off;
        this.segs[2 * this.n + 1] = len;
        this.n++;
        return;
      }
      this.views = this.head ? [this.head] : [];
      for (let k = 0; k < this.n; k++) this.views.push(this.mem.subarray(this.segs[2 * k]!, this.segs[2 * k]! + this.segs[2 * k + 1]!));
    }
    this.views.push(mem.subarray(off, off + len));
  }

  readv(fd: number): number | null {
    if (this.views || !this.mem) return native().readv(fd, this.views ?? (this.head ? [this.head] : []));
    return native().readvSegs(fd, this.head, this.mem, this.segs, this.n);
  }

  writev(fd: number): number | null {
    if (this.views || !this.mem) return native().writev(fd, this.views ?? (this.head ? [this.head] : []));
    return native().writevSegs(fd, this.head, null, this.mem, this.segs, this.n);
  }
}
