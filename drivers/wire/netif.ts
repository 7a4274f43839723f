// io/netif.h: the network split driver's wire format. Pure codecs over a DataView plus the
// header's constants under their C names; no state, no I/O.
//
// Two rings per queue. TX (guest -> world): 12-byte slots holding netif_tx_request, replaced
// in place by a 4-byte netif_tx_response; an extra-info descriptor (8 bytes) may occupy a
// request slot when the previous one carries NETTXF_extra_info or XEN_NETIF_EXTRA_FLAG_MORE.
// RX (world -> guest): 8-byte slots, netif_rx_request then netif_rx_response (or an extra
// info). Multi-byte fields are little-endian (x86).
//
// decode*(view, offset, into?) reads one struct; pass `into` to reuse an object on hot paths.
// Decode a private copy of the slot (BackRing.takeRequest), never the shared page.
import { ringEntries } from '../ring/shared-ring.js';

// ---- TX flags (NETTXF_*) ----
export const NETTXF_csum_blank = 1 << 0;
export const NETTXF_data_validated = 1 << 1;
export const NETTXF_more_data = 1 << 2;
export const NETTXF_extra_info = 1 << 3;

// ---- RX flags (NETRXF_*): bits 0 and 1 are the other way round from TX ----
export const NETRXF_data_validated = 1 << 0;
export const NETRXF_csum_blank = 1 << 1;
export const NETRXF_more_data = 1 << 2;
export const NETRXF_extra_info = 1 << 3;
/** Deprecated, kept for compatibility (netif.h). */
export const NETRXF_gso_prefix = 1 << 4;

// ---- Response status ----
export const NETIF_RSP_DROPPED = -2;
export const NETIF_RSP_ERROR = -1;
export const NETIF_RSP_OKAY = 0;
/** Response to an auxiliary (extra-info) slot. */
export const NETIF_RSP_NULL = 1;

// ---- Extra info ----
export const XEN_NETIF_EXTRA_TYPE_NONE = 0;
export const XEN_NETIF_EXTRA_TYPE_GSO = 1;
export const XEN_NETIF_EXTRA_TYPE_MCAST_ADD = 2;
export const XEN_NETIF_EXTRA_TYPE_MCAST_DEL = 3;
export const XEN_NETIF_EXTRA_TYPE_HASH = 4;
/** Xen's public header stops at HASH (MAX 5); Linux's copy adds XDP = 5, MAX = 6. */
export const XEN_NETIF_EXTRA_TYPE_XDP = 5;
export const XEN_NETIF_EXTRA_TYPE_MAX = 5;
export const XEN_NETIF_EXTRA_FLAG_MORE = 1 << 0;

export const XEN_NETIF_GSO_TYPE_NONE = 0;
export const XEN_NETIF_GSO_TYPE_TCPV4 = 1;
export const XEN_NETIF_GSO_TYPE_TCPV6 = 2;

/** Hash types carried in extra.u.hash.type are BIT NUMBERS (_XEN_NETIF_CTRL_HASH_TYPE_*). */
export const _XEN_NETIF_CTRL_HASH_TYPE_IPV4 = 0;
export const _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP = 1;
export const _XEN_NETIF_CTRL_HASH_TYPE_IPV6 = 2;
export const _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP = 3;
export const XEN_NETIF_CTRL_HASH_ALGORITHM_NONE = 0;
export const XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ = 1;

// ---- Limits ----
/** Slots per packet every backend must accept (older Linux MAX_SKB_FRAGS). */
export const XEN_NETIF_NR_SLOTS_MIN = 18;
export const XEN_NETIF_MAX_TX_SIZE = 0xffff;

// ---- Slot sizes and ring sizes ----
export const NETIF_TX_REQUEST_SIZE = 12;
export const NETIF_TX_RESPONSE_SIZE = 4;
export const NETIF_RX_REQUEST_SIZE = 8;
export const NETIF_RX_RESPONSE_SIZE = 8;
export const NETIF_EXTRA_INFO_SIZE = 8;
/** A ring slot is the union of request and response. */
export const NETIF_TX_SLOT_SIZE = 12;
export const NETIF_RX_SLOT_SIZE = 8;
export const XEN_NETIF_TX_RING_SIZE = ringEntries(NETIF_TX_SLOT_SIZE); // 256
export const XEN_NETIF_RX_RING_SIZE = ringEntries(NETIF_RX_SLOT_SIZE); // 256
export const NET_TX_RING_SIZE = XEN_NETIF_TX_RING_SIZE;
export const NET_RX_RING_SIZE = XEN_NETIF_RX_RING_SIZE;

// ---- XenStore keys ----
/** Keys the frontend writes under /local/domain/D/device/vif/N (or queue-N/ for the
 * per-queue ones when multi-queue-num-queues > 1). */
export const NETIF_FRONTEND_KEYS = {
  txRingRef: 'tx-ring-ref',
  rxRingRef: 'rx-ring-ref',
  eventChannel: 'event-channel',
  eventChannelTx: 'event-channel-tx',
  eventChannelRx: 'event-channel-rx',
  requestRxCopy: 'request-rx-copy',
  featureRxNotify: 'feature-rx-notify',
  featureSg: 'feature-sg',
  featureGsoTcpv4: 'feature-gso-tcpv4',
  featureGsoTcpv6: 'feature-gso-tcpv6',
  featureNoCsumOffload: 'feature-no-csum-offload',
  featureIpv6CsumOffload: 'feature-ipv6-csum-offload',
  requestMulticastControl: 'request-multicast-control',
  multiQueueNumQueues: 'multi-queue-num-queues',
  mtu: 'mtu',
} as const;

/** Features and keys the backend advertises under /local/domain/0/backend/vif/D/N. */
export const NETIF_BACKEND_KEYS = {
  featureSg: 'feature-sg',
  featureGsoTcpv4: 'feature-gso-tcpv4',
  featureGsoTcpv6: 'feature-gso-tcpv6',
  featureIpv6CsumOffload: 'feature-ipv6-csum-offload',
  featureRxCopy: 'feature-rx-copy',
  featureRxFlip: 'feature-rx-flip',
  featureMulticastControl: 'feature-multicast-control',
  featureSplitEventChannels: 'feature-split-event-channels',
  multiQueueMaxQueues: 'multi-queue-max-queues',
  hotplugStatus: 'hotplug-status',
} as const;

/** Prefix for per-queue keys: `queue-0/tx-ring-ref`. */
export function netifQueueKey(queue: number, key: string): string {
  return `queue-${queue}/${key}`;
}

// ---- netif_tx_request (12 B): gref u32@0, offset u16@4, flags u16@6, id u16@8, size u16@10 ----
export interface NetifTxRequest {
  gref: number;
  offset: number;
  flags: number;
  id: number;
  /** First slot of a packet: the whole packet's size; later slots: this fragment's. */
  size: number;
}

export const netifTxRequest = {
  size: NETIF_TX_REQUEST_SIZE,
  encode(v: DataView, o: number, f: NetifTxRequest): void {
    v.setUint32(o, f.gref, true);
    v.setUint16(o + 4, f.offset, true);
    v.setUint16(o + 6, f.flags, true);
    v.setUint16(o + 8, f.id, true);
    v.setUint16(o + 10, f.size, true);
  },
  decode(v: DataView, o: number, into?: NetifTxRequest): NetifTxRequest {
    const r = into ?? { gref: 0, offset: 0, flags: 0, id: 0, size: 0 };
    r.gref = v.getUint32(o, true);
    r.offset = v.getUint16(o + 4, true);
    r.flags = v.getUint16(o + 6, true);
    r.id = v.getUint16(o + 8, true);
    r.size = v.getUint16(o + 10, true);
    return r;
  },
};

// ---- netif_tx_response (4 B in a 12 B slot): id u16@0, status s16@2 ----
export interface NetifTxResponse {
  id: number;
  status: number;
}

export const netifTxResponse = {
  size: NETIF_TX_RESPONSE_SIZE,
  encode(v: DataView, o: number, f: NetifTxResponse): void {
    v.setUint16(o, f.id, true);
    v.setInt16(o + 2, f.status, true);
  },
  decode(v: DataView, o: number, into?: NetifTxResponse): NetifTxResponse {
    const r = into ?? { id: 0, status: 0 };
    r.id = v.getUint16(o, true);
    r.status = v.getInt16(o + 2, true);
    return r;
  },
};

// ---- netif_rx_request (8 B): id u16@0, pad u16@2, gref u32@4 ----
export interface NetifRxRequest {
  id: number;
  gref: number;
}

export const netifRxRequest = {
  size: NETIF_RX_REQUEST_SIZE,
  encode(v: DataView, o: number, f: NetifRxRequest): void {
    v.setUint16(o, f.id, true);
    v.setUint16(o + 2, 0, true);
    v.setUint32(o + 4, f.gref, true);
  },
  decode(v: DataView, o: number, into?: NetifRxRequest): NetifRxRequest {
    const r = into ?? { id: 0, gref: 0 };
    r.id = v.getUint16(o, true);
    r.gref = v.getUint32(o + 4, true);
    return r;
  },
};

// ---- netif_rx_response (8 B): id u16@0, offset u16@2, flags u16@4, status s16@6 ----
export interface NetifRxResponse {
  id: number;
  offset: number;
  flags: number;
  /** > 0: bytes received in this slot; <= 0: NETIF_RSP_*. */
  status: number;
}

export const netifRxResponse = {
  size: NETIF_RX_RESPONSE_SIZE,
  encode(v: DataView, o: number, f: NetifRxResponse): void {
    v.setUint16(o, f.id, true);
    v.setUint16(o + 2, f.offset, true);
    v.setUint16(o + 4, f.flags, true);
    v.setInt16(o + 6, f.status, true);
  },
  decode(v: DataView, o: number, into?: NetifRxResponse): NetifRxResponse {
    const r = into ?? { id: 0, offset: 0, flags: 0, status: 0 };
    r.id = v.getUint16(o, true);
    r.offset = v.getUint16(o + 2, true);
    r.flags = v.getUint16(o + 4, true);
    r.status = v.getInt16(o + 6, true);
    return r;
  },
};

// ---- netif_extra_info (8 B): type u8@0, flags u8@1, union u@2 (6 bytes) ----
//   gso:   size u16@2, type u8@4, pad u8@5, features u16@6
//   mcast: addr[6]@2
//   hash:  type u8@2, algorithm u8@3, value[4]@4 (read as a host-order u32, like Linux)
export interface NetifExtraGso {
  type: typeof XEN_NETIF_EXTRA_TYPE_GSO;
  flags: number;
  gso: { size: number; type: number; features: number };
}
export interface NetifExtraMcast {
  type: typeof XEN_NETIF_EXTRA_TYPE_MCAST_ADD | typeof XEN_NETIF_EXTRA_TYPE_MCAST_DEL;
  flags: number;
  /** 6-byte MAC address. */
  addr: Uint8Array;
}
export interface NetifExtraHash {
  type: typeof XEN_NETIF_EXTRA_TYPE_HASH;
  flags: number;
  hash: { type: number; algorithm: number; value: number };
}
/** Any other type (NONE, XDP, garbage): the 6 payload bytes, for the caller to reject. */
export interface NetifExtraOther {
  type: number;
  flags: number;
  raw: Uint8Array;
}
export type NetifExtraInfo = NetifExtraGso | NetifExtraMcast | NetifExtraHash | NetifExtraOther;

export const netifExtraInfo = {
  size: NETIF_EXTRA_INFO_SIZE,
  encode(v: DataView, o: number, f: NetifExtraInfo): void {
    v.setUint8(o, f.type);
    v.setUint8(o + 1, f.flags);
    for (let i = 2; i < 8; i++) v.setUint8(o + i, 0);
    if ('gso' in f) {
      v.setUint16(o + 2, f.gso.size, true);
      v.setUint8(o + 4, f.gso.type);
      v.setUint16(o + 6, f.gso.features, true);
    } else if ('addr' in f) {
      for (let i = 0; i < 6; i++) v.setUint8(o + 2 + i, f.addr[i] ?? 0);
    } else if ('hash' in f) {
      v.setUint8(o + 2, f.hash.type);
      v.setUint8(o + 3, f.hash.algorithm);
      v.setUint32(o + 4, f.hash.value, true);
    } else {
      for (let i = 0; i < 6; i++) v.setUint8(o + 2 + i, f.raw[i] ?? 0);
    }
  },
  decode(v: DataView, o: number): NetifExtraInfo {
    const type = v.getUint8(o);
    const flags = v.getUint8(o + 1);
    switch (type) {
      case XEN_NETIF_EXTRA_TYPE_GSO:
        return {
          type,
          flags,
          gso: { size: v.getUint16(o + 2, true), type: v.getUint8(o + 4), features: v.getUint16(o + 6, true) },
        };
      case XEN_NETIF_EXTRA_TYPE_MCAST_ADD:
      case XEN_NETIF_EXTRA_TYPE_MCAST_DEL:
        return { type, flags, addr: readBytes(v, o + 2, 6) };
      case XEN_NETIF_EXTRA_TYPE_HASH:
        return {
          type,
          flags,
          hash: { type: v.getUint8(o + 2), algorithm: v.getUint8(o + 3), value: v.getUint32(o + 4, true) },
        };
      default:
        return { type, flags, raw: readBytes(v, o + 2, 6) };
    }
  },
};

function readBytes(v: DataView, o: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = v.getUint8(o + i);
  return out;
}
