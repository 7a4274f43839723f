// netback against hostile frontends, without root: the real netback over real shared memory
// and eventfd event channels, its "TAP" a socketpair whose far end the test reads
// (harness/net-harness.ts). Bad packets are dropped with error responses, protocol
// violations disconnect only that vif (log line, xenbus error node, state Closing), and each
// case counts under its reason in the vif's counters. The end-to-end checks through a real
// bridge stay in test/net/hostile/ (root).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostileFront, NetDom0, PAGE, ringStorm, until, type Guest } from './harness/net-harness.js';
import {
  NETIF_RSP_ERROR,
  NETIF_RSP_NULL,
  NETIF_RSP_OKAY,
  NETTXF_extra_info,
  NETTXF_more_data,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_GSO_TYPE_TCPV4,
  netifRxResponse,
} from '../../drivers/wire/netif.js';
import { XenbusState } from '../../drivers/xenstore/xenbus-state.js';
import { VNET_HDR_LEN } from '../../net/vnet-hdr.js';
import { DEFAULT_BURST, DEFAULT_INTERVAL_MS } from '../../common/log-ratelimit.js';

let dom0: NetDom0;
let bad: Guest;
let nextDevid = 0;

beforeEach(async () => {
  dom0 = new NetDom0();
  await dom0.start();
  bad = await dom0.createGuest(7, 'bad');
  nextDevid = 0;
});

afterEach(async () => {
  await dom0.close();
});

async function hostile(keys: Record<string, string | number> = {}): Promise<HostileFront> {
  const f = new HostileFront(dom0, bad, nextDevid++);
  await f.connect(keys);
  return f;
}

/** Frames netback handed its "bridge" (vnet header stripped). */
async function framesOut(f: HostileFront, n: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  await until(`${n} frames on the wire`, () => {
    got.push(...f.wire.drain());
    return got.length >= n;
  });
  return got.map((x) => x.subarray(VNET_HDR_LEN));
}

describe('netback in process: the harness itself', () => {
  it('a well-formed frame reaches the bridge side byte for byte, with an OKAY response', async () => {
    const f = await hostile();
    const p = f.framePage(60);
    f.pushTx([{ gref: p.gref, offset: 0, flags: 0, id: 7, size: 60 }]);
    expect(await f.txResponses(1)).toEqual([{ id: 7, status: NETIF_RSP_OKAY }]);
    const [frame] = await framesOut(f, 1);
    expect([...frame!]).toEqual([...p.bytes.subarray(0, 60)]);
    expect(await f.stats()).toMatchObject({ tx_packets: 1, tx_bytes: 60, tx_drops: 0, connected: 1, busy_polls: 0 });
  });
});

/** A chain of `n` data slots, 100 bytes each, the first announcing the whole packet. */
function chain(f: HostileFront, n: number) {
  const slots = [];
  for (let i = 0; i < n; i++) {
    const p = f.framePage(100);
    slots.push({ gref: p.gref, offset: 0, flags: i < n - 1 ? NETTXF_more_data : 0, id: i, size: i === 0 ? 100 * n : 100 });
  }
  return slots;
}

/** An extra-info slot of `type` (raw bytes), with the MORE flag if `more`. */
function extra(type: number, more = false, fill?: (b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = type;
  b[1] = more ? 1 : 0;
  fill?.(b);
  return b;
}

describe('netback in process: bad packets are dropped, the vif carries on', () => {
  it('slot limits as Linux has them: 18 fragments pass, 19 or 20 are dropped, 21 disconnect', async () => {
    const f = await hostile();
    f.pushTx(chain(f, 19)); // the first slot + XEN_NETBK_LEGACY_SLOTS_MAX (18) fragments
    expect((await f.txStatuses(19)).every((s) => s === NETIF_RSP_OKAY)).toBe(true);
    expect((await framesOut(f, 1))[0]!.length).toBe(1900);
    f.pushTx(chain(f, 20));
    expect((await f.txStatuses(20)).every((s) => s === NETIF_RSP_ERROR)).toBe(true);
    f.pushTx(chain(f, 21)); // 20 fragments: FATAL_SKB_SLOTS reached, not passed
    expect((await f.txStatuses(21)).every((s) => s === NETIF_RSP_ERROR)).toBe(true);
    expect(await f.stats()).toMatchObject({ tx_drops: 2, tx_drop_slots: 2, connected: 1 });
    f.pushTx(chain(f, 22));
    await f.expectFatal(/more than 20 slots/);
    expect(await f.stats()).toMatchObject({ tx_fatal_slots: 1, fatal: 1, connected: 0 });
  });

  it('a fragment larger than what remains of the packet is dropped', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    const b = f.framePage(100);
    f.pushTx([
      { gref: a.gref, offset: 0, flags: NETTXF_more_data, id: 1, size: 100 },
      { gref: b.gref, offset: 0, flags: 0, id: 2, size: 300 },
    ]);
    expect(await f.txResponses(2)).toEqual([{ id: 1, status: NETIF_RSP_ERROR }, { id: 2, status: NETIF_RSP_ERROR }]);
    expect(await f.stats()).toMatchObject({ tx_drop_frag_overflow: 1, connected: 1 });
    expect(f.wire.drain()).toEqual([]);
  });

  it('a packet shorter than an Ethernet header, or with an empty first slot, is dropped', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    f.pushTx([{ gref: a.gref, offset: 0, flags: 0, id: 1, size: 10 }]);
    expect(await f.txStatuses(1)).toEqual([NETIF_RSP_ERROR]);
    // An empty first slot: the packet's 100 bytes all in its fragment.
    const b = f.framePage(100);
    f.pushTx([
      { gref: a.gref, offset: 0, flags: NETTXF_more_data, id: 2, size: 100 },
      { gref: b.gref, offset: 0, flags: 0, id: 3, size: 100 },
    ]);
    expect(await f.txStatuses(2)).toEqual([NETIF_RSP_ERROR, NETIF_RSP_ERROR]);
    // A first slot of size 0.
    f.pushTx([{ gref: a.gref, offset: 0, flags: 0, id: 4, size: 0 }]);
    expect(await f.txStatuses(1)).toEqual([NETIF_RSP_ERROR]);
    expect(await f.stats()).toMatchObject({ tx_drop_runt: 3, connected: 1 });
    // and the vif keeps working
    const c = f.framePage(60);
    f.pushTx([{ gref: c.gref, offset: 0, flags: 0, id: 5, size: 60 }]);
    expect(await f.txStatuses(1)).toEqual([NETIF_RSP_OKAY]);
    expect(f.wire.drain().length).toBe(1);
  });

  it('invalid, revoked and foreign grant refs are refused with errors (TX and RX), nothing pinned', async () => {
    const f = await hostile();
    const revoked = f.framePage(60);
    expect(bad.grants.endAccess(revoked.gref)).toBe(true);
    const foreign = bad.grants.grantAccess(5, bad.pages.alloc(), true); // granted to domain 5, not dom0
    f.pushTx([
      { gref: 99_999_999, offset: 0, flags: 0, id: 1, size: 60 },
      { gref: revoked.gref, offset: 0, flags: 0, id: 2, size: 60 },
      { gref: foreign, offset: 0, flags: 0, id: 3, size: 60 },
    ]);
    expect(await f.txStatuses(3)).toEqual([NETIF_RSP_ERROR, NETIF_RSP_ERROR, NETIF_RSP_ERROR]);
    expect(await f.stats()).toMatchObject({ tx_drop_grant: 3 });
    // RX: a buffer we may only read is answered with an error once a frame comes for it.
    const ro = bad.grants.grantAccess(0, bad.pages.alloc(), true);
    f.postRx(1, () => ro);
    f.postRx(40);
    const vnet = new Uint8Array(VNET_HDR_LEN);
    expect(f.wire.send(vnet, new Uint8Array(60).fill(0xff))).toBe(true);
    await until('an RX response', () => f.rx.unconsumedResponses() > 0);
    expect(netifRxResponse.decode(f.rx.takeResponse(), 0).status).toBe(NETIF_RSP_ERROR);
    expect(await f.stats()).toMatchObject({ rx_error_grant: 1, connected: 1 });
    expect(bad.grants.isInUse(ro)).toBe(false);
    expect(bad.grants.isInUse(foreign)).toBe(false);
  });

  it('fragments of no bytes are not read (their grants are never looked at); the frame is whole', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    const b = f.framePage(100);
    f.pushTx([
      { gref: a.gref, offset: 0, flags: NETTXF_more_data, id: 1, size: 160 },
      { gref: 0xdeadbeef, offset: 0, flags: NETTXF_more_data, id: 2, size: 0 },
      { gref: b.gref, offset: 0, flags: NETTXF_more_data, id: 3, size: 60 },
      { gref: 0xfeedface, offset: 4000, flags: 0, id: 4, size: 0 },
    ]);
    expect(await f.txStatuses(4)).toEqual([NETIF_RSP_OKAY, NETIF_RSP_OKAY, NETIF_RSP_OKAY, NETIF_RSP_OKAY]);
    const [frame] = await framesOut(f, 1);
    expect([...frame!]).toEqual([...a.bytes.subarray(0, 100), ...b.bytes.subarray(0, 60)]);
  });

  it('500 bad packets: every one answered and counted, at most 10 log lines about them', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    const t0 = Date.now();
    for (let batch = 0; batch < 10; batch++) {
      f.pushTx([...Array(50).keys()].map((i) => ({ gref: a.gref, offset: 0, flags: 0, id: i, size: 10 })));
      expect((await f.txStatuses(50)).every((s) => s === NETIF_RSP_ERROR)).toBe(true);
    }
    expect(await f.stats()).toMatchObject({ tx_drops: 500, tx_drop_runt: 500, connected: 1 });
    // 10 lines per 5 s window (printk_ratelimit's defaults): a slow, loaded run spans more windows.
    const lines = dom0.logs.filter((l) => /dropped: packet of 10 bytes/.test(l)).length;
    expect(lines).toBeGreaterThanOrEqual(10);
    expect(lines).toBeLessThanOrEqual(DEFAULT_BURST * (1 + Math.floor((Date.now() - t0) / DEFAULT_INTERVAL_MS)));
  });

  it('extra-info slots are answered NULL in ring order', async () => {
    const f = await hostile();
    const a = f.framePage(200);
    f.pushTx([{ gref: a.gref, offset: 0, flags: NETTXF_extra_info, id: 9, size: 200 }, extra(2)]); // MCAST_ADD: accepted, ignored
    expect(await f.txResponses(2)).toEqual([{ id: 9, status: NETIF_RSP_OKAY }, { id: 0, status: NETIF_RSP_NULL }]);
  });
});

describe('netback in process: protocol violations disconnect that vif only', () => {
  /** A second vif of the same guest that behaves: still works after the other one went. */
  async function bystanderWorks(g: HostileFront): Promise<void> {
    const p = g.framePage(60);
    g.pushTx([{ gref: p.gref, offset: 0, flags: 0, id: 1, size: 60 }]);
    expect(await g.txStatuses(1)).toEqual([NETIF_RSP_OKAY]);
    expect(await g.state()).toBe(XenbusState.Connected);
  }

  it('ring indices claiming more than the ring holds (XSA-39), TX and RX', async () => {
    const by = await hostile();
    const f = await hostile();
    f.scribbleReqProd('tx', f.tx.reqProdPvt + 300);
    await f.expectFatal(/claims more requests than the ring holds/);
    const g = await hostile();
    g.scribbleReqProd('rx', 0x8000_0000);
    await g.expectFatal(/RX ring.*claims more requests than the ring holds/);
    expect((await f.stats()).tx_fatal_ring).toBe(1);
    expect((await g.stats()).rx_fatal_ring).toBe(1);
    await bystanderWorks(by);
  });

  it('offset + size past the page', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    f.pushTx([{ gref: a.gref, offset: 4000, flags: 0, id: 1, size: 200 }]);
    await f.expectFatal(/crosses its page/);
    const g = await hostile();
    const b = g.framePage(100);
    const c = g.framePage(100);
    g.pushTx([
      { gref: b.gref, offset: 0, flags: NETTXF_more_data, id: 1, size: 200 },
      { gref: c.gref, offset: 4090, flags: 0, id: 2, size: 100 },
    ]);
    await g.expectFatal(/crosses its page/);
    expect((await g.stats()).tx_fatal_cross_page).toBe(1);
  });

  it('garbage extra info: unknown type, GSO of size 0, a bad GSO type', async () => {
    const cases: [Uint8Array, RegExp, string][] = [
      [extra(0x77), /invalid extra info type 119/, 'tx_fatal_extra_type'],
      [extra(0), /invalid extra info type 0/, 'tx_fatal_extra_type'],
      [extra(XEN_NETIF_EXTRA_TYPE_GSO, false, (b) => (b[4] = XEN_NETIF_GSO_TYPE_TCPV4)), /GSO size must not be zero/, 'tx_fatal_gso_size'],
      [extra(XEN_NETIF_EXTRA_TYPE_GSO, false, (b) => ((b[2] = 0xa8), (b[3] = 0x05), (b[4] = 3))), /bad GSO type 3/, 'tx_fatal_gso_type'],
    ];
    for (const [ex, why, counter] of cases) {
      const f = await hostile();
      const a = f.framePage(200);
      f.pushTx([{ gref: a.gref, offset: 0, flags: NETTXF_extra_info, id: 1, size: 200 }, ex]);
      await f.expectFatal(why);
      expect((await f.stats())[counter]).toBe(1);
    }
  });

  it('more than 4 extra-info slots', async () => {
    const f = await hostile();
    const a = f.framePage(200);
    f.pushTx([{ gref: a.gref, offset: 0, flags: NETTXF_extra_info, id: 1, size: 200 }, extra(2, true), extra(3, true), extra(2, true), extra(3, true), extra(2)]);
    await f.expectFatal(/more than 4 extra-info slots/);
    expect((await f.stats()).tx_fatal_extras).toBe(1);
  });

  it('a missing extra-info slot, and fragments past the published requests', async () => {
    const f = await hostile();
    const a = f.framePage(200);
    f.pushTx([{ gref: a.gref, offset: 0, flags: NETTXF_extra_info, id: 1, size: 200 }]);
    await f.expectFatal(/missing extra info/);
    expect((await f.stats()).tx_fatal_missing_extra).toBe(1);
    const g = await hostile();
    const b = g.framePage(200);
    const c = g.framePage(100);
    g.pushTx([
      { gref: b.gref, offset: 0, flags: NETTXF_more_data, id: 1, size: 300 },
      { gref: c.gref, offset: 0, flags: NETTXF_more_data, id: 2, size: 100 },
    ]);
    await g.expectFatal(/more slots than the frontend published/);
    expect((await g.stats()).tx_fatal_unpublished).toBe(1);
  });

  it('connecting is refused without request-rx-copy, and with more than one queue', async () => {
    const cases: [Record<string, number>, RegExp][] = [
      [{ 'request-rx-copy': 0 }, /does not support rx-copy/],
      [{ 'feature-rx-notify': 0 }, /feature-rx-notify is mandatory/],
      [{ 'multi-queue-num-queues': 2 }, /asks for 2 queues; this backend offers 1/],
    ];
    for (const [keys, why] of cases) {
      const f = new HostileFront(dom0, bad, nextDevid++);
      await f.connect(keys, {}, false);
      await until('refusal', async () => (await f.state()) === XenbusState.Closing);
      expect(await dom0.backendError(bad.domid, f.devid)).toMatch(why);
    }
  });
});

/** An Ethernet + IPv4 (IHL 5) + TCP frame of `payload` bytes, checksum left blank. */
function tcpFrame(payload: number): Uint8Array {
  const f = new Uint8Array(14 + 20 + 20 + payload);
  f.fill(0xff, 0, 6);
  f.set([0x00, 0x16, 0x3e, 0x7f, 0x07, 0x00], 6);
  f[12] = 0x08; // IPv4
  const ip = 14;
  f[ip] = 0x45;
  new DataView(f.buffer).setUint16(ip + 2, 20 + 20 + payload);
  f[ip + 8] = 64;
  f[ip + 9] = 6; // TCP
  f.set([198, 18, 7, 2, 198, 18, 0, 1], ip + 12);
  const tcp = ip + 20;
  f.set([0x30, 0x39, 0x00, 0x50], tcp);
  f[tcp + 12] = 0x50; // data offset 5
  f[tcp + 13] = 0x18; // PSH ACK
  for (let i = tcp + 20; i < f.length; i++) f[i] = i & 0xff;
  return f;
}

/** decoded vnet header fields of a frame as it left netback */
function vnetOf(x: Uint8Array): { flags: number; csumStart: number; csumOffset: number } {
  const v = new DataView(x.buffer, x.byteOffset, VNET_HDR_LEN);
  return { flags: x[0]!, csumStart: v.getUint16(6, true), csumOffset: v.getUint16(8, true) };
}

describe('netback in process: what a frontend cannot do to netback', () => {
  it('headers split over many tiny slots are gathered: checksum offload placed right, frame whole (XSA-423)', async () => {
    const f = await hostile();
    const frame = tcpFrame(100);
    const sizes = [14, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 100];
    let at = 0;
    const slots = sizes.map((size, i) => {
      const pfn = bad.pages.alloc();
      const off = (i * 97) % 3000; // anywhere in its page
      bad.pages.page(pfn).set(frame.subarray(at, at + size), off);
      at += size;
      const last = i === sizes.length - 1;
      return { gref: bad.grants.grantAccess(0, pfn, true), offset: off, flags: (last ? 0 : NETTXF_more_data) | (i === 0 ? 1 /* csum_blank */ : 0), id: i, size: i === 0 ? frame.length : size };
    });
    f.pushTx(slots);
    expect((await f.txStatuses(sizes.length)).every((s) => s === NETIF_RSP_OKAY)).toBe(true);
    const out: Uint8Array[] = [];
    await until('the frame', () => (out.push(...f.wire.drain()), out.length > 0));
    expect(vnetOf(out[0]!)).toEqual({ flags: 1, csumStart: 34, csumOffset: 16 }); // NEEDS_CSUM at the TCP checksum
    expect([...out[0]!.subarray(VNET_HDR_LEN)]).toEqual([...frame]);
  });

  it('a GSO train with its headers over tiny slots: segmentation and checksum placed from the gathered headers', async () => {
    const f = await hostile();
    const frame = tcpFrame(5000);
    const sizes = [14, 5, 5, 5, 5, 4, 4, 4, 4, 4, 2000, 3000];
    let at = 0;
    const slots: (Parameters<HostileFront['pushTx']>[0][number])[] = [];
    sizes.forEach((size, i) => {
      const pfn = bad.pages.alloc();
      bad.pages.page(pfn).set(frame.subarray(at, at + size), 0);
      at += size;
      const flags = (i === sizes.length - 1 ? 0 : NETTXF_more_data) | (i === 0 ? 1 /* csum_blank */ | NETTXF_extra_info : 0);
      slots.push({ gref: bad.grants.grantAccess(0, pfn, true), offset: 0, flags, id: i, size: i === 0 ? frame.length : size });
      if (i === 0) slots.push(extra(XEN_NETIF_EXTRA_TYPE_GSO, false, (b) => ((b[2] = 1448 & 0xff), (b[3] = 1448 >> 8), (b[4] = XEN_NETIF_GSO_TYPE_TCPV4))));
    });
    f.pushTx(slots);
    expect((await f.txStatuses(sizes.length + 1)).filter((s) => s !== NETIF_RSP_OKAY)).toEqual([NETIF_RSP_NULL]);
    const out: Uint8Array[] = [];
    await until('the frame', () => (out.push(...f.wire.drain()), out.length > 0));
    const v = new DataView(out[0]!.buffer, out[0]!.byteOffset, VNET_HDR_LEN);
    // The vnet header netback wrote: checksum at the TCP header, GSO TCPv4, 54 bytes of
    // headers, segments of 1448.
    expect(vnetOf(out[0]!)).toEqual({ flags: 1, csumStart: 34, csumOffset: 16 });
    expect([out[0]![1], v.getUint16(2, true), v.getUint16(4, true)]).toEqual([1 /* VIRTIO_NET_HDR_GSO_TCPV4 */, 54, 1448]);
    expect([...out[0]!.subarray(VNET_HDR_LEN)]).toEqual([...frame]);
    expect(await f.stats()).toMatchObject({ tx_gso: 1, tx_csum_offload: 1 });
  });

  it('a ring slot rewritten while its packet waits for the rate limiter changes nothing (XSA-155)', async () => {
    const f = new HostileFront(dom0, bad, nextDevid++);
    await f.connect({}, { rate_bytes_per_interval: 1000, rate_interval_usecs: 2_000_000 }); // 500 B/s, 1000 bytes to start
    const a = f.framePage(900);
    const b = f.framePage(1000);
    const decoy = f.framePage(1400);
    decoy.bytes.fill(0xdd);
    f.pushTx([{ gref: a.gref, offset: 0, flags: 0, id: 1, size: 900 }]);
    expect(await f.txResponses(1)).toEqual([{ id: 1, status: NETIF_RSP_OKAY }]);
    const [off] = f.pushTx([{ gref: b.gref, offset: 0, flags: 0, id: 2, size: 1000 }]);
    await until('the packet held back', async () => (await f.stats()).tx_rate_limited === 1);
    expect(f.tx.unconsumedResponses()).toBe(0);
    // The backend took it, judged it and holds it: now the frontend rewrites the slot.
    const v = f.tx.ring.view;
    v.setUint32(off!, decoy.gref, true);
    v.setUint16(off! + 4, 100, true); // offset
    v.setUint16(off! + 6, NETTXF_more_data | NETTXF_extra_info, true);
    v.setUint16(off! + 8, 77, true); // id
    v.setUint16(off! + 10, 1400, true); // size
    expect(await f.txResponses(1, 5000)).toEqual([{ id: 2, status: NETIF_RSP_OKAY }]); // after ~1.8 s
    const frames = await framesOut(f, 2);
    expect(frames.map((x) => x.length)).toEqual([900, 1000]);
    expect([...frames[1]!]).toEqual([...b.bytes.subarray(0, 1000)]);
    expect(bad.grants.isInUse(decoy.gref)).toBe(false);
    expect(await f.stats()).toMatchObject({ connected: 1, tx_packets: 2 });
  });

  it('RX requests rewritten after netback took them change nothing: frames land in the buffers as posted', async () => {
    const f = await hostile();
    const refs = f.postRx(40);
    await until('the buffers taken', async () => (await f.stats()).rx_held === 40);
    const decoy = f.framePage(0, false);
    decoy.bytes.fill(0xdd);
    // Every request slot now names the decoy, with another id.
    const v = f.rx.ring.view;
    for (let i = 0; i < 40; i++) {
      const off = f.rx.ring.slotOffset(i);
      v.setUint16(off, 1000 + i, true);
      v.setUint32(off + 4, decoy.gref, true);
    }
    const payload = new Uint8Array(600).fill(0x42);
    payload.fill(0xff, 0, 6);
    expect(f.wire.send(new Uint8Array(VNET_HDR_LEN), payload)).toBe(true);
    await until('an RX response', () => f.rx.unconsumedResponses() > 0);
    const r = netifRxResponse.decode(f.rx.takeResponse(), 0);
    expect([r.id, r.status]).toEqual([0, 600]);
    expect(decoy.bytes.every((b) => b === 0xdd)).toBe(true);
    expect(bad.grants.isInUse(decoy.gref)).toBe(false);
    expect(refs.length).toBe(40);
  });

  it('a packet header rewritten while netback sends it: the offload it set matches the bytes it sent (XSA-155)', async () => {
    const { Worker } = await import('node:worker_threads');
    const f = await hostile();
    const frame = tcpFrame(100);
    frame[46] = 0x50; // a TCP data offset also where TCP would be behind 4 bytes of IP options
    frame[50] = 0x50;
    const p = f.framePage(0);
    p.bytes.set(frame);
    const stop = new SharedArrayBuffer(4);
    // Another thread flips the IP header between IHL 5 + TCP and IHL 6 + UDP, as fast as it can.
    const w = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const u8 = new Uint8Array(workerData.mem, workerData.off, 64);
       const stop = new Int32Array(workerData.stop);
       let n = 0;
       parentPort.postMessage('go');
       while (Atomics.load(stop, 0) === 0) { for (let i = 0; i < 100; i++) { u8[14] = 0x46; u8[23] = 17; u8[14] = 0x45; u8[23] = 6; } n += 100; }
       parentPort.postMessage(n);`,
      { eval: true, workerData: { mem: bad.memory, off: p.pfn * PAGE, stop } },
    );
    const messages: unknown[] = [];
    const flips = new Promise<number>((resolve, reject) => {
      w.on('message', (m) => (m === 'go' ? messages.push(m) : resolve(m as number)));
      w.once('error', reject);
    });
    await until('the rewriting thread to run', () => messages.length > 0);
    const out: Uint8Array[] = [];
    const ihls = () => new Set(out.map((x) => x[VNET_HDR_LEN + 14]! & 15)).size;
    try {
      // At least 50 batches, and on until both headers were seen (at most 500).
      for (let batch = 0; batch < 500 && (batch < 50 || ihls() < 2); batch++) {
        f.pushTx([0, 1, 2, 3].map((i) => ({ gref: p.gref, offset: 0, flags: 1 /* csum_blank */, id: i, size: frame.length })));
        await f.txResponses(4);
        out.push(...f.wire.drain());
      }
    } finally {
      Atomics.store(new Int32Array(stop), 0, 1);
    }
    expect(await flips).toBeGreaterThan(0);
    await w.terminate();
    out.push(...f.wire.drain());
    const seen = new Set<number>();
    for (const x of out) {
      const ihl = x[VNET_HDR_LEN + 14]! & 15;
      const proto = x[VNET_HDR_LEN + 23]!;
      seen.add(ihl);
      expect(vnetOf(x)).toEqual({ flags: 1, csumStart: 14 + ihl * 4, csumOffset: proto === 6 ? 16 : 6 });
    }
    expect(out.length).toBeGreaterThan(100);
    expect(seen.size).toBe(2); // the rewrites did race with netback
  });

  it('a frontend that stops consuming RX costs dom0 a bounded amount, and its frames are drained (XSA-392)', async () => {
    const f = await hostile();
    f.postRx(40); // some buffers, then never another one and never a response consumed
    const vnet = new Uint8Array(VNET_HDR_LEN);
    const frame = new Uint8Array(1400).fill(0xff);
    let sent = 0;
    for (let i = 0; i < 300; i++) if (f.wire.send(vnet, frame)) sent++;
    expect(sent).toBeGreaterThan(30);
    await until('frames drained after the stall', async () => ((await f.stats()).rx_drops ?? 0) > 0, 8000);
    const st = await f.stats();
    expect(st.rx_held).toBeLessThanOrEqual(256);
    expect(st.rx_stalls).toBeGreaterThan(0);
    expect(st.rx_packets).toBeLessThanOrEqual(40);
    expect(await f.state()).toBe(XenbusState.Connected);
  });

  it('an event storm is throttled (XSA-332); another vif keeps moving frames meanwhile', async () => {
    const f = await hostile();
    const other = await hostile();
    const p = other.framePage(60);
    const storm = ringStorm(bad.evtchn.peerDoorbell(f.port), 1500);
    let moved = 0;
    const end = Date.now() + 1200;
    while (Date.now() < end) {
      other.pushTx([{ gref: p.gref, offset: 0, flags: 0, id: 1, size: 60 }]);
      await other.txResponses(1);
      moved += other.wire.drain().length;
    }
    const rings = await storm;
    const st = await f.stats();
    expect(rings).toBeGreaterThan(10_000);
    expect(st.event_throttles).toBeGreaterThan(0);
    expect(st.events_spurious).toBeGreaterThan(0);
    expect(st.events_received).toBeLessThan(rings / 10);
    expect(moved).toBeGreaterThan(20);
    expect(await f.state()).toBe(XenbusState.Connected);
  });
});
