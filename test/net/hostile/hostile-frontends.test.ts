// netback against hostile frontends, end to end (root): the real netback in a real dom0 stack
// with real TAPs on a real bridge (harness.ts), and a well-behaved guest on the same bridge
// that must still talk to the LAN after each case. Every single check of a bad packet or ring
// is in test/net/netback-inprocess.test.ts, which needs no root; here are the cases that need
// the bridge: a frame reaching it, a disconnected vif leaving the bridge's other ports alone,
// a LAN host flooding a guest that posts no buffers, and an event storm against real traffic.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostileFront, NetHarness, sleep, until, type Guest } from './harness.js';
import { netShouldSkip } from '../../helpers/lan.js';
import { NETIF_RSP_OKAY } from '../../../drivers/wire/netif.js';
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
    expect(await f.txStatuses(1)).toEqual([NETIF_RSP_OKAY]);
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
