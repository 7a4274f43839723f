// netfront's transmit side: frames the guest's stack sends on eth (read from its TAP) go to
// the backend as TX requests (Linux xen-netfront xennet_start_xmit).
//
// Buffers: 256 of the guest's own pages, each granted read-only to the backend once, for the
// life of the device (persistent grants: no grant operation per packet). A frame is read from
// the TAP with one readv straight into free buffer pages, so it is never copied in JS:
//   slot 0:   gref, offset 0, flags (csum_blank/data_validated, more_data, extra_info),
//             id, size = the whole frame
//   [extra]:  GSO {size, TCPV4/6} when the vnet header says the frame is a GSO train
//   slot 1..: the following pages, size = bytes in each
// A buffer is free again when the backend's response for its id arrives.
import { FrontRing, RING_OVERFLOW } from '../../../../drivers/ring/shared-ring.js';
import {
  NETIF_RSP_NULL,
  NETIF_RSP_OKAY,
  NETTXF_extra_info,
  NETTXF_more_data,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_GSO_TYPE_NONE,
  XEN_NETIF_NR_SLOTS_MIN,
  netifExtraInfo,
  netifTxRequest,
  netifTxResponse,
} from '../../../../drivers/wire/netif.js';
import { newPacketOffload, offloadFromVnet, txFlagsOf } from '../../../../drivers/netif/offload.js';
import { decodeVnetHdr, newVnetHdr, VNET_HDR_LEN } from '../../../../net/vnet-hdr.js';
import { native, type FdWatcher } from '../../../../native/index.js';

const PAGE = 4096;
/** Data pages a frame may take: 64 KiB of GSO train plus headers. */
const MAX_DATA_SLOTS = XEN_NETIF_NR_SLOTS_MIN - 1;
const TX_BUDGET = 64;

export interface NetfrontTxDeps {
  ring: FrontRing;
  /** Buffer pages by id, and their grant refs. */
  pages: Uint8Array[];
  /** The guest's memory, and where in it each buffer page lies (by id). */
  mem: Uint8Array;
  offs: Float64Array;
  grefs: number[];
  tapFd: number;
  /** The backend takes multi-slot frames (feature-sg). */
  sg: boolean;
  notify(): void;
  log(msg: string): void;
  /** The backend answered what was never asked (XSA-391): the device is unusable. */
  broken(why: string): void;
  /** Told after frames went on the ring (how many slots they took): netfront may poll for
   * the next request. */
  afterSend?: (frames: number) => void;
}

export class NetfrontTx {
  private readonly free: Int32Array;
  private nFree: number;
  private readonly inflight: Uint8Array;
  private readonly vnetBuf = new Uint8Array(VNET_HDR_LEN);
  private readonly vnet = newVnetHdr();
  private readonly offload = newPacketOffload();
  /** (offset, length) in memory of the buffers the next frame may land in. */
  private readonly segs: Float64Array;
  private readonly req = { gref: 0, offset: 0, flags: 0, id: 0, size: 0 };
  private readonly rsp = { id: 0, status: 0 };
  private readonly watcher: FdWatcher;
  private watching = false;
  private stopped = false;
  private readonly maxSlots: number;
  /** Free buffers above which TX completions are collected lazily (see poll). */
  private readonly lazyFree: number;
  packets = 0;
  bytes = 0;
  errors = 0;
  drops = 0;
  /** Responses consumed, ever (extra-info slots included). */
  responses = 0;

  constructor(private readonly d: NetfrontTxDeps) {
    const n = d.pages.length;
    this.free = new Int32Array(n);
    for (let i = 0; i < n; i++) this.free[i] = n - 1 - i;
    this.nFree = n;
    this.inflight = new Uint8Array(n);
    this.maxSlots = d.sg ? MAX_DATA_SLOTS : 1;
    // Room for a few maximal frames (buffers and ring slots): below that, completions are
    // asked for.
    this.lazyFree = Math.min(n >> 1, 4 * (this.maxSlots + 1));
    this.segs = new Float64Array(this.maxSlots * 2);
    this.watcher = native().watchFd(d.tapFd, () => this.run());
  }

  start(): void {
    this.updateWatch();
  }

  stop(): void {
    this.stopped = true;
    this.watcher.close();
  }

  /** Room for a maximal frame: data buffers, and ring slots for them plus an extra. */
  private room(): boolean {
    return this.nFree >= this.maxSlots && this.d.ring.freeRequests() >= this.maxSlots + 1;
  }

  private updateWatch(): void {
    if (this.stopped) return;
    const want = this.room();
    if (want && !this.watching) this.watcher.start(native().READABLE);
    else if (!want && this.watching) this.watcher.stop();
    this.watching = want;
  }

  /** Read what the guest's stack has sent now, without waiting for the TAP's readiness
   * event (a busy poll saw it readable). */
  readTap(): number {
    return this.run();
  }

  /** Frames from the guest's stack, while there is room for them. Returns the ring slots
   * they took (a lone datagram one, a TCP segment train ten or more). */
  private run(): number {
    const ring = this.d.ring;
    let sent = 0;
    const slots0 = ring.reqProdPvt;
    // Short of room: collect completions first (poll asks for them if we stay short), but
    // only once per run: trickling out a frame per completion or two is what the batched
    // completion event is there to avoid.
    let polled = false;
    while (!this.stopped && sent < TX_BUDGET && (this.room() || (!polled && ((polled = true), this.poll() > 0) && this.room()))) {
      const segs = this.segs;
      for (let k = 0; k < this.maxSlots; k++) {
        segs[2 * k] = this.d.offs[this.free[this.nFree - 1 - k]!]!;
        segs[2 * k + 1] = PAGE;
      }
      let n: number | null;
      try {
        n = native().readvSegs(this.d.tapFd, this.vnetBuf, this.d.mem, segs, this.maxSlots);
      } catch {
        n = null;
      }
      if (n === null) break;
      const len = n - VNET_HDR_LEN;
      if (len <= 0) continue;
      decodeVnetHdr(this.vnetBuf, this.vnet);
      if (!offloadFromVnet(this.vnet, this.offload) || (len > PAGE && !this.d.sg)) {
        this.drops++;
        continue;
      }
      this.queue(len);
      sent++;
      // Published frame by frame, so the backend starts on it while we read the next.
      if (ring.pushRequests()) this.d.notify();
    }
    // Stopping short of room: make sure a completion event is asked for before we stop
    // watching the TAP (poll arms it, or finds completions and watching resumes).
    if (!this.stopped && !this.room()) this.poll();
    this.updateWatch();
    const slots = (ring.reqProdPvt - slots0) >>> 0;
    if (sent > 0) this.d.afterSend?.(slots);
    return slots;
  }

  /** Puts a frame of `len` bytes, already in the top free buffers, on the ring. */
  private queue(len: number): void {
    const ring = this.d.ring;
    const view = ring.ring.view;
    const pages = Math.ceil(len / PAGE);
    const gso = this.offload.gsoType !== XEN_NETIF_GSO_TYPE_NONE;
    const req = this.req;
    for (let p = 0; p < pages; p++) {
      const id = this.free[--this.nFree]!;
      this.inflight[id] = 1;
      req.gref = this.d.grefs[id]!;
      req.offset = 0;
      req.id = id;
      const more = p < pages - 1 ? NETTXF_more_data : 0;
      if (p === 0) {
        req.flags = txFlagsOf(this.offload) | more | (gso ? NETTXF_extra_info : 0);
        req.size = len;
      } else {
        req.flags = more;
        req.size = Math.min(PAGE, len - p * PAGE);
      }
      netifTxRequest.encode(view, ring.nextRequestSlot(), req);
      if (p === 0 && gso) {
        netifExtraInfo.encode(view, ring.nextRequestSlot(), {
          type: XEN_NETIF_EXTRA_TYPE_GSO,
          flags: 0,
          gso: { size: this.offload.gsoSize, type: this.offload.gsoType, features: 0 },
        });
      }
    }
    this.packets++;
    this.bytes += len;
  }

  /** A frame built by the kernel itself (DHCP before the stack has an address). */
  xmit(frame: Uint8Array): boolean {
    if (!this.stopped && (this.nFree === 0 || this.d.ring.freeRequests() === 0)) this.poll();
    if (this.stopped || frame.length > PAGE || this.nFree === 0 || this.d.ring.freeRequests() === 0) return false;
    this.d.pages[this.free[this.nFree - 1]!]!.set(frame);
    this.offload.csumBlank = false;
    this.offload.dataValidated = false;
    this.offload.gsoType = XEN_NETIF_GSO_TYPE_NONE;
    this.queue(frame.length);
    if (this.d.ring.pushRequests()) this.d.notify();
    this.updateWatch();
    return true;
  }

  /** The backend's answers: buffers come back. Returns responses consumed.
   *
   * With buffers to spare we do not ask to hear of each completion (rsp_event is left
   * behind, so the backend sends no event for them): they are collected whenever we run for
   * another reason (an RX event, a frame to send). Only when spare buffers run low is
   * rsp_event armed, so a stalled sender is woken (Linux netfront likewise asks for TX
   * completions sparingly, at half its requests in flight). Every completion event the guest
   * is spared is a process wake-up saved, one per ACK in a TCP download. */
  poll(): number {
    const ring = this.d.ring;
    let done = 0;
    for (;;) {
      const avail = ring.unconsumedResponses();
      if (avail === RING_OVERFLOW) {
        this.stop();
        this.d.broken(`TX ring: ${(ring.ring.rspProd - ring.rspCons) >>> 0} responses published for ${(ring.reqProdPvt - ring.rspCons) >>> 0} requests`);
        return done;
      }
      for (let k = 0; k < avail; k++) {
        netifTxResponse.decode(ring.takeResponse(), 0, this.rsp);
        done++;
        this.responses++;
        if (this.rsp.status === NETIF_RSP_NULL) continue; // an extra-info slot
        const id = this.rsp.id;
        if (id >= this.inflight.length || !this.inflight[id]) {
          // Linux netfront: "Response has incorrect id": a backend that answers what we never
          // asked (or answers twice) could make us reuse a buffer it still reads.
          this.stop();
          this.d.broken(`TX response for id ${id}, which is not in flight`);
          return done;
        }
        this.inflight[id] = 0;
        this.free[this.nFree++] = id;
        if (this.rsp.status !== NETIF_RSP_OKAY) this.errors++;
      }
      if (this.nFree > this.lazyFree && this.d.ring.freeRequests() > this.lazyFree) {
        if (ring.unconsumedResponses() === 0) break;
      } else {
        // Short: be woken once half of what is in flight has completed, as Linux netfront's
        // xennet_tx_buf_gc asks. Armed at the next response, a flood of small datagrams woke
        // for every few completions and went out a few frames at a time (3k instead of 70k
        // packets a second).
        const inFlight = (ring.reqProdPvt - ring.rspCons) >>> 0;
        if (!ring.armResponseEvent((inFlight >> 1) + 1)) break;
      }
    }
    if (done > 0) this.updateWatch();
    return done;
  }
}
