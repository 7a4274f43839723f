// Per-vif counters (Linux netback's ethtool stats plus what the ring engine lets us see),
// read by `xl network-stats` through the backend bus. Field names are the names shown
// (common/counters.ts); all monotonic except the gauges noted. Bad input from the frontend
// is counted per reason (tx-request.ts's closed list, plus the RX ring's) by `peerErrors`,
// which also logs it at a bounded rate (common/peer-errors.ts).
import { counterFields, ratio } from '../../../common/counters.js';
import { PeerErrors } from '../../../common/peer-errors.js';
import { TX_REASONS } from './tx-request.js';

/** What the frontend can get wrong on the RX ring. */
export const RX_REASONS = [
  /** req_prod more than the ring holds ahead (XSA-39): the vif is disconnected. */
  'rx_fatal_ring',
  /** A posted buffer whose grant is invalid, revoked, read-only or not ours: error response. */
  'rx_error_grant',
] as const;

export const NETBACK_REASONS = [...TX_REASONS, ...RX_REASONS] as const;
export type NetbackReason = (typeof NETBACK_REASONS)[number];

export class VifMetrics {
  // guest -> world (TX ring)
  tx_packets = 0;
  tx_bytes = 0;
  /** Packets refused (bad size, bad grant, too many slots, ...) with an error response. */
  tx_drops = 0;
  /** Requests consumed from the TX ring (slots, including extra info). */
  tx_slots = 0;
  /** Wake-ups that found TX requests, for the average batch size. */
  tx_batches = 0;
  tx_gso = 0;
  tx_csum_offload = 0;
  /** Times the rate limiter held a packet back. */
  tx_rate_limited = 0;
  // world -> guest (RX ring)
  rx_packets = 0;
  rx_bytes = 0;
  /** Frames dropped: too short, a GSO kind netif cannot carry, a bad buffer, or drained
   * while the frontend posted no buffers. */
  rx_drops = 0;
  rx_slots = 0;
  /** Pushes of RX responses (each may carry many packets). */
  rx_batches = 0;
  rx_gso = 0;
  /** Times the frontend had fewer free buffers than a packet may need. */
  rx_stalls = 0;
  // event channel
  /** Events we sent the frontend. */
  notify_sent = 0;
  /** Events the frontend sent us (after eventfd coalescing). */
  events_received = 0;
  /** Events that found no work (an event storm shows here). */
  events_spurious = 0;
  /** Times we stopped listening for a while because events kept finding no work. */
  event_throttles = 0;
  /** Busy polls for the guest's reply after a small delivery, and those that found it. */
  busy_polls = 0;
  busy_poll_hits = 0;
  /** 1 after a fatal error disconnected the vif. */
  fatal = 0;
  /** Bad input per reason (NETBACK_REASONS), logged at a bounded rate through `log`. */
  readonly peerErrors: PeerErrors<NetbackReason>;

  constructor(log: (line: string) => void = () => {}) {
    this.peerErrors = new PeerErrors(NETBACK_REASONS, log);
  }

  /** Every counter by its name, the averages derived from them (tx_avg_batch: TX slots per
   * wake-up, rx_avg_batch: frames per RX push, notify_per_packet: events either way per
   * packet), and one counter per reason of bad input. */
  snapshot(): Record<string, number> {
    return {
      ...counterFields(this),
      tx_avg_batch: ratio(this.tx_slots, this.tx_batches),
      rx_avg_batch: ratio(this.rx_packets, this.rx_batches),
      notify_per_packet: ratio(this.notify_sent + this.events_received, this.tx_packets + this.rx_packets),
      ...this.peerErrors.counts,
    };
  }
}
