// One connected vbd's ring in dom0 (Linux blkback's xen_blkif_ring + the request dispatch
// of blkback.c): take each request out of the shared ring once, check it (request.ts), pin
// its granted frames, read or write the disk straight into or out of them with one
// preadv/pwritev, unpin, and answer. Responses go into zeroed slots (XSA-216) in completion
// order; req_event/rsp_event keep events to a minimum.
//
// A frontend that breaks the ring protocol itself (claims more requests than the ring holds,
// or reuses the id of a request still in flight) gets its ring halted: nothing more is read
// from it and the device is disconnected (onFatal). A bad request only gets an error answer.
// Either way only this disk is affected.
import { BackRing, RING_OVERFLOW, SharedRing, XEN_PAGE_SIZE } from '../../../drivers/ring/shared-ring.js';
import { acquire, release, type MappedGrantTable } from '../../../drivers/grant/grant-mapper.js';
import { gnttabErrorMessage } from '../../../drivers/grant/grant-entry.js';
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_DISCARD,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  BLKIF_SLOT_SIZE,
  blkifResponse,
} from '../../../drivers/wire/blkif.js';
import type { BackingStore, Spans } from './backing-file.js';
import { GrantPins } from './grants.js';
import type { BlkbackCounters } from './metrics.js';
import { isRefusal, parseRequest, type BlkRequest, type ParseContext } from './request.js';
import { BusyPoller } from '../../../drivers/ring/busy-poll.js';
import { URING_WANTED, UringIo } from './uring-io.js';
import { LogRateLimit } from '../../../common/log-ratelimit.js';
import type { BlkbackReason } from './metrics.js';
import { InflightJournal, type OwedRequest } from './inflight-journal.js';

/** How long after a vbd connects its io_uring registers the guest's memory: after a boot
 * (busybox reaches its login prompt in well under a second, Debian's systemd in ~3 s). */
const URING_REGISTER_DELAY_MS = 5000;

/** At queue depth 1, spin this long for the frontend's next request after answering one,
 * instead of sleeping until its event (drivers/ring/busy-poll.ts). 0 turns it off. */
export const BLK_BUSY_POLL_US = Number(process.env.XENODE_BLK_BUSY_POLL_US ?? 200);

export interface BlkifInterfaceOptions {
  frontDomid: number;
  /** The frontend's memory and grant table, as dom0 maps them. */
  memory: SharedArrayBuffer;
  table: MappedGrantTable;
  /** null: an empty (removable) drive with no medium. */
  store: BackingStore | null;
  readonly: boolean;
  maxIndirect: number;
  /** Persistent grants to keep at most (0: none, i.e. not negotiated). */
  maxPersistent: number;
  counters: BlkbackCounters;
  notify: () => void;
  onFatal: (why: string) => void;
  log: (msg: string) => void;
  /** Where to journal the requests owed (inflight-journal.ts); none: no journal. */
  journalPath?: string;
  /** Take over from a dom0 that died: answer what its journal says it owed. */
  resume?: boolean;
}

/** dom0 pins on behalf of itself. */
const DOM0 = 0;
/** A request alone on an idle ring and at most this big is served synchronously. */
const SYNC_MAX_SECTORS = 256;

export class BlkifInterface {
  private back: BackRing | null = null;
  private ringRef = -1;
  private readonly pins: GrantPins;
  private readonly inflight = new Set<bigint>();
  private readonly writesInFlight = new Set<Promise<void>>();
  private readonly settled = new Set<Promise<void>>();
  private halted = false;
  private pushScheduled = false;
  private readonly busy = new BusyPoller(BLK_BUSY_POLL_US);
  private hitsSeen = 0;
  /** Lines about single requests' I/O errors (a guest can send millions): 10 per 5 s, as
   * printk_ratelimit. Bad input goes through counters.errors, limited the same way. */
  private readonly requestLog = new LogRateLimit();
  private readonly mem: Uint8Array;
  private readonly sectors: number;
  private readonly ctx: ParseContext;
  /** Scratch span list for one request's I/O (copied by the store when the I/O starts). */
  private readonly io: Spans;
  private readonly pinOut = { persistent: false };
  /** Disk I/O on io_uring with the frontend's memory registered, when the kernel allows. */
  private uring: UringIo | null = null;
  private uringOpening: { cancel(): void } | null = null;
  private journal: InflightJournal | null = null;

  constructor(private readonly o: BlkifInterfaceOptions) {
    this.pins = new GrantPins(o.table, DOM0, o.maxPersistent, o.counters);
    this.mem = new Uint8Array(o.memory);
    this.io = { mem: this.mem, spans: new Float64Array(2 * Math.max(BLKIF_MAX_SEGMENTS_PER_REQUEST, o.maxIndirect)), n: 0 };
    this.sectors = o.store?.sectors ?? 0;
    if (o.store && URING_WANTED) {
      // Big requests move to io_uring once the memory is registered; until then everything
      // goes through the thread pool. Registering pins, and so allocates and zeroes, all of
      // the guest's RAM (a few hundred ms of a CPU for 256 MiB): begun at connect, it ran
      // beside the guest's boot and took a CPU from it. It begins once the boot is over.
      const store = o.store;
      const timer = setTimeout(() => {
        this.uringOpening = UringIo.openAsync(this.mem, o.log, (u) => {
          this.uringOpening = null;
          if (typeof u === 'string') return o.log(`io_uring unavailable (${u}): disk I/O on the thread pool`);
          this.uring = u;
          store.useUring(u);
          o.counters.uring = 1;
        });
      }, URING_REGISTER_DELAY_MS);
      timer.unref();
      this.uringOpening = { cancel: () => clearTimeout(timer) };
    }
    this.ctx = {
      sectors: this.sectors,
      readonly: o.readonly,
      maxIndirect: o.maxIndirect,
      copyIndirect: (gref, dst, bytes) => {
        const pin = { persistent: false };
        const frame = this.pins.pin(gref, false, pin);
        if (frame < 0) return gnttabErrorMessage(frame);
        dst.set(this.mem.subarray(frame * XEN_PAGE_SIZE, frame * XEN_PAGE_SIZE + bytes));
        if (!pin.persistent) this.pins.unpin(gref, false);
        return null;
      },
    };
  }

  private logRequest(msg: string): void {
    this.requestLog.log(this.o.log, msg, 'request messages');
  }

  /** Map the frontend's ring page (held for as long as we are connected). */
  mapRing(ringRef: number): void {
    const frame = acquire(this.o.table, ringRef, DOM0, true);
    if (frame < 0) throw new Error(`cannot map ring-ref ${ringRef}: ${gnttabErrorMessage(frame)}`);
    this.ringRef = ringRef;
    const back = new BackRing(new SharedRing(this.o.memory, frame * XEN_PAGE_SIZE, BLKIF_SLOT_SIZE));
    this.back = back;
    if (!this.o.journalPath) return;
    // A predecessor's requests still owed: consumed are those answered (rsp_prod) and those
    // it owed; each is answered again, in the order it took them.
    const owed = this.o.resume ? InflightJournal.owed(this.o.journalPath, back.rspProdPvt) : undefined;
    if (this.o.resume && !owed) throw new Error('the previous dom0 left no journal of the requests it owed');
    this.journal = new InflightJournal(this.o.journalPath, back.size);
    if (owed && owed.length > 0) {
      back.reqCons = (back.rspProdPvt + owed.length) >>> 0;
      this.o.log(`answering ${owed.length} request(s) the previous dom0 took and did not answer`);
      this.owed = owed;
    }
  }

  /** Requests a predecessor owed, served by the first process(). */
  private owed: OwedRequest[] = [];

  /** Take one request (the predecessor's copy, or the ring's), journalled before anything
   * is done for it. */
  private serve(v: DataView, ringIndex: number): boolean {
    const entry = this.journal ? this.journal.taken(ringIndex, new Uint8Array(v.buffer, v.byteOffset, BLKIF_SLOT_SIZE)) : -1;
    const r = parseRequest(v, this.ctx);
    if (this.inflight.has(r.id)) {
      this.halt('ring_fatal_id', `request id ${r.id} reused while still in flight`);
      return false;
    }
    if (isRefusal(r)) {
      this.o.counters.invalid++;
      if (r.operation === BLKIF_OP_DISCARD) this.o.counters.ds_req++;
      this.o.counters.peerErrors.report(r.reason, `refused request ${r.id}: ${r.why}`);
      this.respond(r.id, r.operation, r.status, entry);
      return true;
    }
    r.journal = entry;
    return this.serveParsed(r);
  }

  /** The frontend rang. Consume every request it has published; returns how many there were
   * (counting those a busy poll took since the last event: the frontend rang for them too). */
  onEvent(): number {
    this.o.counters.notify_in++;
    const polled = this.busy.hits - this.hitsSeen;
    this.hitsSeen = this.busy.hits;
    return this.process() + polled;
  }

  /** Serve what the ring holds; returns how many requests were taken. */
  process(): number {
    const back = this.back;
    if (!back || this.halted) return 0;
    let taken = 0;
    for (const o of this.owed.splice(0)) {
      if (!this.serve(new DataView(o.slot.buffer, o.slot.byteOffset, BLKIF_SLOT_SIZE), o.ringIndex)) return taken;
    }
    for (;;) {
      const n = back.unconsumedRequests();
      if (n === RING_OVERFLOW) {
        const prod = back.ring.reqProd;
        this.halt('ring_fatal_prod', `frontend provided bogus ring requests (req_prod ${prod}, rsp_prod_pvt ${back.rspProdPvt}, ring size ${back.size})`);
        return taken;
      }
      taken += n;
      for (let i = 0; i < n; i++) {
        const index = back.reqCons;
        this.lone = n === 1;
        if (!this.serve(back.takeRequest(), index)) return taken; // the private copy: decode only this
      }
      if (!back.finalCheckForRequests()) break;
    }
    return taken;
  }

  /** Whether the request being served was alone on the ring. */
  private lone = false;

  private serveParsed(r: BlkRequest): boolean {
    // A lone small read or write on an otherwise idle ring (queue depth 1) is served on
    // the spot: handing it to libuv's thread pool and back costs more than the disk.
    if (this.lone && this.inflight.size === 0 && r.op !== BLKIF_OP_FLUSH_DISKCACHE && r.nsect <= SYNC_MAX_SECTORS && this.o.store) {
      this.respond(r.id, r.op, this.executeSync(r), r.journal);
      return true;
    }
    this.dispatch(r);
    return true;
  }

  private dispatch(r: BlkRequest): void {
    this.inflight.add(r.id);
    const p = this.execute(r).then(
      (status) => this.complete(r, status),
      (e) => {
        this.logRequest(`request ${r.id}: ${(e as Error).message}`);
        this.complete(r, BLKIF_RSP_ERROR);
      },
    );
    this.settled.add(p);
    void p.finally(() => this.settled.delete(p));
  }

  /** Pins the request's frames and returns the guest memory the I/O moves as spans, or null
   * (grant refused; what was pinned is unpinned). `held` gets the pins to drop afterwards.
   * The spans live in a scratch list: the store copies them when the I/O starts. */
  private mapSegments(r: BlkRequest, toGuest: boolean, held: number[]): Spans | null {
    const io = this.io;
    const spans = io.spans;
    let k = -1;
    const pin = this.pinOut;
    const { grefs, first, last } = r.segs;
    for (let i = 0; i < r.segs.n; i++) {
      const gref = grefs[i]!;
      const frame = this.pins.pin(gref, toGuest, pin);
      if (frame < 0) {
        this.o.counters.invalid++;
        this.o.counters.peerErrors.report('req_bad_grant', `request ${r.id}: grant ${gref}: ${gnttabErrorMessage(frame)}`);
        for (const g of held.splice(0)) this.pins.unpin(g, toGuest);
        return null;
      }
      if (!pin.persistent) held.push(gref);
      const off = frame * XEN_PAGE_SIZE + first[i]! * 512;
      const len = (last[i]! - first[i]! + 1) * 512;
      // Segments that continue each other in guest memory become one span: one iovec for
      // the disk instead of one per page.
      if (k >= 0 && spans[2 * k]! + spans[2 * k + 1]! === off) spans[2 * k + 1] = spans[2 * k + 1]! + len;
      else {
        k++;
        spans[2 * k] = off;
        spans[2 * k + 1] = len;
      }
    }
    io.n = k + 1;
    return io;
  }

  private account(r: BlkRequest, toGuest: boolean): void {
    if (r.operation === BLKIF_OP_INDIRECT) this.o.counters.indirect_req++;
    if (this.uring) this.o.counters.uring_req = this.uring.submitted;
    if (toGuest) {
      this.o.counters.rd_req++;
      this.o.counters.rd_sect += r.nsect;
    } else {
      this.o.counters.wr_req++;
      this.o.counters.wr_sect += r.nsect;
    }
  }

  private executeSync(r: BlkRequest): number {
    const store = this.o.store!;
    const toGuest = r.op === BLKIF_OP_READ;
    const held: number[] = [];
    const io = this.mapSegments(r, toGuest, held);
    if (!io) return BLKIF_RSP_ERROR;
    try {
      if (toGuest) store.readSync(io, r.sector * 512);
      else store.writeSync(io, r.sector * 512);
      this.account(r, toGuest);
      return BLKIF_RSP_OKAY;
    } catch (e) {
      this.logRequest(`request ${r.id}: ${(e as Error).message}`);
      return BLKIF_RSP_ERROR;
    } finally {
      for (const g of held) this.pins.unpin(g, toGuest);
    }
  }

  private async execute(r: BlkRequest): Promise<number> {
    const store = this.o.store;
    if (r.op === BLKIF_OP_FLUSH_DISKCACHE) {
      // Everything the guest was told is written must be on stable storage before we answer:
      // wait for writes still in flight, then fdatasync.
      this.o.counters.f_req++;
      if (this.writesInFlight.size) await Promise.allSettled([...this.writesInFlight]);
      if (store) await store.flush();
      if (r.segs.n === 0) return BLKIF_RSP_OKAY;
    }
    if (!store) return BLKIF_RSP_ERROR; // unreachable: an empty drive has 0 sectors
    const toGuest = r.op === BLKIF_OP_READ; // we write into the guest's frames
    const held: number[] = [];
    const io = this.mapSegments(r, toGuest, held);
    if (!io) return BLKIF_RSP_ERROR;
    try {
      const pos = r.sector * 512;
      if (toGuest) {
        await store.read(io, pos);
      } else {
        const w = store.write(io, pos);
        this.writesInFlight.add(w);
        try {
          await w;
        } finally {
          this.writesInFlight.delete(w);
        }
      }
      this.account(r, toGuest);
      return BLKIF_RSP_OKAY;
    } finally {
      for (const g of held) this.pins.unpin(g, toGuest);
    }
  }

  private complete(r: BlkRequest, status: number): void {
    this.inflight.delete(r.id);
    if (this.halted) return;
    // An indirect request is answered with its own operation, as Linux blkback does.
    this.respond(r.id, r.op, status, r.journal);
  }

  private respond(id: bigint, operation: number, status: number, journal = -1): void {
    const back = this.back;
    if (!back) return;
    if (status !== BLKIF_RSP_OKAY) this.o.counters.errors++;
    this.journal?.answered(journal, back.rspProdPvt);
    const off = back.nextResponseSlot(); // zeroes the whole slot first (XSA-216)
    blkifResponse.encode(back.ring.view, off, { id, operation, status });
    if (this.pushScheduled) return;
    this.pushScheduled = true;
    // After this turn of the loop: every completion libuv delivers in one pass, and every
    // answer given while reading the ring, goes out with one rsp_prod update and one event.
    setImmediate(() => {
      this.pushScheduled = false;
      if (!this.back || this.halted) return;
      const notify = this.back.pushResponses();
      this.journal?.published(this.back.rspProdPvt);
      if (notify) {
        this.o.counters.notify_out++;
        this.o.notify();
      }
      // Responses freed ring room: requests held back by RING_UNCONSUMED may be waiting.
      this.process();
      // Queue depth 1: the program that waited for this answer usually asks again at once.
      if (this.back && !this.halted && this.inflight.size === 0 && this.busy.shouldPoll('fd', true)) {
        if (this.busy.wait(this.back.ring, 'requests', -1, 'ring') === 'ring') this.process();
        this.o.counters.busy_polls = this.busy.polls;
        this.o.counters.busy_poll_hits = this.busy.hits;
      }
    });
  }

  private halt(reason: BlkbackReason, why: string): void {
    if (this.halted) return;
    this.halted = true;
    this.o.counters.peerErrors.count(reason);
    this.o.counters.halted = 1;
    this.o.log(`halting ring: ${why}`);
    this.o.onFatal(why);
  }

  /** Stop: wait for I/O in flight, drop every pin (ring page included). */
  async disconnect(): Promise<void> {
    this.halted = true;
    if (this.settled.size) await Promise.allSettled([...this.settled]);
    this.uringOpening?.cancel();
    this.uringOpening = null;
    if (this.uring) {
      this.o.store?.useUring(null);
      this.uring.close();
      this.uring = null;
      this.o.counters.uring = 0;
    }
    this.pins.releaseAll();
    // Every request was answered or the frontend is gone: nothing is owed.
    this.journal?.remove();
    this.journal = null;
    if (this.ringRef >= 0) release(this.o.table, this.ringRef, true);
    this.ringRef = -1;
    this.back = null;
  }
}
