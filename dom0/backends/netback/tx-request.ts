// Judging one TX packet's request slots, as Linux netback judges them (xen-netback netback.c:
// xenvif_tx_build_gops, xenvif_get_extras, xenvif_count_requests, xenvif_set_skb_gso), from
// private copies of the slots: each slot is copied out of the shared ring once, through
// `next`, before anything looks at it (XSA-155), and only the copies are judged. Pure: no
// grants, no memory, no TAP; the caller pins, transmits and answers.
//
// The verdict is ok, drop (the packet is answered with errors, the vif carries on) or fatal
// (the frontend broke the protocol: the vif is disconnected), with a reason from a closed
// list (TX_REASONS), which is also the name of the counter netback keeps for it.
//
// Linux's limits under Linux's names: XEN_NETBK_LEGACY_SLOTS_MAX (18, the historical
// MAX_SKB_FRAGS) fragments after the first slot are taken; more are dropped; and once a
// packet has used FATAL_SKB_SLOTS (20, fatal_skb_slots) fragments, one more is fatal.
import {
  NETTXF_extra_info,
  NETTXF_more_data,
  XEN_NETIF_EXTRA_FLAG_MORE,
  XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_EXTRA_TYPE_MAX,
  XEN_NETIF_EXTRA_TYPE_NONE,
  XEN_NETIF_GSO_TYPE_TCPV4,
  XEN_NETIF_GSO_TYPE_TCPV6,
  XEN_NETIF_NR_SLOTS_MIN,
  NETIF_TX_SLOT_SIZE,
  netifTxRequest,
  type NetifTxRequest,
} from '../../../drivers/wire/netif.js';
import { newPacketOffload, offloadFromTxFlags, type PacketOffload } from '../../../drivers/netif/offload.js';
import { ETH_HLEN } from '../../../net/csum-setup.js';

const PAGE = 4096;
/** Linux netback: fragments past the first slot a packet may have; more are dropped. */
export const XEN_NETBK_LEGACY_SLOTS_MAX = XEN_NETIF_NR_SLOTS_MIN;
/** Linux netback's fatal_skb_slots default: a packet that has used this many fragments and
 * asks for another is malicious, and fatal. */
export const FATAL_SKB_SLOTS = 20;
/** Data slots one packet may have before it is fatal: the first and FATAL_SKB_SLOTS more. */
export const TX_MAX_DATA_SLOTS = FATAL_SKB_SLOTS + 1;
/** Extra-info slots one packet may carry: one per type at most (xenode's bound; Linux lets a
 * later extra of a type overwrite an earlier one). */
export const TX_MAX_EXTRAS = XEN_NETIF_EXTRA_TYPE_MAX - 1;

/** Why a packet is dropped (answered with errors; the vif carries on). */
export const TX_DROP_REASONS = [
  /** More than XEN_NETBK_LEGACY_SLOTS_MAX fragments. */
  'tx_drop_slots',
  /** A fragment larger than what remains of the packet's size. */
  'tx_drop_frag_overflow',
  /** A packet whose first slot holds less than an Ethernet header. */
  'tx_drop_runt',
  /** A grant that is invalid, revoked, not ours or not readable (found when pinning). */
  'tx_drop_grant',
  /** Headers that do not allow the checksum or GSO offload the flags ask for. */
  'tx_drop_offload',
] as const;

/** Why the vif is disconnected (the frontend broke the protocol). */
export const TX_FATAL_REASONS = [
  /** req_prod more than the ring holds ahead (XSA-39). */
  'tx_fatal_ring',
  /** A packet asking for more slots than the frontend published. */
  'tx_fatal_unpublished',
  /** More than FATAL_SKB_SLOTS fragments. */
  'tx_fatal_slots',
  /** A slot whose offset + size runs past its page. */
  'tx_fatal_cross_page',
  /** extra_info set, but the extra-info slot is not published. */
  'tx_fatal_missing_extra',
  /** More than TX_MAX_EXTRAS extra-info slots. */
  'tx_fatal_extras',
  /** An extra-info slot of type none or unknown. */
  'tx_fatal_extra_type',
  /** A GSO extra of size 0. */
  'tx_fatal_gso_size',
  /** A GSO extra of a type other than TCPv4 / TCPv6. */
  'tx_fatal_gso_type',
] as const;

export const TX_REASONS = [...TX_DROP_REASONS, ...TX_FATAL_REASONS] as const;
export type TxDropReason = (typeof TX_DROP_REASONS)[number];
export type TxFatalReason = (typeof TX_FATAL_REASONS)[number];

export type TxVerdict =
  | { kind: 'ok' }
  | { kind: 'drop'; reason: TxDropReason; detail: string }
  | { kind: 'fatal'; reason: TxFatalReason; detail: string };

const OK: TxVerdict = { kind: 'ok' };

/** One packet's slots as judged: private, decoded copies. */
export class TxPacket {
  /** Data slots: the first, then the fragments (extra-info slots are counted apart). */
  readonly slots: NetifTxRequest[] = Array.from({ length: TX_MAX_DATA_SLOTS }, () => ({ gref: 0, offset: 0, flags: 0, id: 0, size: 0 }));
  nSlots = 0;
  nExtras = 0;
  /** Bytes in each data slot: the first slot's is what the fragments leave of `size`. */
  readonly lens = new Int32Array(TX_MAX_DATA_SLOTS);
  /** The packet's size as the first slot announced it. */
  totalSize = 0;
  /** Checksum and GSO state from the flags and the GSO extra. */
  readonly offload: PacketOffload = newPacketOffload();

  reset(): void {
    this.nSlots = 0;
    this.nExtras = 0;
    this.totalSize = 0;
  }
}

const raw = new Uint8Array(NETIF_TX_SLOT_SIZE);
const rawView = new DataView(raw.buffer);

/**
 * Reads one packet's slots through `next` (which copies the next ring slot into `dst` and
 * consumes it) and judges them. `avail` is how many slots the frontend has published,
 * the first included; at least 1. On ok and drop every slot of the packet has been consumed
 * and is in `p` (for the responses); on fatal, what was read is unspecified.
 */
export function readTxPacket(next: (dst: Uint8Array) => void, avail: number, p: TxPacket): TxVerdict {
  p.reset();
  const take = (): NetifTxRequest => {
    next(raw);
    avail--;
    return netifTxRequest.decode(rawView, 0, p.slots[p.nSlots++]!);
  };
  const first = take();
  offloadFromTxFlags(first.flags, p.offload);
  let gsoSize = -1;
  let gsoType = 0;

  // xenvif_get_extras
  if (first.flags & NETTXF_extra_info) {
    let more = true;
    while (more) {
      if (avail <= 0) return { kind: 'fatal', reason: 'tx_fatal_missing_extra', detail: 'missing extra info (the extra-info slot is not published)' };
      if (p.nExtras >= TX_MAX_EXTRAS) return { kind: 'fatal', reason: 'tx_fatal_extras', detail: `more than ${TX_MAX_EXTRAS} extra-info slots` };
      next(raw);
      avail--;
      p.nExtras++;
      const type = raw[0]!;
      if (type === XEN_NETIF_EXTRA_TYPE_NONE || type >= XEN_NETIF_EXTRA_TYPE_MAX) return { kind: 'fatal', reason: 'tx_fatal_extra_type', detail: `invalid extra info type ${type}` };
      if (type === XEN_NETIF_EXTRA_TYPE_GSO) {
        gsoSize = rawView.getUint16(2, true);
        gsoType = raw[4]!;
      }
      more = (raw[1]! & XEN_NETIF_EXTRA_FLAG_MORE) !== 0;
    }
  }

  // xenvif_count_requests: `frags` fragments taken so far.
  let remaining = first.size;
  let drop: TxVerdict = OK;
  let last = first;
  for (let frags = 0; last.flags & NETTXF_more_data; frags++) {
    if (avail <= 0) return { kind: 'fatal', reason: 'tx_fatal_unpublished', detail: `packet asks for more slots than the frontend published (${frags + 1 + p.nExtras} so far)` };
    if (frags >= FATAL_SKB_SLOTS) return { kind: 'fatal', reason: 'tx_fatal_slots', detail: `malicious frontend using more than ${FATAL_SKB_SLOTS} slots for one packet` };
    if (drop.kind === 'ok' && frags >= XEN_NETBK_LEGACY_SLOTS_MAX) drop = { kind: 'drop', reason: 'tx_drop_slots', detail: `packet of more than ${XEN_NETBK_LEGACY_SLOTS_MAX + 1} slots` };
    last = take();
    if (drop.kind === 'ok' && last.size > remaining) {
      drop = { kind: 'drop', reason: 'tx_drop_frag_overflow', detail: `fragment of ${last.size} bytes larger than the ${remaining} left of the packet` };
    }
    remaining = Math.max(0, remaining - last.size);
    if (last.offset + last.size > PAGE) return { kind: 'fatal', reason: 'tx_fatal_cross_page', detail: `slot crosses its page (offset ${last.offset} + size ${last.size})` };
  }
  p.totalSize = first.size;
  p.lens[0] = remaining;
  for (let i = 1; i < p.nSlots; i++) p.lens[i] = p.slots[i]!.size;
  if (drop.kind !== 'ok') return drop;
  if (remaining < ETH_HLEN) return { kind: 'drop', reason: 'tx_drop_runt', detail: `packet of ${first.size} bytes (first slot ${remaining}) shorter than an Ethernet header` };
  if (first.offset + remaining > PAGE) return { kind: 'fatal', reason: 'tx_fatal_cross_page', detail: `first slot crosses its page (offset ${first.offset} + size ${remaining})` };

  // xenvif_set_skb_gso
  if (gsoSize >= 0) {
    if (gsoSize === 0) return { kind: 'fatal', reason: 'tx_fatal_gso_size', detail: 'GSO size must not be zero' };
    if (gsoType !== XEN_NETIF_GSO_TYPE_TCPV4 && gsoType !== XEN_NETIF_GSO_TYPE_TCPV6) return { kind: 'fatal', reason: 'tx_fatal_gso_type', detail: `bad GSO type ${gsoType}` };
    p.offload.gsoType = gsoType;
    p.offload.gsoSize = gsoSize;
  }
  return OK;
}
