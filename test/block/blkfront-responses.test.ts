// blkfront trusts nothing a backend answers (Linux blkfront since XSA-391): the real
// BlkfrontRing over a real shared ring page, the test playing the backend on the same page.
// A response must answer a request in flight, with that request's operation; more responses
// than requests, an id never issued, a duplicate or a wrong operation disconnect the disk and
// fail what is in flight, never complete another request. A backend ringing for nothing over
// a real (eventfd) event channel is held off.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlkfrontRing, initBlkifRing } from '../../guest/kernel/frontends/blkfront/ring-io.js';
import { PagePool } from '../../guest/kernel/frontends/blkfront/page-pool.js';
import { PageAllocator } from '../../guest/kernel/page-allocator.js';
import { GrantTable } from '../../drivers/grant/grant-table.js';
import { BackRing, SharedRing } from '../../drivers/ring/shared-ring.js';
import { BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BLKIF_SLOT_SIZE, blkifResponse } from '../../drivers/wire/blkif.js';
import { EventChannelHub, ringStorm } from '../net/harness/loopback-evtchn.js';
import { sleep, until } from '../net/harness/wait.js';

const PAGE = 4096;

let hub: EventChannelHub;
let ring: BlkfrontRing;
let back: BackRing;
let pool: PagePool;
let fatal: string[];
let guestPort: number;

beforeEach(async () => {
  const memory = new SharedArrayBuffer(1024 * PAGE);
  const pages = new PageAllocator(memory, 1, 1024);
  const grants = new GrantTable(new SharedArrayBuffer(4 * PAGE));
  pool = new PagePool(pages, grants, 0, false, 600);
  const ringPfn = pages.alloc();
  const front = initBlkifRing(memory, ringPfn * PAGE);
  back = new BackRing(new SharedRing(memory, ringPfn * PAGE, BLKIF_SLOT_SIZE));
  hub = new EventChannelHub();
  const guest = hub.domain(5);
  const dom0 = hub.domain(0);
  guestPort = await guest.allocUnbound(0);
  await dom0.bindInterdomain(5, guestPort);
  fatal = [];
  ring = new BlkfrontRing(front, pool, 256, 0, () => guest.notify(guestPort), (why) => fatal.push(why), (ms) => guest.holdOff(guestPort, ms));
  guest.on(guestPort, () => ring.onBackendEvent());
});

afterEach(() => {
  ring.shutdown();
  hub.closeAll();
});

/** One read of a page (8 sectors), or with `n` pages an indirect one. */
function read(n = 1): Promise<number> {
  const pgs = [...Array(n)].map(() => pool.alloc()!);
  return ring.submit(BLKIF_OP_READ, 0, pgs, 8 * n);
}

/** The backend's side: the requests published so far, as (id, operation). */
async function requests(n: number): Promise<{ id: bigint; op: number }[]> {
  await until(`${n} requests`, () => back.unconsumedRequests() >= n);
  const out: { id: bigint; op: number }[] = [];
  for (let i = 0; i < n; i++) {
    const v = back.takeRequest();
    out.push({ id: v.getBigUint64(8, true), op: v.getUint8(0) });
  }
  return out;
}

/** Answers as given, publishes and rings blkfront's event channel. */
function answer(rs: { id: bigint; operation: number; status: number }[]): void {
  for (const r of rs) blkifResponse.encode(back.ring.view, back.nextResponseSlot(), r);
  back.pushResponses();
  hub.domain(0).notify(1);
}

describe('a request the backend leaves unanswered', () => {
  it('the ring says where it stands: published and rung for, not answered; then answered and seen', async () => {
    const p = read();
    await requests(1);
    expect(ring.describe()).toBe('ring: req_prod 1, req_event 1, rsp_prod 0, rsp_cons 0, rsp_event 1; 1 in flight, 0 queued, 1 notifications sent, 0 responses');
    back.finalCheckForRequests(); // the backend looks again: it wants an event for the next one
    expect(ring.describe()).toContain('req_event 2,');
    answer([{ id: 0n, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_OKAY);
    expect(ring.describe()).toMatch(/rsp_prod 1, rsp_cons 1, rsp_event 2; 0 in flight, 0 queued, 1 notifications sent, 1 responses$/);
  });
});

describe('blkfront checks every response against its request', () => {
  it('a right answer completes its request (the harness itself)', async () => {
    const p = read();
    const [r] = await requests(1);
    answer([{ id: r!.id, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_OKAY);
    expect(fatal).toEqual([]);
  });

  it('an indirect request is answered with its own operation, as Linux blkback answers', async () => {
    const p = read(20);
    const [r] = await requests(1);
    expect(r!.op).toBe(BLKIF_OP_INDIRECT);
    answer([{ id: r!.id, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_OKAY);
  });

  it('an id never issued, or out of range: the disk goes, what was in flight fails', async () => {
    const p = read();
    const [r] = await requests(1);
    answer([{ id: r!.id + 7n, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_ERROR);
    expect(fatal).toEqual([`response for id ${r!.id + 7n} references no pending request`]);
    expect(await read()).toBe(BLKIF_RSP_ERROR); // dead: nothing more goes to this backend
  });

  it('an id past the ring', async () => {
    const p = read();
    await requests(1);
    answer([{ id: 1n << 40n, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_ERROR);
    expect(fatal).toEqual([`response has incorrect id (${1n << 40n})`]);
  });

  it('the same id answered twice: the second never completes another request', async () => {
    const a = read();
    const b = read();
    const [ra] = await requests(2);
    answer([
      { id: ra!.id, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY },
      { id: ra!.id, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY },
    ]);
    expect(await a).toBe(BLKIF_RSP_OKAY);
    expect(await b).toBe(BLKIF_RSP_ERROR);
    expect(fatal).toEqual([`response for id ${ra!.id} references no pending request`]);
  });

  it('a response with the wrong operation', async () => {
    const p = read();
    const [r] = await requests(1);
    answer([{ id: r!.id, operation: BLKIF_OP_WRITE, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_ERROR);
    expect(fatal).toEqual([`response for id ${r!.id} has wrong operation (${BLKIF_OP_WRITE} instead of ${BLKIF_OP_READ})`]);
  });

  it('more responses published than requests', async () => {
    const p = read();
    await requests(1);
    Atomics.store(back.ring.idx, 2, 5); // rsp_prod
    hub.domain(0).notify(1);
    expect(await p).toBe(BLKIF_RSP_ERROR);
    expect(fatal).toEqual(['backend published more responses than requests']);
  });

  it('a backend ringing for nothing is held off; its real answers still complete', async () => {
    const rings = await ringStorm(hub.domain(5).doorbell(guestPort), 800);
    expect(rings).toBeGreaterThan(10_000);
    expect(ring.storm.throttles).toBeGreaterThan(0);
    expect(ring.storm.spurious).toBeGreaterThan(15);
    expect(hub.domain(5).delivered(guestPort)).toBeLessThan(rings / 10);
    await sleep(150); // past the longest hold-off
    const p = read();
    const [r] = await requests(1);
    answer([{ id: r!.id, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }]);
    expect(await p).toBe(BLKIF_RSP_OKAY);
    expect(fatal).toEqual([]);
  });
});
