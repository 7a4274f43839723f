// The interrupt mirror between a device model in another process and KVM's irqchip
// (hypervisor/kvm/irq-mirror.ts): levels reach KVM as they are, and an edge raised and lowered
// again before anyone looked is still delivered as an edge. Pure logic: no KVM needed.
import { describe, expect, it } from 'vitest';
import { PlatformWord, HVM_IOREQ_PAGES } from '../../drivers/hypercall/hvm-platform-page.js';
import { MIRROR_WORDS, syncIrqLines } from '../../hypervisor/kvm/irq-mirror.js';

function setup() {
  const platform = new Int32Array(new SharedArrayBuffer(HVM_IOREQ_PAGES * 4096));
  const state = new Int32Array(new SharedArrayBuffer(MIRROR_WORDS * 4));
  const calls: string[] = [];
  const kvmLevel = new Map<number, number>();
  const sync = () =>
    syncIrqLines(platform, state, (gsi, level) => {
      calls.push(`${gsi}:${level}`);
      kvmLevel.set(gsi, level);
    });
  // what the stub domain's irq sink does (stubdom/worker.ts)
  const raise = (line: number) => {
    Atomics.or(platform, PlatformWord.IRQ_LEVEL, 1 << line);
    Atomics.or(platform, PlatformWord.IRQ_EDGES, 1 << line);
  };
  const lower = (line: number) => Atomics.and(platform, PlatformWord.IRQ_LEVEL, ~(1 << line));
  return { calls, kvmLevel, sync, raise, lower };
}

describe('interrupt mirror into KVM', () => {
  it('sets and clears level lines as the device model drives them, once each', () => {
    const m = setup();
    m.raise(11);
    m.sync();
    expect(m.kvmLevel.get(11)).toBe(1);
    m.calls.length = 0;
    m.sync(); // nothing changed: KVM is not told again
    expect(m.calls).toEqual([]);
    m.lower(11); // the guest's ISR acknowledged the NIC
    m.sync();
    expect(m.calls).toEqual(['11:0']);
  });

  it('delivers a raise that was lowered before the mirror looked as a pulse', () => {
    const m = setup();
    m.raise(4); // the 16550's THRE: raised, then cleared by the guest's next read of IIR
    m.lower(4);
    m.sync();
    expect(m.calls).toEqual(['4:1', '4:0']);
    expect(m.kvmLevel.get(4)).toBe(0);
  });

  it('re-edges a line that went low and high again unseen, and keeps lines apart', () => {
    const m = setup();
    m.raise(4);
    m.raise(14);
    m.sync();
    m.calls.length = 0;
    m.lower(4);
    m.raise(4); // a new edge on a line KVM still sees high
    m.sync();
    expect(m.calls).toEqual(['4:0', '4:1']);
    expect(m.kvmLevel.get(14)).toBe(1);
  });

  it('handles line 31 (the sign bit) like any other', () => {
    const m = setup();
    m.raise(31);
    m.sync();
    expect(m.kvmLevel.get(31)).toBe(1);
    m.lower(31);
    m.sync();
    expect(m.kvmLevel.get(31)).toBe(0);
  });
});
