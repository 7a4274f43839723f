// The domain ring transport: a guest XsClient and xenstored in one process, sharing a page
// of a SharedArrayBuffer, with event channels modelled as microtask hops.
import { describe, expect, it } from 'vitest';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport } from '../../drivers/xenstore/ring-transport.js';
import {
  RING_CORRUPT, XENSTORE_ERROR_COMM, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX,
  XENSTORE_SERVER_FEATURE_ERROR, XENSTORE_SERVER_FEATURE_RECONNECTION, XS_RING_OFF, XsRingEnd,
} from '../../drivers/xenstore/xs-ring.js';
import { XsType, encodeMessage, joinStrings } from '../../drivers/xenstore/xs-wire.js';
import { expectCode, guest, onCleanup, recorder, server, settle } from './helpers.js';

async function homeFor(dom0: XsClient, domid: number) {
  await dom0.mkdir(`/local/domain/${domid}`);
  await dom0.setPerms(`/local/domain/${domid}`, ['n0', `b${domid}`]);
}

const u32 = (page: Uint8Array, off: number) => new DataView(page.buffer, page.byteOffset).getUint32(off, true);
const setU32 = (page: Uint8Array, off: number, v: number) =>
  new DataView(page.buffer, page.byteOffset).setUint32(off, v >>> 0, true);

describe('ring page', () => {
  it('moves bytes with free-running indices across the wrap and refuses impossible indices', () => {
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    const g = new XsRingEnd(page, 'guest');
    const s = new XsRingEnd(page, 'server');
    // Start near 2^32 so the indices wrap during the test.
    for (const off of [XS_RING_OFF.reqCons, XS_RING_OFF.reqProd]) setU32(page, off, 0xfffffe00);
    const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
    expect(g.write(data, 0, 1000)).toBe(1000);
    expect(g.write(data, 0, 100)).toBe(24); // only 1024 bytes of room
    const got = new Uint8Array(1024);
    expect(s.read(got, 0, 1024)).toBe(1024);
    expect([...got.subarray(0, 1000)]).toEqual([...data]);
    expect(u32(page, XS_RING_OFF.reqProd)).toBe((0xfffffe00 + 1024) >>> 0);
    setU32(page, XS_RING_OFF.reqProd, u32(page, XS_RING_OFF.reqCons) + 1025);
    expect(s.read(got, 0, 10)).toBe(RING_CORRUPT);
    expect(s.readable()).toBe(RING_CORRUPT);
  });

  it('rejects pages that are not shared memory', () => {
    expect(() => new XsRingEnd(new Uint8Array(4096), 'guest')).toThrow(/SharedArrayBuffer/);
  });
});

describe('ring transport', () => {
  it('serves a guest: reads, writes, watches, transactions; advertises its features', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 5);
    const g = guest(xs, 5);
    expect(u32(g.page, XS_RING_OFF.serverFeatures)).toBe(
      XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR,
    );
    await g.client.write('device/vbd/768/state', '1');
    expect(await dom0.read('/local/domain/5/device/vbd/768/state')).toBe('1');
    const r = recorder();
    await g.client.watch('device', 'front', r.cb);
    await dom0.write('/local/domain/5/device/vbd/768/state', '4');
    await settle();
    expect(r.events).toEqual(['device front', 'device/vbd/768/state front']);
    await g.client.transaction(async (t) => {
      await t.write('a', '1');
      await t.write('b', '2');
    });
    expect(await g.client.directory('/local/domain/5')).toEqual(['device', 'a', 'b']);
    await expectCode(g.client.read('/local/domain/0'), 'EACCES');
  });

  it('carries messages larger than the 1 KiB ring in both directions', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 6);
    const g = guest(xs, 6);
    const big = 'x'.repeat(2000);
    await g.client.write('big', big);
    expect(await dom0.read('/local/domain/6/big')).toBe(big);
    const bigger = 'y'.repeat(4000);
    await dom0.write('/local/domain/6/bigger', bigger);
    expect(await g.client.read('bigger')).toBe(bigger);
  });

  it('pipelines many requests through the outstanding-request limit', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 7);
    const g = guest(xs, 7);
    await Promise.all(Array.from({ length: 200 }, (_, i) => g.client.write(`k${i % 50}`, String(i))));
    expect((await g.client.directory('/local/domain/7')).length).toBe(50);
  });

  it('stops reading a domain with 20 replies pending until it drains its ring', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 8);
    await dom0.write('/local/domain/8/v', 'z'.repeat(500)); // each reply 516 bytes
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    let serverEnd: { onEvent(): void } | undefined;
    let guestDrains = false;
    const t = ringTransport(page, () => queueMicrotask(() => serverEnd?.onEvent()));
    serverEnd = xs.introduceDomain(8, { page, notify: () => guestDrains && queueMicrotask(() => t.onEvent()) });
    const c = new XsClient(t);
    onCleanup(() => c.close());
    const reads = Array.from({ length: 40 }, () => c.read('v'));
    await settle(20);
    // One reply fits the rsp ring whole, the next partly; then 20 wait in xenstored's queue.
    const reqLen = 16 + 'v'.length + 1;
    expect(u32(page, XS_RING_OFF.reqCons) / reqLen).toBe(21);
    guestDrains = true;
    t.onEvent();
    expect((await Promise.all(reads)).every((v) => v.length === 500)).toBe(true);
  });

  it('flags impossible ring indices, stops that domain, keeps serving others', async () => {
    const { xs, dom0, logs } = server();
    await homeFor(dom0, 10);
    const bad = new Uint8Array(new SharedArrayBuffer(4096));
    const h = xs.introduceDomain(11, { page: bad, notify: () => {} });
    setU32(bad, XS_RING_OFF.reqProd, 5000); // 5000 bytes "available" in a 1024-byte ring
    h.onEvent();
    expect(u32(bad, XS_RING_OFF.error)).toBe(XENSTORE_ERROR_RINGIDX);
    expect(logs.some((l) => l.includes('domain 11') && l.includes('indices'))).toBe(true);
    const g = guest(xs, 10);
    await g.client.write('ok', '1');
    expect(await dom0.isDomainIntroduced(11)).toBe(true); // still introduced: @releaseDomain later
  });

  it('flags an oversized payload as a protocol error', async () => {
    const { xs, logs } = server();
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    const h = xs.introduceDomain(12, { page, notify: () => {} });
    const hdr = encodeMessage(XsType.READ, 1, 0, new Uint8Array(0));
    new DataView(hdr.buffer).setUint32(12, 5000, true);
    new XsRingEnd(page, 'guest').write(hdr, 0, 16);
    h.onEvent();
    expect(u32(page, XS_RING_OFF.error)).toBe(XENSTORE_ERROR_PROTO);
    expect(logs.some((l) => l.includes('domain 12') && l.includes('5000'))).toBe(true);
  });

  it('drops a domain that stops reading while watch events pile up (XSA-349)', async () => {
    const { xs, dom0, logs } = server({ maxOutputBytes: 16 * 1024 });
    await homeFor(dom0, 13);
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    let serverEnd: { onEvent(): void } | undefined;
    let drain = true;
    const t = ringTransport(page, () => queueMicrotask(() => serverEnd?.onEvent()));
    serverEnd = xs.introduceDomain(13, { page, notify: () => drain && queueMicrotask(() => t.onEvent()) });
    const c = new XsClient(t);
    onCleanup(() => c.close());
    await c.watch('/local/domain/13', 'w', () => {});
    drain = false; // the guest stops consuming its ring
    for (let i = 0; i < 600; i++) await dom0.write(`/local/domain/13/n${i}`, 'x');
    expect(logs.some((l) => l.includes('domain 13') && l.includes('XSA-349'))).toBe(true);
    expect(u32(page, XS_RING_OFF.error)).toBe(XENSTORE_ERROR_COMM);
    expect(await dom0.read('/local/domain/13/n599')).toBe('x'); // everyone else carries on
  });

  it('honours a guest reconnect request: empty rings, watches gone, connection 0', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 14);
    const g = guest(xs, 14);
    const r = recorder();
    await g.client.watch('x', 'w', r.cb);
    setU32(g.page, XS_RING_OFF.connection, 1);
    g.server.onEvent();
    expect(u32(g.page, XS_RING_OFF.connection)).toBe(0);
    expect(u32(g.page, XS_RING_OFF.reqProd)).toBe(0);
    await dom0.write('/local/domain/14/x', 'after');
    await settle();
    expect(r.events).toEqual(['x w']);
  });

  it('serves requests a guest queued before it was introduced', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 15);
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    let serverEnd: { onEvent(): void } | undefined;
    const t = ringTransport(page, () => queueMicrotask(() => serverEnd?.onEvent()));
    const c = new XsClient(t);
    onCleanup(() => c.close());
    const p = c.write('early', 'bird');
    await settle(5); // the request sits in the ring, unseen
    serverEnd = xs.introduceDomain(15, { page, notify: () => queueMicrotask(() => t.onEvent()) });
    await p;
    expect(await dom0.read('/local/domain/15/early')).toBe('bird');
  });

  it('handles requests one at a time even when the embedder signals synchronously', async () => {
    const { xs, dom0 } = server();
    await homeFor(dom0, 40);
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    let serverEnd: { onEvent(): void } | undefined;
    const t = ringTransport(page, () => serverEnd?.onEvent()); // no hop: fully re-entrant
    serverEnd = xs.introduceDomain(40, { page, notify: () => t.onEvent() });
    const c = new XsClient(t);
    onCleanup(() => c.close());
    const seen: string[] = [];
    await c.watch('trigger', 'w', (p) => {
      seen.push(p);
      // Sent from inside dom0's WRITE (while its watch events go out): must wait its turn.
      if (seen.length === 2) void c.write('echo', 'pong');
    });
    await dom0.write('/local/domain/40/trigger', 'ping');
    await settle(5);
    expect(await dom0.read('/local/domain/40/echo')).toBe('pong');
  });

  it('INTRODUCE over the wire maps the ring through the embedder hook', async () => {
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    let onServerEvent: () => void = () => {};
    const t = ringTransport(page, () => queueMicrotask(() => onServerEvent()));
    const asked: number[][] = [];
    const { dom0 } = server({
      mapDomainRing: (domid, mfn, port) => {
        asked.push([domid, mfn, port]);
        return { page, notify: () => queueMicrotask(() => t.onEvent()), onEventRegister: (cb) => (onServerEvent = cb) };
      },
    });
    await homeFor(dom0, 16);
    await dom0.introduce(16, 0x1234, 7);
    expect(asked).toEqual([[16, 0x1234, 7]]);
    const c = new XsClient(t);
    onCleanup(() => c.close());
    await c.write('hello', 'ring');
    expect(await dom0.read('/local/domain/16/hello')).toBe('ring');
    await dom0.release(16);
    expect(await dom0.isDomainIntroduced(16)).toBe(false);
    await expectCode(dom0.release(16), 'ENOENT');
    await expectCode(dom0.request(XsType.INTRODUCE, ['17', '1', '0'], 0), 'EINVAL'); // port 0
  });

  it('releasing a domain removes its nodes and disarms permissions naming it', async () => {
    const { xs, dom0, as } = server();
    await homeFor(dom0, 20);
    await dom0.mkdir('/shared');
    await dom0.setPerms('/shared', ['n0', 'b20']);
    await dom0.write('/readable', 'x');
    await dom0.setPerms('/readable', ['n0', 'r20']);
    const g = guest(xs, 20);
    await g.client.write('/shared/mine', 'guest-owned');
    await g.client.write('data', '1');
    const r = recorder();
    await dom0.watch('@releaseDomain', 'rel', r.cb);
    expect(xs.releaseDomain(20)).toBe(true);
    await settle();
    expect(r.events).toEqual(['@releaseDomain rel', '@releaseDomain rel']);
    expect(await dom0.exists('/local/domain/20')).toBe(false);
    expect(await dom0.exists('/shared/mine')).toBe(false);
    expect(await dom0.exists('/shared')).toBe(true); // owned by dom0
    // A later domain 20 does not inherit the old one's grant.
    await expectCode(as(20).read('/readable'), 'EACCES');
    expect(await dom0.getPerms('/readable')).toEqual([{ id: 0, access: 'n' }, { id: 20, access: 'r' }]);
  });
});

describe('quotas for domains', () => {
  it('nodes per domain: ENOSPC past the quota, room again after removal', async () => {
    const { dom0, as } = server({ quotas: { nodes: 5 } });
    await dom0.mkdir('/local/domain/30');
    await dom0.setPerms('/local/domain/30', ['n30']); // owned by 30: counts as 1
    const d = as(30);
    for (let i = 1; i <= 4; i++) await d.write(`n${i}`, '');
    await expectCode(d.write('n5', ''), 'ENOSPC');
    await expectCode(d.write('deep/a/b', ''), 'ENOSPC');
    await d.rm('n1');
    await d.write('n5', '');
    for (let i = 0; i < 10; i++) await dom0.write(`/local/domain/30/by0-${i}`, ''); // dom0 exempt
  });

  it('nodes quota also applies at transaction commit', async () => {
    const { dom0, as } = server({ quotas: { nodes: 3 } });
    await dom0.mkdir('/local/domain/31');
    await dom0.setPerms('/local/domain/31', ['n31']);
    const d = as(31);
    const t = await d.transactionStart();
    await d.write('a', '', t);
    await d.write('b', '', t);
    await d.write('c', '1'); // outside: now 3 owned
    await expectCode(d.transactionEnd(t, true), 'ENOSPC');
    // A committed transaction's nodes count like any others.
    await d.rm('c');
    const t2 = await d.transactionStart();
    await d.write('a', '', t2);
    await d.write('b', '', t2);
    await d.transactionEnd(t2, true);
    await expectCode(d.write('c', ''), 'ENOSPC');
    await d.rm('a');
    await d.write('c', '');
  });

  it('node size: ENOSPC beyond 2048 bytes counted like C (header, perms, value, children)', async () => {
    const { dom0, as } = server();
    await dom0.mkdir('/local/domain/32');
    await dom0.setPerms('/local/domain/32', ['n32']);
    const d = as(32);
    await d.write('fits', 'v'.repeat(2048 - 16 - 8));
    await expectCode(d.write('toobig', 'v'.repeat(2048 - 16 - 8 + 1)), 'ENOSPC');
    await dom0.write('/local/domain/32/dom0big', 'v'.repeat(4000));
  });

  it('refuses over-long relative paths for a domU (EINVAL); its own prefix is free', async () => {
    const { dom0, as } = server();
    await dom0.mkdir('/local/domain/33');
    await dom0.setPerms('/local/domain/33', ['n33']);
    const d = as(33);
    const deep = `${'abcd/'.repeat(409)}abc`; // 2048 characters in 410 small nodes
    await d.write(deep, '');
    await expectCode(d.write(`${deep}d`, ''), 'EINVAL');
  });

  it('the client refuses payloads over 4096 bytes before sending (E2BIG)', async () => {
    const { dom0 } = server();
    await expectCode(dom0.write('/big', 'x'.repeat(4096)), 'E2BIG');
    expect(await dom0.read('/')).toBe('');
  });
});
