// Guest -> world: netback's TX path (Linux xen-netback netback.c, xenvif_tx_action).
//
// Per packet: copy its request slots out of the shared ring once (first request, extra-info
// slots, fragments), judge the private copies exactly as Linux netback does, charge the
// vif's rate limit, then hand the bytes to the vif's TAP in ONE writev: a vnet header built
// from the netif flags, a private copy of the packet's first bytes (the headers we parsed to
// build that vnet header, so the guest cannot change them afterwards), and the rest straight
// from the guest's granted pages, pinned (GTF_reading) with the hypervisor's grant checks for
// the duration of the call. The kernel copies the frame once; there is no copy in JS.
//
// What a frontend can get wrong, and what it costs it (Linux's classification):
//   fatal, the vif is disconnected: producer index impossible (more requests than the ring
//   holds), a packet announcing more slots than are published, more than 20 slots, a slot
//   with offset + size past its page, an extra-info slot of an unknown type or missing, a
//   GSO extra of size 0 or unknown type;
//   dropped with an error response: more than 18 slots, a fragment larger than what remains
//   of the packet, a packet (or its first slot) shorter than an Ethernet header, a grant
//   that is invalid, revoked or not ours, headers we cannot place a checksum in.
import { acquire, release, type MappedGrantTable } from '../../../drivers/grant/grant-table.js';
import { RING_OVERFLOW, type BackRing } from '../../../drivers/ring/shared-ring.js';
import {
  NETIF_RSP_ERROR,
  NETIF_RSP_NULL,
  NETIF_RSP_OKAY,
  NETIF_TX_SLOT_SIZE,
  NETTXF_extra_info,
  NETTXF_more_data,
  XEN_NETBK_LEGACY_SLOTS_MAX,
  XEN_NETIF_EXTRA_FLAG_MORE,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_EXTRA_TYPE_MAX,
  XEN_NETIF_EXTRA_TYPE_NONE,
  XEN_NETIF_GSO_TYPE_TCPV4,
  XEN_NETIF_GSO_TYPE_TCPV6,
  XEN_NETIF_NR_SLOTS_MIN,
  netifTxRequest,
  netifTxResponse,
  type NetifTxRequest,
} from '../../../drivers/wire/netif.js';
import { newPacketOffload, offloadFromTxFlags, vnetFromOffload } from '../../../drivers/netif/offload.js';
import { encodeVnetHdr, newVnetHdr, VNET_HDR_LEN } from '../../../net/vnet-hdr.js';
import { ETH_HLEN } from '../../../net/csum-setup.js';
import { native } from '../../../native/index.js';
import { TcpGro } from '../../../net/gro.js';
import type { TokenBucket } from './rate-limit.js';
import type { VifMetrics } from './metrics.js';

const PAGE = 4096;
/** Bytes of a packet copied privately (and parsed) before it goes to the TAP. */
export const TX_HEADER_COPY = 256;
/** Extra-info slots one packet may carry (one per type at most). */
const MAX_EXTRAS = XEN_NETIF_EXTRA_TYPE_MAX - 1;
/** Packets per run before we yield to the event loop (other vifs, xenstored...). */
export const TX_BUDGET = 64;

export interface TxDeps {
  ring: BackRing;
  /** The guest's whole memory. */
  memory: SharedArrayBuffer;
  grants: MappedGrantTable;
  tapFd: number;
  metrics: VifMetrics;
  limiter: TokenBucket | null;
  /** A protocol violation: disconnect the vif and say why. */
  fatal(reason: string): void;
  /** Responses were pushed and the frontend asked to hear about it. */
  notify(): void;
  /** Run again later (rate limiter wait, or budget exhausted). */
  schedule(ms: number): void;
}

type Verdict = 'none' | 'packet' | 'fatal';

export class TxPath {
  private readonly raw = new Uint8Array(NETIF_TX_SLOT_SIZE);
  private readonly rawView = new DataView(this.raw.buffer);
  /** Data slots of the packet being handled (private, decoded copies). */
  private readonly slots: NetifTxRequest[] = Array.from({ length: XEN_NETBK_LEGACY_SLOTS_MAX }, () => ({ gref: 0, offset: 0, flags: 0, id: 0, size: 0 }));
  private nSlots = 0;
  private nExtras = 0;
  /** Bytes of each data slot (the first slot's is what the fragments leave of `size`). */
  private readonly lens = new Int32Array(XEN_NETBK_LEGACY_SLOTS_MAX);
  private totalSize = 0;
  private dropReason: string | null = null;
  private readonly offload = newPacketOffload();
  /** A packet that passed judgement but waits for rate-limit tokens. */
  private held = false;

  private readonly vnet = newVnetHdr();
  private readonly vnetBuf = new Uint8Array(VNET_HDR_LEN);
  private readonly hdrBuf = new Uint8Array(TX_HEADER_COPY);
  private readonly frames = new Int32Array(XEN_NETBK_LEGACY_SLOTS_MAX);
  /** (offset, length) in guest memory of what follows the private header copy. */
  private readonly segs = new Float64Array(XEN_NETBK_LEGACY_SLOTS_MAX * 2);
  /** hdrBuf cut to the header bytes copied (kept while the length repeats). */
  private hdrView = this.hdrBuf.subarray(0, 0);
  private readonly u8: Uint8Array;
  private stopped = false;
  private readonly rsp = { id: 0, status: 0 };
  /** Consecutive MTU-sized TCP segments go to the TAP merged (Linux: napi_gro_receive). */
  private readonly gro: TcpGro;
  private readonly pair: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)];

  constructor(private readonly d: TxDeps) {
    this.u8 = new Uint8Array(d.memory);
    this.gro = new TcpGro((vnet, frame) => {
      this.pair[0] = vnet;
      this.pair[1] = frame;
      try {
        return native().writev(d.tapFd, this.pair) !== null;
      } catch {
        return false;
      }
    });
  }

  /** Segments merged by GRO so far (frames the TAP never had to take one by one). */
  get groMerged(): number {
    return this.gro.merged;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Handles up to `budget` packets. Returns how many requests it consumed (0: no work). */
  run(budget = TX_BUDGET): number {
    const { ring, metrics } = this.d;
    let consumed = 0;
    let packets = 0;
    while (!this.stopped && packets < budget) {
      if (!this.held) {
        const before = ring.reqCons;
        const v = this.readPacket();
        consumed += (ring.reqCons - before) >>> 0;
        if (v === 'fatal') return consumed;
        if (v === 'none') break;
      }
      if (this.dropReason === null && this.d.limiter) {
        const wait = this.d.limiter.take(this.totalSize);
        if (wait > 0) {
          if (!this.held) metrics.txRateLimited++;
          this.held = true;
          this.d.schedule(wait);
          break;
        }
      }
      this.held = false;
      const ok = this.dropReason === null && this.transmit();
      this.respond(ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
      packets++;
      if (ok) {
        metrics.txPackets++;
        metrics.txBytes += this.totalSize;
      } else {
        metrics.txDrops++;
      }
      // Each packet's buffers go back at once (the frontend may be waiting for them).
      if (ring.pushResponses()) this.d.notify();
    }
    this.gro.flush();
    if (consumed > 0) {
      metrics.txSlots += consumed;
      metrics.txBatches++;
    }
    if (ring.pushResponses()) this.d.notify();
    if (!this.stopped && !this.held && packets >= budget) this.d.schedule(0);
    return consumed;
  }

  private fatal(reason: string): Verdict {
    this.stopped = true;
    this.d.fatal(reason);
    return 'fatal';
  }

  /** Copies one packet's slots out of the ring and judges them. */
  private readPacket(): Verdict {
    const ring = this.d.ring;
    let avail = ring.unconsumedRequests();
    if (avail === RING_OVERFLOW) {
      return this.fatal(`TX ring: req_prod ${ring.ring.reqProd} claims more requests than the ring holds (rsp_prod ${ring.rspProdPvt}, ring of ${ring.size})`);
    }
    if (avail === 0) {
      if (!ring.finalCheckForRequests()) return 'none';
      avail = ring.unconsumedRequests();
      if (avail === RING_OVERFLOW) return this.readPacket();
      if (avail === 0) return 'none';
    }
    this.nSlots = 0;
    this.nExtras = 0;
    this.dropReason = null;
    const first = this.takeSlot();
    avail--;
    offloadFromTxFlags(first.flags, this.offload);

    if (first.flags & NETTXF_extra_info) {
      let more = true;
      while (more) {
        if (avail-- <= 0) return this.fatal('TX: missing extra info (packet not fully published)');
        if (this.nExtras >= MAX_EXTRAS) return this.fatal(`TX: more than ${MAX_EXTRAS} extra-info slots`);
        ring.copyRequest(this.raw, 0);
        this.nExtras++;
        const type = this.raw[0]!;
        const flags = this.raw[1]!;
        if (type === XEN_NETIF_EXTRA_TYPE_NONE || type >= XEN_NETIF_EXTRA_TYPE_MAX) return this.fatal(`TX: invalid extra info type ${type}`);
        if (type === XEN_NETIF_EXTRA_TYPE_GSO) {
          const size = this.rawView.getUint16(2, true);
          const gsoType = this.raw[4]!;
          if (size === 0) return this.fatal('TX: GSO size must not be zero');
          if (gsoType !== XEN_NETIF_GSO_TYPE_TCPV4 && gsoType !== XEN_NETIF_GSO_TYPE_TCPV6) return this.fatal(`TX: bad GSO type ${gsoType}`);
          this.offload.gsoType = gsoType;
          this.offload.gsoSize = size;
        }
        more = (flags & XEN_NETIF_EXTRA_FLAG_MORE) !== 0;
      }
    }

    // Fragments: Linux xenvif_count_requests.
    let remaining = first.size;
    let last = first;
    while (last.flags & NETTXF_more_data) {
      if (this.nSlots >= XEN_NETBK_LEGACY_SLOTS_MAX) return this.fatal(`TX: malicious frontend using more than ${XEN_NETBK_LEGACY_SLOTS_MAX} slots for one packet`);
      if (avail-- <= 0) return this.fatal('TX: packet asks for more slots than the frontend published');
      last = this.takeSlot();
      if (this.dropReason === null && last.size > remaining) {
        this.dropReason = `fragment of ${last.size} bytes larger than the ${remaining} left of the packet`;
      }
      remaining = Math.max(0, remaining - last.size);
      if (last.offset + last.size > PAGE) return this.fatal(`TX: slot crosses its page (offset ${last.offset} + size ${last.size})`);
    }
    if (this.dropReason === null && this.nSlots > XEN_NETIF_NR_SLOTS_MIN) this.dropReason = `packet of ${this.nSlots} slots (limit ${XEN_NETIF_NR_SLOTS_MIN})`;
    // The first slot holds what the fragments leave of the packet.
    this.lens[0] = remaining;
    for (let i = 1; i < this.nSlots; i++) this.lens[i] = this.slots[i]!.size;
    this.totalSize = first.size;
    if (first.offset + remaining > PAGE) return this.fatal(`TX: first slot crosses its page (offset ${first.offset} + size ${remaining})`);
    if (this.dropReason === null && (first.size < ETH_HLEN || remaining < ETH_HLEN)) this.dropReason = `packet of ${first.size} bytes (first slot ${remaining}) shorter than an Ethernet header`;
    return 'packet';
  }

  private takeSlot(): NetifTxRequest {
    this.d.ring.copyRequest(this.raw, 0);
    const s = netifTxRequest.decode(this.rawView, 0, this.slots[this.nSlots]!);
    this.nSlots++;
    return s;
  }

  /** Pins the packet's grants, writes it to the TAP, unpins. */
  private transmit(): boolean {
    const { grants, metrics } = this.d;
    const n = this.nSlots;
    let pinned = 0;
    let ok = true;
    for (; pinned < n; pinned++) {
      const s = this.slots[pinned]!;
      const frame = acquire(grants, s.gref, 0, false);
      if (frame < 0) {
        ok = false;
        this.dropReason = `grant ${s.gref} refused (${frame})`;
        break;
      }
      this.frames[pinned] = frame;
    }
    if (ok && n === 1 && !this.offload.csumBlank && this.offload.gsoType === 0) {
      // A single-slot frame with its checksums filled in: GRO copies it (privately) and may
      // merge it with its neighbours.
      const base = this.frames[0]! * PAGE + this.slots[0]!.offset;
      if (this.gro.add(this.u8.subarray(base, base + this.totalSize), this.totalSize, this.offload.dataValidated)) {
        for (let i = 0; i < pinned; i++) release(grants, this.slots[i]!.gref, false);
        return true;
      }
    } else {
      this.gro.flush(); // keep the order of what GRO holds and this frame
    }
    if (ok) {
      // Private copy of the headers, gathered across slots if the frontend split them.
      const want = Math.min(TX_HEADER_COPY, this.totalSize);
      let have = 0;
      let slot = 0;
      let within = 0;
      while (have < want && slot < n) {
        const base = this.frames[slot]! * PAGE + this.slots[slot]!.offset;
        const take = Math.min(want - have, this.lens[slot]!);
        this.hdrBuf.set(this.u8.subarray(base, base + take), have);
        have += take;
        within = take;
        if (take === this.lens[slot]!) {
          slot++;
          within = 0;
        }
      }
      if (!vnetFromOffload(this.offload, this.hdrBuf, have, this.vnet)) {
        ok = false;
        this.dropReason = 'headers do not allow the requested checksum/GSO offload';
      } else {
        encodeVnetHdr(this.vnetBuf, this.vnet);
        const segs = this.segs;
        let nSegs = 0;
        for (let i = slot; i < n; i++) {
          const base = this.frames[i]! * PAGE + this.slots[i]!.offset;
          const start = i === slot ? within : 0;
          if (start < this.lens[i]!) {
            segs[2 * nSegs] = base + start;
            segs[2 * nSegs + 1] = this.lens[i]! - start;
            nSegs++;
          }
        }
        if (have !== this.hdrView.length) this.hdrView = this.hdrBuf.subarray(0, have);
        try {
          ok = native().writevSegs(this.d.tapFd, this.vnetBuf, this.hdrView, this.u8, segs, nSegs) !== null;
        } catch {
          ok = false; // EIO while the vif is down: the frame is dropped, as a real NIC would
        }
        if (ok) {
          if (this.offload.gsoType) metrics.txGso++;
          if (this.offload.csumBlank) metrics.txCsumOffload++;
        }
      }
    }
    for (let i = 0; i < pinned; i++) release(grants, this.slots[i]!.gref, false);
    return ok;
  }

  /** One response per request slot, in ring order: the first slot, its extras (NULL), then
   * the fragments. */
  private respond(status: number): void {
    const ring = this.d.ring;
    const view = ring.ring.view;
    const rsp = this.rsp;
    rsp.id = this.slots[0]!.id;
    rsp.status = status;
    netifTxResponse.encode(view, ring.nextResponseSlot(), rsp);
    rsp.id = 0;
    rsp.status = NETIF_RSP_NULL;
    for (let i = 0; i < this.nExtras; i++) netifTxResponse.encode(view, ring.nextResponseSlot(), rsp);
    rsp.status = status;
    for (let i = 1; i < this.nSlots; i++) {
      rsp.id = this.slots[i]!.id;
      netifTxResponse.encode(view, ring.nextResponseSlot(), rsp);
    }
  }
}
