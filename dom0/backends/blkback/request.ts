// Decoding and checking one blkif request, from the private copy the ring engine made of its
// slot (never the shared page: XSA-155). Everything a frontend controls is checked before any
// I/O: the operation, the segment count (1..11 direct, 1..the advertised maximum indirect),
// each segment's first_sect <= last_sect < 8, the sector range against the disk's end, and a
// write against a read-only disk. Indirect descriptor pages are copied out of guest memory
// once, then checked the same way. What fails is answered BLKIF_RSP_ERROR (or
// BLKIF_RSP_EOPNOTSUPP for operations not offered) without touching the disk, as Linux
// blkback does.
import {
  BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_SECTORS_PER_PAGE,
  BLKIF_SEGS_PER_INDIRECT_FRAME,
  blkifIndirectPages,
} from '../../../drivers/wire/blkif.js';

/** A request's segments, decoded once: segment i is grant grefs[i], sectors first[i]..last[i]
 * of its page. Typed arrays, not an object per segment: an indirect request has up to 256. */
export interface Segs {
  n: number;
  grefs: Uint32Array;
  first: Uint8Array;
  last: Uint8Array;
}

export interface BlkRequest {
  /** The operation as sent (INDIRECT stays INDIRECT here). */
  operation: number;
  /** What to do: READ, WRITE or FLUSH_DISKCACHE (a flush may carry writes too). */
  op: number;
  id: bigint;
  sector: number;
  /** Total 512-byte sectors the segments cover. */
  nsect: number;
  segs: Segs;
  /** Its entry in the journal of requests owed (inflight-journal.ts), -1 for none. */
  journal?: number;
}

/** Why a request is refused (answered with an error, nothing read or written); each is also
 * the name of the counter blkback keeps for it. */
export const BLK_REFUSAL_REASONS = [
  /** nr_segments 0 (but for a flush) or more than 11 direct / the advertised indirect maximum. */
  'req_bad_segments',
  /** A segment with last_sect >= 8 or below first_sect. */
  'req_bad_sectors',
  /** Sectors past the end of the disk. */
  'req_beyond_end',
  /** A write (or flush) to a read-only disk. */
  'req_read_only',
  /** An indirect request whose operation is not read or write. */
  'req_bad_indirect_op',
  /** An indirect descriptor page behind a grant we could not take. */
  'req_bad_indirect_page',
  /** An operation not offered: indirect when not advertised, barrier, discard, unknown. */
  'req_unsupported',
] as const;
export type BlkRefusalReason = (typeof BLK_REFUSAL_REASONS)[number];

export interface Refusal {
  /** The operation to answer with: as sent, or an indirect request's own operation. */
  operation: number;
  id: bigint;
  status: number;
  reason: BlkRefusalReason;
  why: string;
}

export interface ParseContext {
  /** Disk size in 512-byte sectors. */
  sectors: number;
  readonly: boolean;
  /** feature-max-indirect-segments as advertised; 0 when not offered. */
  maxIndirect: number;
  /** Copies `bytes` bytes of indirect descriptor page `gref` into `dst` (pinned read-only for
   * the copy), or returns a reason it could not. */
  copyIndirect(gref: number, dst: Uint8Array, bytes: number): string | null;
}

const scratch = new Uint8Array(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * 4096);
const scratchView = new DataView(scratch.buffer);

/** Decodes `n` segment descriptors (blkif_request_segment: gref u32, first_sect u8,
 * last_sect u8, 2 bytes padding) found at `at(i)` in `v`. */
function decodeSegs(v: DataView, n: number, at: (i: number) => number): Segs {
  const segs: Segs = { n, grefs: new Uint32Array(n), first: new Uint8Array(n), last: new Uint8Array(n) };
  for (let i = 0; i < n; i++) {
    const o = at(i);
    segs.grefs[i] = v.getUint32(o, true);
    segs.first[i] = v.getUint8(o + 4);
    segs.last[i] = v.getUint8(o + 5);
  }
  return segs;
}

/** Checks segments and the sector range; returns the sector count or why not. */
function checkSegs(segs: Segs, sector: number, ctx: ParseContext): number | [BlkRefusalReason, string] {
  let n = 0;
  for (let i = 0; i < segs.n; i++) {
    const first = segs.first[i]!;
    const last = segs.last[i]!;
    if (last >= BLKIF_SECTORS_PER_PAGE) return ['req_bad_sectors', `segment last_sect ${last} >= ${BLKIF_SECTORS_PER_PAGE}`];
    if (last < first) return ['req_bad_sectors', `segment last_sect ${last} < first_sect ${first}`];
    n += last - first + 1;
  }
  if (sector + n > ctx.sectors) return ['req_beyond_end', `sectors ${sector}+${n} beyond the end of the disk (${ctx.sectors})`];
  return n;
}

/** Decodes and validates the request in `v` (a private copy of its ring slot). */
export function parseRequest(v: DataView, ctx: ParseContext): BlkRequest | Refusal {
  const operation = v.getUint8(0);
  // id sits at the same offset (8) in every request variant.
  const id = v.getBigUint64(8, true);
  // Linux blkback answers an indirect request with its own operation (read or write).
  const answerOp = operation === BLKIF_OP_INDIRECT && ctx.maxIndirect > 0 ? v.getUint8(1) : operation;
  const refuse = (reason: BlkRefusalReason, why: string, status = BLKIF_RSP_ERROR): Refusal => ({ operation: answerOp, id, status, reason, why });
  const sector = v.getUint32(16, true) + v.getUint32(20, true) * 0x1_0000_0000;

  switch (operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
    case BLKIF_OP_FLUSH_DISKCACHE: {
      const nseg = v.getUint8(1);
      const isFlush = operation === BLKIF_OP_FLUSH_DISKCACHE;
      if ((nseg === 0 && !isFlush) || nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST) return refuse('req_bad_segments', `bad number of segments ${nseg}`);
      if (operation !== BLKIF_OP_READ && ctx.readonly) return refuse('req_read_only', 'write to a read-only disk');
      const segs = decodeSegs(v, nseg, (i) => 24 + i * 8);
      const n = checkSegs(segs, sector, ctx);
      if (typeof n !== 'number') return refuse(...n);
      return { operation, op: operation, id, sector, nsect: n, segs };
    }
    case BLKIF_OP_INDIRECT: {
      if (ctx.maxIndirect === 0) return refuse('req_unsupported', 'indirect descriptors were not offered', BLKIF_RSP_EOPNOTSUPP);
      const op = v.getUint8(1);
      if (op !== BLKIF_OP_READ && op !== BLKIF_OP_WRITE) return refuse('req_bad_indirect_op', `indirect operation ${op} is not read or write`);
      const nseg = v.getUint16(2, true);
      if (nseg === 0 || nseg > ctx.maxIndirect) return refuse('req_bad_segments', `bad number of indirect segments ${nseg} (max ${ctx.maxIndirect})`);
      if (op === BLKIF_OP_WRITE && ctx.readonly) return refuse('req_read_only', 'write to a read-only disk');
      const pages = blkifIndirectPages(nseg);
      for (let p = 0; p < pages; p++) {
        const gref = v.getUint32(28 + 4 * p, true);
        const bytes = Math.min(BLKIF_SEGS_PER_INDIRECT_FRAME, nseg - p * BLKIF_SEGS_PER_INDIRECT_FRAME) * 8;
        const err = ctx.copyIndirect(gref, scratch.subarray(p * 4096, p * 4096 + bytes), bytes);
        if (err) return refuse('req_bad_indirect_page', `indirect page ${p}: ${err}`);
      }
      // Descriptor i is in page i / 512 at slot i % 512 (8 bytes each).
      const segs = decodeSegs(scratchView, nseg, (i) => Math.floor(i / BLKIF_SEGS_PER_INDIRECT_FRAME) * 4096 + (i % BLKIF_SEGS_PER_INDIRECT_FRAME) * 8);
      const n = checkSegs(segs, sector, ctx);
      if (typeof n !== 'number') return refuse(...n);
      return { operation, op, id, sector, nsect: n, segs };
    }
    case BLKIF_OP_WRITE_BARRIER:
      return refuse('req_unsupported', 'write barriers are not offered (feature-barrier); use flush', BLKIF_RSP_EOPNOTSUPP);
    case BLKIF_OP_DISCARD:
      return refuse('req_unsupported', 'discard is not offered (feature-discard)', BLKIF_RSP_EOPNOTSUPP);
    default:
      return refuse('req_unsupported', `unknown operation ${operation}`, BLKIF_RSP_EOPNOTSUPP);
  }
}

export function isRefusal(r: BlkRequest | Refusal): r is Refusal {
  return (r as Refusal).status !== undefined;
}
