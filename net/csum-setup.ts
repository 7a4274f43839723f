// Where a packet's transport checksum lives, found by reading its headers: what Linux's
// skb_checksum_setup() does for netback and netfront. netif carries only "checksum blank" and
// a GSO type, while a TAP's vnet header wants csum_start/csum_offset (and hdr_len for GSO),
// so each end that turns netif flags into a vnet header must look at the headers itself.
//
// It reads a PRIVATE copy of the first bytes of the frame (the peer may still be writing the
// shared page) and trusts nothing in it: every offset is checked against the bytes we have.
// Handles Ethernet (+ one 802.1Q tag), IPv4 (not fragments) and IPv6 with its extension
// headers (hop-by-hop, routing, destination options), then TCP or UDP.

export const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const NEXTHDR_HOP = 0;
const NEXTHDR_ROUTING = 43;
const NEXTHDR_DEST = 60;

export interface CsumPlace {
  /** Offset of the transport header from the start of the frame. */
  csumStart: number;
  /** Offset of the checksum field within it. */
  csumOffset: number;
  /** Bytes of all headers through TCP's (0 for UDP). */
  hdrLen: number;
  /** 4 or 6. */
  ipVersion: number;
  /** IPPROTO_TCP or IPPROTO_UDP. */
  proto: number;
}

export function newCsumPlace(): CsumPlace {
  return { csumStart: 0, csumOffset: 0, hdrLen: 0, ipVersion: 0, proto: 0 };
}

/** Fills `out` and returns true when `h[0..len)` holds parseable headers of a TCP or UDP
 * packet over IPv4/IPv6; false otherwise (the caller drops a packet it cannot place). */
export function findChecksum(h: Uint8Array, len: number, out: CsumPlace): boolean {
  if (len > h.length) len = h.length;
  if (len < ETH_HLEN) return false;
  let off = 12;
  let type = (h[off]! << 8) | h[off + 1]!;
  off += 2;
  if (type === ETH_P_8021Q) {
    if (len < off + 4) return false;
    type = (h[off + 2]! << 8) | h[off + 3]!;
    off += 4;
  }
  let proto: number;
  if (type === ETH_P_IP) {
    if (len < off + 20) return false;
    const ihl = (h[off]! & 0x0f) * 4;
    if (h[off]! >>> 4 !== 4 || ihl < 20 || len < off + ihl) return false;
    const frag = ((h[off + 6]! << 8) | h[off + 7]!) & 0x3fff; // MF or a fragment offset
    if (frag !== 0) return false;
    proto = h[off + 9]!;
    off += ihl;
    out.ipVersion = 4;
  } else if (type === ETH_P_IPV6) {
    if (len < off + 40 || h[off]! >>> 4 !== 6) return false;
    proto = h[off + 6]!;
    off += 40;
    // At most a few extension headers: a packet with more is not one we place.
    for (let i = 0; i < 8 && (proto === NEXTHDR_HOP || proto === NEXTHDR_ROUTING || proto === NEXTHDR_DEST); i++) {
      if (len < off + 8) return false;
      const next = h[off]!;
      off += (h[off + 1]! + 1) * 8;
      proto = next;
    }
    out.ipVersion = 6;
  } else {
    return false;
  }
  if (proto === IPPROTO_TCP) {
    if (len < off + 20) return false;
    const doff = (h[off + 12]! >>> 4) * 4;
    if (doff < 20) return false;
    out.csumOffset = 16;
    out.hdrLen = off + doff;
  } else if (proto === IPPROTO_UDP) {
    if (len < off + 8) return false;
    out.csumOffset = 6;
    out.hdrLen = off + 8;
  } else {
    return false;
  }
  if (off > 0xffff) return false;
  out.csumStart = off;
  out.proto = proto;
  return true;
}
