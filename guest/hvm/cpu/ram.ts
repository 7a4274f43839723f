// The guest's physical memory: the domain's RAM memfd, frame n at guest-physical n*4096
// (docs/hvm.md), shared with the device model, which DMAs into it. The guest OS keeps its
// own data structures in Node's heap; what lives here is what devices must reach: receive
// rings, transmit buffers, PRD tables, I/O buffers, and (PV-on-HVM) ring and grant pages.
//
// Layout, as the firmware hands it to the kernel (an e820 map in miniature):
//   [0, 1 MiB)              low memory: real-mode IVT, BDA, EBDA, option ROMs, BIOS: unused
//   [1 MiB, top - 16 pages) usable: the kernel's DMA allocations, then (PV-on-HVM) the
//                           PageAllocator for frontends
//   [top - 16 pages, top)   reserved: special pages the toolstack may place there (xenstore and
//                           console rings for PV-on-HVM, HVM_PARAM_STORE_PFN/CONSOLE_PFN)
// Allocations are never given back to the device: a driver keeps its DMA memory for its life,
// as Linux drivers do with dma_alloc_coherent at probe time.
import { PageAllocator } from '../../kernel/page-allocator.js';

export const PAGE_SIZE = 4096;
export const LOW_MEMORY_PAGES = 256;
export const RESERVED_TOP_PAGES = 16;

/** A physically contiguous DMA buffer. */
export interface DmaBuffer {
  /** Guest-physical address of byte 0. */
  gpa: number;
  /** The bytes, as the guest sees them. */
  view: Uint8Array;
}

export class PhysicalMemory {
  readonly bytes: Uint8Array;
  readonly nrPages: number;
  private next: number;
  private limit: number;
  private readonly reserved = new Set<number>();
  private handedOff = false;

  constructor(
    readonly buffer: SharedArrayBuffer,
    opts: { firstFree?: number; reservedTop?: number; endPage?: number } = {},
  ) {
    this.bytes = new Uint8Array(buffer);
    this.nrPages = Math.floor(buffer.byteLength / PAGE_SIZE);
    this.next = Math.min(opts.firstFree ?? LOW_MEMORY_PAGES, this.nrPages);
    const top = Math.min(opts.endPage ?? this.nrPages, this.nrPages - (opts.reservedTop ?? RESERVED_TOP_PAGES));
    this.limit = Math.max(this.next, top);
  }

  /** The firmware's scratch memory: low memory between the real-mode IVT/BDA and 1 MiB,
   * which the kernel never allocates from. */
  static biosScratch(buffer: SharedArrayBuffer): PhysicalMemory {
    return new PhysicalMemory(buffer, { firstFree: 16, endPage: LOW_MEMORY_PAGES, reservedTop: 0 });
  }

  get sizeBytes(): number {
    return this.buffer.byteLength;
  }

  /** Pages still free for allocation. */
  get freePages(): number {
    return this.limit - this.next;
  }

  /** Keeps a frame out of every allocation (a special page the toolstack placed). */
  reserve(pfn: number): void {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.nrPages) return;
    this.reserved.add(pfn);
  }

  private clear(pfn: number, n: number): boolean {
    for (let i = 0; i < n; i++) if (this.reserved.has(pfn + i)) return false;
    return true;
  }

  /** A zeroed, physically contiguous buffer of `bytes`, aligned to `align` (a power of two,
   * at least a page). */
  alloc(bytes: number, align = PAGE_SIZE): DmaBuffer {
    if (this.handedOff) throw new Error('physical memory was handed to the page allocator');
    const pages = Math.max(1, Math.ceil(bytes / PAGE_SIZE));
    const alignPages = Math.max(1, Math.ceil(align / PAGE_SIZE));
    let pfn = Math.ceil(this.next / alignPages) * alignPages;
    while (pfn + pages <= this.limit && !this.clear(pfn, pages)) pfn += alignPages;
    if (pfn + pages > this.limit) throw new Error(`out of guest memory: no ${pages} contiguous free pages`);
    this.next = pfn + pages;
    const view = new Uint8Array(this.buffer, pfn * PAGE_SIZE, pages * PAGE_SIZE);
    view.fill(0);
    return { gpa: pfn * PAGE_SIZE, view: view.subarray(0, bytes) };
  }

  /** A pool of `n` single DMA pages (FUSE receive windows, I/O pages). */
  pagePool(n: number): DmaPagePool {
    const pages: DmaPage[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.alloc(PAGE_SIZE);
      pages.push({ gpa: b.gpa, view: b.view });
    }
    return new DmaPagePool(pages);
  }

  /** The rest of memory, for the PV-on-HVM stack (frontends' rings and grant pages): a
   * PageAllocator over [next, limit), cut short below the first reserved frame in that range. */
  handOff(): PageAllocator {
    this.handedOff = true;
    let limit = this.limit;
    for (const pfn of this.reserved) if (pfn >= this.next && pfn < limit) limit = pfn;
    return new PageAllocator(this.buffer, this.next, limit);
  }
}

/** One page of guest RAM, usable as a FUSE receive page (its `view`) and as a DMA target. */
export interface DmaPage {
  gpa: number;
  view: Uint8Array;
}

export class DmaPagePool {
  private readonly free: DmaPage[];
  private readonly waiters: (() => void)[] = [];

  constructor(pages: DmaPage[]) {
    this.free = [...pages];
  }

  get available(): number {
    return this.free.length;
  }

  alloc(): DmaPage | null {
    return this.free.pop() ?? null;
  }

  release(p: DmaPage): void {
    this.free.push(p);
    const w = this.waiters.splice(0);
    for (const fn of w) fn();
  }

  /** Called once, the next time a page comes back. */
  onFree(fn: () => void): void {
    this.waiters.push(fn);
  }
}
