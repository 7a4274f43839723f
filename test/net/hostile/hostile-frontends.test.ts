// Bad input a backend must survive: a hostile frontend per case, written for it (raw ring
// entries, grants and event-channel rings), against the real netback in a real dom0 stack
// (harness.ts). After each case: netback is alive, only the offending vif was disconnected
// (with a log line and a xenbus error node saying why) or the packet was dropped with an
// error response, and a well-behaved guest on the same bridge still talks to the LAN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostileFront, NetHarness, sleep, until, type Guest } from './harness.js';
import { netShouldSkip } from '../../helpers/lan.js';
import {
  NETIF_RSP_ERROR,
  NETIF_RSP_NULL,
  NETIF_RSP_OKAY,
  NETTXF_extra_info,
  NETTXF_more_data,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_GSO_TYPE_TCPV4,
  netifRxResponse,
} from '../../../drivers/wire/netif.js';
import { XenbusState } from '../../../drivers/xenstore/xenbus-state.js';
import { linkStats } from '../../../net/ip.js';

const GOOD_IP = '198.18.2.2/15';

describe.skipIf(netShouldSkip())('netback against hostile frontends', () => {
  const h = new NetHarness('hst');
  let bad: Guest;
  let good: Awaited<ReturnType<NetHarness['goodGuest']>>;
  let nextDevid = 0;

  beforeAll(async () => {
    await h.start();
    good = await h.goodGuest('good', GOOD_IP);
    bad = await h.createGuest('bad');
  }, 60_000);

  afterAll(async () => {
    await h.stop();
  }, 60_000);

  /** The well-behaved guest still reaches the LAN host and back. */
  async function goodStillWorks(): Promise<void> {
    const r = await good.exec(['ping', '-c', '3', '-i', '0.1', '-W', '2', h.lan.host]);
    expect(r.code, r.out).toBe(0);
  }

  async function hostile(keys: Record<string, string | number> = {}, waitConnected = true): Promise<HostileFront> {
    const f = new HostileFront(h, bad, nextDevid++);
    await f.connect(keys, waitConnected);
    return f;
  }

  async function expectFatal(f: HostileFront, reason: RegExp): Promise<void> {
    await until('the vif to be disconnected', async () => (await h.backendState(bad.domid, f.devid)) === XenbusState.Closing);
    expect(await h.backendError(bad.domid, f.devid)).toMatch(reason);
    expect(h.logs.some((l) => l.startsWith('error:') && l.includes(h.vifName(bad.domid, f.devid)) && reason.test(l)), h.logs.join('\n')).toBe(true);
    expect((await h.stats(bad.domid, f.devid)).connected).toBe(0);
  }

  it('a well-behaved frame goes through (the harness itself works)', async () => {
    const f = await hostile();
    const before = linkStats(h.vifName(bad.domid, f.devid)).rxPackets;
    const p = f.framePage(60);
    f.pushTx([{ gref: p.gref, offset: 0, flags: 0, id: 7, size: 60 }]);
    expect(await f.txResponses(1)).toEqual([NETIF_RSP_OKAY]);
    await until('the frame on the vif', () => linkStats(h.vifName(bad.domid, f.devid)).rxPackets > before);
  });

  it('ring indices claiming more than the ring holds: the vif is disconnected (XSA-39)', async () => {
    const f = await hostile();
    f.scribbleReqProd('tx', f.tx.reqProdPvt + 300);
    await expectFatal(f, /claims more requests than the ring holds/);
    const g = await hostile();
    g.scribbleReqProd('rx', 0x8000_0000);
    await expectFatal(g, /RX ring.*claims more requests than the ring holds/);
    await goodStillWorks();
  });

  it('more than 18 slots: dropped with errors; more than 20: disconnected', async () => {
    const f = await hostile();
    const chain = (n: number) => {
      const slots = [];
      for (let i = 0; i < n; i++) {
        const p = f.framePage(100);
        slots.push({ gref: p.gref, offset: 0, flags: i < n - 1 ? NETTXF_more_data : 0, id: i, size: i === 0 ? 100 * n : 100 });
      }
      return slots;
    };
    f.pushTx(chain(19));
    const st = await f.txResponses(19);
    expect(st.every((s) => s === NETIF_RSP_ERROR)).toBe(true);
    expect(await h.backendState(bad.domid, f.devid)).toBe(XenbusState.Connected);
    expect((await h.stats(bad.domid, f.devid)).tx_drops).toBeGreaterThan(0);
    f.pushTx(chain(22));
    await expectFatal(f, /more than 20 slots/);
    await goodStillWorks();
  });

  it('a fragment larger than what remains of the packet is dropped', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    const b = f.framePage(100);
    f.pushTx([
      { gref: a.gref, offset: 0, flags: NETTXF_more_data, id: 1, size: 100 },
      { gref: b.gref, offset: 0, flags: 0, id: 2, size: 300 },
    ]);
    expect(await f.txResponses(2)).toEqual([NETIF_RSP_ERROR, NETIF_RSP_ERROR]);
    expect(await h.backendState(bad.domid, f.devid)).toBe(XenbusState.Connected);
  });

  it('offset + size past the page: the vif is disconnected', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    f.pushTx([{ gref: a.gref, offset: 4000, flags: 0, id: 1, size: 200 }]);
    await expectFatal(f, /crosses its page/);
  });

  it('a packet shorter than an Ethernet header is dropped', async () => {
    const f = await hostile();
    const a = f.framePage(100);
    f.pushTx([{ gref: a.gref, offset: 0, flags: 0, id: 1, size: 10 }]);
    expect(await f.txResponses(1)).toEqual([NETIF_RSP_ERROR]);
    // and the vif keeps working
    const b = f.framePage(60);
    f.pushTx([{ gref: b.gref, offset: 0, flags: 0, id: 2, size: 60 }]);
    expect(await f.txResponses(1)).toEqual([NETIF_RSP_OKAY]);
  });

  it('invalid, revoked and foreign grant refs are refused with errors (TX and RX)', async () => {
    const f = await hostile();
    const revoked = f.framePage(60);
    expect(bad.grants.endAccess(revoked.gref)).toBe(true);
    const pfn = bad.pages.alloc();
    const foreign = bad.grants.grantAccess(5, pfn, true); // granted to domain 5, not dom0
    f.pushTx([
      { gref: 99_999_999, offset: 0, flags: 0, id: 1, size: 60 },
      { gref: revoked.gref, offset: 0, flags: 0, id: 2, size: 60 },
      { gref: foreign, offset: 0, flags: 0, id: 3, size: 60 },
    ]);
    expect(await f.txResponses(3)).toEqual([NETIF_RSP_ERROR, NETIF_RSP_ERROR, NETIF_RSP_ERROR]);
    // RX: a buffer we may not write (read-only grant) is answered with an error once a frame comes.
    const ro = bad.grants.grantAccess(0, bad.pages.alloc(), true);
    f.postRx(1, () => ro);
    f.postRx(40);
    await until('an RX error response', () => {
      const u = f.rx.unconsumedResponses();
      return u > 0;
    });
    const first = netifRxResponse.decode(f.rx.takeResponse(), 0);
    expect(first.status).toBe(NETIF_RSP_ERROR);
    expect(await h.backendState(bad.domid, f.devid)).toBe(XenbusState.Connected);
  });

  it('garbage extra info (unknown type, GSO size 0) disconnects the vif', async () => {
    const f = await hostile();
    const a = f.framePage(200);
    const garbage = new Uint8Array(12);
    garbage[0] = 0x77; // no such extra type
    f.pushTx([{ gref: a.gref, offset: 0, flags: NETTXF_extra_info, id: 1, size: 200 }, garbage]);
    await expectFatal(f, /invalid extra info type 119/);
    const g = await hostile();
    const b = g.framePage(200);
    const gso0 = new Uint8Array(12);
    gso0[0] = XEN_NETIF_EXTRA_TYPE_GSO;
    gso0[4] = XEN_NETIF_GSO_TYPE_TCPV4; // size (bytes 2..3) left 0
    g.pushTx([{ gref: b.gref, offset: 0, flags: NETTXF_extra_info, id: 1, size: 200 }, gso0]);
    await expectFatal(g, /GSO size must not be zero/);
    await goodStillWorks();
  });

  it('extra info slots are answered NULL in ring order', async () => {
    const f = await hostile();
    const a = f.framePage(200);
    const mcast = new Uint8Array(12);
    mcast[0] = 2; // MCAST_ADD: accepted, ignored
    f.pushTx([{ gref: a.gref, offset: 0, flags: NETTXF_extra_info, id: 9, size: 200 }, mcast]);
    expect(await f.txResponses(2)).toEqual([NETIF_RSP_OKAY, NETIF_RSP_NULL]);
  });

  it('a frontend that stops consuming RX costs dom0 a bounded amount (XSA-392)', async () => {
    const f = await hostile();
    f.postRx(40); // some buffers, then never another one and never a response consumed
    const rss0 = process.memoryUsage().rss;
    // Flood its MAC from the LAN host for a few seconds.
    const ip = '198.18.9.9';
    await h.lan.run(['ip', 'neigh', 'replace', ip, 'lladdr', f.mac, 'dev', 'lan0']);
    await h.lan.run(['ping', '-f', '-s', '1400', '-w', '4', ip], 15_000);
    const st = await h.stats(bad.domid, f.devid);
    expect(st.rx_held).toBeLessThanOrEqual(256);
    expect(st.rx_stalls).toBeGreaterThan(0);
    expect(st.rx_drops).toBeGreaterThan(0); // drained after the stall timeout
    expect(process.memoryUsage().rss - rss0).toBeLessThan(64 << 20);
    expect(await h.backendState(bad.domid, f.devid)).toBe(XenbusState.Connected);
    await goodStillWorks();
  });

  it('without request-rx-copy the backend refuses to connect', async () => {
    const f = await hostile({ 'request-rx-copy': 0 }, false);
    await until('refusal', async () => (await h.backendState(bad.domid, f.devid)) === XenbusState.Closing);
    expect(await h.backendError(bad.domid, f.devid)).toMatch(/does not support rx-copy/);
  });

  it('an event storm is throttled; the other guest keeps its throughput (XSA-332)', async () => {
    const f = await hostile();
    const server = h.lan.spawn(['iperf3', '-s', '-1']);
    try {
      await sleep(300);
      const rate = async () => {
        const r = await good.exec(['iperf3', '-c', h.lan.host, '-t', '2', '-J'], 20_000);
        expect(r.code, r.out).toBe(0);
        return JSON.parse(r.out).end.sum_received.bits_per_second as number;
      };
      const before = await rate();
      const server2 = h.lan.spawn(['iperf3', '-s', '-1']);
      await sleep(300);
      const storm = f.storm(3000);
      await sleep(200);
      const during = await rate();
      const rings = await storm;
      server2.kill();
      const st = await h.stats(bad.domid, f.devid);
      expect(rings).toBeGreaterThan(10_000);
      expect(st.event_throttles).toBeGreaterThan(0);
      expect(st.events_received).toBeLessThan(rings / 10);
      console.log(`storm: ${rings} rings, ${st.events_received} events, ${st.event_throttles} hold-offs; good guest ${(before / 1e9).toFixed(2)} Gbit/s before, ${(during / 1e9).toFixed(2)} during`);
      expect(during, `before ${before} during ${during}`).toBeGreaterThan(before * 0.3);
    } finally {
      server.kill();
    }
    await goodStillWorks();
  });
});
