// The xenstore domain ring page (struct xenstore_domain_interface, docs/misc/xenstore-ring.txt):
// two 1024-byte byte-stream rings plus free-running u32 indices, shared between a guest and
// xenstored. The page is a view into a SharedArrayBuffer; the indices are read and written
// with Atomics (sequentially consistent, so they double as the barriers Xen puts around them).
//
// The peer is untrusted: every operation loads each index once, validates `prod - cons <= 1024`
// and only then touches the data (a guest lying about its indices must not make us read or
// write outside the ring, XSA-style double fetches included).

export const XENSTORE_RING_SIZE = 1024;
const MASK = XENSTORE_RING_SIZE - 1;

/** Byte offsets within the page. */
export const XS_RING_OFF = {
  req: 0,
  rsp: 1024,
  reqCons: 2048,
  reqProd: 2052,
  rspCons: 2056,
  rspProd: 2060,
  serverFeatures: 2064,
  connection: 2068,
  error: 2072,
} as const;
/** Bytes of the page the interface occupies. */
export const XS_RING_INTERFACE_SIZE = 2076;

export const XENSTORE_SERVER_FEATURE_RECONNECTION = 1;
export const XENSTORE_SERVER_FEATURE_ERROR = 2;
export const XENSTORE_CONNECTED = 0;
export const XENSTORE_RECONNECT = 1;
/** Values of the connection error indicator. */
export const XENSTORE_ERROR_NONE = 0;
export const XENSTORE_ERROR_COMM = 1;
export const XENSTORE_ERROR_RINGIDX = 2;
export const XENSTORE_ERROR_PROTO = 3;

// Slots of the Int32Array laid over offset 2048.
const REQ_CONS = 0;
const REQ_PROD = 1;
const RSP_CONS = 2;
const RSP_PROD = 3;
const FEATURES = 4;
const CONNECTION = 5;
const ERROR = 6;

/** Returned by read/write when the peer's indices are impossible. */
export const RING_CORRUPT = -1;

/**
 * One end of the ring. The guest end writes `req` and reads `rsp`; the server end the reverse.
 * read/write never notify: the owner signals the event channel once after a batch of updates
 * (Xen requires a signal after updating the indices, not one per byte run).
 */
export class XsRingEnd {
  private readonly idx: Int32Array;
  private readonly outBase: number;
  private readonly inBase: number;
  private readonly outCons: number;
  private readonly outProd: number;
  private readonly inCons: number;
  private readonly inProd: number;
  /** Server with held consumption: how far we have read, not yet told the peer (see hold()). */
  private heldCons: number | null = null;
  private holding = false;

  constructor(
    readonly page: Uint8Array,
    readonly side: 'guest' | 'server',
  ) {
    if (!(page.buffer instanceof SharedArrayBuffer)) {
      throw new TypeError('xenstore ring page must be a view into a SharedArrayBuffer');
    }
    if (page.length < XS_RING_INTERFACE_SIZE || (page.byteOffset & 3) !== 0) {
      throw new RangeError('xenstore ring page too small or not 4-byte aligned');
    }
    this.idx = new Int32Array(page.buffer, page.byteOffset + XS_RING_OFF.reqCons, 7);
    const guest = side === 'guest';
    this.outBase = guest ? XS_RING_OFF.req : XS_RING_OFF.rsp;
    this.inBase = guest ? XS_RING_OFF.rsp : XS_RING_OFF.req;
    this.outCons = guest ? REQ_CONS : RSP_CONS;
    this.outProd = guest ? REQ_PROD : RSP_PROD;
    this.inCons = guest ? RSP_CONS : REQ_CONS;
    this.inProd = guest ? RSP_PROD : REQ_PROD;
  }

  /** Bytes waiting to be read, or RING_CORRUPT. */
  readable(): number {
    const cons = this.heldCons ?? Atomics.load(this.idx, this.inCons) >>> 0;
    const prod = Atomics.load(this.idx, this.inProd) >>> 0;
    const avail = (prod - cons) >>> 0;
    return avail > XENSTORE_RING_SIZE ? RING_CORRUPT : avail;
  }

  /** Free space for writing, or RING_CORRUPT. */
  writable(): number {
    const cons = Atomics.load(this.idx, this.outCons) >>> 0;
    const prod = Atomics.load(this.idx, this.outProd) >>> 0;
    const used = (prod - cons) >>> 0;
    return used > XENSTORE_RING_SIZE ? RING_CORRUPT : XENSTORE_RING_SIZE - used;
  }

  /** Copy up to `len` bytes out of the ring into dst[off..]; returns the count or RING_CORRUPT. */
  read(dst: Uint8Array, off: number, len: number): number {
    const cons = this.heldCons ?? Atomics.load(this.idx, this.inCons) >>> 0;
    const prod = Atomics.load(this.idx, this.inProd) >>> 0;
    const avail = (prod - cons) >>> 0;
    if (avail > XENSTORE_RING_SIZE) return RING_CORRUPT;
    const n = Math.min(len, avail);
    let done = 0;
    while (done < n) {
      const pos = (cons + done) & MASK;
      const run = Math.min(n - done, XENSTORE_RING_SIZE - pos);
      const src = this.inBase + pos;
      dst.set(this.page.subarray(src, src + run), off + done);
      done += run;
    }
    if (n > 0) {
      if (this.holding) this.heldCons = (cons + n) >>> 0;
      else Atomics.store(this.idx, this.inCons, (cons + n) | 0);
    }
    return n;
  }

  /**
   * Hold consumption: read() then advances a private index only, and the peer sees the bytes
   * consumed at release(). A server whose state must survive it (xenstored's live state) saves
   * what it has read before the peer may overwrite it.
   */
  hold(): void {
    this.holding = true;
  }

  /** Where reading has got to (held or published). */
  get consumed(): number {
    return this.heldCons ?? Atomics.load(this.idx, this.inCons) >>> 0;
  }

  /** Where our output has got to (our producer index). */
  get produced(): number {
    return Atomics.load(this.idx, this.outProd) >>> 0;
  }

  /** Publish held consumption; true if there was any. */
  release(): boolean {
    if (this.heldCons === null) return false;
    Atomics.store(this.idx, this.inCons, this.heldCons | 0);
    this.heldCons = null;
    return true;
  }

  /** Server resuming a saved connection: the consumer index it had saved (a successor may
   * have died between saving and publishing it). */
  resumeConsumed(cons: number): void {
    Atomics.store(this.idx, this.inCons, cons | 0);
    this.heldCons = null;
  }

  /** Copy up to `len` bytes of src[off..] into the ring; returns the count or RING_CORRUPT. */
  write(src: Uint8Array, off: number, len: number): number {
    const cons = Atomics.load(this.idx, this.outCons) >>> 0;
    const prod = Atomics.load(this.idx, this.outProd) >>> 0;
    const used = (prod - cons) >>> 0;
    if (used > XENSTORE_RING_SIZE) return RING_CORRUPT;
    const n = Math.min(len, XENSTORE_RING_SIZE - used);
    let done = 0;
    while (done < n) {
      const pos = (prod + done) & MASK;
      const run = Math.min(n - done, XENSTORE_RING_SIZE - pos);
      this.page.set(src.subarray(off + done, off + done + run), this.outBase + pos);
      done += run;
    }
    if (n > 0) Atomics.store(this.idx, this.outProd, (prod + n) | 0);
    return n;
  }

  /** The two indices the other end moves (its producer on our input, its consumer on our
   * output), folded into one number: it changes whenever the other end did something. */
  peerIndices(): number {
    return ((Atomics.load(this.idx, this.inProd) >>> 0) * 0x10000 + (Atomics.load(this.idx, this.outCons) >>> 0)) % Number.MAX_SAFE_INTEGER;
  }

  get serverFeatures(): number {
    return Atomics.load(this.idx, FEATURES) >>> 0;
  }
  /** Server only: features are only ever added (xenstore-ring.txt). */
  advertise(features: number): void {
    Atomics.or(this.idx, FEATURES, features | 0);
  }
  get connection(): number {
    return Atomics.load(this.idx, CONNECTION) >>> 0;
  }
  set connection(v: number) {
    Atomics.store(this.idx, CONNECTION, v | 0);
  }
  get error(): number {
    return Atomics.load(this.idx, ERROR) >>> 0;
  }
  set error(v: number) {
    Atomics.store(this.idx, ERROR, v | 0);
  }

  /** Server only: empty both rings (used for a reconnect request and re-introduction). */
  resetIndices(): void {
    this.heldCons = null;
    Atomics.store(this.idx, REQ_CONS, 0);
    Atomics.store(this.idx, REQ_PROD, 0);
    Atomics.store(this.idx, RSP_CONS, 0);
    Atomics.store(this.idx, RSP_PROD, 0);
  }
}
