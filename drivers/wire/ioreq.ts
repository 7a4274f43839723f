// hvm/ioreq.h: the synchronous I/O request an HVM vCPU hands its device model, and the
// buffered (posted-write) slot format. Codecs plus state helpers; the buffered page's engine
// is in buffered-ioreq.ts.
//
// struct ioreq, x86_64, as in every Xen since 4.0 (3.x had u64 size/count and an io_count):
//   addr u64 @0, data u64 @8, count u32 @16, size u32 @20, vp_eport u32 @24, _pad0 u16 @28,
//   byte @30 = state:4 | data_is_ptr:1 | dir:1 | df:1 | _pad1:1   (GCC packs from bit 0),
//   type u8 @31.  sizeof = 32.
// The shared ioreq page holds one ioreq per vCPU (struct shared_iopage { ioreq vcpu_ioreq[] }).
// `state` is the handshake: the hypervisor fills the request and stores READY; the device model
// moves it to INPROCESS, answers, stores IORESP_READY; the hypervisor consumes it back to NONE.
// Only the state byte is ever accessed concurrently, so it alone goes through Atomics.

export const IOREQ_READ = 1;
export const IOREQ_WRITE = 0;

/** Byte offset, within a slot, of the 32-bit word a vCPU waits on (contains the state byte). */
export const IOREQ_WAIT_WORD_OFFSET = 28;
/** Bit position of the state nibble inside that word (little-endian: byte 30 -> bits 16..23). */
export const IOREQ_WAIT_WORD_STATE_SHIFT = 16;

export const STATE_IOREQ_NONE = 0;
export const STATE_IOREQ_READY = 1;
export const STATE_IOREQ_INPROCESS = 2;
export const STATE_IORESP_READY = 3;

export const IOREQ_TYPE_PIO = 0;
export const IOREQ_TYPE_COPY = 1;
export const IOREQ_TYPE_PCI_CONFIG = 2;
export const IOREQ_TYPE_TIMEOFFSET = 7;
export const IOREQ_TYPE_INVALIDATE = 8;

export const IOREQ_SIZE = 32;
export const IOREQ_STATE_BYTE = 30;
export const IOREQ_TYPE_BYTE = 31;

export interface Ioreq {
  /** Port (PIO), guest-physical address (COPY), or a PCI config address (see ioreqPciAddr). */
  addr: bigint;
  /** The value, or the guest-physical address of the data when dataIsPtr. */
  data: bigint;
  /** Repetitions (rep ins/outs/movs). */
  count: number;
  /** Bytes per access: 1, 2, 4 or 8. */
  size: number;
  vpEport: number;
  state: number;
  dataIsPtr: boolean;
  /** IOREQ_READ or IOREQ_WRITE. */
  dir: number;
  /** Direction flag: rep accesses walk downwards. */
  df: boolean;
  type: number;
}

export function createIoreq(): Ioreq {
  return { addr: 0n, data: 0n, count: 0, size: 0, vpEport: 0, state: 0, dataIsPtr: false, dir: 0, df: false, type: 0 };
}

export const ioreq = {
  size: IOREQ_SIZE,
  /** Writes the whole struct with plain stores. When publishing into a shared page, encode
   * with state NONE, then ioreqSetState(..., STATE_IOREQ_READY) so the state lands last. */
  encode(v: DataView, o: number, f: Ioreq): void {
    v.setBigUint64(o, f.addr, true);
    v.setBigUint64(o + 8, f.data, true);
    v.setUint32(o + 16, f.count, true);
    v.setUint32(o + 20, f.size, true);
    v.setUint32(o + 24, f.vpEport, true);
    v.setUint16(o + 28, 0, true);
    v.setUint8(o + 30, (f.state & 0xf) | (f.dataIsPtr ? 0x10 : 0) | ((f.dir & 1) << 5) | (f.df ? 0x40 : 0));
    v.setUint8(o + 31, f.type);
  },
  decode(v: DataView, o: number, into?: Ioreq): Ioreq {
    const r = into ?? createIoreq();
    r.addr = v.getBigUint64(o, true);
    r.data = v.getBigUint64(o + 8, true);
    r.count = v.getUint32(o + 16, true);
    r.size = v.getUint32(o + 20, true);
    r.vpEport = v.getUint32(o + 24, true);
    const b = v.getUint8(o + 30);
    r.state = b & 0xf;
    r.dataIsPtr = (b & 0x10) !== 0;
    r.dir = (b >> 5) & 1;
    r.df = (b & 0x40) !== 0;
    r.type = v.getUint8(o + 31);
    return r;
  },
};

/** Byte offset of vCPU `vcpu`'s slot in the shared ioreq page. */
export function ioreqSlotOffset(vcpu: number): number {
  return vcpu * IOREQ_SIZE;
}

/** Current state of the ioreq at `off` in a shared page (Atomics, so it is a fresh read). */
export function ioreqGetState(page: Uint8Array, off: number): number {
  return Atomics.load(page, off + IOREQ_STATE_BYTE) & 0xf;
}

// The state shares its byte with data_is_ptr/dir/df, so changes are compare-and-swap loops
// that keep the upper nibble. The loop is bounded: a peer flipping those bits forever must not
// hang us; giving up reports failure like a state mismatch would.
const STATE_CAS_TRIES = 16;

/** Moves the state from `expected` to `next`; false if it was not `expected`. */
export function ioreqCompareExchangeState(page: Uint8Array, off: number, expected: number, next: number): boolean {
  const i = off + IOREQ_STATE_BYTE;
  for (let t = 0; t < STATE_CAS_TRIES; t++) {
    const b = Atomics.load(page, i);
    if ((b & 0xf) !== expected) return false;
    if (Atomics.compareExchange(page, i, b, (b & 0xf0) | (next & 0xf)) === b) return true;
  }
  return false;
}

/** Sets the state whatever it was (the owner of the slot publishing READY / IORESP_READY);
 * all other fields must already be written. */
export function ioreqSetState(page: Uint8Array, off: number, state: number): boolean {
  const i = off + IOREQ_STATE_BYTE;
  for (let t = 0; t < STATE_CAS_TRIES; t++) {
    const b = Atomics.load(page, i);
    if (Atomics.compareExchange(page, i, b, (b & 0xf0) | (state & 0xf)) === b) return true;
  }
  return false;
}

// ---- IOREQ_TYPE_PCI_CONFIG addresses: SEGMENT 63..48 | BUS 47..40 | DEV 39..35 | FN 34..32 | OFFSET 31..0
export interface PciConfigAddr {
  segment: number;
  bus: number;
  dev: number;
  fn: number;
  reg: number;
}

export function ioreqPciAddr(a: PciConfigAddr): bigint {
  return (
    (BigInt(a.segment & 0xffff) << 48n) |
    (BigInt(a.bus & 0xff) << 40n) |
    (BigInt(a.dev & 0x1f) << 35n) |
    (BigInt(a.fn & 0x7) << 32n) |
    BigInt(a.reg >>> 0)
  );
}

export function decodeIoreqPciAddr(addr: bigint): PciConfigAddr {
  return {
    segment: Number((addr >> 48n) & 0xffffn),
    bus: Number((addr >> 40n) & 0xffn),
    dev: Number((addr >> 35n) & 0x1fn),
    fn: Number((addr >> 32n) & 0x7n),
    reg: Number(addr & 0xffff_ffffn),
  };
}

// ---- buf_ioreq_t (8 B): type u8 @0; byte @1 = pad:1 | dir:1 | size:2 (low bits first);
//      addr:20 in bits 12..31 of the little-endian u32 @0; data u32 @4.
// size encodes 0 => 1, 1 => 2, 2 => 4, 3 => 8 bytes; an 8-byte write takes two slots, the
// second carrying the high 32 bits of data.
export const BUF_IOREQ_SIZE = 8;
export const IOREQ_BUFFER_SLOT_NUM = 511;
/** Buffered requests address at most 20 bits (the first MiB). */
export const BUF_IOREQ_MAX_ADDR = 0xfffff;

export interface BufIoreq {
  type: number;
  dir: number;
  /** Size code 0..3 (bytes = 1 << sizeCode). */
  sizeCode: number;
  addr: number;
  /** u32 data (for sizeCode 3: the half this slot carries). */
  data: number;
}

export const bufIoreq = {
  size: BUF_IOREQ_SIZE,
  encode(v: DataView, o: number, f: BufIoreq): void {
    const w0 = (f.type & 0xff) | ((f.dir & 1) << 9) | ((f.sizeCode & 3) << 10) | ((f.addr & BUF_IOREQ_MAX_ADDR) << 12);
    v.setUint32(o, w0 >>> 0, true);
    v.setUint32(o + 4, f.data >>> 0, true);
  },
  decode(v: DataView, o: number, into?: BufIoreq): BufIoreq {
    const r = into ?? { type: 0, dir: 0, sizeCode: 0, addr: 0, data: 0 };
    const w0 = v.getUint32(o, true);
    r.type = w0 & 0xff;
    r.dir = (w0 >>> 9) & 1;
    r.sizeCode = (w0 >>> 10) & 3;
    r.addr = w0 >>> 12;
    r.data = v.getUint32(o + 4, true);
    return r;
  },
};
