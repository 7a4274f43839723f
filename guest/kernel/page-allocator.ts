// The guest's own frames: everything below the builder's special pages is free for the
// kernel to hand to drivers (ring pages, receive buffers, grant targets). A free list of
// frame numbers; a page is zeroed when it is given out, so no stale data is ever granted.
import { PAGE_SIZE } from '../../drivers/hypercall/start-info.js';

export class PageAllocator {
  private readonly free: number[] = [];
  private next = 0;

  constructor(
    private readonly memory: SharedArrayBuffer,
    /** Frames [firstFree, limit) belong to the allocator. */
    firstFree: number,
    private readonly limit: number,
  ) {
    this.next = firstFree;
  }

  alloc(): number {
    const pfn = this.free.pop() ?? (this.next < this.limit ? this.next++ : -1);
    if (pfn < 0) throw new Error('out of guest memory: no free page');
    this.page(pfn).fill(0);
    return pfn;
  }

  /** Give a frame back. Callers must have ended any grant on it first. */
  release(pfn: number): void {
    this.free.push(pfn);
  }

  /** The guest memory the pages lie in. */
  get memoryBuffer(): SharedArrayBuffer {
    return this.memory;
  }

  page(pfn: number): Uint8Array {
    return new Uint8Array(this.memory, pfn * PAGE_SIZE, PAGE_SIZE);
  }

  get available(): number {
    return this.free.length + (this.limit - this.next);
  }
}
