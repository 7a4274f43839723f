// Generic receive offload for TCP, in software: what Linux's netback (napi_gro_receive on the
// guest's transmitted packets) and netfront (on what they receive) do before handing packets
// to the host's stack. Consecutive MTU-sized TCP segments of one flow are merged into one GSO
// frame, written to the TAP with one syscall and a vnet header asking the kernel to treat it
// as the train of segments it was; the stack behind the TAP then sees one packet instead of
// dozens. Without it, every MTU-sized frame costs a TAP write and a pass through the bridge
// and the receiving TCP stack: with netif offloads off, that is most of the data path's cost.
//
// As Linux's tcp4/6_gro_receive: only plain segments (ACK, maybe PSH; no SYN/FIN/RST/URG/ECE/
// CWR), IPv4 without options or fragments, IPv6 without extension headers, identical TCP
// options and acknowledgement numbers, the next sequence number in the flow, every segment the
// size of the first but the last (a shorter one ends the train). A segment whose checksum
// was not validated is checked before it is merged (the merged frame's checksum is computed
// by the kernel from the data, so a bad segment must not get in). Everything is copied into
// private memory: the sender cannot change a held segment afterwards.
import { encodeVnetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR_LEN } from './vnet-hdr.js';
import { fold, inetChecksum, sum16, sumWords } from './inet-csum.js';

const ETH_HLEN = 14;
const MAX_FRAME = 65535 + ETH_HLEN;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** Segments one GSO frame may carry (the kernel's own limit is 64). */
const MAX_SEGS = 44;

/** Writes one frame with its vnet header (12 bytes); false if it could not. */
export type FrameWriter = (vnet: Uint8Array, frame: Uint8Array) => boolean;

/** TCP's pseudo-header: addresses, protocol, TCP length (unfolded). */
function pseudoHeaderSum(f: Uint8Array, p: Parsed, tcpLen: number): number {
  const s = p.v6 ? sum16(f, p.l3 + 8, p.l3 + 40) : sum16(f, p.l3 + 12, p.l3 + 20);
  return s + 6 + tcpLen;
}

interface Parsed {
  v6: boolean;
  l3: number;
  l4: number;
  hdrEnd: number;
  payload: number;
  seq: number;
  ack: number;
  flags: number;
}

export class TcpGro {
  private readonly buf = new Uint8Array(MAX_FRAME + 64);
  private readonly stage = new Uint8Array(9216 + 64);
  private readonly vnet = new Uint8Array(VNET_HDR_LEN);
  private readonly plain = new Uint8Array(VNET_HDR_LEN);
  private held = 0; // bytes in buf
  private segs = 0;
  private mss = 0;
  private nextSeq = 0;
  private cur: Parsed = { v6: false, l3: 0, l4: 0, hdrEnd: 0, payload: 0, seq: 0, ack: 0, flags: 0 };
  private readonly p: Parsed = { v6: false, l3: 0, l4: 0, hdrEnd: 0, payload: 0, seq: 0, ack: 0, flags: 0 };
  /** Segments merged away (frames saved), for counters. */
  merged = 0;
  /** Frames written (merged or not). */
  written = 0;

  constructor(private readonly write: FrameWriter) {}

  /** Parses a plain TCP segment; false if it is not one GRO may merge. */
  private parse(f: Uint8Array, len: number, p: Parsed): boolean {
    if (len < ETH_HLEN + 40) return false;
    const type = (f[12]! << 8) | f[13]!;
    let l4: number;
    if (type === 0x0800) {
      if (f[14] !== 0x45 || f[23] !== 6) return false; // IPv4, no options, TCP
      if ((((f[20]! << 8) | f[21]!) & 0x3fff) !== 0) return false; // fragments
      if (((f[16]! << 8) | f[17]!) !== len - ETH_HLEN) return false; // no padding/trailer
      p.v6 = false;
      l4 = ETH_HLEN + 20;
    } else if (type === 0x86dd) {
      if (f[14]! >>> 4 !== 6 || f[20] !== 6) return false; // IPv6, next header TCP
      if (((f[18]! << 8) | f[19]!) !== len - ETH_HLEN - 40) return false;
      p.v6 = true;
      l4 = ETH_HLEN + 40;
    } else {
      return false;
    }
    const doff = (f[l4 + 12]! >>> 4) * 4;
    const flags = f[l4 + 13]!;
    if (doff < 20 || l4 + doff > len || (flags & ~(TCP_ACK | TCP_PSH)) !== 0 || !(flags & TCP_ACK)) return false;
    p.l3 = ETH_HLEN;
    p.l4 = l4;
    p.hdrEnd = l4 + doff;
    p.payload = len - p.hdrEnd;
    p.seq = ((f[l4 + 4]! << 24) | (f[l4 + 5]! << 16) | (f[l4 + 6]! << 8) | f[l4 + 7]!) >>> 0;
    p.ack = ((f[l4 + 8]! << 24) | (f[l4 + 9]! << 16) | (f[l4 + 10]! << 8) | f[l4 + 11]!) >>> 0;
    p.flags = flags;
    return p.payload > 0;
  }

  /** The TCP checksum of a segment checks out. */
  private static checksumOk(f: Uint8Array, p: Parsed, len: number): boolean {
    return fold(pseudoHeaderSum(f, p, len - p.l4) + sumWords(f, p.l4, len)) === 0xffff;
  }

  /** Can segment `p` of `f` follow what we hold? */
  private follows(f: Uint8Array, p: Parsed): boolean {
    const c = this.cur;
    const b = this.buf;
    if (p.v6 !== c.v6 || p.hdrEnd !== c.hdrEnd || p.seq !== this.nextSeq || p.ack !== c.ack) return false;
    if (p.payload > this.mss || this.held + p.payload > MAX_FRAME || this.segs >= MAX_SEGS) return false;
    if (c.flags & TCP_PSH) return false; // PSH ends a train
    const same = (from: number, to: number): boolean => {
      for (let i = from; i < to; i++) if (f[i] !== b[i]) return false;
      return true;
    };
    const l3 = p.l3;
    if (!same(0, 12)) return false; // MAC addresses
    if (p.v6) {
      // version, traffic class, flow label; hop limit; addresses
      if (!same(l3, l3 + 4) || f[l3 + 7] !== b[l3 + 7] || !same(l3 + 8, l3 + 40)) return false;
    } else if (f[l3 + 1] !== b[l3 + 1] || f[l3 + 8] !== b[l3 + 8] || !same(l3 + 12, l3 + 20)) {
      return false; // TOS, TTL, addresses
    }
    return same(p.l4, p.l4 + 4) && same(p.l4 + 20, p.hdrEnd); // ports, TCP options
  }

  /**
   * Offers one complete frame (`len` bytes of `frame`, no vnet header) whose checksums are
   * filled in (never a CHECKSUM_PARTIAL one). `validated`: they are known good.
   * Returns false when GRO does not take it: the caller then writes it itself (GRO has
   * flushed what it held first, so order is kept).
   */
  add(frame: Uint8Array, len: number, validated: boolean): boolean {
    // The frame may be in memory its sender can still write (a guest's granted page): copy it
    // once, then judge and use only the copy.
    if (len > this.stage.length) {
      this.flush();
      return false;
    }
    const f = this.stage;
    f.set(frame.subarray(0, len));
    const p = this.p;
    if (!this.parse(f, len, p) || (!validated && !TcpGro.checksumOk(f, p, len))) {
      this.flush();
      return false;
    }
    if (this.segs > 0 && this.follows(f, p)) {
      this.buf.set(f.subarray(p.hdrEnd, len), this.held);
      this.held += p.payload;
      this.segs++;
      this.merged++;
      this.nextSeq = (p.seq + p.payload) >>> 0;
      this.cur.flags |= p.flags & TCP_PSH;
      this.buf[this.cur.l4 + 13] = this.cur.flags;
      if (p.payload < this.mss) this.flush(); // a short segment ends the train
      return true;
    }
    this.flush();
    this.buf.set(f.subarray(0, len), 0);
    this.held = len;
    this.segs = 1;
    this.mss = p.payload;
    this.nextSeq = (p.seq + p.payload) >>> 0;
    Object.assign(this.cur, p);
    if (p.flags & TCP_PSH) this.flush();
    return true;
  }

  /** Writes what is held. Call at the end of every batch. */
  flush(): void {
    if (this.segs === 0) return;
    const b = this.buf;
    const c = this.cur;
    const len = this.held;
    this.written++;
    if (this.segs === 1) {
      // Untouched: its own checksums are valid.
      this.segs = 0;
      this.write(this.plain, b.subarray(0, len));
      return;
    }
    this.segs = 0;
    const tcpLen = len - c.l4;
    // IP lengths and the IPv4 header checksum.
    if (c.v6) {
      b[c.l3 + 4] = (len - ETH_HLEN - 40) >>> 8;
      b[c.l3 + 5] = (len - ETH_HLEN - 40) & 0xff;
    } else {
      b[c.l3 + 2] = (len - ETH_HLEN) >>> 8;
      b[c.l3 + 3] = (len - ETH_HLEN) & 0xff;
      b[c.l3 + 10] = 0;
      b[c.l3 + 11] = 0;
      const ipc = inetChecksum(b, c.l3, c.l3 + 20);
      b[c.l3 + 10] = ipc >>> 8;
      b[c.l3 + 11] = ipc & 0xff;
    }
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel adds the rest.
    const s = fold(pseudoHeaderSum(b, c, tcpLen));
    b[c.l4 + 16] = s >>> 8;
    b[c.l4 + 17] = s & 0xff;
    encodeVnetHdr(this.vnet, {
      flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
      gsoType: c.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
      gsoSize: this.mss,
      hdrLen: c.hdrEnd,
      csumStart: c.l4,
      csumOffset: 16,
    });
    this.write(this.vnet, b.subarray(0, len));
  }
}
