// The granting side of grant tables v1: what a guest kernel (netfront, blkfront, the
// xenstore/console setup) does to share one of its frames with another domain.
//
// The table lives in a SharedArrayBuffer the hypervisor and dom0 also map, so every access
// to a live entry is an Atomics operation on the 32-bit word holding flags (low half) and
// domid (high half), or on the frame word after it. References are handed out from a private
// free list; refs below GNTTAB_NR_RESERVED_ENTRIES (console 0, xenstore 1, ...) are never on
// it and are only filled on explicit request (grantAccessAt).
//
// The mapping side (acquire/release, used by backends and the hypervisor) is in
// grant-mapper.ts and re-exported here.
import {
  GNTST_no_space,
  GNTTAB_NR_RESERVED_ENTRIES,
  GRANT_ENTRY_V1_SIZE,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_writing,
  GrantEntryV1,
} from './grant-entry.js';

export { acquire, release, MappedGrantTable, ActiveGrantTable, pinCounts } from './grant-mapper.js';
export type { MappedGrantTableOptions } from './grant-mapper.js';

export interface GrantTableOptions {
  /** Where the table starts in `buffer` (default 0). */
  byteOffset?: number;
  /** Entries (default: as many as fit in the rest of the buffer). */
  nrEntries?: number;
  /** Refs [0, reserved) are kept off the free list (default GNTTAB_NR_RESERVED_ENTRIES). */
  reserved?: number;
}

// A revoke races only with mappers setting/clearing GTF_reading/writing; it retries the CAS
// while they do, but not forever.
const END_ACCESS_TRIES = 64;

const NOT_GRANTED = 0;
const GRANTED = 1;

export class GrantTable {
  readonly nrEntries: number;
  readonly reserved: number;
  /** [2*ref] = flags | domid << 16, [2*ref + 1] = frame. Atomics only. */
  private readonly words: Int32Array;
  /** Free list: next[ref] is the following free ref, -1 ends it. Private to the granter. */
  private readonly next: Int32Array;
  private readonly state: Uint8Array;
  private head = -1;
  private nFree = 0;

  constructor(buffer: SharedArrayBuffer, opts: GrantTableOptions = {}) {
    const byteOffset = opts.byteOffset ?? 0;
    if (byteOffset % 4 !== 0) throw new RangeError('grant table must be 4-byte aligned');
    const fit = Math.floor((buffer.byteLength - byteOffset) / GRANT_ENTRY_V1_SIZE);
    this.nrEntries = opts.nrEntries ?? fit;
    if (this.nrEntries > fit || this.nrEntries < 0) throw new RangeError('grant table lies outside its buffer');
    this.reserved = Math.min(opts.reserved ?? GNTTAB_NR_RESERVED_ENTRIES, this.nrEntries);
    this.words = new Int32Array(buffer, byteOffset, this.nrEntries * 2);
    this.next = new Int32Array(this.nrEntries);
    this.state = new Uint8Array(this.nrEntries);
    // Lowest refs first, like Linux: easier to read in dumps.
    for (let ref = this.nrEntries - 1; ref >= this.reserved; ref--) this.pushFree(ref);
  }

  /** Refs still available to grantAccess. */
  get freeCount(): number {
    return this.nFree;
  }

  /** Grants `domid` access to our `frame`; returns the ref, or GNTST_no_space when the
   * table is exhausted. */
  grantAccess(domid: number, frame: number, readonly: boolean): number {
    const ref = this.head;
    if (ref < 0) return GNTST_no_space;
    this.head = this.next[ref]!;
    this.nFree--;
    this.publish(ref, domid, frame, readonly);
    return ref;
  }

  /** Fills a specific ref, normally a reserved one (GNTTAB_RESERVED_CONSOLE/XENSTORE), as the
   * toolstack does at build time. Refuses refs the allocator owns or that are in use. */
  grantAccessAt(ref: number, domid: number, frame: number, readonly: boolean): void {
    this.checkRef(ref);
    if (ref >= this.reserved) throw new Error(`grant ref ${ref} belongs to the allocator; use grantAccess`);
    if (this.state[ref] === GRANTED) throw new Error(`grant ref ${ref} is already granted`);
    this.publish(ref, domid, frame, readonly);
  }

  /** Revokes a grant. False when the grantee still has it mapped or is copying
   * (GTF_reading/GTF_writing set): the ref stays granted and the caller must NOT reuse or free
   * the frame yet, but retry later (XSA-396). True: the ref is back on the free list. */
  endAccess(ref: number): boolean {
    this.checkRef(ref);
    if (this.state[ref] !== GRANTED) throw new Error(`grant ref ${ref} is not granted`);
    const i = ref * 2;
    let w = Atomics.load(this.words, i);
    for (let t = 0; ; t++) {
      if ((w & (GTF_reading | GTF_writing)) !== 0 || t === END_ACCESS_TRIES) return false;
      // flags -> 0 in one CAS against the value we checked; domid (high half) is kept.
      const prev = Atomics.compareExchange(this.words, i, w, w & ~0xffff);
      if (prev === w) break;
      w = prev;
    }
    this.state[ref] = NOT_GRANTED;
    if (ref >= this.reserved) this.pushFree(ref);
    return true;
  }

  /** True while a grantee holds the entry (mapped or mid-copy). */
  isInUse(ref: number): boolean {
    this.checkRef(ref);
    return (Atomics.load(this.words, ref * 2) & (GTF_reading | GTF_writing)) !== 0;
  }

  /** A snapshot of an entry (flags and domid read together). */
  entry(ref: number): GrantEntryV1 {
    this.checkRef(ref);
    const w = Atomics.load(this.words, ref * 2);
    return { flags: w & 0xffff, domid: w >>> 16, frame: Atomics.load(this.words, ref * 2 + 1) >>> 0 };
  }

  private publish(ref: number, domid: number, frame: number, readonly: boolean): void {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) throw new RangeError(`bad domid ${domid}`);
    if (!Number.isInteger(frame) || frame < 0 || frame > 0xffff_ffff) throw new RangeError(`bad frame ${frame}`);
    this.state[ref] = GRANTED;
    // grant_table.h order: domid, frame, barrier, flags. The frame goes first; domid and flags
    // share one word and land together in the final SC store, so a mapper can never see the
    // new flags without the matching domid and frame.
    Atomics.store(this.words, ref * 2 + 1, frame | 0);
    const flags = GTF_permit_access | (readonly ? GTF_readonly : 0);
    Atomics.store(this.words, ref * 2, (domid << 16) | flags);
  }

  private pushFree(ref: number): void {
    this.next[ref] = this.head;
    this.head = ref;
    this.nFree++;
  }

  private checkRef(ref: number): void {
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.nrEntries) throw new RangeError(`bad grant ref ${ref}`);
  }
}
