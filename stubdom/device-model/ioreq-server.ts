// The device model's side of Xen's shared ioreq page (hvm/ioreq.h struct shared_iopage): one
// 32-byte ioreq_t per vCPU. See stubdom/README.md for the full protocol; in short:
//
//   vCPU (hypervisor side)                      device model (this file)
//   ---------------------------------------     -------------------------------------------
//   slot state must be NONE
//   write addr/data/count/size/flags/type
//   CAS state NONE -> READY (the publish)
//   doorbell += 1; futexWake(doorbell)    -->   wakes from futexWait(doorbell, seen)
//                                               CAS state READY -> INPROCESS
//                                               decode a PRIVATE copy of the slot, validate
//                                               perform it (dispatcher)
//                                               reads: store data (u64 @8)
//                                               CAS state INPROCESS -> IORESP_READY
//   futexWait(slot word @28, seen)        <--   futexWake(slot word @28)   [+ notifyVcpu()]
//   sees IORESP_READY: read data, state -> NONE
//
// The vCPU sleeps on the aligned 32-bit word at byte 28 of its slot. That word holds pad0
// (bytes 28-29), the state/flags byte (30) and the type byte (31), so every state change the
// device model makes changes the word: a vCPU that loaded the word, saw "not answered" and then
// called futexWait(word, loaded) cannot miss the answer (FUTEX_WAIT compares first). Only the
// device model writes INPROCESS/IORESP_READY and only the vCPU writes READY/NONE.
//
// The device model sleeps on a "doorbell" word chosen by the embedder (any 32-bit word in
// shared memory, e.g. next to the event channel the vCPU would notify): it loads the doorbell,
// scans the slots, and only then waits for the doorbell to change, so a READY published while
// it scanned is never slept through. Waits are bounded (waitMs) so a stop request is seen even
// if nobody rings.
import { ioreq, ioreqCompareExchangeState, ioreqGetState, IOREQ_READ, IOREQ_SIZE, IOREQ_WAIT_WORD_OFFSET, createIoreq, STATE_IOREQ_INPROCESS, STATE_IOREQ_READY, STATE_IORESP_READY } from '../../drivers/wire/ioreq.js';
import { BufferedIoreqReader, BUFIOREQ_ERROR, type BufferedWrite } from '../../drivers/wire/buffered-ioreq.js';
import type { IoreqDispatcher } from './ioreq-dispatch.js';
import type { FutexOps, WordRef } from '../../drivers/ioreq/futex.js';
import { LimitedLog, type DeviceLogger, defaultLogger } from './log.js';


/** Max vCPU slots in one 4 KiB ioreq page. */
export const IOREQ_PAGE_SLOTS = 4096 / IOREQ_SIZE;

/** Posted writes drained per step(), so a flooding producer cannot starve the synchronous slots. */
const BUFFERED_PER_STEP = 511;

export interface IoreqServerOptions {
  /** Shared memory holding the ioreq page at `pageOffset` (4-byte aligned). */
  page: SharedArrayBuffer | ArrayBuffer;
  pageOffset?: number;
  vcpus: number;
  dispatcher: IoreqDispatcher;
  /** Needed to wake vCPUs and for run(). Without it, step() only flips states (tests). */
  futex?: FutexOps;
  /** Optional buffered ioreq page (struct buffered_iopage). */
  bufferedPage?: SharedArrayBuffer;
  bufferedPageOffset?: number;
  /** Called after each answer, e.g. to send the vCPU's event channel (vp_eport) as Xen does. */
  notifyVcpu?: (vcpu: number, vpEport: number) => void;
  log?: DeviceLogger;
}

export interface IoreqServerMetrics {
  /** Synchronous ioreqs answered. */
  served: number;
  /** Posted writes taken from the buffered page. */
  buffered: number;
  /** Answers whose state could not be moved INPROCESS -> IORESP_READY (peer tampering). */
  lostAnswers: number;
  /** Dispatch threw (a device-model bug); answered with all ones. */
  faults: number;
  wakes: number;
  sleeps: number;
}

export interface RunOptions {
  /** The word vCPUs bump and wake after publishing READY. */
  doorbell: WordRef;
  /** Non-zero stops the loop (see IoreqServer.requestStop). */
  stop: WordRef;
  /** Upper bound of one sleep (default 100 ms). */
  waitMs?: number;
  /** Called every iteration (poll a TAP, a pty...). May return true when it did work. */
  poll?: () => boolean | void;
}

export class IoreqServer {
  readonly metrics: IoreqServerMetrics = { served: 0, buffered: 0, lostAnswers: 0, faults: 0, wakes: 0, sleeps: 0 };
  private readonly u8: Uint8Array;
  private readonly view: DataView;
  private readonly i32: Int32Array | undefined;
  private readonly base: number;
  private readonly vcpus: number;
  private readonly dispatcher: IoreqDispatcher;
  private readonly futex: FutexOps | undefined;
  private readonly notifyVcpu: ((vcpu: number, port: number) => void) | undefined;
  private bufReader: BufferedIoreqReader | undefined;
  private readonly bw: BufferedWrite = { type: 0, addr: 0, size: 0, data: 0, dataHi: 0 };
  private readonly req = createIoreq();
  private readonly log: LimitedLog;

  constructor(opts: IoreqServerOptions) {
    const off = opts.pageOffset ?? 0;
    if (!Number.isInteger(opts.vcpus) || opts.vcpus < 1 || opts.vcpus > IOREQ_PAGE_SLOTS) throw new RangeError(`vcpus must be 1..${IOREQ_PAGE_SLOTS}`);
    if (off % 4 !== 0 || off < 0 || off + opts.vcpus * IOREQ_SIZE > opts.page.byteLength) throw new RangeError('bad ioreq page offset');
    this.u8 = new Uint8Array(opts.page);
    this.view = new DataView(opts.page);
    this.i32 = opts.page instanceof SharedArrayBuffer ? new Int32Array(opts.page, 0, opts.page.byteLength >> 2) : undefined;
    this.base = off;
    this.vcpus = opts.vcpus;
    this.dispatcher = opts.dispatcher;
    this.futex = opts.futex;
    this.notifyVcpu = opts.notifyVcpu;
    if (opts.bufferedPage) this.bufReader = new BufferedIoreqReader(opts.bufferedPage, opts.bufferedPageOffset ?? 0);
    this.log = new LimitedLog(opts.log ?? defaultLogger('stubdom'), 'ioreq-server');
  }

  /** Serves every READY slot once and drains the buffered page; returns how much it did. */
  step(): number {
    let done = 0;
    // Posted writes first: Xen queues them before any later synchronous request of the vCPU.
    done += this.drainBuffered();
    for (let v = 0; v < this.vcpus; v++) {
      if (this.serveSlot(v)) done++;
    }
    return done;
  }

  private serveSlot(vcpu: number): boolean {
    const off = this.base + vcpu * IOREQ_SIZE;
    if (ioreqGetState(this.u8, off) !== STATE_IOREQ_READY) return false;
    if (!ioreqCompareExchangeState(this.u8, off, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS)) return false;
    // One private copy; everything below looks only at it.
    const req = ioreq.decode(this.view, off, this.req);
    let data: bigint;
    try {
      data = this.dispatcher.handle(req);
    } catch (e) {
      this.metrics.faults++;
      this.log.warn('fault', `vcpu ${vcpu}: device model fault: ${(e as Error).stack ?? String(e)}`);
      data = 0xffff_ffff_ffff_ffffn;
    }
    if (req.dir === IOREQ_READ && !req.dataIsPtr) this.view.setBigUint64(off + 8, data & 0xffff_ffff_ffff_ffffn, true);
    // The CAS is a full barrier: the data store above is visible before IORESP_READY.
    if (!ioreqCompareExchangeState(this.u8, off, STATE_IOREQ_INPROCESS, STATE_IORESP_READY)) {
      this.metrics.lostAnswers++;
      this.log.warn('lost', `vcpu ${vcpu}: slot state changed while in process; answer dropped`);
      return true;
    }
    this.metrics.served++;
    if (this.futex && this.i32) {
      this.futex.futexWake(this.i32, (off + IOREQ_WAIT_WORD_OFFSET) >> 2, 1);
      this.metrics.wakes++;
    }
    this.notifyVcpu?.(vcpu, req.vpEport);
    return true;
  }

  private drainBuffered(): number {
    const r = this.bufReader;
    if (!r) return 0;
    let n = 0;
    while (n < BUFFERED_PER_STEP) {
      const got = r.next(this.bw);
      if (got === 0) break;
      if (got === BUFIOREQ_ERROR) {
        this.log.error('buffered ioreq page has impossible pointers: no longer serviced');
        this.bufReader = undefined;
        break;
      }
      try {
        this.dispatcher.handleBuffered(this.bw);
      } catch (e) {
        this.metrics.faults++;
        this.log.warn('fault', `buffered write fault: ${(e as Error).stack ?? String(e)}`);
      }
      n++;
    }
    this.metrics.buffered += n;
    return n;
  }

  /**
   * Serves until `stop` becomes non-zero: for a dedicated worker thread. Each iteration loads
   * the doorbell, serves, polls, and sleeps on the doorbell only if nothing happened.
   */
  run(opts: RunOptions): void {
    const futex = this.futex;
    if (!futex) throw new Error('IoreqServer.run needs futex ops');
    const waitMs = opts.waitMs ?? 100;
    const { doorbell, stop } = opts;
    for (;;) {
      if (Atomics.load(stop.view, stop.index) !== 0) return;
      const seen = Atomics.load(doorbell.view, doorbell.index);
      let did = this.step();
      if (opts.poll?.()) did++;
      if (did > 0) continue;
      this.metrics.sleeps++;
      futex.futexWait(doorbell.view, doorbell.index, seen, waitMs);
    }
  }

  /** Asks a run() loop (in any thread sharing the words) to return, and wakes it. */
  static requestStop(stop: WordRef, doorbell: WordRef, futex: FutexOps): void {
    Atomics.store(stop.view, stop.index, 1);
    Atomics.add(doorbell.view, doorbell.index, 1);
    futex.futexWake(doorbell.view, doorbell.index, 1);
  }
}
