// The header a TAP opened with IFF_VNET_HDR puts before every frame (struct virtio_net_hdr,
// 10 bytes, plus num_buffers: TUNSETVNETHDRSZ 12 in this project), little-endian on x86:
//   flags u8 @0, gso_type u8 @1, hdr_len u16 @2, gso_size u16 @4, csum_start u16 @6,
//   csum_offset u16 @8, num_buffers u16 @10
// It is how the kernel hands us (and takes from us) packets whose checksum is still to be
// filled in (NEEDS_CSUM, CHECKSUM_PARTIAL) or that are really a train of TCP segments (GSO).

export const VNET_HDR_LEN = 12;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

export interface VnetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function newVnetHdr(): VnetHdr {
  return { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
}

export function decodeVnetHdr(b: Uint8Array, into: VnetHdr = newVnetHdr()): VnetHdr {
  into.flags = b[0]!;
  into.gsoType = b[1]!;
  into.hdrLen = b[2]! | (b[3]! << 8);
  into.gsoSize = b[4]! | (b[5]! << 8);
  into.csumStart = b[6]! | (b[7]! << 8);
  into.csumOffset = b[8]! | (b[9]! << 8);
  return into;
}

export function encodeVnetHdr(b: Uint8Array, h: VnetHdr): void {
  b[0] = h.flags;
  b[1] = h.gsoType;
  b[2] = h.hdrLen & 0xff;
  b[3] = h.hdrLen >>> 8;
  b[4] = h.gsoSize & 0xff;
  b[5] = h.gsoSize >>> 8;
  b[6] = h.csumStart & 0xff;
  b[7] = h.csumStart >>> 8;
  b[8] = h.csumOffset & 0xff;
  b[9] = h.csumOffset >>> 8;
  b[10] = 0;
  b[11] = 0;
}
