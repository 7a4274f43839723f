// blkfront's side of the blkif ring: turns "these sectors, these pages" into blkif requests
// (direct, up to 11 segments, or BLKIF_OP_INDIRECT with descriptor pages when the backend
// offers feature-max-indirect-segments), tracks each in a shadow entry keyed by the request
// id, and settles them as responses come back. Requests that do not fit in the ring wait in
// a queue. Publishing is batched: everything submitted in one turn of the event loop goes
// out with one req_prod update and at most one event.
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_ERROR,
  BLKIF_SEGS_PER_INDIRECT_FRAME,
  BLKIF_SLOT_SIZE,
  blkifRequestIndirect,
  blkifResponse,
  blkifSegment,
  createBlkifRequest,
  blkifRequest,
  type BlkifRequestIndirect,
  type BlkifResponse,
} from '../../../../drivers/wire/blkif.js';
import { FrontRing, RING_OVERFLOW, SharedRing } from '../../../../drivers/ring/shared-ring.js';

/** SHARED_RING_INIT + FRONT_RING_INIT on a blkif ring page. */
export function initBlkifRing(buffer: SharedArrayBuffer, byteOffset: number): FrontRing {
  return new FrontRing(new SharedRing(buffer, byteOffset, BLKIF_SLOT_SIZE));
}
import type { IoPage, PagePool } from './page-pool.js';
import type { BusyPoller } from '../../../../drivers/ring/busy-poll.js';
import { EventStormGuard } from '../../../../drivers/evtchn/event-storm-guard.js';

/** Requests in flight that still count as queue depth 1 for busy polling. */
const BUSY_POLL_MAX_INFLIGHT = 1;

/** A request's data: `nsect` sectors laid out from byte 0 of `pages`, one segment per page
 * (sectors 0..7 of each, the last page holding what remains). */
interface Shadow {
  id: number;
  op: number;
  pages: IoPage[];
  indirect: IoPage[];
  resolve: (status: number) => void;
  busy: boolean;
}

interface Pending {
  op: number;
  sector: number;
  pages: IoPage[];
  nsect: number;
  resolve: (status: number) => void;
}

export interface RingCounters {
  requests: number;
  indirectRequests: number;
  segments: number;
  notifySent: number;
  responses: number;
  errors: number;
  queued: number;
}

export class BlkfrontRing {
  private readonly shadows: Shadow[] = [];
  private readonly freeIds: number[] = [];
  private readonly queue: Pending[] = [];
  private readonly req = createBlkifRequest();
  private readonly ind: BlkifRequestIndirect = { operation: BLKIF_OP_INDIRECT, indirectOp: 0, nrSegments: 0, id: 0n, sectorNumber: 0, handle: 0, indirectGrefs: [] };
  private readonly rsp: BlkifResponse = { id: 0n, operation: 0, status: 0 };
  private readonly seg = { gref: 0, firstSect: 0, lastSect: 0 };
  /** All of guest memory, to write indirect descriptor pages in place. */
  private readonly memView: DataView;
  private kickScheduled = false;
  private nextScheduled = false;
  private dead = false;
  /** Events from a backend ringing for nothing are held off, as blkback holds off a frontend. */
  readonly storm: EventStormGuard;
  private responsesSeen = 0;
  readonly counters: RingCounters = { requests: 0, indirectRequests: 0, segments: 0, notifySent: 0, responses: 0, errors: 0, queued: 0 };

  constructor(
    /** The front end of the shared ring, initialised before the backend was told of it. */
    readonly front: FrontRing,
    private readonly pool: PagePool,
    /** Segments per request: 11, or the negotiated indirect maximum (> 11). */
    readonly maxSegments: number,
    private readonly handle: number,
    private readonly notify: () => void,
    private readonly onFatal: (why: string) => void,
    /** Stops listening to the backend's event channel for `ms` (a storm: XSA-391). */
    holdOff: (ms: number) => void = () => {},
  ) {
    this.storm = new EventStormGuard(holdOff);
    this.memView = new DataView(pool.mem.buffer);
    for (let i = 0; i < this.front.size; i++) {
      this.shadows.push({ id: i, op: 0, pages: [], indirect: [], resolve: () => {}, busy: false });
      this.freeIds.push(this.front.size - 1 - i);
    }
  }

  /** The ring as both ends left it, for a request that got no answer: did the backend take
   * it (req_event moves when it looks), answer it (rsp_prod), and did we see the answer? */
  describe(): string {
    const r = this.front.ring;
    return (
      `ring: req_prod ${r.reqProd}, req_event ${r.reqEvent}, rsp_prod ${r.rspProd}, rsp_cons ${this.front.rspCons}, rsp_event ${r.rspEvent}; ` +
      `${this.inFlight} in flight, ${this.queue.length} queued, ${this.counters.notifySent} notifications sent, ${this.counters.responses} responses`
    );
  }

  get inFlight(): number {
    return this.front.size - this.freeIds.length;
  }

  /** Queue one request of `nsect` sectors laid out from byte 0 of `pages` (one segment per
   * page, at most maxSegments; none for a flush). Resolves with the response status
   * (BLKIF_RSP_*). */
  submit(op: number, sector: number, pages: IoPage[], nsect: number): Promise<number> {
    if (this.dead) return Promise.resolve(BLKIF_RSP_ERROR);
    if (pages.length > this.maxSegments) throw new RangeError(`${pages.length} segments > ${this.maxSegments}`);
    const room = pages.length * 8;
    if (pages.length === 0 ? nsect !== 0 : nsect > room || nsect <= room - 8) {
      throw new RangeError(`${nsect} sectors do not fill ${pages.length} pages from the start`);
    }
    return new Promise((resolve) => {
      this.queue.push({ op, sector, pages, nsect, resolve });
      this.counters.queued++;
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length && this.freeIds.length && this.front.freeRequests() > 0) {
      const p = this.queue.shift()!;
      const nInd = p.pages.length > BLKIF_MAX_SEGMENTS_PER_REQUEST ? Math.ceil(p.pages.length / BLKIF_SEGS_PER_INDIRECT_FRAME) : 0;
      const indirect: IoPage[] = [];
      for (let i = 0; i < nInd; i++) {
        const pg = this.pool.alloc();
        if (!pg) break;
        indirect.push(pg);
      }
      if (indirect.length < nInd) {
        for (const pg of indirect) this.pool.release(pg);
        this.queue.unshift(p);
        this.pool.onFree(() => this.pump());
        break;
      }
      this.place(p, indirect);
    }
    this.scheduleKick();
  }

  private place(p: Pending, indirect: IoPage[]): void {
    const id = this.freeIds.pop()!;
    const sh = this.shadows[id]!;
    sh.op = p.op;
    sh.pages = p.pages;
    sh.indirect = indirect;
    sh.resolve = p.resolve;
    sh.busy = true;
    // The backend reads the data of a write and writes the data of a read.
    const readonly = p.op !== BLKIF_OP_READ;
    const off = this.front.nextRequestSlot();
    const v = this.front.ring.view;
    this.counters.requests++;
    this.counters.segments += p.pages.length;
    const nseg = p.pages.length;
    // Sectors in the last page (the others are full).
    const lastSects = p.nsect - (nseg - 1) * 8;
    if (indirect.length === 0) {
      const r = this.req;
      r.operation = p.op;
      r.nrSegments = nseg;
      r.handle = this.handle;
      r.id = BigInt(id);
      r.sectorNumber = p.sector;
      for (let i = 0; i < nseg; i++) {
        const rs = r.seg[i]!;
        rs.gref = this.pool.grantFor(p.pages[i]!, readonly);
        rs.firstSect = 0;
        rs.lastSect = i === nseg - 1 ? lastSects - 1 : 7;
      }
      blkifRequest.encode(v, off, r);
      return;
    }
    this.counters.indirectRequests++;
    const r = this.ind;
    r.indirectOp = p.op;
    r.nrSegments = nseg;
    r.id = BigInt(id);
    r.sectorNumber = p.sector;
    r.handle = this.handle;
    for (let i = 0; i < 8; i++) r.indirectGrefs[i] = 0;
    const dv = this.memView;
    const seg = this.seg;
    for (let k = 0; k < indirect.length; k++) {
      const pg = indirect[k]!;
      const from = k * BLKIF_SEGS_PER_INDIRECT_FRAME;
      const to = Math.min(nseg, from + BLKIF_SEGS_PER_INDIRECT_FRAME);
      for (let i = from; i < to; i++) {
        seg.gref = this.pool.grantFor(p.pages[i]!, readonly);
        seg.firstSect = 0;
        seg.lastSect = i === nseg - 1 ? lastSects - 1 : 7;
        blkifSegment.encode(dv, pg.offset + (i - from) * blkifSegment.size, seg);
      }
      r.indirectGrefs[k] = this.pool.grantFor(pg, true);
    }
    blkifRequestIndirect.encode(v, off, r);
  }

  /** Busy polling at queue depth 1 (drivers/ring/busy-poll.ts): set once the disk's FUSE
   * device is open. After a lone request goes out, spin for its response on the ring; after a
   * lone response is answered, spin for the next request on the FUSE device. */
  busy: { poller: BusyPoller; fuseFd: () => number } | null = null;

  /** Publish what is queued now instead of at the end of this turn of the event loop: for a
   * big request, whose disk time should not wait behind the guest kernel's next copy. */
  kickNow(): void {
    if (this.dead) return;
    if (this.front.pushRequests()) {
      this.counters.notifySent++;
      this.notify();
    }
  }

  /** Publish what was queued this turn, once. */
  private scheduleKick(): void {
    if (this.kickScheduled) return;
    this.kickScheduled = true;
    // After this turn of the event loop: everything the FUSE reader took in goes out at once.
    setImmediate(() => {
      this.kickScheduled = false;
      if (this.dead) return;
      if (this.front.pushRequests()) {
        this.counters.notifySent++;
        this.notify();
      }
      const b = this.busy;
      if (b && b.poller.shouldPoll('fd', this.inFlight <= BUSY_POLL_MAX_INFLIGHT)) {
        // 'fd': FUSE has more for us: the event loop takes it next, without a wake-up.
        if (b.poller.wait(this.front.ring, 'responses', b.fuseFd(), 'ring') === 'ring') this.onEvent();
      }
    });
  }

  /** After answering a lone response: the program that waited for it usually asks again at
   * once. Runs after the answer went out (a later phase of this turn of the event loop). */
  private pollForNext(): void {
    const b = this.busy;
    if (!b || this.dead || this.queue.length || this.inFlight > 0 || this.nextScheduled) return;
    this.nextScheduled = true;
    setImmediate(() => {
      this.nextScheduled = false;
      if (this.dead || this.inFlight > 0 || !b.poller.shouldPoll('ring', true)) return;
      if (b.poller.wait(this.front.ring, 'responses', b.fuseFd(), 'fd') === 'ring') this.onEvent();
    });
  }

  /** The backend's event: responses, and the storm guard told whether there were any since
   * the last event (those a busy poll took count: the backend rang for them too). */
  onBackendEvent(): void {
    this.onEvent();
    const taken = this.counters.responses;
    this.storm.handled(taken - this.responsesSeen);
    this.responsesSeen = taken;
  }

  /** Consume every response. Returns how many there were (0: the
   * event found nothing, which the caller's storm guard counts). */
  onEvent(): number {
    if (this.dead) return 0;
    let taken = 0;
    for (;;) {
      const n = this.front.unconsumedResponses();
      if (n === RING_OVERFLOW) {
        this.fail('backend published more responses than requests');
        return taken;
      }
      for (let i = 0; i < n; i++) {
        const v = this.front.takeResponse();
        blkifResponse.decode(v, 0, this.rsp);
        taken++;
        this.complete(this.rsp);
        if (this.dead) return taken;
      }
      if (!this.front.finalCheckForResponses()) break;
    }
    if (this.queue.length) this.pump();
    else this.pollForNext();
    return taken;
  }

  /** A response must answer a request in flight, with that request's operation (Linux
   * blkfront since XSA-391): anything else means a backend we cannot trust with our pages. */
  private complete(r: BlkifResponse): void {
    const id = r.id < BigInt(this.shadows.length) && r.id >= 0n ? Number(r.id) : -1;
    const sh = id >= 0 ? this.shadows[id]! : undefined;
    if (!sh) {
      this.fail(`response has incorrect id (${r.id})`);
      return;
    }
    if (!sh.busy) {
      this.fail(`response for id ${r.id} references no pending request`);
      return;
    }
    if (r.operation !== sh.op) {
      this.fail(`response for id ${r.id} has wrong operation (${r.operation} instead of ${sh.op})`);
      return;
    }
    this.counters.responses++;
    if (r.status !== 0) this.counters.errors++;
    this.finish(sh, r.status);
  }

  private finish(sh: Shadow, status: number): void {
    sh.busy = false;
    for (const pg of sh.indirect) this.pool.release(pg);
    // Data pages are revoked by their owner (it still needs a READ's bytes); only their
    // per-request grants end here.
    for (const pg of sh.pages) this.pool.endGrant(pg);
    const resolve = sh.resolve;
    sh.pages = [];
    sh.indirect = [];
    sh.resolve = () => {};
    this.freeIds.push(sh.id);
    resolve(status);
  }

  /** Fail everything in flight and queued (device going away or a broken backend). */
  shutdown(): void {
    if (this.dead) return;
    this.dead = true;
    for (const sh of this.shadows) if (sh.busy) this.finish(sh, BLKIF_RSP_ERROR);
    for (const p of this.queue.splice(0)) p.resolve(BLKIF_RSP_ERROR);
  }

  private fail(why: string): void {
    this.shutdown();
    this.onFatal(why);
  }

  static flushOp(useBarrier: boolean): number {
    return useBarrier ? BLKIF_OP_WRITE_BARRIER : BLKIF_OP_FLUSH_DISKCACHE;
  }
}

export { BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE_BARRIER };
