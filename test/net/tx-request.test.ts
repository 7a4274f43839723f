// netback's TX judgement (dom0/backends/netback/tx-request.ts) from raw ring bytes: every
// verdict and reason of its closed list, Linux's limits and Linux's order of checks, and that
// each slot is read exactly once.
import { describe, expect, it } from 'vitest';
import { FATAL_SKB_SLOTS, readTxPacket, TX_DROP_REASONS, TX_FATAL_REASONS, TX_REASONS, TxPacket, XEN_NETBK_LEGACY_SLOTS_MAX, type TxVerdict } from '../../dom0/backends/netback/tx-request.js';
import { NETTXF_csum_blank, NETTXF_extra_info, NETTXF_more_data, XEN_NETIF_GSO_TYPE_TCPV6 } from '../../drivers/wire/netif.js';

/** A TX request slot as its 12 bytes: gref u32, offset u16, flags u16, id u16, size u16. */
function req(r: { gref?: number; offset?: number; flags?: number; id?: number; size: number }): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint32(0, r.gref ?? 8, true);
  v.setUint16(4, r.offset ?? 0, true);
  v.setUint16(6, r.flags ?? 0, true);
  v.setUint16(8, r.id ?? 0, true);
  v.setUint16(10, r.size, true);
  return b;
}

/** An extra-info slot: type u8, flags u8, then GSO size u16, type u8. */
function ext(type: number, o: { more?: boolean; gsoSize?: number; gsoType?: number } = {}): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = type;
  b[1] = o.more ? 1 : 0;
  new DataView(b.buffer).setUint16(2, o.gsoSize ?? 0, true);
  b[4] = o.gsoType ?? 0;
  return b;
}

/** Runs the judgement over `slots` as published; returns the verdict and the slots read. */
function judge(slots: Uint8Array[], published = slots.length): { v: TxVerdict; read: number; p: TxPacket } {
  let read = 0;
  const p = new TxPacket();
  const v = readTxPacket((dst) => dst.set(slots[read++]!), published, p);
  return { v, read, p };
}

function frags(n: number, size = 100): Uint8Array[] {
  return [...Array(n).keys()].map((i) => req({ id: i + 1, size, flags: i < n - 1 ? NETTXF_more_data : 0 }));
}

const reason = (v: TxVerdict) => (v.kind === 'ok' ? 'ok' : `${v.kind}:${v.reason}`);

describe('netback TX judgement from raw bytes', () => {
  it("Linux's names for Linux's limits", () => {
    expect(XEN_NETBK_LEGACY_SLOTS_MAX).toBe(18);
    expect(FATAL_SKB_SLOTS).toBe(20);
    expect(TX_REASONS).toEqual([...TX_DROP_REASONS, ...TX_FATAL_REASONS]);
  });

  it('a single-slot packet: ok, decoded, read once', () => {
    const { v, read, p } = judge([req({ gref: 42, offset: 100, flags: NETTXF_csum_blank, id: 5, size: 60 })]);
    expect(v).toEqual({ kind: 'ok' });
    expect(read).toBe(1);
    expect(p.slots[0]).toEqual({ gref: 42, offset: 100, flags: NETTXF_csum_blank, id: 5, size: 60 });
    expect([p.nSlots, p.nExtras, p.totalSize, p.lens[0], p.offload.csumBlank]).toEqual([1, 0, 60, 60, true]);
  });

  it('fragments: the first slot holds what they leave; 18 fragments are fine', () => {
    const { v, read, p } = judge([req({ size: 1900, flags: NETTXF_more_data }), ...frags(18)]);
    expect(v).toEqual({ kind: 'ok' });
    expect(read).toBe(19);
    expect([...p.lens.subarray(0, 3)]).toEqual([100, 100, 100]);
  });

  it('19 and 20 fragments are dropped (every slot consumed); 21 are fatal', () => {
    for (const n of [19, 20]) {
      const { v, read, p } = judge([req({ size: 100 * (n + 1), flags: NETTXF_more_data }), ...frags(n)]);
      expect(reason(v)).toBe('drop:tx_drop_slots');
      expect([read, p.nSlots]).toEqual([n + 1, n + 1]);
    }
    expect(reason(judge([req({ size: 2200, flags: NETTXF_more_data }), ...frags(21)]).v)).toBe('fatal:tx_fatal_slots');
  });

  it('a fragment larger than what remains: dropped, the rest still consumed', () => {
    const { v, read } = judge([req({ size: 150, flags: NETTXF_more_data }), req({ size: 100, flags: NETTXF_more_data }), req({ size: 100 })]);
    expect(reason(v)).toBe('drop:tx_drop_frag_overflow');
    expect(read).toBe(3);
  });

  it('runts: under 14 bytes, an empty first slot, a first slot left with less than a header', () => {
    expect(reason(judge([req({ size: 13 })]).v)).toBe('drop:tx_drop_runt');
    expect(reason(judge([req({ size: 0 })]).v)).toBe('drop:tx_drop_runt');
    expect(reason(judge([req({ size: 100, flags: NETTXF_more_data }), req({ size: 100 })]).v)).toBe('drop:tx_drop_runt');
    expect(reason(judge([req({ size: 100, flags: NETTXF_more_data }), req({ size: 90 })]).v)).toBe('drop:tx_drop_runt');
    expect(reason(judge([req({ size: 100, flags: NETTXF_more_data }), req({ size: 86 })]).v)).toBe('ok');
  });

  it('zero-length fragments are allowed', () => {
    const { v, p } = judge([req({ size: 100, flags: NETTXF_more_data }), req({ gref: 0xdeadbeef, size: 0, flags: NETTXF_more_data }), req({ size: 40 })]);
    expect(v).toEqual({ kind: 'ok' });
    expect([...p.lens.subarray(0, 3)]).toEqual([60, 0, 40]);
  });

  it('crossing a page: a fragment, or the first slot', () => {
    expect(reason(judge([req({ size: 200, flags: NETTXF_more_data }), req({ offset: 4000, size: 100 })]).v)).toBe('fatal:tx_fatal_cross_page');
    expect(reason(judge([req({ offset: 4095, size: 60 })]).v)).toBe('fatal:tx_fatal_cross_page');
    expect(reason(judge([req({ offset: 4036, size: 60 })]).v)).toBe('ok');
  });

  it('slots the frontend did not publish: fragments, and the extra info', () => {
    expect(reason(judge([req({ size: 200, flags: NETTXF_more_data }), req({ size: 100, flags: NETTXF_more_data })], 2).v)).toBe('fatal:tx_fatal_unpublished');
    expect(reason(judge([req({ size: 200, flags: NETTXF_extra_info })], 1).v)).toBe('fatal:tx_fatal_missing_extra');
  });

  it('extra info: counted apart, at most 4, known types only; GSO checked', () => {
    const gso = (o: Parameters<typeof ext>[1]) => judge([req({ size: 2000, flags: NETTXF_extra_info }), ext(1, o)]);
    const { v, p } = gso({ gsoSize: 1448, gsoType: XEN_NETIF_GSO_TYPE_TCPV6 });
    expect(v).toEqual({ kind: 'ok' });
    expect([p.nSlots, p.nExtras, p.offload.gsoSize, p.offload.gsoType]).toEqual([1, 1, 1448, XEN_NETIF_GSO_TYPE_TCPV6]);
    expect(reason(gso({ gsoSize: 0, gsoType: 1 }).v)).toBe('fatal:tx_fatal_gso_size');
    expect(reason(gso({ gsoSize: 1448, gsoType: 7 }).v)).toBe('fatal:tx_fatal_gso_type');
    expect(reason(judge([req({ size: 200, flags: NETTXF_extra_info }), ext(0)]).v)).toBe('fatal:tx_fatal_extra_type');
    expect(reason(judge([req({ size: 200, flags: NETTXF_extra_info }), ext(5)]).v)).toBe('fatal:tx_fatal_extra_type');
    const four = [ext(2, { more: true }), ext(3, { more: true }), ext(4, { more: true }), ext(2)];
    expect(judge([req({ size: 200, flags: NETTXF_extra_info }), ...four]).p.nExtras).toBe(4);
    expect(reason(judge([req({ size: 200, flags: NETTXF_extra_info }), ...four.slice(0, 3), ext(2, { more: true }), ext(3)]).v)).toBe('fatal:tx_fatal_extras');
  });

  it("Linux's order: a drop is decided before the first slot's page check and the GSO checks", () => {
    // Too many fragments and a first slot crossing its page: dropped (Linux breaks out first).
    expect(reason(judge([req({ offset: 4090, size: 2000, flags: NETTXF_more_data }), ...frags(19)]).v)).toBe('drop:tx_drop_slots');
    // A runt with a GSO extra of size 0: dropped, not fatal.
    expect(reason(judge([req({ size: 10, flags: NETTXF_extra_info }), ext(1, { gsoSize: 0, gsoType: 1 })]).v)).toBe('drop:tx_drop_runt');
  });
});
