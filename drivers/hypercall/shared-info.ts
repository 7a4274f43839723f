// The event-channel part of Xen's shared_info page (xen/include/public/xen.h, x86_64):
// vcpu_info[32] of 64 bytes each, then evtchn_pending[64] and evtchn_mask[64] as 64-bit
// words (4096 ports). A port's bit is bit (port % 64) of word (port / 64); on little-endian
// x86 that is bit (port % 32) of 32-bit word (port / 32), which is what Atomics can reach.
export const NR_EVENT_CHANNELS = 4096;
export const VCPU_INFO_SIZE = 64;
export const LEGACY_MAX_VCPUS = 32;
export const EVTCHN_PENDING_OFFSET = LEGACY_MAX_VCPUS * VCPU_INFO_SIZE; // 2048
export const EVTCHN_MASK_OFFSET = EVTCHN_PENDING_OFFSET + NR_EVENT_CHANNELS / 8; // 2560
/** vcpu_info: evtchn_upcall_pending u8 @0, evtchn_upcall_mask u8 @1, evtchn_pending_sel u64 @8. */
export const VCPU_UPCALL_PENDING = 0;
export const VCPU_UPCALL_MASK = 1;
export const VCPU_PENDING_SEL = 8;

export class SharedInfo {
  private readonly words: Uint32Array;
  private readonly bytes: Uint8Array;

  constructor(page: Uint8Array) {
    if (page.byteOffset % 4 !== 0) throw new RangeError('shared_info page must be 4-byte aligned');
    this.words = new Uint32Array(page.buffer, page.byteOffset, 4096 / 4);
    this.bytes = page;
  }

  private static bit(port: number): [number, number] {
    return [port >>> 5, 1 << (port & 31)];
  }

  /** Set the pending bit; returns true if it was newly set (Xen stops delivery otherwise). */
  setPending(port: number): boolean {
    const [w, b] = SharedInfo.bit(port);
    const old = Atomics.or(this.words, EVTCHN_PENDING_OFFSET / 4 + w, b);
    return (old & b) === 0;
  }

  /** Clear the pending bit; returns whether it was set. */
  testAndClearPending(port: number): boolean {
    const [w, b] = SharedInfo.bit(port);
    const old = Atomics.and(this.words, EVTCHN_PENDING_OFFSET / 4 + w, ~b);
    return (old & b) !== 0;
  }

  isPending(port: number): boolean {
    const [w, b] = SharedInfo.bit(port);
    return (Atomics.load(this.words, EVTCHN_PENDING_OFFSET / 4 + w) & b) !== 0;
  }

  setMask(port: number, masked: boolean): void {
    const [w, b] = SharedInfo.bit(port);
    if (masked) Atomics.or(this.words, EVTCHN_MASK_OFFSET / 4 + w, b);
    else Atomics.and(this.words, EVTCHN_MASK_OFFSET / 4 + w, ~b);
  }

  isMasked(port: number): boolean {
    const [w, b] = SharedInfo.bit(port);
    return (Atomics.load(this.words, EVTCHN_MASK_OFFSET / 4 + w) & b) !== 0;
  }

  /** vcpu_info[v].evtchn_upcall_pending, the "something is pending" flag for a vCPU. */
  setUpcallPending(vcpu: number, on: boolean): void {
    this.bytes[vcpu * VCPU_INFO_SIZE + VCPU_UPCALL_PENDING] = on ? 1 : 0;
  }
}
