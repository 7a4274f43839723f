// Interrupt lines from a device model in another process (the stub domain) into KVM's
// in-kernel PIC/IOAPIC. The device model drives levels in the platform page's IRQ_LEVEL word
// (bit n = line n asserted), marks every raise in IRQ_EDGES, and rings the guest's irq event
// channel (drivers/hypercall/hvm-platform-page.ts, docs/hvm.md). The engine mirrors those
// words with KVM_IRQ_LINE:
//   - on the irq event channel (hypervisor main thread): raises that happen on their own,
//     a frame arriving on the NIC's TAP, a disk transfer finishing;
//   - after every ioreq a vCPU completes (its worker thread): a guest's register access is
//     what lowers a line (an ISR acknowledging its device), and the lowered level must reach
//     the IOAPIC before the guest's EOI, or a level-triggered line fires again at once.
// Both run the same sync under a small lock word, so two threads never apply stale levels in
// the wrong order.
import { PlatformWord } from '../../drivers/hypercall/hvm-platform-page.js';

/** Words of the mirror's own state (a SharedArrayBuffer every thread of the VM host shares). */
export const MIRROR_LOCK = 0;
export const MIRROR_APPLIED = 1;
export const MIRROR_WORDS = 2;

export type SetLine = (gsi: number, level: 0 | 1) => void;

function eachBit(mask: number, fn: (bit: number) => void): void {
  for (let m = mask >>> 0; m !== 0; m &= m - 1) fn(31 - Math.clz32(m & -m));
}

/**
 * Bring KVM's lines in step with the device model's words.
 *  - a line whose level differs from what KVM was last told: set it;
 *  - a line raised (IRQ_EDGES) and lowered again before we looked: pulse it, so an
 *    edge-triggered ISA line (the 16550's IRQ 4) still interrupts;
 *  - a line still high that was raised again (lowered and raised in between, unseen): pulse
 *    it low-high, which is a new edge for an edge-triggered line and harmless for a level one.
 * Returns the number of KVM_IRQ_LINE calls made.
 */
export function syncIrqLines(platform: Int32Array, state: Int32Array, setLine: SetLine): number {
  while (Atomics.compareExchange(state, MIRROR_LOCK, 0, 1) !== 0) {
    /* another thread is mid-sync: a handful of loads at most */
  }
  let calls = 0;
  const set = (gsi: number, level: 0 | 1) => {
    calls++;
    setLine(gsi, level);
  };
  try {
    const edges = Atomics.exchange(platform, PlatformWord.IRQ_EDGES, 0);
    const level = Atomics.load(platform, PlatformWord.IRQ_LEVEL);
    const applied = Atomics.load(state, MIRROR_APPLIED);
    eachBit(edges & ~level & ~applied, (b) => {
      set(b, 1);
      set(b, 0);
    });
    eachBit(edges & level & applied, (b) => {
      set(b, 0);
      set(b, 1);
    });
    eachBit(level ^ applied, (b) => set(b, (level >>> b) & 1 ? 1 : 0));
    Atomics.store(state, MIRROR_APPLIED, level);
  } finally {
    Atomics.store(state, MIRROR_LOCK, 0);
  }
  return calls;
}
