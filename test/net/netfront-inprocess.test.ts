// netfront in one process with netback, or with a backend that breaks every rule, without
// root (harness/net-harness.ts): frames go both ways between the guest's "stack" and the
// "bridge"; and a backend that answers requests never made, answers twice, publishes more
// responses than requests, or rings for nothing cannot make netfront reuse a buffer or spin
// (XSA-391).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostileBack, NetDom0, ringStorm, sleep, until, type GoodGuest } from './harness/net-harness.js';
import { NETIF_RSP_OKAY } from '../../drivers/wire/netif.js';
import { VNET_HDR_LEN } from '../../net/vnet-hdr.js';

let dom0: NetDom0;

afterEach(async () => {
  await dom0.close();
});

const vnet0 = new Uint8Array(VNET_HDR_LEN);

/** A broadcast frame of `len` bytes from `mac`, its bytes numbered. */
function frame(len: number, tag: number): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f.set([0x00, 0x16, 0x3e, 0x00, 0x00, tag], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let i = 14; i < len; i++) f[i] = (i + tag) & 0xff;
  return f;
}

async function recvAll(w: { drain(): Uint8Array[] }, n: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  await until(`${n} frames`, () => (got.push(...w.drain()), got.length >= n));
  return got.map((x) => x.subarray(VNET_HDR_LEN));
}

describe('netfront and netback in one process', () => {
  beforeEach(async () => {
    dom0 = new NetDom0();
    await dom0.start();
  });

  it('frames go both ways byte for byte; netfront set the MAC, the MTU and the offloads', async () => {
    const gg = await dom0.goodGuest(9);
    expect(gg.links).toContainEqual({ mac: '00:16:3e:00:00:09', up: true });
    expect(gg.links).toContainEqual({ mtu: 1500 });
    const wire = dom0.wire(9, 0);
    const out = [frame(60, 1), frame(1514, 2), frame(300, 3)];
    for (const f of out) expect(gg.stack.send(vnet0, f)).toBe(true);
    expect((await recvAll(wire, 3)).map((f) => [...f])).toEqual(out.map((f) => [...f]));
    const back = [frame(1000, 4), frame(64, 5)];
    for (const f of back) expect(wire.send(vnet0, f)).toBe(true);
    expect((await recvAll(gg.stack, 2)).map((f) => [...f])).toEqual(back.map((f) => [...f]));
    expect(gg.counters()).toMatchObject({ tx_packets: 3, rx_packets: 2, broken: 0 });
    expect(await dom0.stats(9, 0)).toMatchObject({ tx_packets: 3, rx_packets: 2, tx_drops: 0, rx_drops: 0 });
    expect(wire.offloads).not.toBe(0); // netback offered its bridge side what netfront takes
  });

  it('busy traffic both ways is never taken for a storm, on either side', async () => {
    const gg = await dom0.goodGuest(10);
    const wire = dom0.wire(10, 0);
    let out = 0;
    let back = 0;
    for (let burst = 0; burst < 100; burst++) {
      for (let i = 0; i < 20; i++) {
        if (gg.stack.send(vnet0, frame(1514, i))) out++;
        if (wire.send(vnet0, frame(1514, i))) back++;
      }
      await sleep(1);
      wire.drain();
      gg.stack.drain();
    }
    await until('every frame through', async () => {
      wire.drain();
      gg.stack.drain();
      const st = await dom0.stats(10, 0);
      return st.tx_packets === out && (st.rx_packets ?? 0) + (st.rx_drops ?? 0) === back;
    });
    expect(out).toBeGreaterThan(1000);
    expect(gg.counters().event_throttles).toBe(0);
    expect((await dom0.stats(10, 0)).event_throttles).toBe(0);
  });
});

describe('netfront against a hostile backend (XSA-391)', () => {
  let gg: GoodGuest;
  let be: HostileBack;

  beforeEach(async () => {
    dom0 = new NetDom0({ netback: false });
    await dom0.start();
    gg = await dom0.goodGuest(11, '', async (g) => {
      be = new HostileBack(dom0, g);
      await be.connect();
    });
    await until('RX buffers posted', () => be.rx.unconsumedRequests() === 256);
  });

  /** The guest sends a frame and the backend sees its request. */
  async function sendOne(tag: number): Promise<number> {
    expect(gg.stack.send(vnet0, frame(60, tag))).toBe(true);
    let reqs: { id: number }[] = [];
    await until('a TX request', () => (reqs = be.takeTx()).length > 0);
    return reqs[0]!.id;
  }

  async function expectBroken(why: RegExp): Promise<void> {
    await until('netfront to give up on the backend', () => gg.counters().broken === 1);
    expect(gg.printk.filter((l) => /backend misbehaved/.test(l))).toEqual([expect.stringMatching(why)]);
    // Nothing more goes on the ring.
    const before = be.tx.ring.reqProd;
    gg.stack.send(vnet0, frame(60, 99));
    await sleep(50);
    expect(be.tx.ring.reqProd).toBe(before);
  }

  it('a well-behaved answer frees the buffer (the harness itself)', async () => {
    const id = await sendOne(1);
    be.respondTx([{ id, status: NETIF_RSP_OKAY }]);
    await sleep(20);
    expect(await sendOne(2)).toBeGreaterThanOrEqual(0);
    expect(gg.counters()).toMatchObject({ tx_packets: 2, broken: 0 });
  });

  it('a TX response for an id never issued', async () => {
    const id = await sendOne(1);
    be.respondTx([{ id: (id + 100) % 256, status: NETIF_RSP_OKAY }]);
    await expectBroken(/TX response for id \d+, which is not in flight/);
  });

  it('a TX response for an id out of range', async () => {
    await sendOne(1);
    be.respondTx([{ id: 4000, status: NETIF_RSP_OKAY }]);
    await expectBroken(/TX response for id 4000/);
  });

  it('the same id answered twice', async () => {
    const id = await sendOne(1);
    await sendOne(2);
    be.respondTx([{ id, status: NETIF_RSP_OKAY }, { id, status: NETIF_RSP_OKAY }]);
    await expectBroken(new RegExp(`TX response for id ${id}, which is not in flight`));
  });

  it('more TX or RX responses published than requests', async () => {
    await sendOne(1);
    be.scribbleRspProd('tx', be.tx.ring.reqProd + 5);
    await expectBroken(/TX ring: \d+ responses published for 1 requests/);
  });

  it('more RX responses than buffers posted', async () => {
    be.scribbleRspProd('rx', 300);
    await until('netfront to give up on the backend', () => gg.counters().broken === 1);
    expect(gg.printk.some((l) => /backend misbehaved: RX ring: 300 responses published for 256 requests/.test(l))).toBe(true);
  });

  it('a backend ringing for nothing is held off; real answers still get through', async () => {
    const port = Number(await dom0.xs.read(`${be.fe}/event-channel`));
    const rings = await ringStorm(gg.guest.evtchn.doorbell(port), 1000);
    const c = gg.counters();
    expect(rings).toBeGreaterThan(10_000);
    expect(gg.guest.evtchn.delivered(port)).toBeLessThan(rings / 10); // the guest kernel did not spin
    expect(c.event_throttles).toBeGreaterThan(0);
    expect(c.events_spurious).toBeGreaterThan(15);
    expect(c.broken).toBe(0);
    const id = await sendOne(3);
    be.respondTx([{ id, status: NETIF_RSP_OKAY }]);
    await sleep(150); // longer than the longest hold-off
    expect(await sendOne(4)).toBe(id); // its buffer came back (the free list is last in, first out)
    expect(gg.counters()).toMatchObject({ tx_packets: 2, broken: 0 });
  });
});
