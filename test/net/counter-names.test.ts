// The counters users see keep their names: netback's per vif (xl network-stats, the web
// console, bench tables), blkback's per vbd (device-stats) and the emulated NIC's (the stub
// domain's metrics). One shape (common/counters.ts): a field is the name shown, and each
// name is documented in docs/. Renaming one is a change users see: it must show up here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VifMetrics, NETBACK_REASONS } from '../../dom0/backends/netback/metrics.js';
import { BlkbackCounters, BLKBACK_REASONS } from '../../dom0/backends/blkback/metrics.js';
import { Rtl8139, RTL8139_REASONS } from '../../stubdom/devices/rtl8139/rtl8139.js';
import { GuestMemory } from '../../stubdom/device-model/guest-memory.js';
import { PeerErrors } from '../../common/peer-errors.js';
import { counterFields } from '../../common/counters.js';

const doc = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');

const VIF = [
  'tx_packets', 'tx_bytes', 'tx_drops', 'tx_slots', 'tx_batches', 'tx_gso', 'tx_csum_offload', 'tx_rate_limited',
  'rx_packets', 'rx_bytes', 'rx_drops', 'rx_slots', 'rx_batches', 'rx_gso', 'rx_stalls',
  'notify_sent', 'events_received', 'events_spurious', 'event_throttles', 'busy_polls', 'busy_poll_hits', 'fatal',
  'tx_avg_batch', 'rx_avg_batch', 'notify_per_packet',
  'tx_drop_slots', 'tx_drop_frag_overflow', 'tx_drop_runt', 'tx_drop_grant', 'tx_drop_offload',
  'tx_fatal_ring', 'tx_fatal_unpublished', 'tx_fatal_slots', 'tx_fatal_cross_page', 'tx_fatal_missing_extra', 'tx_fatal_extras',
  'tx_fatal_extra_type', 'tx_fatal_gso_size', 'tx_fatal_gso_type', 'rx_fatal_ring', 'rx_error_grant',
];

const VBD = [
  'rd_req', 'wr_req', 'f_req', 'ds_req', 'oo_req', 'rd_sect', 'wr_sect', 'errors', 'invalid', 'indirect_req', 'grant_maps',
  'persistent_grants', 'notify_in', 'notify_out', 'events_spurious', 'event_throttles', 'busy_polls', 'busy_poll_hits', 'halted',
  'uring', 'uring_req',
  'req_bad_segments', 'req_bad_sectors', 'req_beyond_end', 'req_read_only', 'req_bad_indirect_op', 'req_bad_indirect_page',
  'req_unsupported', 'req_bad_grant', 'ring_fatal_prod', 'ring_fatal_id',
];

const NIC = ['exits', 'tx_packets', 'tx_bytes', 'tx_errors', 'rx_packets', 'rx_bytes', 'rx_filtered', 'rx_overflows', 'dma_errors', 'interrupts'];

/** Names written as `name` in a doc (in a table or in running text). */
function documented(text: string, names: string[]): string[] {
  return names.filter((n) => !text.includes(`\`${n}\``) && !new RegExp(`\`${n.replace(/_[a-z]+$/, '_\\*')}\``).test(text));
}

describe('counter names users see', () => {
  it("netback's per-vif counters: the fields, the reasons, documented in networking.md", () => {
    expect(Object.keys(new VifMetrics().snapshot()).sort()).toEqual([...VIF].sort());
    for (const r of NETBACK_REASONS) expect(VIF).toContain(r);
    expect(documented(doc('networking.md'), VIF)).toEqual([]);
  });

  it("blkback's per-vbd counters: Linux's sysfs names, the reasons, documented in block.md", () => {
    expect(Object.keys(new BlkbackCounters().snapshot()).sort()).toEqual([...VBD].sort());
    for (const r of BLKBACK_REASONS) expect(VBD).toContain(r);
    expect(documented(doc('block.md'), VBD)).toEqual([]);
  });

  it("the RTL8139's counters: netback's names where they mean the same, documented in hvm.md", () => {
    const nic = new Rtl8139({ mac: '00:16:3e:00:00:01', memory: new GuestMemory(new ArrayBuffer(4096)), log: { info() {}, warn() {}, error() {} } });
    expect(Object.keys(nic.metrics).sort()).toEqual([...NIC].sort());
    for (const r of RTL8139_REASONS) expect(NIC).toContain(r);
    expect(documented(doc('hvm.md'), NIC)).toEqual([]);
  });

  it('counters are plain fields: what a snapshot copies is every number and nothing else', () => {
    class C {
      a_b = 1;
      c = 2;
      readonly note = 'x';
    }
    expect(counterFields(new C())).toEqual({ a_b: 1, c: 2 });
  });
});

describe('peer errors: a counter per reason, a bounded log', () => {
  it('counts every occurrence and logs at most 10 lines per 5 s, then says how many it left out', () => {
    const lines: string[] = [];
    const e = new PeerErrors(['bad_a', 'bad_b'] as const, (l) => lines.push(l));
    for (let i = 0; i < 500; i++) e.report(i % 2 ? 'bad_a' : 'bad_b', `bad thing ${i}`);
    e.count('bad_a');
    expect(e.counts).toEqual({ bad_a: 251, bad_b: 250 });
    expect(e.total).toBe(501);
    expect(lines).toEqual([...Array(10).keys()].map((i) => `bad thing ${i}`));
  });

  it('counts into the component\'s own counter fields when given them', () => {
    const metrics = { tx_errors: 0, dma_errors: 0, other: 5 };
    const e = new PeerErrors(['tx_errors', 'dma_errors'] as const, () => {}, metrics);
    e.report('dma_errors', 'x');
    expect(metrics).toEqual({ tx_errors: 0, dma_errors: 1, other: 5 });
  });
});
