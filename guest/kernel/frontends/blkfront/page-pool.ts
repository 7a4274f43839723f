// blkfront's I/O pages: guest frames that request data passes through, and their grants.
//
// With persistent grants (both ends offered feature-persistent) every page is granted to the
// backend once, read-write, when it joins the pool, and keeps its grant reference for the
// life of the device, so the backend can keep it mapped (Linux blkfront's persistent gnt
// list). Without, a page is granted for one request only, read-only when the backend just
// has to read it (a WRITE's data, an indirect descriptor page), and revoked when the
// response is in. A revoke the backend refuses (it still holds the page: XSA-396) parks the
// page on a quarantine list, retried later; such a page is never reused or freed before.
import type { GrantTable } from '../../../../drivers/grant/grant-table.js';
import type { PageAllocator } from '../../page-allocator.js';
import { wholeView } from '../../../../native/span-iov.js';

export interface IoPage {
  pfn: number;
  view: Uint8Array;
  /** Byte offset of the page in the pool's `mem` (pfn * 4096). */
  offset: number;
  /** Grant reference while granted, else -1. */
  gref: number;
}

const byPfn = (a: IoPage, b: IoPage): number => a.pfn - b.pfn;

export class PagePool {
  /** All of guest memory: every page's bytes are mem[offset, offset + 4096). */
  readonly mem: Uint8Array;
  private readonly free: IoPage[] = [];
  private readonly quarantine: IoPage[] = [];
  private owned = 0;
  private readonly waiters: (() => void)[] = [];
  /** Grants issued and revoked (for counters). */
  grantOps = 0;

  constructor(
    private readonly pages: PageAllocator,
    private readonly grants: GrantTable,
    private readonly backendDomid: number,
    readonly persistent: boolean,
    /** Most frames this pool may take from the guest. */
    readonly cap: number,
  ) {
    this.mem = wholeView(pages.memoryBuffer);
  }

  get inUse(): number {
    return this.owned - this.free.length - this.quarantine.length;
  }

  /** A page, or null when the pool is at its cap and none is free. */
  alloc(): IoPage | null {
    const p = this.free.pop();
    if (p) return p;
    if (this.quarantine.length) this.retryQuarantine();
    if (this.free.length) return this.free.pop()!;
    if (this.owned >= this.cap) return null;
    const pfn = this.pages.alloc();
    this.owned++;
    const page: IoPage = { pfn, view: this.pages.page(pfn), offset: pfn * 4096, gref: -1 };
    if (this.persistent) {
      page.gref = this.grants.grantAccess(this.backendDomid, pfn, false);
      this.grantOps++;
      if (page.gref < 0) {
        this.pages.release(pfn);
        this.owned--;
        return null;
      }
    }
    return page;
  }

  /** `n` pages, or null (and nothing taken) when the pool cannot give that many now: all or
   * nothing, so that waiters never take and give back halves (which wakes the other waiters,
   * who do the same, without end). */
  allocMany(n: number): IoPage[] | null {
    if (this.quarantine.length && this.free.length < n) this.retryQuarantine();
    if (this.free.length + (this.cap - this.owned) < n) return null;
    const got: IoPage[] = [];
    for (let i = 0; i < n; i++) {
      const p = this.alloc();
      if (!p) {
        // Only a grant refusal gets here: give back without waking anyone.
        this.free.push(...got);
        return null;
      }
      got.push(p);
    }
    // In ascending frame order. Guest RAM comes in 2 MiB host pages (hypervisor/guest-ram.ts),
    // so neighbouring frames are neighbours in host memory too, and the host's block layer
    // makes one segment of a run of them: a 1 MiB request in 256 frames in no order is more
    // segments than the host's virtio disk takes (254), and was split in two, each half
    // costing that disk about what a whole request does. The free list is in no order after a
    // while (requests finish in any order, single pages come and go); sorting 256 pages costs
    // ~10-30 us, a disk request more.
    if (n > 1) got.sort(byPfn);
    return got;
  }

  /** Call `cb` once when a page is given back. */
  onFree(cb: () => void): void {
    this.waiters.push(cb);
  }

  /** The grant reference to put in a segment for this page. Persistent: the page's own.
   * Otherwise a fresh grant (read-only if the backend only reads the page). */
  grantFor(p: IoPage, readonly: boolean): number {
    if (this.persistent) return p.gref;
    if (p.gref >= 0) return p.gref;
    p.gref = this.grants.grantAccess(this.backendDomid, p.pfn, readonly);
    this.grantOps++;
    return p.gref;
  }

  /** The request that granted `p` has its response: end a per-request grant now (the page
   * itself may still hold a READ's bytes). A refused revoke is retried at release(). */
  endGrant(p: IoPage): void {
    if (this.persistent || p.gref < 0) return;
    this.grantOps++;
    if (this.grants.endAccess(p.gref)) p.gref = -1;
  }

  /** The page is no longer needed. */
  release(p: IoPage): void {
    if (!this.persistent && p.gref >= 0) {
      this.grantOps++;
      if (!this.grants.endAccess(p.gref)) {
        this.quarantine.push(p);
        return;
      }
      p.gref = -1;
    }
    this.free.push(p);
    if (this.waiters.length) for (const w of this.waiters.splice(0)) w();
  }

  private retryQuarantine(): void {
    for (let i = this.quarantine.length - 1; i >= 0; i--) {
      const p = this.quarantine[i]!;
      if (this.grants.endAccess(p.gref)) {
        p.gref = -1;
        this.quarantine.splice(i, 1);
        this.free.push(p);
      }
    }
  }

  /** Device gone: revoke every grant and give the frames back; frames the backend still
   * holds are leaked rather than reused (Linux does the same). Returns how many leaked. */
  destroy(): number {
    this.retryQuarantine();
    let leaked = this.quarantine.length;
    for (const p of this.free.splice(0)) {
      if (p.gref >= 0 && !this.grants.endAccess(p.gref)) {
        leaked++;
        continue;
      }
      this.pages.release(p.pfn);
    }
    this.quarantine.length = 0;
    return leaked;
  }
}
