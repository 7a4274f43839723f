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

export interface Refusal {
  operation: number;
  id: bigint;
  status: number;
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

/** Checks segments and the sector range; returns the sector count or a reason. */
function checkSegs(segs: Segs, sector: number, ctx: ParseContext): number | string {
  let n = 0;
  for (let i = 0; i < segs.n; i++) {
    const first = segs.first[i]!;
    const last = segs.last[i]!;
    if (last >= BLKIF_SECTORS_PER_PAGE) return `segment last_sect ${last} >= ${BLKIF_SECTORS_PER_PAGE}`;
    if (last < first) return `segment last_sect ${last} < first_sect ${first}`;
    n += last - first + 1;
  }
  if (sector + n > ctx.sectors) return `sectors ${sector}+${n} beyond the end of the disk (${ctx.sectors})`;
  return n;
}

/** Decodes and validates the request in `v` (a private copy of its ring slot). */
export function parseRequest(v: DataView, ctx: ParseContext): BlkRequest | Refusal {
  const operation = v.getUint8(0);
  // id sits at the same offset (8) in every request variant.
  const id = v.getBigUint64(8, true);
  const refuse = (why: string, status = BLKIF_RSP_ERROR): Refusal => ({ operation, id, status, why });
  const sector = v.getUint32(16, true) + v.getUint32(20, true) * 0x1_0000_0000;

  switch (operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
    case BLKIF_OP_FLUSH_DISKCACHE: {
      const nseg = v.getUint8(1);
      const isFlush = operation === BLKIF_OP_FLUSH_DISKCACHE;
      if ((nseg === 0 && !isFlush) || nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST) return refuse(`bad number of segments ${nseg}`);
      if (operation !== BLKIF_OP_READ && ctx.readonly) return refuse('write to a read-only disk');
      const segs = decodeSegs(v, nseg, (i) => 24 + i * 8);
      const n = checkSegs(segs, sector, ctx);
      if (typeof n === 'string') return refuse(n);
      return { operation, op: operation, id, sector, nsect: n, segs };
    }
    case BLKIF_OP_INDIRECT: {
      if (ctx.maxIndirect === 0) return refuse('indirect descriptors were not offered', BLKIF_RSP_EOPNOTSUPP);
      const op = v.getUint8(1);
      if (op !== BLKIF_OP_READ && op !== BLKIF_OP_WRITE) return refuse(`indirect operation ${op} is not read or write`);
      const nseg = v.getUint16(2, true);
      if (nseg === 0 || nseg > ctx.maxIndirect) return refuse(`bad number of indirect segments ${nseg} (max ${ctx.maxIndirect})`);
      if (op === BLKIF_OP_WRITE && ctx.readonly) return refuse('write to a read-only disk');
      const pages = blkifIndirectPages(nseg);
      for (let p = 0; p < pages; p++) {
        const gref = v.getUint32(28 + 4 * p, true);
        const bytes = Math.min(BLKIF_SEGS_PER_INDIRECT_FRAME, nseg - p * BLKIF_SEGS_PER_INDIRECT_FRAME) * 8;
        const err = ctx.copyIndirect(gref, scratch.subarray(p * 4096, p * 4096 + bytes), bytes);
        if (err) return refuse(`indirect page ${p}: ${err}`);
      }
      // Descriptor i is in page i / 512 at slot i % 512 (8 bytes each).
      const segs = decodeSegs(scratchView, nseg, (i) => Math.floor(i / BLKIF_SEGS_PER_INDIRECT_FRAME) * 4096 + (i % BLKIF_SEGS_PER_INDIRECT_FRAME) * 8);
      const n = checkSegs(segs, sector, ctx);
      if (typeof n === 'string') return refuse(n);
      return { operation, op, id, sector, nsect: n, segs };
    }
    case BLKIF_OP_WRITE_BARRIER:
      return refuse('write barriers are not offered (feature-barrier); use flush', BLKIF_RSP_EOPNOTSUPP);
    case BLKIF_OP_DISCARD:
      return refuse('discard is not offered (feature-discard)', BLKIF_RSP_EOPNOTSUPP);
    default:
      return refuse(`unknown operation ${operation}`, BLKIF_RSP_EOPNOTSUPP);
  }
}

export function isRefusal(r: BlkRequest | Refusal): r is Refusal {
  return (r as Refusal).status !== undefined;
}
