// Per-vif counters (Linux netback's ethtool stats plus what the ring engine lets us see),
// read by `xl network-stats` through the backend bus. All monotonic except the gauges noted.
export class VifMetrics {
  // guest -> world (TX ring)
  txPackets = 0;
  txBytes = 0;
  /** Packets refused (bad size, bad grant, too many slots, ...) with an error response. */
  txDrops = 0;
  /** Requests consumed from the TX ring (slots, including extra info). */
  txSlots = 0;
  /** Wake-ups that found TX requests, for the average batch size. */
  txBatches = 0;
  txGso = 0;
  txCsumOffload = 0;
  /** Times the rate limiter held a packet back. */
  txRateLimited = 0;
  // world -> guest (RX ring)
  rxPackets = 0;
  rxBytes = 0;
  /** Frames dropped: too short, a GSO kind netif cannot carry, a bad buffer, or drained
   * while the frontend posted no buffers. */
  rxDrops = 0;
  rxSlots = 0;
  /** Pushes of RX responses (each may carry many packets). */
  rxBatches = 0;
  rxGso = 0;
  /** Times the frontend had fewer free buffers than a packet may need. */
  rxStalls = 0;
  // event channel
  /** Events we sent the frontend. */
  notifySent = 0;
  /** Events the frontend sent us (after eventfd coalescing). */
  eventsReceived = 0;
  /** Events that found no work (an event storm shows here). */
  eventsSpurious = 0;
  /** Times we stopped listening for a while because events kept finding no work. */
  eventThrottles = 0;
  /** Busy polls for the guest's reply after a small delivery, and those that found it. */
  busyPolls = 0;
  busyPollHits = 0;
  /** 1 after a fatal error disconnected the vif. */
  fatal = 0;

  snapshot(): Record<string, number> {
    const r = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0);
    return {
      tx_packets: this.txPackets,
      tx_bytes: this.txBytes,
      tx_drops: this.txDrops,
      tx_slots: this.txSlots,
      tx_batches: this.txBatches,
      tx_avg_batch: r(this.txSlots, this.txBatches),
      tx_gso: this.txGso,
      tx_csum_offload: this.txCsumOffload,
      tx_rate_limited: this.txRateLimited,
      rx_packets: this.rxPackets,
      rx_bytes: this.rxBytes,
      rx_drops: this.rxDrops,
      rx_slots: this.rxSlots,
      rx_batches: this.rxBatches,
      rx_avg_batch: r(this.rxPackets, this.rxBatches),
      rx_gso: this.rxGso,
      rx_stalls: this.rxStalls,
      notify_sent: this.notifySent,
      events_received: this.eventsReceived,
      events_spurious: this.eventsSpurious,
      event_throttles: this.eventThrottles,
      notify_per_packet: r(this.notifySent + this.eventsReceived, this.txPackets + this.rxPackets),
      busy_polls: this.busyPolls,
      busy_poll_hits: this.busyPollHits,
      fatal: this.fatal,
    };
  }
}
