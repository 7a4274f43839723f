import { describe, expect, it } from 'vitest';
import {
  BackRing,
  FrontRing,
  needsNotify,
  RING_HEADER_SIZE,
  RING_OVERFLOW,
  ringEntries,
  SharedRing,
} from '../../drivers/ring/shared-ring.js';
import {
  NETIF_RSP_OKAY,
  NETIF_TX_SLOT_SIZE,
  netifTxRequest,
  NetifTxRequest,
  netifTxResponse,
} from '../../drivers/wire/netif.js';
import { BLKIF_SLOT_SIZE, blkifResponse, BLKIF_RSP_OKAY } from '../../drivers/wire/blkif.js';
import { hex } from './helpers.js';

function txRing(bytes = 4096, offset = 0): SharedRing {
  return new SharedRing(new SharedArrayBuffer(offset + bytes), offset, NETIF_TX_SLOT_SIZE, bytes);
}

function pushTx(front: FrontRing, r: NetifTxRequest): void {
  netifTxRequest.encode(front.ring.view, front.nextRequestSlot(), r);
}

describe('ring.h geometry', () => {
  it('rounds (4096 - 64) / entry size down to a power of two', () => {
    expect(ringEntries(12)).toBe(256); // netif tx
    expect(ringEntries(8)).toBe(256); // netif rx
    expect(ringEntries(112)).toBe(32); // blkif
    expect(ringEntries(16)).toBe(128);
    expect(ringEntries(64)).toBe(32); // 63 -> 32
    expect(ringEntries(112, 4096 * 4)).toBe(128); // 4-page blkif ring
    expect(() => ringEntries(5000)).toThrow();
  });

  it('lays the header out as ring.h: indices @0/4/8/12, padding zeroed, entries @64', () => {
    const ring = txRing();
    ring.bytes.fill(0xee);
    new FrontRing(ring);
    // req_prod 0, req_event 1, rsp_prod 0, rsp_event 1 (little-endian u32s)
    expect(hex(ring.bytes, 0, 16)).toBe('00000000' + '01000000' + '00000000' + '01000000');
    expect(ring.bytes.subarray(16, 64).every((b) => b === 0)).toBe(true);
    expect(ring.slotOffset(0)).toBe(RING_HEADER_SIZE);
    expect(ring.slotOffset(1)).toBe(64 + 12);
    expect(ring.slotOffset(256)).toBe(64); // wraps
    // entries themselves are left alone by init
    expect(ring.bytes[64]).toBe(0xee);
  });

  it('writes req_prod at byte 0 and rsp_prod at byte 8 when pushing', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    for (let i = 0; i < 3; i++) pushTx(front, { gref: i, offset: 0, flags: 0, id: i, size: 60 });
    front.pushRequests();
    expect(hex(ring.bytes, 0, 4)).toBe('03000000');
    for (let i = 0; i < 2; i++) {
      back.takeRequest();
      back.nextResponseSlot();
    }
    back.pushResponses();
    expect(hex(ring.bytes, 8, 4)).toBe('02000000');
  });

  it('implements the event-index rule in u32 arithmetic', () => {
    expect(needsNotify(0, 1, 1)).toBe(true);
    expect(needsNotify(1, 2, 1)).toBe(false); // event already passed
    expect(needsNotify(0, 5, 3)).toBe(true); // event inside (old, new]
    expect(needsNotify(0, 5, 6)).toBe(false); // event beyond new
    expect(needsNotify(0xffff_fffe, 2, 0xffff_ffff)).toBe(true); // across the wrap
    expect(needsNotify(0xffff_fffe, 2, 3)).toBe(false);
    expect(needsNotify(0xffff_fffe, 2, 0)).toBe(true);
  });
});

describe('FrontRing / BackRing in one process', () => {
  it('round-trips requests and responses', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    for (let i = 0; i < 5; i++) pushTx(front, { gref: 100 + i, offset: 2 * i, flags: 0, id: i, size: 1000 + i });
    expect(front.pushRequests()).toBe(true);
    expect(back.unconsumedRequests()).toBe(5);
    const got: NetifTxRequest[] = [];
    while (back.unconsumedRequests() > 0) {
      const req = netifTxRequest.decode(back.takeRequest(), 0);
      got.push(req);
      netifTxResponse.encode(ring.view, back.nextResponseSlot(), { id: req.id, status: NETIF_RSP_OKAY });
    }
    expect(got.map((r) => r.gref)).toEqual([100, 101, 102, 103, 104]);
    expect(got[3]).toEqual({ gref: 103, offset: 6, flags: 0, id: 3, size: 1003 });
    expect(back.pushResponses()).toBe(true);
    expect(front.unconsumedResponses()).toBe(5);
    const ids: number[] = [];
    while (front.unconsumedResponses() > 0) ids.push(netifTxResponse.decode(front.takeResponse(), 0).id);
    expect(ids).toEqual([0, 1, 2, 3, 4]);
    expect(front.freeRequests()).toBe(256);
  });

  it('refuses to over-fill the ring or answer unconsumed requests', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    for (let i = 0; i < 256; i++) pushTx(front, { gref: i, offset: 0, flags: 0, id: i, size: 1 });
    expect(front.isFull()).toBe(true);
    expect(() => front.nextRequestSlot()).toThrow();
    expect(() => back.nextResponseSlot()).toThrow();
  });

  it('suppresses notifications while the consumer is busy', () => {
    // Producer pushes 3 per step; consumer handles 2 per step while awake and only sleeps
    // after a final check finds nothing. A busy consumer never needs waking.
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    let awake = false;
    let notifies = 0;
    let handled = 0;
    let sent = 0;
    for (let step = 0; step < 1000 && handled < 900; step++) {
      for (let k = 0; k < 3 && front.freeRequests() > 0 && sent < 900; k++) {
        pushTx(front, { gref: sent, offset: 0, flags: 0, id: sent & 0xffff, size: 1 });
        sent++;
      }
      if (front.pushRequests()) {
        notifies++;
        awake = true;
      }
      if (!awake) continue;
      for (let k = 0; k < 2 && back.unconsumedRequests() > 0; k++) {
        back.takeRequest();
        netifTxResponse.encode(ring.view, back.nextResponseSlot(), { id: 0, status: 0 });
        handled++;
      }
      back.pushResponses();
      while (front.unconsumedResponses() > 0) front.takeResponse();
      if (back.unconsumedRequests() === 0 && !back.finalCheckForRequests()) awake = false;
    }
    expect(handled).toBe(900);
    expect(notifies).toBeLessThanOrEqual(2);
  });

  it('notifies once per batch when the consumer drains everything and sleeps', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    let notifies = 0;
    for (let batch = 0; batch < 10; batch++) {
      for (let k = 0; k < 4; k++) pushTx(front, { gref: k, offset: 0, flags: 0, id: k, size: 1 });
      if (front.pushRequests()) notifies++;
      while (back.unconsumedRequests() > 0) {
        back.takeRequest();
        back.nextResponseSlot();
      }
      back.pushResponses();
      while (front.unconsumedResponses() > 0) front.takeResponse();
      expect(back.finalCheckForRequests()).toBe(false);
      expect(ring.reqEvent).toBe((batch + 1) * 4 + 1);
    }
    expect(notifies).toBe(10);
  });

  it('final check re-reads after arming the event, so a racing push is not lost', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    pushTx(front, { gref: 1, offset: 0, flags: 0, id: 1, size: 1 });
    expect(front.pushRequests()).toBe(true);
    back.takeRequest();
    back.nextResponseSlot();
    back.pushResponses();
    // The back end sees an empty ring and is about to sleep; req_event is stale (1), so the
    // front's next push does not notify...
    expect(back.unconsumedRequests()).toBe(0);
    pushTx(front, { gref: 2, offset: 0, flags: 0, id: 2, size: 1 });
    expect(front.pushRequests()).toBe(false);
    // ...and only the re-check inside the final check finds it.
    expect(back.finalCheckForRequests()).toBe(true);
    expect(back.unconsumedRequests()).toBe(1);

    // Symmetric on the response side.
    back.takeRequest();
    back.nextResponseSlot();
    front.takeResponse();
    expect(front.finalCheckForResponses()).toBe(false);
    expect(ring.rspEvent).toBe(2);
    expect(back.pushResponses()).toBe(true);
    expect(front.finalCheckForResponses()).toBe(true);
  });

  it('keeps working across the u32 wrap of free-running indices', () => {
    const start = 0xffff_ffff - 300;
    const ring = txRing();
    ring.init();
    Atomics.store(ring.idx, 0, start);
    Atomics.store(ring.idx, 1, (start + 1) >>> 0);
    Atomics.store(ring.idx, 2, start);
    Atomics.store(ring.idx, 3, (start + 1) >>> 0);
    const front = new FrontRing(ring, start);
    const back = new BackRing(ring);
    expect(back.reqCons).toBe(start);
    let next = 0;
    let seen = 0;
    let notifies = 0;
    for (let round = 0; round < 40; round++) {
      for (let k = 0; k < 17; k++) pushTx(front, { gref: next, offset: 0, flags: 0, id: next & 0xffff, size: 1 }), next++;
      if (front.pushRequests()) notifies++;
      const n = back.unconsumedRequests();
      expect(n).toBe(17);
      for (let k = 0; k < n; k++) {
        const req = netifTxRequest.decode(back.takeRequest(), 0);
        netifTxResponse.encode(ring.view, back.nextResponseSlot(), { id: req.id, status: 0 });
      }
      back.pushResponses();
      expect(back.finalCheckForRequests()).toBe(false);
      while (front.unconsumedResponses() > 0) {
        expect(netifTxResponse.decode(front.takeResponse(), 0).id).toBe(seen & 0xffff);
        seen++;
      }
    }
    expect(seen).toBe(680);
    expect(notifies).toBe(40);
    expect(ring.reqProd).toBe((start + 680) >>> 0);
    expect(ring.reqProd).toBeLessThan(start); // it did wrap
  });
});

describe('hostile peers', () => {
  it('reports an impossible req_prod as RING_OVERFLOW', () => {
    const ring = txRing();
    new FrontRing(ring);
    const back = new BackRing(ring);
    Atomics.store(ring.idx, 0, 256);
    expect(back.unconsumedRequests()).toBe(256); // a full ring is legal
    Atomics.store(ring.idx, 0, 257);
    expect(back.unconsumedRequests()).toBe(RING_OVERFLOW);
    expect(back.finalCheckForRequests()).toBe(true); // "look at the ring", which then reports
    Atomics.store(ring.idx, 0, 0xdead_beef);
    expect(back.unconsumedRequests()).toBe(RING_OVERFLOW);
    // req_prod moved backwards behind what we consumed
    Atomics.store(ring.idx, 0, 10);
    for (let i = 0; i < 10; i++) back.takeRequest();
    Atomics.store(ring.idx, 0, 5);
    expect(back.unconsumedRequests()).toBe(RING_OVERFLOW);
  });

  it('never consumes a slot whose response is still owed', () => {
    const ring = txRing();
    new FrontRing(ring);
    const back = new BackRing(ring);
    Atomics.store(ring.idx, 0, 200);
    for (let i = 0; i < 200; i++) back.takeRequest();
    Atomics.store(ring.idx, 0, 256); // legal: 256 past rsp_prod_pvt
    expect(back.unconsumedRequests()).toBe(56);
    Atomics.store(ring.idx, 0, 257);
    expect(back.unconsumedRequests()).toBe(RING_OVERFLOW);
  });

  it('reports more responses than outstanding requests as RING_OVERFLOW', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    pushTx(front, { gref: 1, offset: 0, flags: 0, id: 1, size: 1 });
    front.pushRequests();
    Atomics.store(ring.idx, 2, 1);
    expect(front.unconsumedResponses()).toBe(1);
    Atomics.store(ring.idx, 2, 2);
    expect(front.unconsumedResponses()).toBe(RING_OVERFLOW);
    expect(front.finalCheckForResponses()).toBe(true);
  });

  it('decodes the private copy: rewriting the shared slot afterwards changes nothing (XSA-155)', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    const off = front.nextRequestSlot();
    netifTxRequest.encode(ring.view, off, { gref: 7, offset: 100, flags: 0, id: 3, size: 200 });
    front.pushRequests();
    const copy = back.takeRequest();
    expect(copy.buffer).not.toBe(ring.buffer);
    const first = netifTxRequest.decode(copy, 0);
    // The guest rewrites the slot after the back end validated it...
    netifTxRequest.encode(ring.view, off, { gref: 9999, offset: 4000, flags: 0xffff, id: 3, size: 0xffff });
    // ...and a second read by the back end still sees what it validated.
    expect(netifTxRequest.decode(copy, 0)).toEqual(first);
    expect(first).toEqual({ gref: 7, offset: 100, flags: 0, id: 3, size: 200 });
  });

  it('copyRequest gives each slot of a multi-slot packet its own private copy', () => {
    const ring = txRing();
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    for (let i = 0; i < 3; i++) pushTx(front, { gref: i, offset: 0, flags: 0, id: i, size: 10 * i });
    front.pushRequests();
    const buf = new Uint8Array(3 * 12);
    for (let i = 0; i < 3; i++) back.copyRequest(buf, i * 12);
    ring.bytes.fill(0xff, 64, 64 + 36);
    const v = new DataView(buf.buffer);
    expect([0, 1, 2].map((i) => netifTxRequest.decode(v, i * 12).size)).toEqual([0, 10, 20]);
  });

  it('zeroes the whole response slot before a response is written (XSA-216)', () => {
    const ring = new SharedRing(new SharedArrayBuffer(4096), 0, BLKIF_SLOT_SIZE);
    const front = new FrontRing(ring);
    const back = new BackRing(ring);
    const off = front.nextRequestSlot();
    ring.bytes.fill(0xaa, off, off + BLKIF_SLOT_SIZE); // a request full of bytes
    front.pushRequests();
    back.takeRequest();
    const roff = back.nextResponseSlot();
    expect(roff).toBe(off);
    blkifResponse.encode(ring.view, roff, { id: 0x0102030405060708n, operation: 1, status: BLKIF_RSP_OKAY });
    expect(hex(ring.bytes, roff, 16)).toBe('0807060504030201' + '01' + '00' + '0000' + '00000000');
    expect(ring.bytes.subarray(roff + 16, roff + BLKIF_SLOT_SIZE).every((b) => b === 0)).toBe(true);

    // netif tx: a 4-byte response in a 12-byte slot
    const tx = txRing();
    const tf = new FrontRing(tx);
    const tb = new BackRing(tx);
    pushTx(tf, { gref: 0xffffffff, offset: 0xffff, flags: 0xffff, id: 0xffff, size: 0xffff });
    tf.pushRequests();
    tb.takeRequest();
    const o = tb.nextResponseSlot();
    netifTxResponse.encode(tx.view, o, { id: 5, status: -1 });
    expect(hex(tx.bytes, o, 12)).toBe('0500ffff' + '0000000000000000');
  });

  it('attaches to an existing ring without touching its header', () => {
    const ring = txRing(4096, 8192);
    const front = new FrontRing(ring);
    pushTx(front, { gref: 1, offset: 0, flags: 0, id: 1, size: 1 });
    front.pushRequests();
    const before = hex(ring.bytes, 0, 64);
    const back = new BackRing(new SharedRing(ring.buffer, 8192, NETIF_TX_SLOT_SIZE));
    expect(hex(ring.bytes, 0, 64)).toBe(before);
    expect(back.unconsumedRequests()).toBe(1);
  });
});
