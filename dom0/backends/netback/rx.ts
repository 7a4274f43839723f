// World -> guest: netback's RX path (Linux xen-netback rx.c).
//
// The frontend posts RX requests, each a granted page (request-rx-copy: the backend fills
// the guest's own pages; page flipping is long gone). We take them out of the ring in order,
// copying each request once, and pin its grant writable (GTF_writing) while we hold it, with
// the hypervisor's checks. A frame from the vif's TAP is then read with ONE readv straight
// into those pinned guest pages (the kernel's copy is the only copy), and answered in ring
// order: the first slot (flags: checksum state, more_data, extra_info), a GSO extra-info slot
// when the frame is a GSO train, then the remaining pages. Slot i of the response ring always
// answers the request that was in slot i, which is how netfront finds its buffers.
//
// A frame may need 18 slots (a 64 KiB GSO train in 17 pages plus the extra info), so we read
// only while at least that many buffers are posted; otherwise the frame stays in the TAP's
// kernel queue (bounded by the kernel, txqueuelen) and we ask the frontend, through
// req_event, to tell us when it posts more. A frontend that stops posting buffers (XSA-392)
// therefore costs dom0 no memory: after RX_STALL_DRAIN_MS we start dropping its frames from
// the TAP queue, as Linux netback's rx_drain_timeout does, and counting them.
import { acquire, release, type MappedGrantTable } from '../../../drivers/grant/grant-table.js';
import { RING_OVERFLOW, XEN_PAGE_SIZE, type BackRing } from '../../../drivers/ring/shared-ring.js';
import {
  NETIF_RSP_ERROR,
  NETRXF_extra_info,
  NETRXF_more_data,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_GSO_TYPE_NONE,
  netifExtraInfo,
  netifRxResponse,
} from '../../../drivers/wire/netif.js';
import { newPacketOffload, offloadFromVnet, rxFlagsOf } from '../../../drivers/netif/offload.js';
import { decodeVnetHdr, newVnetHdr, VNET_HDR_LEN } from '../../../net/vnet-hdr.js';
import { ETH_HLEN } from '../../../net/csum-setup.js';
import { native, type FdWatcher } from '../../../native/index.js';
import type { VifMetrics } from './metrics.js';

const PAGE = XEN_PAGE_SIZE;
/** Slots a maximal GSO frame may take: 17 pages of data + 1 extra-info slot. */
export const RX_SLOTS_GSO = 18;
/** Frames per TAP wake-up before we yield. */
export const RX_BUDGET = 64;
/** How long a frontend may post no buffers before its queued frames are dropped. */
export const RX_STALL_DRAIN_MS = 2000;
const RX_DRAIN_TICK_MS = 250;
const RX_DRAIN_BUDGET = 512;

export interface RxDeps {
  ring: BackRing;
  memory: SharedArrayBuffer;
  grants: MappedGrantTable;
  tapFd: number;
  metrics: VifMetrics;
  /** Frames may be GSO trains (the frontend asked for GSO and the TAP was offered it). */
  gso: boolean;
  /** The frontend takes multi-slot frames (feature-sg). */
  sg: boolean;
  /** The vif's MTU: without GSO, frames are at most this + an Ethernet header (+ VLAN). */
  mtu: number;
  fatal(reason: string): void;
  notify(): void;
  /** Told after a run that delivered frames (how many ring slots they took): the vif may
   * poll for the reply. */
  afterDelivery?: (slots: number) => void;
}

export class RxPath {
  private readonly size: number;
  // The requests we took and hold, in ring order (a circular queue as big as the ring).
  private readonly ids: Uint16Array;
  private readonly grefs: Uint32Array;
  /** Pinned frame per held request, or -1 when its grant was refused. */
  private readonly frames: Int32Array;
  private head = 0;
  private count = 0;
  /** Buffers a frame may need: we read only with this many good ones held. */
  readonly need: number;

  private readonly vnetBuf = new Uint8Array(VNET_HDR_LEN);
  private readonly vnet = newVnetHdr();
  private readonly offload = newPacketOffload();
  /** (offset, length) in guest memory of each buffer the next frame may land in. */
  private readonly segs = new Float64Array(RX_SLOTS_GSO * 2);
  private nSegs = 0;
  private readonly rsp = { id: 0, offset: 0, flags: 0, status: 0 };
  private readonly scratch = new Uint8Array(VNET_HDR_LEN + 65536 + 64);
  private readonly watcher: FdWatcher;
  private watching = false;
  private stalledSince = 0;
  private drainTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly u8: Uint8Array;

  constructor(private readonly d: RxDeps) {
    this.u8 = new Uint8Array(d.memory);
    this.size = d.ring.size;
    this.ids = new Uint16Array(this.size);
    this.grefs = new Uint32Array(this.size);
    this.frames = new Int32Array(this.size);
    // One byte more than the largest frame, so a frame that fills the buffers exactly is
    // known to be cut short.
    const maxFrame = d.mtu + ETH_HLEN + 4 + 1;
    this.need = d.gso ? RX_SLOTS_GSO : d.sg ? Math.min(RX_SLOTS_GSO, Math.ceil(maxFrame / PAGE)) : 1;
    this.watcher = native().watchFd(d.tapFd, () => this.onTapReadable());
  }

  /** The frontend notified us (new buffers, probably): take them and carry on. */
  onEvent(): number {
    const took = this.fill();
    if (took < 0) return 0;
    if (took > 0) this.run();
    else this.updateWatch();
    return took;
  }

  /** Start: take what the frontend posted, start reading the TAP. */
  start(): void {
    this.onEvent();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.watcher.close();
    this.watching = false;
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    // Unpin everything we hold; those requests are never answered (the ring is going away).
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) % this.size;
      if (this.frames[i]! >= 0) release(this.d.grants, this.grefs[i]!, true);
    }
    this.count = 0;
  }

  /** Requests currently held (pinned) waiting for frames. */
  get held(): number {
    return this.count;
  }

  /** Takes posted requests into our queue, pinning each buffer. -1 after a fatal error. */
  private fill(): number {
    if (this.stopped) return -1;
    const ring = this.d.ring;
    const n = ring.unconsumedRequests();
    if (n === RING_OVERFLOW) {
      this.stopped = true;
      this.d.metrics.peerErrors.count('rx_fatal_ring');
      this.d.fatal(`RX ring: req_prod ${ring.ring.reqProd} claims more requests than the ring holds (rsp_prod ${ring.rspProdPvt}, ring of ${ring.size})`);
      return -1;
    }
    let took = 0;
    while (took < n && this.count < this.size) {
      const v = ring.takeRequest();
      const id = v.getUint16(0, true);
      const gref = v.getUint32(4, true);
      const i = (this.head + this.count) % this.size;
      const frame = acquire(this.d.grants, gref, 0, true);
      if (frame < 0) this.d.metrics.peerErrors.report('rx_error_grant', `RX: buffer ${id}: grant ${gref} refused (${frame}): answered with an error`);
      this.ids[i] = id;
      this.grefs[i] = gref;
      this.frames[i] = frame;
      this.count++;
      took++;
    }
    return took;
  }

  /** Good buffers at the head of the queue (a refused grant ends the run). */
  private window(): number {
    let w = 0;
    while (w < this.count && w < this.need && this.frames[(this.head + w) % this.size]! >= 0) w++;
    return w;
  }

  private onTapReadable(): void {
    if (this.stopped) return;
    this.run();
  }

  /** Reads frames into the guest's buffers while it has enough of them posted. Returns the
   * ring slots the delivered frames took. */
  run(): number {
    const { ring, metrics } = this.d;
    let frames = 0;
    const slots0 = metrics.rx_slots;
    let responded = false;
    while (!this.stopped && frames < RX_BUDGET) {
      // A buffer whose grant was refused is answered with an error, on its own, in order.
      while (this.count > 0 && this.frames[this.head]! < 0) {
        this.respondError(this.head);
        this.pop(1);
        responded = true;
      }
      const w = this.window();
      if (w < this.need && w === this.count) {
        // Not enough buffers: take any that were posted meanwhile, else wait for them.
        const took = this.fill();
        if (took < 0) return metrics.rx_slots - slots0;
        if (took === 0) {
          if (ring.finalCheckForRequests() && this.fill() > 0) continue;
          break;
        }
        continue;
      }
      const r = this.readFrame(w);
      if (r === null) break; // TAP empty
      frames++;
      if (this.deliver(r, w)) {
        responded = true;
        // Published frame by frame: the frontend (on another CPU) starts while we read on.
        if (ring.pushResponses()) this.d.notify();
      }
    }
    if (responded) {
      metrics.rx_batches++;
      if (ring.pushResponses()) this.d.notify();
    }
    this.updateWatch();
    const slots = metrics.rx_slots - slots0;
    if (responded && frames > 0) this.d.afterDelivery?.(slots);
    return slots;
  }

  /** readv into [vnet header, buffer pages...]; with GSO possible, the second held buffer is
   * kept for the extra-info slot, so data goes to buffers 0, 2, 3, ... */
  private readFrame(w: number): number | null {
    const segs = this.segs;
    let n = 0;
    for (let k = 0; k < w; k++) {
      if (this.d.gso && k === 1) continue;
      segs[2 * n] = this.frames[(this.head + k) % this.size]! * PAGE;
      segs[2 * n + 1] = PAGE;
      n++;
    }
    this.nSegs = n;
    try {
      return native().readvSegs(this.d.tapFd, this.vnetBuf, this.u8, segs, n);
    } catch {
      return null;
    }
  }

  /** Answers one frame of `n` bytes (vnet header included) read into the first `w` buffers.
   * Returns true if responses were written. */
  private deliver(n: number, w: number): boolean {
    const metrics = this.d.metrics;
    const len = n - VNET_HDR_LEN;
    const capacity = this.nSegs * PAGE;
    if (len < ETH_HLEN) {
      metrics.rx_drops++;
      return false;
    }
    decodeVnetHdr(this.vnetBuf, this.vnet);
    const gso = offloadFromVnet(this.vnet, this.offload) && this.offload.gsoType !== XEN_NETIF_GSO_TYPE_NONE;
    if (!gso && this.offload.gsoType !== XEN_NETIF_GSO_TYPE_NONE) {
      metrics.rx_drops++;
      return false;
    }
    const pages = Math.ceil(len / PAGE);
    const used = gso ? pages + 1 : pages;
    if ((gso && !this.d.gso) || used > w || len >= capacity) {
      // Not what the frontend takes, or cut short (by a refused buffer ending the window, or
      // a frame larger than the MTU allows): drop it. A refused buffer then leaves the queue,
      // answered with errors together with the good ones before it.
      metrics.rx_drops++;
      if (w < this.need && w < this.count) {
        for (let k = 0; k <= w; k++) this.respondError((this.head + k) % this.size);
        this.pop(w + 1);
        return true;
      }
      return false;
    }
    // Data landed in buffers dataSlot[0..pages). Without GSO but with buffer 1 skipped, move
    // pages 1.. down one buffer so the frame occupies buffers 0..pages-1 (jumbo frames only).
    if (!gso && this.d.gso && pages > 1) {
      for (let p = 1; p < pages; p++) {
        const to = this.frames[(this.head + p) % this.size]! * PAGE;
        const from = this.frames[(this.head + p + 1) % this.size]! * PAGE;
        this.u8.copyWithin(to, from, from + Math.min(PAGE, len - p * PAGE));
      }
    }
    const ring = this.d.ring;
    const view = ring.ring.view;
    const rsp = this.rsp;
    const baseFlags = rxFlagsOf(this.offload);
    let k = 0; // held buffer index
    for (let p = 0; p < pages; p++) {
      const i = (this.head + k) % this.size;
      rsp.id = this.ids[i]!;
      rsp.offset = 0;
      rsp.status = Math.min(PAGE, len - p * PAGE);
      rsp.flags = (p === 0 ? baseFlags : 0) | (p < pages - 1 ? NETRXF_more_data : 0) | (p === 0 && gso ? NETRXF_extra_info : 0);
      netifRxResponse.encode(view, ring.nextResponseSlot(), rsp);
      k++;
      if (p === 0 && gso) {
        netifExtraInfo.encode(view, ring.nextResponseSlot(), {
          type: XEN_NETIF_EXTRA_TYPE_GSO,
          flags: 0,
          gso: { size: this.offload.gsoSize, type: this.offload.gsoType, features: 0 },
        });
        k++;
      }
    }
    this.pop(used);
    metrics.rx_packets++;
    metrics.rx_bytes += len;
    metrics.rx_slots += used;
    if (gso) metrics.rx_gso++;
    return true;
  }

  private respondError(i: number): void {
    const ring = this.d.ring;
    const rsp = this.rsp;
    rsp.id = this.ids[i]!;
    rsp.offset = 0;
    rsp.flags = 0;
    rsp.status = NETIF_RSP_ERROR;
    netifRxResponse.encode(ring.ring.view, ring.nextResponseSlot(), rsp);
  }

  /** Lets go of `n` held buffers at the head (they have been answered). */
  private pop(n: number): void {
    const m = Math.min(n, this.count);
    for (let k = 0; k < m; k++) {
      const i = this.head;
      if (this.frames[i]! >= 0) release(this.d.grants, this.grefs[i]!, true);
      this.head = (this.head + 1) % this.size;
      this.count--;
    }
  }

  private ready(): boolean {
    return this.window() >= this.need || (this.count > 0 && this.frames[this.head]! < 0);
  }

  /** Watch the TAP only while a frame could be delivered; otherwise count a stall and, if it
   * lasts, drain the TAP queue. */
  private updateWatch(): void {
    if (this.stopped) return;
    let ready = this.ready();
    while (!ready) {
      // Take what the frontend posted meanwhile; if nothing, ask to be told (req_event) and
      // look once more, or a post between our look and the arming would go unnoticed.
      const took = this.fill();
      if (took < 0) return;
      if (took === 0 && !this.d.ring.finalCheckForRequests()) break;
      ready = this.ready();
    }
    if (ready) {
      if (!this.watching) this.watcher.start(native().READABLE);
      this.watching = true;
      this.stalledSince = 0;
      return;
    }
    if (this.watching) this.watcher.stop();
    this.watching = false;
    if (this.stalledSince === 0) {
      this.stalledSince = performance.now();
      this.d.metrics.rx_stalls++;
    }
    if (!this.drainTimer) this.drainTimer = setTimeout(() => this.drainTick(), RX_DRAIN_TICK_MS);
  }

  private drainTick(): void {
    this.drainTimer = null;
    if (this.stopped || this.stalledSince === 0) return;
    this.updateWatch(); // still stalled? (re-arms this timer if so)
    if (this.stalledSince === 0) return;
    if (performance.now() - this.stalledSince >= RX_STALL_DRAIN_MS) {
      for (let k = 0; k < RX_DRAIN_BUDGET; k++) {
        let r: number | null;
        try {
          r = native().read(this.d.tapFd, this.scratch, 0, this.scratch.length);
        } catch {
          r = null;
        }
        if (r === null) break;
        this.d.metrics.rx_drops++;
      }
    }
  }
}
