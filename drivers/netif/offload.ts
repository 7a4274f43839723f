// Checksum and segmentation offload between a TAP's vnet header and netif's flags and GSO
// extra info, for both ends of the network split driver:
//
//   guest stack -> netfront TAP (vnet) -> TX request flags + GSO extra -> netback -> dom0 TAP (vnet)
//   dom0 TAP (vnet) -> netback -> RX response flags + GSO extra -> netfront -> guest TAP (vnet)
//
// Mapping (Linux xen-netfront/xen-netback):
//   vnet NEEDS_CSUM (CHECKSUM_PARTIAL)  <->  csum_blank + data_validated
//   vnet DATA_VALID (UNNECESSARY)       <->  data_validated
//   vnet GSO_TCPV4 / GSO_TCPV6, size    <->  extra GSO {type TCPV4 / TCPV6, size}
// netif has no csum_start/csum_offset: the end that writes a vnet header finds them in the
// packet's own headers (net/csum-setup.ts). Neither TAP is given ECN or UDP segmentation
// offload, so those never arrive; a packet asking for them is refused.
import {
  NETRXF_csum_blank,
  NETRXF_data_validated,
  NETTXF_csum_blank,
  NETTXF_data_validated,
  XEN_NETIF_GSO_TYPE_NONE,
  XEN_NETIF_GSO_TYPE_TCPV4,
  XEN_NETIF_GSO_TYPE_TCPV6,
} from '../wire/netif.js';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  type VnetHdr,
} from '../../net/vnet-hdr.js';
import { findChecksum, newCsumPlace } from '../../net/csum-setup.js';

/** What a packet carries besides its bytes, in netif's terms. */
export interface PacketOffload {
  csumBlank: boolean;
  dataValidated: boolean;
  /** XEN_NETIF_GSO_TYPE_NONE / TCPV4 / TCPV6 */
  gsoType: number;
  gsoSize: number;
}

export function newPacketOffload(): PacketOffload {
  return { csumBlank: false, dataValidated: false, gsoType: XEN_NETIF_GSO_TYPE_NONE, gsoSize: 0 };
}

/** From a vnet header the kernel wrote (netfront TX, netback RX). False: a GSO kind netif
 * cannot carry (the TAP was not offered it, so only a broken kernel would send it). */
export function offloadFromVnet(v: VnetHdr, out: PacketOffload): boolean {
  out.csumBlank = (v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
  out.dataValidated = out.csumBlank || (v.flags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0;
  out.gsoSize = 0;
  switch (v.gsoType) {
    case VIRTIO_NET_HDR_GSO_NONE:
      out.gsoType = XEN_NETIF_GSO_TYPE_NONE;
      return true;
    case VIRTIO_NET_HDR_GSO_TCPV4:
      out.gsoType = XEN_NETIF_GSO_TYPE_TCPV4;
      break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
      out.gsoType = XEN_NETIF_GSO_TYPE_TCPV6;
      break;
    default:
      return false;
  }
  out.gsoSize = v.gsoSize;
  return v.gsoSize > 0;
}

export function txFlagsOf(o: PacketOffload): number {
  return (o.csumBlank ? NETTXF_csum_blank : 0) | (o.dataValidated ? NETTXF_data_validated : 0);
}

export function rxFlagsOf(o: PacketOffload): number {
  return (o.csumBlank ? NETRXF_csum_blank : 0) | (o.dataValidated ? NETRXF_data_validated : 0);
}

export function offloadFromTxFlags(flags: number, out: PacketOffload): void {
  out.csumBlank = (flags & NETTXF_csum_blank) !== 0;
  out.dataValidated = (flags & NETTXF_data_validated) !== 0;
  out.gsoType = XEN_NETIF_GSO_TYPE_NONE;
  out.gsoSize = 0;
}

export function offloadFromRxFlags(flags: number, out: PacketOffload): void {
  out.csumBlank = (flags & NETRXF_csum_blank) !== 0;
  out.dataValidated = (flags & NETRXF_data_validated) !== 0;
  out.gsoType = XEN_NETIF_GSO_TYPE_NONE;
  out.gsoSize = 0;
}

const place = newCsumPlace();

/**
 * The vnet header for a packet with offload `o` whose first `hdrLen` bytes are `hdr` (a private
 * copy). Returns false when the packet must be dropped: checksum or GSO requested but its
 * headers are not TCP/UDP over IP that we can place, GSO of the wrong IP version, or a GSO size
 * of zero (Linux netback: "GSO size must not be zero", checksum_setup failures).
 */
export function vnetFromOffload(o: PacketOffload, hdr: Uint8Array, hdrLen: number, out: VnetHdr): boolean {
  out.flags = 0;
  out.gsoType = VIRTIO_NET_HDR_GSO_NONE;
  out.gsoSize = 0;
  out.hdrLen = 0;
  out.csumStart = 0;
  out.csumOffset = 0;
  if (o.gsoType !== XEN_NETIF_GSO_TYPE_NONE) {
    if (o.gsoSize === 0 || !findChecksum(hdr, hdrLen, place) || place.proto !== 6) return false;
    if (o.gsoType === XEN_NETIF_GSO_TYPE_TCPV4 && place.ipVersion === 4) out.gsoType = VIRTIO_NET_HDR_GSO_TCPV4;
    else if (o.gsoType === XEN_NETIF_GSO_TYPE_TCPV6 && place.ipVersion === 6) out.gsoType = VIRTIO_NET_HDR_GSO_TCPV6;
    else return false;
    out.gsoSize = o.gsoSize;
    out.hdrLen = place.hdrLen;
    out.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    out.csumStart = place.csumStart;
    out.csumOffset = place.csumOffset;
    return true;
  }
  if (o.csumBlank) {
    if (!findChecksum(hdr, hdrLen, place)) return false;
    out.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    out.csumStart = place.csumStart;
    out.csumOffset = place.csumOffset;
    out.hdrLen = place.hdrLen;
    return true;
  }
  if (o.dataValidated) out.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  return true;
}
