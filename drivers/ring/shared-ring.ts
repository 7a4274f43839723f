// The ring engine every split driver shares: byte-for-byte Xen's io/ring.h.
//
// A shared ring page is a 64-byte header followed by a power-of-two array of fixed-size
// slots; each slot holds a request (front -> back) and is later overwritten in place by the
// matching response (back -> front):
//
//   @0  req_prod   written by the front: requests [.., req_prod) are published
//   @4  req_event  written by the back:  "notify me when req_prod passes this index"
//   @8  rsp_prod   written by the back
//   @12 rsp_event  written by the front
//   @16 48 bytes of padding (a 4-byte private union + 44), zeroed at init
//   @64 entries
//
// Indices are free-running unsigned 32-bit counters (`>>> 0` after every arithmetic step);
// slot = idx & (size - 1). Every index access goes through Atomics: a sequentially
// consistent Atomics.store of a producer index orders the plain slot writes before it
// (Xen's wmb), and the store/load pair around an event index is Xen's full barrier (mb).
//
// The peer is never trusted: the back end copies each request out of the page once and
// decodes only the private copy (XSA-155, double fetch), checks the producer index it reads
// against what is possible (the "ill-behaved frontend" test), and zeroes a whole slot before
// writing a response into it so no stale bytes leak through padding (XSA-216). The front end
// applies the mirror-image checks to responses.

/** Xen's page size: every ring, grant and frame in this project is one of these. */
export const XEN_PAGE_SIZE = 4096;
export const XEN_PAGE_SHIFT = 12;

/** Size of the shared header; entries start here (offsetof(struct *_sring, ring)). */
export const RING_HEADER_SIZE = 64;

/** Byte offsets of the header fields (ring.h `struct __name##_sring`). */
export const RING_REQ_PROD_OFFSET = 0;
export const RING_REQ_EVENT_OFFSET = 4;
export const RING_RSP_PROD_OFFSET = 8;
export const RING_RSP_EVENT_OFFSET = 12;

// Same fields as Uint32Array indices.
const REQ_PROD = 0;
const REQ_EVENT = 1;
const RSP_PROD = 2;
const RSP_EVENT = 3;

/** Returned instead of a count when the peer's producer index is impossible: the caller must
 * stop using the ring and disconnect the device (Linux: xenvif_fatal_tx_err / blkback
 * "Impossible number of requests"). */
export const RING_OVERFLOW = -1;

/** __CONST_RING_SIZE: (ringBytes - 64) / entrySize, rounded DOWN to a power of two. */
export function ringEntries(entrySize: number, ringBytes: number = XEN_PAGE_SIZE): number {
  if (!Number.isInteger(entrySize) || entrySize <= 0) throw new RangeError(`bad ring entry size ${entrySize}`);
  const n = Math.floor((ringBytes - RING_HEADER_SIZE) / entrySize);
  if (n < 1) throw new RangeError(`ring of ${ringBytes} bytes cannot hold a ${entrySize}-byte entry`);
  return 2 ** Math.floor(Math.log2(n));
}

/** Event-index rule of RING_PUSH_*_AND_CHECK_NOTIFY: notify iff `event` lies in (old, new],
 * all in u32 arithmetic. */
export function needsNotify(oldProd: number, newProd: number, event: number): boolean {
  return ((newProd - event) >>> 0) < ((newProd - oldProd) >>> 0);
}

/** A view of one shared ring (one page, or 2^n contiguous pages) of a given entry size.
 * Both ends build one over the same bytes; it holds no protocol state of its own. */
export class SharedRing {
  /** Number of slots (a power of two). */
  readonly size: number;
  readonly mask: number;
  /** Bytes of the ring only: slot offsets below are relative to it. */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** The four header indices; touch only with Atomics. */
  readonly idx: Uint32Array;
  /** The ring as words, when its entries are whole words (for clearSlot). */
  private readonly words: Int32Array | null;

  constructor(
    readonly buffer: SharedArrayBuffer,
    readonly byteOffset: number,
    readonly entrySize: number,
    readonly ringBytes: number = XEN_PAGE_SIZE,
  ) {
    if (byteOffset % 4 !== 0) throw new RangeError('shared ring must be 4-byte aligned');
    if (byteOffset + ringBytes > buffer.byteLength) throw new RangeError('shared ring lies outside its buffer');
    this.size = ringEntries(entrySize, ringBytes);
    this.mask = this.size - 1;
    this.bytes = new Uint8Array(buffer, byteOffset, ringBytes);
    this.view = new DataView(buffer, byteOffset, ringBytes);
    this.idx = new Uint32Array(buffer, byteOffset, 4);
    this.words = entrySize % 4 === 0 ? new Int32Array(buffer, byteOffset, ringBytes >>> 2) : null;
  }

  /** Byte offset (within `bytes`/`view`) of the slot that index `i` maps to. */
  slotOffset(i: number): number {
    return RING_HEADER_SIZE + (i & this.mask) * this.entrySize;
  }

  /** Zeroes the slot at byte offset `off`: word stores (every ring.h layout is 4-byte
   * aligned) instead of a fill() call, since this runs for every slot produced. */
  clearSlot(off: number): void {
    const w = this.words;
    if (w) {
      for (let i = off >>> 2, end = i + (this.entrySize >>> 2); i < end; i++) w[i] = 0;
    } else {
      this.bytes.fill(0, off, off + this.entrySize);
    }
  }

  /** SHARED_RING_INIT: indices 0, event indices 1, header padding zeroed. Front end only. */
  init(): void {
    this.bytes.fill(0, 16, RING_HEADER_SIZE);
    Atomics.store(this.idx, REQ_PROD, 0);
    Atomics.store(this.idx, RSP_PROD, 0);
    Atomics.store(this.idx, REQ_EVENT, 1);
    Atomics.store(this.idx, RSP_EVENT, 1);
  }

  get reqProd(): number { return Atomics.load(this.idx, REQ_PROD); }
  get reqEvent(): number { return Atomics.load(this.idx, REQ_EVENT); }
  get rspProd(): number { return Atomics.load(this.idx, RSP_PROD); }
  get rspEvent(): number { return Atomics.load(this.idx, RSP_EVENT); }
}

/** Copies one slot out of the shared page into private memory. Word-wise when it can (every
 * ring.h layout is 4-byte aligned) and without allocating: this runs once per request. */
class SlotCopier {
  private readonly shared32: Uint32Array | null;
  readonly priv: Uint8Array;
  readonly privView: DataView;
  private readonly priv32: Uint32Array;

  constructor(private readonly ring: SharedRing) {
    this.priv = new Uint8Array(ring.entrySize);
    this.privView = new DataView(this.priv.buffer);
    this.priv32 = new Uint32Array(this.priv.buffer, 0, ring.entrySize >>> 2);
    this.shared32 = ring.entrySize % 4 === 0 ? new Uint32Array(ring.buffer, ring.byteOffset, ring.ringBytes >>> 2) : null;
  }

  /** Copy slot `i` into `dst` at `dstOff` (dst must have entrySize bytes free there). */
  copyTo(i: number, dst: Uint8Array, dstOff: number): void {
    const off = this.ring.slotOffset(i);
    const src = this.ring.bytes;
    for (let k = 0; k < this.ring.entrySize; k++) dst[dstOff + k] = src[off + k]!;
  }

  /** Copy slot `i` into the private buffer; returns a DataView over it (offset 0). */
  copyToPrivate(i: number): DataView {
    const off = this.ring.slotOffset(i);
    const s32 = this.shared32;
    if (s32 !== null) {
      const w = off >>> 2;
      const d = this.priv32;
      for (let k = 0; k < d.length; k++) d[k] = s32[w + k]!;
    } else {
      this.copyTo(i, this.priv, 0);
    }
    return this.privView;
  }
}

/** The requesting end (netfront, blkfront...): owns req_prod, reads responses. */
export class FrontRing {
  /** Next request index to fill (req_prod_pvt). */
  reqProdPvt = 0;
  /** Next response index to consume. */
  rspCons = 0;
  /** What we last published in req_prod: kept privately so a peer scribbling on the shared
   * copy cannot skew our notification decision. */
  private pushed = 0;
  private readonly copier: SlotCopier;

  /** Without `attachAt`: initialises the shared page (SHARED_RING_INIT + FRONT_RING_INIT),
   * as a front end starting a ring does. With it: FRONT_RING_ATTACH, joining a ring whose
   * indices already stand at `attachAt` (resume, or tests near the u32 wrap). */
  constructor(readonly ring: SharedRing, attachAt?: number) {
    if (attachAt === undefined) {
      ring.init();
    } else {
      this.reqProdPvt = this.rspCons = this.pushed = attachAt >>> 0;
    }
    this.copier = new SlotCopier(ring);
  }

  get size(): number { return this.ring.size; }

  /** RING_FREE_REQUESTS: slots we may still fill before responses come back. */
  freeRequests(): number {
    return this.ring.size - ((this.reqProdPvt - this.rspCons) >>> 0);
  }

  isFull(): boolean { return this.freeRequests() === 0; }

  /** Claims the next request slot: zeroes it and returns its byte offset within
   * `ring.view`. Encode the request there, then pushRequests(). Throws when full: check
   * freeRequests() first. */
  nextRequestSlot(): number {
    if (this.freeRequests() <= 0) throw new Error('FrontRing: no free request slot');
    const off = this.ring.slotOffset(this.reqProdPvt);
    this.ring.clearSlot(off);
    this.reqProdPvt = (this.reqProdPvt + 1) >>> 0;
    return off;
  }

  /** RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: publishes the filled slots; returns true when the
   * back end asked to be notified (send an event), false when it is still busy. */
  pushRequests(): boolean {
    const old = this.pushed;
    const next = this.reqProdPvt;
    if (old === next) return false;
    Atomics.store(this.ring.idx, REQ_PROD, next);
    const event = Atomics.load(this.ring.idx, REQ_EVENT);
    this.pushed = next;
    return needsNotify(old, next, event);
  }

  /** Responses published but not consumed, or RING_OVERFLOW when the back end claims more
   * responses than there are outstanding requests (an ill-behaved backend: disconnect). */
  unconsumedResponses(): number {
    const prod = Atomics.load(this.ring.idx, RSP_PROD);
    const avail = (prod - this.rspCons) >>> 0;
    if (avail > ((this.pushed - this.rspCons) >>> 0)) return RING_OVERFLOW;
    return avail;
  }

  /** Copies the response at rsp_cons out of the page and consumes it. The returned view is
   * a private buffer reused by the next call: decode it (at offset 0) straight away. */
  takeResponse(): DataView {
    const v = this.copier.copyToPrivate(this.rspCons);
    this.rspCons = (this.rspCons + 1) >>> 0;
    return v;
  }

  /** Like takeResponse but into caller-owned memory (for batches). */
  copyResponse(dst: Uint8Array, dstOff = 0): void {
    this.copier.copyTo(this.rspCons, dst, dstOff);
    this.rspCons = (this.rspCons + 1) >>> 0;
  }

  /** Asks for an event once `after` more responses are published (rsp_event = rsp_cons +
   * after), then re-checks as finalCheckForResponses does. For a sender that wants to wake
   * for a batch of completions, not for each (Linux netfront asks at half its requests in
   * flight). True means responses are already there. */
  armResponseEvent(after: number): boolean {
    if (this.unconsumedResponses() !== 0) return true;
    Atomics.store(this.ring.idx, RSP_EVENT, (this.rspCons + Math.max(1, after)) >>> 0);
    return this.unconsumedResponses() !== 0;
  }

  /** RING_FINAL_CHECK_FOR_RESPONSES: call when the ring looks empty, before sleeping. Arms
   * rsp_event = rsp_cons + 1 and re-checks, closing the race with a response published in
   * between. True means there is work (or an overflow to report): keep going. */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() !== 0) return true;
    Atomics.store(this.ring.idx, RSP_EVENT, (this.rspCons + 1) >>> 0);
    return this.unconsumedResponses() !== 0;
  }
}

/** The serving end (netback, blkback...): reads requests, owns rsp_prod. */
export class BackRing {
  /** Next request index to consume. */
  reqCons: number;
  /** Next response index to fill (rsp_prod_pvt). */
  rspProdPvt: number;
  private pushed: number;
  private readonly copier: SlotCopier;

  /** BACK_RING_ATTACH: joins a ring the front end already initialised, never touching the
   * shared header. `start` defaults to the current rsp_prod (0 on a fresh ring). */
  constructor(readonly ring: SharedRing, start: number = Atomics.load(ring.idx, RSP_PROD)) {
    this.reqCons = start >>> 0;
    this.rspProdPvt = start >>> 0;
    this.pushed = start >>> 0;
    this.copier = new SlotCopier(ring);
  }

  get size(): number { return this.ring.size; }

  /** Requests we may consume now, or RING_OVERFLOW when req_prod is impossible: more than
   * RING_SIZE ahead of our responses (RING_REQUEST_PROD_OVERFLOW) or moved backwards past
   * what we consumed. On RING_OVERFLOW stop processing and disconnect the device. */
  unconsumedRequests(): number {
    const prod = Atomics.load(this.ring.idx, REQ_PROD);
    if (((prod - this.rspProdPvt) >>> 0) > this.ring.size) return RING_OVERFLOW;
    const reqs = (prod - this.reqCons) >>> 0;
    if (reqs > this.ring.size) return RING_OVERFLOW;
    // RING_UNCONSUMED_REQUESTS: never run ahead of slots whose responses we still owe.
    const room = this.ring.size - ((this.reqCons - this.rspProdPvt) >>> 0);
    return reqs < room ? reqs : room;
  }

  /** Copies the request at req_cons out of the page ONCE and consumes it; decode and
   * validate the returned private view (offset 0), never the shared slot. The buffer is
   * reused by the next call. Only call after unconsumedRequests() said there is one. */
  takeRequest(): DataView {
    const v = this.copier.copyToPrivate(this.reqCons);
    this.reqCons = (this.reqCons + 1) >>> 0;
    return v;
  }

  /** Like takeRequest but into caller-owned memory, for requests that span several slots
   * (a netif packet is up to 18+ slots and must be read whole before it is judged). */
  copyRequest(dst: Uint8Array, dstOff = 0): void {
    this.copier.copyTo(this.reqCons, dst, dstOff);
    this.reqCons = (this.reqCons + 1) >>> 0;
  }

  /** Claims the next response slot, zeroes ALL of it (XSA-216: no stale request bytes
   * survive in padding) and returns its byte offset within `ring.view`. */
  nextResponseSlot(): number {
    if (this.rspProdPvt === this.reqCons) throw new Error('BackRing: response without a consumed request');
    const off = this.ring.slotOffset(this.rspProdPvt);
    this.ring.clearSlot(off);
    this.rspProdPvt = (this.rspProdPvt + 1) >>> 0;
    return off;
  }

  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: true when the front end wants an event. */
  pushResponses(): boolean {
    const old = this.pushed;
    const next = this.rspProdPvt;
    if (old === next) return false;
    Atomics.store(this.ring.idx, RSP_PROD, next);
    const event = Atomics.load(this.ring.idx, RSP_EVENT);
    this.pushed = next;
    return needsNotify(old, next, event);
  }

  /** RING_FINAL_CHECK_FOR_REQUESTS: arms req_event = req_cons + 1 and re-checks. True means
   * keep going (requests arrived, or an overflow the next unconsumedRequests() reports). */
  finalCheckForRequests(): boolean {
    if (this.unconsumedRequests() !== 0) return true;
    Atomics.store(this.ring.idx, REQ_EVENT, (this.reqCons + 1) >>> 0);
    return this.unconsumedRequests() !== 0;
  }
}
