// The mapping side of grant tables v1: the checks Xen applies before another domain may
// touch a granted frame (map_grant_ref / gnttab_copy -> _set_status_v1), shared by the
// hypervisor and by dom0 backends that map guest memory directly.
//
// acquire(): ref in range; unless already pinned, the entry must be GTF_permit_access for
// exactly the mapper's domid; write access is refused on GTF_readonly; then GTF_reading (and
// GTF_writing) are set by a bounded compare-and-swap on the flags+domid word, so the domid we
// checked is the one we pinned and a guest rewriting its entry cannot livelock us.
//
// Holders are counted in an "active entry" per ref (Xen's struct active_grant_entry), kept
// away from the guest: the shared GTF_writing bit clears when the last writer releases and
// GTF_reading when the last holder does, never earlier, so a guest cannot revoke a frame
// (GrantTable.endAccess) while anybody still uses it. The frame is read once at first pin and
// cached there: a guest changing the entry's frame meanwhile changes nothing for holders.
//
// By default the active table is private to this process (one per mapped grant-table
// buffer). If several trusted processes (hypervisor and dom0) pin the same guest's grants,
// give them all the same ActiveGrantTable buffer: its entries carry their own lock.
import {
  GNTST_bad_gntref,
  GNTST_bad_handle,
  GNTST_bad_page,
  GNTST_general_error,
  GNTST_okay,
  GRANT_ENTRY_V1_SIZE,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_type_mask,
  GTF_writing,
} from './grant-entry.js';

// Active entry: 4 x i32 = [lock, pins, frame, domid]; pins = holders | writers << 16.
const ACTIVE_INTS = 4;
const A_LOCK = 0;
const A_PINS = 1;
const A_FRAME = 2;
const A_DOMID = 3;
/** Xen refuses new pins once a counter would reach its top bit. */
const MAX_PINS = 0x7fff;
/** _set_status_v1 retries its CAS 5 times before calling the entry unstable. */
const SET_STATUS_TRIES = 5;
const SPINS = 64;

/** Pin counts and cached frames for one grant table: trusted memory, never the guest's. */
export class ActiveGrantTable {
  readonly i32: Int32Array;
  /** Other threads or processes pin through this table too, so each entry must be locked.
   * A private table is only ever touched by this JS thread, one call at a time: its entries
   * need no lock (the guest-shared flags word is still changed by compare-and-swap). */
  readonly shared: boolean;

  /** Private by default; pass a SharedArrayBuffer (16 bytes per entry) that only trusted
   * processes map to share pin counts between them. */
  constructor(readonly nrEntries: number, buffer?: SharedArrayBuffer) {
    const bytes = nrEntries * ACTIVE_INTS * 4;
    this.shared = buffer !== undefined;
    const buf = buffer ?? new SharedArrayBuffer(bytes);
    if (buf.byteLength < bytes) throw new RangeError('active grant table buffer too small');
    this.i32 = new Int32Array(buf, 0, nrEntries * ACTIVE_INTS);
  }

  static bytesFor(nrEntries: number): number {
    return nrEntries * ACTIVE_INTS * 4;
  }

  // A three-state futex-style lock (0 free, 1 held, 2 held with waiters). The wait has a
  // timeout so a holder in another process, which Atomics.notify cannot reach, is polled.
  lock(ref: number): void {
    const i = ref * ACTIVE_INTS + A_LOCK;
    const a = this.i32;
    let c = Atomics.compareExchange(a, i, 0, 1);
    if (c === 0) return;
    for (let s = 0; s < SPINS; s++) {
      c = Atomics.compareExchange(a, i, 0, 1);
      if (c === 0) return;
    }
    if (c !== 2) c = Atomics.exchange(a, i, 2);
    while (c !== 0) {
      Atomics.wait(a, i, 2, 5);
      c = Atomics.exchange(a, i, 2);
    }
  }

  unlock(ref: number): void {
    const i = ref * ACTIVE_INTS + A_LOCK;
    if (Atomics.sub(this.i32, i, 1) !== 1) {
      Atomics.store(this.i32, i, 0);
      Atomics.notify(this.i32, i, 1);
    }
  }
}

const defaultActive = new WeakMap<SharedArrayBuffer, Map<number, ActiveGrantTable>>();

// Sized for every entry the buffer could hold from that offset, so a later view with a larger
// nrEntries finds the same table (replacing it would forget live pins).
function sharedActive(buffer: SharedArrayBuffer, byteOffset: number): ActiveGrantTable {
  let perOffset = defaultActive.get(buffer);
  if (!perOffset) defaultActive.set(buffer, (perOffset = new Map()));
  let a = perOffset.get(byteOffset);
  if (!a) perOffset.set(byteOffset, (a = new ActiveGrantTable(Math.floor((buffer.byteLength - byteOffset) / GRANT_ENTRY_V1_SIZE))));
  return a;
}

export interface MappedGrantTableOptions {
  byteOffset?: number;
  nrEntries?: number;
  /** Frames in the granting domain's memory: acquire() refuses frames beyond it with
   * GNTST_bad_page, so a caller can index the memory with the frame it gets back. */
  memFrames?: number;
  /** Pin counts to use (see ActiveGrantTable); default: this process's table for this buffer. */
  active?: ActiveGrantTable;
}

/** Another domain's grant table as seen by a mapper (hypervisor or backend). */
export class MappedGrantTable {
  readonly nrEntries: number;
  readonly memFrames: number;
  readonly words: Int32Array;
  readonly active: ActiveGrantTable;

  constructor(readonly buffer: SharedArrayBuffer, opts: MappedGrantTableOptions = {}) {
    const byteOffset = opts.byteOffset ?? 0;
    if (byteOffset % 4 !== 0) throw new RangeError('grant table must be 4-byte aligned');
    const fit = Math.floor((buffer.byteLength - byteOffset) / GRANT_ENTRY_V1_SIZE);
    this.nrEntries = opts.nrEntries ?? fit;
    if (this.nrEntries > fit || this.nrEntries < 0) throw new RangeError('grant table lies outside its buffer');
    this.memFrames = opts.memFrames ?? Infinity;
    this.words = new Int32Array(buffer, byteOffset, this.nrEntries * 2);
    this.active = opts.active ?? sharedActive(buffer, byteOffset);
    if (this.active.nrEntries < this.nrEntries) throw new RangeError('active grant table too small');
  }
}

/** _set_status_v1: set GTF_reading (+ GTF_writing) on the shared entry. `pinned` skips the
 * type/domid check, as Xen does for an entry it already holds. */
function setStatus(words: Int32Array, ref: number, domid: number, write: boolean, pinned: boolean): number {
  const i = ref * 2;
  let w = Atomics.load(words, i);
  for (let t = 0; t < SET_STATUS_TRIES; t++) {
    const flags = w & 0xffff;
    if (!pinned && ((flags & GTF_type_mask) !== GTF_permit_access || w >>> 16 !== domid)) return GNTST_general_error;
    if (write && (flags & GTF_readonly) !== 0) return GNTST_general_error;
    const nw = w | GTF_reading | (write ? GTF_writing : 0);
    const prev = Atomics.compareExchange(words, i, w, nw);
    if (prev === w) return GNTST_okay;
    w = prev;
  }
  return GNTST_general_error; // "shared grant entry is unstable"
}

/** Pins grant `ref` of `table` for domain `mapperDomid`. Returns the granted frame (>= 0), or
 * a negative GNTST_ code: bad_gntref (ref out of range), general_error (wrong type or domid,
 * write to a read-only grant, unstable entry, pin overflow), bad_page (frame outside the
 * granter's memory). A plain number, not an object: this runs per packet. Every successful
 * acquire must be paired with release(table, ref, write) using the same `write`. */
export function acquire(table: MappedGrantTable, ref: number, mapperDomid: number, write: boolean): number {
  if (!Number.isInteger(ref) || ref < 0 || ref >= table.nrEntries) return GNTST_bad_gntref;
  const act = table.active;
  const a = act.i32;
  const base = ref * ACTIVE_INTS;
  const locked = act.shared;
  if (locked) act.lock(ref);
  try {
    const pins = a[base + A_PINS]!;
    const holders = pins & 0xffff;
    const writers = pins >>> 16;
    if (holders > 0 && a[base + A_DOMID] !== mapperDomid) return GNTST_general_error;
    if (holders >= MAX_PINS || (write && writers >= MAX_PINS)) return GNTST_general_error;

    if (holders === 0 || (write && writers === 0)) {
      const rc = setStatus(table.words, ref, mapperDomid, write, holders > 0);
      if (rc !== GNTST_okay) return rc;
      if (holders === 0) {
        const frame = Atomics.load(table.words, ref * 2 + 1) >>> 0;
        if (frame >= table.memFrames) {
          // Undo exactly what we just set: nobody else holds the entry.
          Atomics.and(table.words, ref * 2, ~(GTF_reading | GTF_writing));
          return GNTST_bad_page;
        }
        a[base + A_FRAME] = frame | 0;
        a[base + A_DOMID] = mapperDomid;
      }
    }
    a[base + A_PINS] = (holders + 1) | ((writers + (write ? 1 : 0)) << 16);
    return a[base + A_FRAME]! >>> 0;
  } finally {
    if (locked) act.unlock(ref);
  }
}

/** Drops one pin taken by acquire(). Clears GTF_writing when the last writer goes and
 * GTF_reading when the last holder goes. GNTST_bad_handle if there was no such pin. */
export function release(table: MappedGrantTable, ref: number, write: boolean): number {
  if (!Number.isInteger(ref) || ref < 0 || ref >= table.nrEntries) return GNTST_bad_gntref;
  const act = table.active;
  const a = act.i32;
  const base = ref * ACTIVE_INTS;
  const locked = act.shared;
  if (locked) act.lock(ref);
  try {
    const pins = a[base + A_PINS]!;
    let holders = pins & 0xffff;
    let writers = pins >>> 16;
    if (holders === 0 || (write && writers === 0)) return GNTST_bad_handle;
    holders--;
    if (write) writers--;
    let clear = 0;
    if (write && writers === 0) clear |= GTF_writing;
    if (holders === 0) clear |= GTF_reading;
    if (clear !== 0) Atomics.and(table.words, ref * 2, ~clear);
    a[base + A_PINS] = holders | (writers << 16);
    return GNTST_okay;
  } finally {
    if (locked) act.unlock(ref);
  }
}

/** Current holders of `ref` (for diagnostics and tests). */
export function pinCounts(table: MappedGrantTable, ref: number): { holders: number; writers: number } {
  const pins = Atomics.load(table.active.i32, ref * ACTIVE_INTS + A_PINS);
  return { holders: pins & 0xffff, writers: pins >>> 16 };
}

/**
 * A mapper process died holding pins (dom0 killed with SIGKILL): its GTF_reading/GTF_writing
 * bits on the entries granted to `domid` would stay set forever and the granting guest could
 * never end access to those frames. Its successor clears them before mapping anything, as Xen
 * releases a dying domain's grant mappings. Returns how many entries it cleared.
 */
export function releaseDeadMapperPins(buffer: SharedArrayBuffer, domid: number): number {
  const words = new Int32Array(buffer, 0, Math.floor(buffer.byteLength / GRANT_ENTRY_V1_SIZE) * 2);
  let cleared = 0;
  for (let i = 0; i < words.length; i += 2) {
    let w = Atomics.load(words, i);
    for (let t = 0; t < SET_STATUS_TRIES && w >>> 16 === domid && (w & (GTF_reading | GTF_writing)) !== 0; t++) {
      const prev = Atomics.compareExchange(words, i, w, w & ~(GTF_reading | GTF_writing));
      if (prev === w) {
        cleared++;
        break;
      }
      w = prev;
    }
  }
  return cleared;
}
