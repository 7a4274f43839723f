// blkback's use of a frontend's grants: pin a granted frame for the length of an I/O (Xen's
// GNTTABOP_map_grant_ref, checked as the hypervisor checks it: drivers/grant/grant-mapper.ts),
// do the I/O straight into or out of that frame, unpin. With persistent grants (both ends
// offered feature-persistent) a frame stays pinned from its first use until the device
// disconnects, so a busy disk pins each frame once instead of once per request (Linux
// blkback's persistent_gnts tree, bounded the same way).
import { acquire, release, type MappedGrantTable } from '../../../drivers/grant/grant-mapper.js';
import type { BlkbackCounters } from './metrics.js';

interface Persistent {
  frame: number;
  writable: boolean;
}

export class GrantPins {
  private readonly persistentMap = new Map<number, Persistent>();

  constructor(
    private readonly table: MappedGrantTable,
    private readonly mapperDomid: number,
    /** 0 disables persistent grants. */
    private readonly maxPersistent: number,
    private readonly counters: BlkbackCounters,
  ) {}

  get persistentCount(): number {
    return this.persistentMap.size;
  }

  /** Pins `gref` for an I/O that writes into the frame (`write`) or only reads it. Returns
   * the frame, or a negative GNTST_ code. `persistent` reports whether the pin is kept (then
   * do not unpin). */
  pin(gref: number, write: boolean, out: { persistent: boolean }): number {
    if (this.maxPersistent > 0) {
      const p = this.persistentMap.get(gref);
      if (p) {
        if (write && !p.writable) {
          out.persistent = false;
          return this.pinOnce(gref, write);
        }
        out.persistent = true;
        return p.frame;
      }
      if (this.persistentMap.size < this.maxPersistent) {
        // Frontends grant persistent pages read-write; a read-only grant is pinned read-only.
        let writable = true;
        let frame = acquire(this.table, gref, this.mapperDomid, true);
        if (frame < 0 && !write) {
          writable = false;
          frame = acquire(this.table, gref, this.mapperDomid, false);
        }
        this.counters.grant_maps++;
        if (frame < 0) return frame;
        this.persistentMap.set(gref, { frame, writable });
        this.counters.persistent_grants = this.persistentMap.size;
        out.persistent = true;
        return frame;
      }
    }
    out.persistent = false;
    return this.pinOnce(gref, write);
  }

  private pinOnce(gref: number, write: boolean): number {
    this.counters.grant_maps++;
    return acquire(this.table, gref, this.mapperDomid, write);
  }

  unpin(gref: number, write: boolean): void {
    release(this.table, gref, write);
  }

  /** Disconnect: drop every persistent pin. */
  releaseAll(): void {
    for (const [gref, p] of this.persistentMap) release(this.table, gref, p.writable);
    this.persistentMap.clear();
    this.counters.persistent_grants = 0;
  }
}
