// Per-vbd counters, under the names Linux blkback shows in sysfs (statistics/rd_req ...) plus
// what is particular to this backend (grants, notifications, refused requests). `xl` reads them
// through the toolstack's device-stats. Field names are the names shown (common/counters.ts);
// bad input from the frontend is counted per reason by `peerErrors`, which also logs it at a
// bounded rate (common/peer-errors.ts).
import { counterFields } from '../../../common/counters.js';
import { PeerErrors } from '../../../common/peer-errors.js';
import { BLK_REFUSAL_REASONS } from './request.js';

/** What a frontend can get wrong: a refused request (request.ts), a data page behind a bad
 * grant, and the two protocol violations that halt the ring. */
export const BLKBACK_REASONS = [
  ...BLK_REFUSAL_REASONS,
  /** A data segment's grant that is invalid, revoked, foreign or read-only for a read. */
  'req_bad_grant',
  /** req_prod more requests than the ring holds ahead (XSA-39): the ring halts. */
  'ring_fatal_prod',
  /** A request id reused while that request is in flight: the ring halts. */
  'ring_fatal_id',
] as const;
export type BlkbackReason = (typeof BLKBACK_REASONS)[number];

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
  /** Bad input per reason (BLKBACK_REASONS), logged at a bounded rate through `log`. */
  readonly peerErrors: PeerErrors<BlkbackReason>;

  constructor(log: (line: string) => void = () => {}) {
    this.peerErrors = new PeerErrors(BLKBACK_REASONS, log);
  }

  /** Every counter by its name, and one per reason of bad input. */
  snapshot(): Record<string, number> {
    return { ...counterFields(this), ...this.peerErrors.counts };
  }
}
