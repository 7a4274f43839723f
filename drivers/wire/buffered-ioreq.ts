// The buffered ioreq page (hvm/ioreq.h struct buffered_iopage): posted writes the hypervisor
// queues for a device model without waiting for an answer (VGA, timers...).
//
//   read_pointer u32 @0 (device model advances), write_pointer u32 @4 (hypervisor advances),
//   buf_ioreq[511] @8, 8 bytes each: exactly one page.
//
// 511 is not a power of two, so free-running u32 pointers would break `% 511` at the 2^32
// wrap. Xen keeps them small instead: after each send, if read_pointer >= 511 it subtracts
// the same multiple of 511 from both, with one 64-bit compare-and-swap over the pair. Here
// every update of the pair is such a 64-bit CAS, so neither side can lose the other's update.
// Both sides bound their loops: the peer is not trusted to stop moving the pointers.
import { bufIoreq, BufIoreq, BUF_IOREQ_MAX_ADDR, BUF_IOREQ_SIZE, IOREQ_BUFFER_SLOT_NUM, IOREQ_WRITE } from './ioreq.js';

export const BUFFERED_IOPAGE_READ_POINTER_OFFSET = 0;
export const BUFFERED_IOPAGE_WRITE_POINTER_OFFSET = 4;
export const BUFFERED_IOPAGE_SLOTS_OFFSET = 8;

/** Returned by the reader for impossible pointers or a half-written 8-byte request. */
export const BUFIOREQ_ERROR = -1;

const CAS_TRIES = 64;
const N = IOREQ_BUFFER_SLOT_NUM;
const LO = 0xffff_ffffn;

class BufferedIopage {
  protected readonly ptrs: BigUint64Array;
  protected readonly view: DataView;

  constructor(buffer: SharedArrayBuffer, pageOffset = 0) {
    if (pageOffset % 8 !== 0 || pageOffset + 4096 > buffer.byteLength) throw new RangeError('bad buffered iopage offset');
    this.ptrs = new BigUint64Array(buffer, pageOffset, 1);
    this.view = new DataView(buffer, pageOffset, 4096);
  }

  protected slotOffset(p: number): number {
    return BUFFERED_IOPAGE_SLOTS_OFFSET + (p % N) * BUF_IOREQ_SIZE;
  }

  /** Both pointers, read together: [read_pointer, write_pointer]. */
  pointers(): [number, number] {
    const p = Atomics.load(this.ptrs, 0);
    return [Number(p & LO), Number(p >> 32n)];
  }
}

/** The hypervisor's side. */
export class BufferedIoreqWriter extends BufferedIopage {
  private readonly slot: BufIoreq = { type: 0, dir: IOREQ_WRITE, sizeCode: 0, addr: 0, data: 0 };

  /** Queues a posted write. Returns false when it cannot be buffered (address above 1 MiB,
   * odd size, queue full, or a peer fighting the pointers): send it synchronously instead,
   * as Xen does. `data` is the low 32 bits; `dataHi` the high ones for 8-byte writes. */
  send(type: number, addr: number, size: number, data: number, dataHi = 0): boolean {
    if (!Number.isInteger(addr) || addr < 0 || addr > BUF_IOREQ_MAX_ADDR) return false;
    const sizeCode = size === 1 ? 0 : size === 2 ? 1 : size === 4 ? 2 : size === 8 ? 3 : -1;
    if (sizeCode < 0) return false;
    const qw = sizeCode === 3 ? 1 : 0;

    for (let t = 0; t < CAS_TRIES; t++) {
      const old = Atomics.load(this.ptrs, 0);
      const rp = Number(old & LO);
      const wp = Number(old >> 32n);
      if (((wp - rp) >>> 0) >= N - qw) return false; // full (or garbage: looks full)
      const s = this.slot;
      s.type = type;
      s.sizeCode = sizeCode;
      s.addr = addr;
      s.data = data >>> 0;
      bufIoreq.encode(this.view, this.slotOffset(wp), s);
      if (qw) {
        s.data = dataHi >>> 0;
        bufIoreq.encode(this.view, this.slotOffset(wp + 1), s);
      }
      // Publish: the slots are written before the pointer (the CAS is a full barrier).
      const next = (BigInt((wp + 1 + qw) >>> 0) << 32n) | BigInt(rp);
      if (Atomics.compareExchange(this.ptrs, 0, old, next) === old) {
        this.canonicalise();
        return true;
      }
    }
    return false;
  }

  /** Pull both pointers back by a multiple of 511 once the reader is past the first lap. */
  private canonicalise(): void {
    for (let t = 0; t < CAS_TRIES; t++) {
      const old = Atomics.load(this.ptrs, 0);
      const rp = Number(old & LO);
      const wp = Number(old >> 32n);
      if (rp < N) return;
      const k = Math.floor(rp / N) * N;
      const next = (BigInt((wp - k) >>> 0) << 32n) | BigInt(rp - k);
      if (Atomics.compareExchange(this.ptrs, 0, old, next) === old) return;
    }
  }
}

/** A decoded posted write. */
export interface BufferedWrite {
  type: number;
  addr: number;
  /** Bytes: 1, 2, 4 or 8. */
  size: number;
  data: number;
  /** High 32 bits (8-byte writes only, else 0). */
  dataHi: number;
}

/** The device model's side. */
export class BufferedIoreqReader extends BufferedIopage {
  private readonly slot: BufIoreq = { type: 0, dir: 0, sizeCode: 0, addr: 0, data: 0 };

  /** Takes the next posted write into `into`: returns 1, 0 when empty, or BUFIOREQ_ERROR for
   * impossible pointers (stop servicing the page). */
  next(into: BufferedWrite): number {
    for (let t = 0; t < CAS_TRIES; t++) {
      const old = Atomics.load(this.ptrs, 0);
      const rp = Number(old & LO);
      const wp = Number(old >> 32n);
      if (rp === wp) return 0;
      const avail = (wp - rp) >>> 0;
      if (avail > N) return BUFIOREQ_ERROR;
      const s = bufIoreq.decode(this.view, this.slotOffset(rp), this.slot);
      into.type = s.type;
      into.addr = s.addr;
      into.size = 1 << s.sizeCode;
      into.data = s.data;
      into.dataHi = 0;
      let n = 1;
      if (s.sizeCode === 3) {
        // The writer publishes both halves at once, so a lone first half is garbage.
        if (avail < 2) return BUFIOREQ_ERROR;
        into.dataHi = bufIoreq.decode(this.view, this.slotOffset(rp + 1), this.slot).data;
        n = 2;
      }
      const next = (old & ~LO) | BigInt((rp + n) >>> 0);
      if (Atomics.compareExchange(this.ptrs, 0, old, next) === old) return 1;
      // The writer moved a pointer meanwhile: slots in [rp, wp) never change, so just retry.
    }
    return 0;
  }
}
