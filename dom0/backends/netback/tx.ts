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
// What a frontend can get wrong, and what it costs it, is judged by tx-request.ts (Linux's
// classification: dropped with error responses, or fatal and the vif is disconnected); each
// is counted under its reason and logged at a bounded rate (metrics.ts).
import { acquire, release, type MappedGrantTable } from '../../../drivers/grant/grant-table.js';
import { RING_OVERFLOW, type BackRing } from '../../../drivers/ring/shared-ring.js';
import { NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, netifTxResponse } from '../../../drivers/wire/netif.js';
import { vnetFromOffload } from '../../../drivers/netif/offload.js';
import { encodeVnetHdr, newVnetHdr, VNET_HDR_LEN } from '../../../net/vnet-hdr.js';
import { native } from '../../../native/index.js';
import { readTxPacket, TX_MAX_DATA_SLOTS, TxPacket, type TxDropReason, type TxFatalReason, type TxVerdict } from './tx-request.js';
import { TcpGro } from '../../../net/gro.js';
import type { TokenBucket } from './rate-limit.js';
import type { VifMetrics } from './metrics.js';

const PAGE = 4096;
/** Bytes of a packet copied privately (and parsed) before it goes to the TAP. */
export const TX_HEADER_COPY = 256;
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
  /** A protocol violation: disconnect the vif and say why (already counted). */
  fatal(reason: string): void;
  /** Responses were pushed and the frontend asked to hear about it. */
  notify(): void;
  /** Run again later (rate limiter wait, or budget exhausted). */
  schedule(ms: number): void;
}

type Verdict = 'none' | 'packet' | 'fatal';

export class TxPath {
  /** The packet being handled: private, decoded copies of its slots (tx-request.ts). */
  private readonly pkt = new TxPacket();
  private verdict: TxVerdict = { kind: 'ok' };
  private readonly next = (dst: Uint8Array): void => this.d.ring.copyRequest(dst, 0);
  /** A packet that passed judgement but waits for rate-limit tokens. */
  private held = false;

  private readonly vnet = newVnetHdr();
  private readonly vnetBuf = new Uint8Array(VNET_HDR_LEN);
  private readonly hdrBuf = new Uint8Array(TX_HEADER_COPY);
  private readonly frames = new Int32Array(TX_MAX_DATA_SLOTS);
  /** (offset, length) in guest memory of what follows the private header copy. */
  private readonly segs = new Float64Array(TX_MAX_DATA_SLOTS * 2);
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
      if (this.verdict.kind === 'ok' && this.d.limiter) {
        const wait = this.d.limiter.take(this.pkt.totalSize);
        if (wait > 0) {
          if (!this.held) metrics.tx_rate_limited++;
          this.held = true;
          this.d.schedule(wait);
          break;
        }
      }
      this.held = false;
      const ok = this.verdict.kind === 'ok' && this.transmit();
      this.respond(ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
      packets++;
      if (ok) {
        metrics.tx_packets++;
        metrics.tx_bytes += this.pkt.totalSize;
      } else {
        metrics.tx_drops++;
        if (this.verdict.kind === 'drop') metrics.peerErrors.report(this.verdict.reason, `TX: dropped: ${this.verdict.detail}`);
      }
      // Each packet's buffers go back at once (the frontend may be waiting for them).
      if (ring.pushResponses()) this.d.notify();
    }
    this.gro.flush();
    if (consumed > 0) {
      metrics.tx_slots += consumed;
      metrics.tx_batches++;
    }
    if (ring.pushResponses()) this.d.notify();
    if (!this.stopped && !this.held && packets >= budget) this.d.schedule(0);
    return consumed;
  }

  private fatal(reason: TxFatalReason, detail: string): Verdict {
    this.stopped = true;
    this.d.metrics.peerErrors.count(reason);
    this.d.fatal(`TX: ${detail}`);
    return 'fatal';
  }

  /** Copies one packet's slots out of the ring and judges them (tx-request.ts). */
  private readPacket(): Verdict {
    const ring = this.d.ring;
    let avail = ring.unconsumedRequests();
    if (avail === RING_OVERFLOW) {
      return this.fatal('tx_fatal_ring', `ring: req_prod ${ring.ring.reqProd} claims more requests than the ring holds (rsp_prod ${ring.rspProdPvt}, ring of ${ring.size})`);
    }
    if (avail === 0) {
      if (!ring.finalCheckForRequests()) return 'none';
      avail = ring.unconsumedRequests();
      if (avail === RING_OVERFLOW) return this.readPacket();
      if (avail === 0) return 'none';
    }
    this.verdict = readTxPacket(this.next, avail, this.pkt);
    if (this.verdict.kind === 'fatal') return this.fatal(this.verdict.reason, this.verdict.detail);
    return 'packet';
  }

  /** A packet that passed judgement is dropped after all (its grants, its headers). */
  private drop(reason: TxDropReason, detail: string): void {
    this.verdict = { kind: 'drop', reason, detail };
  }

  /** Pins the packet's grants, writes it to the TAP, unpins. */
  private transmit(): boolean {
    const { grants, metrics } = this.d;
    const { slots, lens, offload, totalSize } = this.pkt;
    const n = this.pkt.nSlots;
    let pinned = 0;
    let ok = true;
    for (; pinned < n; pinned++) {
      const s = slots[pinned]!;
      // A fragment of no bytes is not read, so its grant is not looked at (Linux skips such
      // slots too: XSA-448).
      if (lens[pinned] === 0 && pinned > 0) {
        this.frames[pinned] = -1;
        continue;
      }
      const frame = acquire(grants, s.gref, 0, false);
      if (frame < 0) {
        ok = false;
        this.drop('tx_drop_grant', `grant ${s.gref} refused (${frame})`);
        break;
      }
      this.frames[pinned] = frame;
    }
    const unpin = () => {
      for (let i = 0; i < pinned; i++) if (this.frames[i]! >= 0) release(grants, slots[i]!.gref, false);
    };
    if (ok && n === 1 && !offload.csumBlank && offload.gsoType === 0) {
      // A single-slot frame with its checksums filled in: GRO copies it (privately) and may
      // merge it with its neighbours.
      const base = this.frames[0]! * PAGE + slots[0]!.offset;
      if (this.gro.add(this.u8.subarray(base, base + totalSize), totalSize, offload.dataValidated)) {
        unpin();
        return true;
      }
    } else {
      this.gro.flush(); // keep the order of what GRO holds and this frame
    }
    if (ok) {
      // Private copy of the headers, gathered across slots if the frontend split them.
      const want = Math.min(TX_HEADER_COPY, totalSize);
      let have = 0;
      let slot = 0;
      let within = 0;
      while (have < want && slot < n) {
        const take = Math.min(want - have, lens[slot]!);
        if (take > 0) {
          const base = this.frames[slot]! * PAGE + slots[slot]!.offset;
          this.hdrBuf.set(this.u8.subarray(base, base + take), have);
        }
        have += take;
        within = take;
        if (take === lens[slot]!) {
          slot++;
          within = 0;
        }
      }
      if (!vnetFromOffload(offload, this.hdrBuf, have, this.vnet)) {
        ok = false;
        this.drop('tx_drop_offload', 'headers do not allow the requested checksum/GSO offload');
      } else {
        encodeVnetHdr(this.vnetBuf, this.vnet);
        const segs = this.segs;
        let nSegs = 0;
        for (let i = slot; i < n; i++) {
          const start = i === slot ? within : 0;
          if (start < lens[i]!) {
            segs[2 * nSegs] = this.frames[i]! * PAGE + slots[i]!.offset + start;
            segs[2 * nSegs + 1] = lens[i]! - start;
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
          if (offload.gsoType) metrics.tx_gso++;
          if (offload.csumBlank) metrics.tx_csum_offload++;
        }
      }
    }
    unpin();
    return ok;
  }

  /** One response per request slot, in ring order: the first slot, its extras (NULL), then
   * the fragments. */
  private respond(status: number): void {
    const ring = this.d.ring;
    const view = ring.ring.view;
    const rsp = this.rsp;
    const { slots, nSlots, nExtras } = this.pkt;
    rsp.id = slots[0]!.id;
    rsp.status = status;
    netifTxResponse.encode(view, ring.nextResponseSlot(), rsp);
    rsp.id = 0;
    rsp.status = NETIF_RSP_NULL;
    for (let i = 0; i < nExtras; i++) netifTxResponse.encode(view, ring.nextResponseSlot(), rsp);
    rsp.status = status;
    for (let i = 1; i < nSlots; i++) {
      rsp.id = slots[i]!.id;
      netifTxResponse.encode(view, ring.nextResponseSlot(), rsp);
    }
  }
}
