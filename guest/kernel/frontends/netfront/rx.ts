// netfront's receive side (Linux xen-netfront xennet_poll): the RX ring is kept full of
// buffers (request-rx-copy: the backend copies frames into our pages), and each answered
// frame is written to the guest's TAP with one writev straight from those pages.
//
// Buffer i of the 256 is always posted in ring slot i (request id = slot index), and the
// backend answers slot by slot in order, so the response in slot i is about buffer i, extra
// info slots included. Each buffer page is granted to the backend once, for the life of the
// device; after its frame is written it goes straight back into the ring.
import { FrontRing, RING_OVERFLOW } from '../../../../drivers/ring/shared-ring.js';
import {
  NETRXF_extra_info,
  NETRXF_more_data,
  XEN_NETIF_EXTRA_FLAG_MORE,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_GSO_TYPE_TCPV4,
  XEN_NETIF_GSO_TYPE_TCPV6,
  XEN_NETIF_NR_SLOTS_MIN,
  netifRxRequest,
  netifRxResponse,
} from '../../../../drivers/wire/netif.js';
import { newPacketOffload, offloadFromRxFlags, vnetFromOffload } from '../../../../drivers/netif/offload.js';
import { encodeVnetHdr, newVnetHdr, VNET_HDR_LEN } from '../../../../net/vnet-hdr.js';
import { native } from '../../../../native/index.js';
import { TcpGro } from '../../../../net/gro.js';

const PAGE = 4096;
const MAX_SLOTS = XEN_NETIF_NR_SLOTS_MIN + 2;
/** Responses handled per event before we yield. */
const RX_BUDGET = 256;
/** Free ring slots that make us post buffers again mid-batch. */
const REFILL_BATCH = 32;

export interface NetfrontRxDeps {
  ring: FrontRing;
  pages: Uint8Array[];
  /** The guest's memory, and where in it each buffer page lies. */
  mem: Uint8Array;
  offs: Float64Array;
  grefs: number[];
  tapFd: number;
  notify(): void;
  log(msg: string): void;
  /** The backend answered what was never asked (XSA-391): the device is unusable. */
  broken(why: string): void;
  /** Sees each frame first (kernel DHCP); true consumes it. */
  sniffer(): ((frame: Uint8Array) => boolean) | null;
}

export class NetfrontRx {
  private readonly mask: number;
  private readonly vnetBuf = new Uint8Array(VNET_HDR_LEN);
  private readonly vnet = newVnetHdr();
  private readonly offload = newPacketOffload();
  /** (offset, length) in memory of the frame's pieces, for one writev. */
  private readonly segs = new Float64Array(MAX_SLOTS * 2);
  private readonly rsp = { id: 0, offset: 0, flags: 0, status: 0 };
  private readonly slotOff = new Int32Array(MAX_SLOTS);
  private readonly slotLen = new Int32Array(MAX_SLOTS);
  private readonly slotBuf = new Int32Array(MAX_SLOTS);
  private stopped = false;
  private repoll: NodeJS.Immediate | null = null;
  /** MTU-sized TCP segments go to the guest's stack merged (Linux netfront: napi_gro_receive). */
  private readonly gro: TcpGro;
  private readonly pair: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)];
  packets = 0;
  bytes = 0;
  errors = 0;
  drops = 0;
  /** Responses consumed, ever (extra-info slots included). */
  responses = 0;

  constructor(private readonly d: NetfrontRxDeps) {
    this.mask = d.ring.size - 1;
    if (d.pages.length !== d.ring.size) throw new Error('netfront RX needs one buffer per ring slot');
    this.gro = new TcpGro((vnet, frame) => {
      this.pair[0] = vnet;
      this.pair[1] = frame;
      try {
        return native().writev(d.tapFd, this.pair) !== null;
      } catch {
        return false; // eth is down in the guest: as a NIC would, drop
      }
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.repoll) clearImmediate(this.repoll);
    this.repoll = null;
  }

  /** Posts a buffer in every free ring slot. */
  fill(): void {
    const ring = this.d.ring;
    const view = ring.ring.view;
    const req = { id: 0, gref: 0 };
    let posted = 0;
    while (ring.freeRequests() > 0) {
      const i = ring.reqProdPvt & this.mask;
      req.id = i;
      req.gref = this.d.grefs[i]!;
      netifRxRequest.encode(view, ring.nextRequestSlot(), req);
      posted++;
    }
    if (posted > 0 && ring.pushRequests()) this.d.notify();
  }

  /** Handles answered frames; returns responses consumed. */
  poll(): number {
    if (this.stopped) return 0;
    const ring = this.d.ring;
    let done = 0;
    while (done < RX_BUDGET) {
      const avail = ring.unconsumedResponses();
      if (avail === RING_OVERFLOW) {
        this.stop();
        this.d.broken(`RX ring: ${(ring.ring.rspProd - ring.rspCons) >>> 0} responses published for ${(ring.reqProdPvt - ring.rspCons) >>> 0} requests`);
        return done;
      }
      if (avail === 0) {
        this.fill();
        if (!ring.finalCheckForResponses()) break;
        continue;
      }
      const used = this.frame(avail);
      done += used;
      this.responses += used;
      // Buffers go back in small batches: a backend short of them resumes sooner.
      if (ring.freeRequests() >= REFILL_BATCH) this.fill();
    }
    this.gro.flush();
    this.fill();
    // Budget spent with responses left: poll again after the event loop had its turn (NAPI's
    // reschedule). No event will come for them: rsp_event is armed only when we run dry.
    if (done >= RX_BUDGET && !this.repoll) {
      this.repoll = setImmediate(() => {
        this.repoll = null;
        this.poll();
      });
    }
    return done;
  }

  /** One frame: its first slot, extra-info slots, fragments. Returns slots consumed. */
  private frame(avail: number): number {
    const ring = this.d.ring;
    const rsp = this.rsp;
    let used = 0;
    let n = 0;
    let bad = false;
    offloadFromRxFlags(0, this.offload);
    let flags = 0;
    let first = true;
    let more = true;
    while (more) {
      if (used >= avail || n >= MAX_SLOTS) {
        // The backend published part of a frame (or an absurdly long one): drop what we have.
        bad = true;
        break;
      }
      const idx = ring.rspCons & this.mask;
      netifRxResponse.decode(ring.takeResponse(), 0, rsp);
      used++;
      if (first) {
        flags = rsp.flags;
        offloadFromRxFlags(rsp.flags, this.offload);
      }
      if (rsp.status < 0 || rsp.offset + rsp.status > PAGE) bad = true;
      else {
        this.slotBuf[n] = idx;
        this.slotOff[n] = rsp.offset;
        this.slotLen[n] = rsp.status;
        n++;
      }
      // Extra info follows the first slot.
      if (first && flags & NETRXF_extra_info) {
        let extraMore = true;
        while (extraMore) {
          if (used >= avail) {
            bad = true;
            break;
          }
          const v = ring.takeResponse();
          used++;
          const type = v.getUint8(0);
          extraMore = (v.getUint8(1) & XEN_NETIF_EXTRA_FLAG_MORE) !== 0;
          if (type === XEN_NETIF_EXTRA_TYPE_GSO) {
            const gsoType = v.getUint8(4);
            this.offload.gsoSize = v.getUint16(2, true);
            this.offload.gsoType = gsoType === XEN_NETIF_GSO_TYPE_TCPV4 || gsoType === XEN_NETIF_GSO_TYPE_TCPV6 ? gsoType : 0;
            if (this.offload.gsoType === 0 || this.offload.gsoSize === 0) bad = true;
          }
        }
      }
      more = ((first ? flags : rsp.flags) & NETRXF_more_data) !== 0;
      first = false;
    }
    if (bad || n === 0) {
      this.errors++;
      return used;
    }
    let len = 0;
    for (let k = 0; k < n; k++) len += this.slotLen[k]!;
    const pages = this.d.pages;
    const firstPage = pages[this.slotBuf[0]!]!;
    const sniff = this.d.sniffer();
    if (sniff && n === 1 && sniff(firstPage.subarray(this.slotOff[0]!, this.slotOff[0]! + this.slotLen[0]!))) return used;
    if (n === 1 && !this.offload.csumBlank && this.offload.gsoType === 0) {
      const off = this.slotOff[0]!;
      if (this.gro.add(firstPage.subarray(off, off + len), len, this.offload.dataValidated)) {
        this.packets++;
        this.bytes += len;
        return used;
      }
    } else {
      this.gro.flush();
    }
    const hdrLen = Math.min(this.slotLen[0]!, 256);
    if (!vnetFromOffload(this.offload, firstPage.subarray(this.slotOff[0]!, this.slotOff[0]! + hdrLen), hdrLen, this.vnet)) {
      this.drops++;
      return used;
    }
    encodeVnetHdr(this.vnetBuf, this.vnet);
    const segs = this.segs;
    for (let k = 0; k < n; k++) {
      segs[2 * k] = this.d.offs[this.slotBuf[k]!]! + this.slotOff[k]!;
      segs[2 * k + 1] = this.slotLen[k]!;
    }
    try {
      if (native().writevSegs(this.d.tapFd, this.vnetBuf, null, this.d.mem, segs, n) === null) this.drops++;
      else {
        this.packets++;
        this.bytes += len;
      }
    } catch {
      this.drops++; // eth is down in the guest: as a NIC would, drop
    }
    return used;
  }
}

