// Per-vbd counters, under the names Linux blkback shows in sysfs (statistics/rd_req ...) plus
// what is particular to this backend (grants, notifications, refused requests). `xl` reads them
// through the toolstack's device-stats.
export class BlkbackCounters {
  /** READ requests completed. */
  rd_req = 0;
  /** WRITE requests completed. */
  wr_req = 0;
  /** FLUSH_DISKCACHE requests (each an fdatasync). */
  f_req = 0;
  /** DISCARD requests (refused: feature-discard is not offered). */
  ds_req = 0;
  /** Requests that had to wait for resources (never: a ring's worth is always served). */
  oo_req = 0;
  rd_sect = 0;
  wr_sect = 0;
  /** Requests answered BLKIF_RSP_ERROR or BLKIF_RSP_EOPNOTSUPP. */
  errors = 0;
  /** Of those, requests refused before any I/O because they broke the protocol. */
  invalid = 0;
  indirect_req = 0;
  /** Grant pins taken and dropped per request (persistent grants avoid these). */
  grant_maps = 0;
  /** Grants held persistently right now. */
  persistent_grants = 0;
  notify_in = 0;
  notify_out = 0;
  /** Events that found no request, and hold-offs of the event channel they caused (XSA-332). */
  events_spurious = 0;
  event_throttles = 0;
  /** Busy polls for the next request at queue depth 1, and those that found it. */
  busy_polls = 0;
  busy_poll_hits = 0;
  /** Ring halted for a protocol violation (1) or not (0). */
  halted = 0;
  /** Disk I/O goes through io_uring with the frontend's memory registered (1), or through
   * libuv's thread pool (0); and how many disk I/Os went through the ring. */
  uring = 0;
  uring_req = 0;

  snapshot(): Record<string, number> {
    return { ...this } as unknown as Record<string, number>;
  }
}
