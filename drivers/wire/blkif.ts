// io/blkif.h: the block split driver's wire format (x86_64 ABI, "x86_64-abi" protocol).
// Pure codecs plus the header's constants; no state, no I/O.
//
// One ring of 112-byte slots (32 per page): blkif_request (or its discard / indirect
// variants, selected by `operation`), replaced in place by a 16-byte blkif_response.
// Sector numbers and first_sect/last_sect are always in 512-byte units.
//
// 64-bit fields: `id` is opaque and must be echoed exactly, so it is a bigint. Sector
// numbers and counts are numbers: exact below 2^53, and a larger (hostile) value still
// compares larger than any real device, so range checks on them stay correct.
import { ringEntries, XEN_PAGE_SIZE } from '../ring/shared-ring.js';

// ---- Operations ----
export const BLKIF_OP_READ = 0;
export const BLKIF_OP_WRITE = 1;
export const BLKIF_OP_WRITE_BARRIER = 2;
export const BLKIF_OP_FLUSH_DISKCACHE = 3;
export const BLKIF_OP_RESERVED_1 = 4;
export const BLKIF_OP_DISCARD = 5;
export const BLKIF_OP_INDIRECT = 6;

// ---- Response status ----
export const BLKIF_RSP_EOPNOTSUPP = -2;
export const BLKIF_RSP_ERROR = -1;
export const BLKIF_RSP_OKAY = 0;

// ---- `info` bits (backend key) ----
export const VDISK_CDROM = 1;
export const VDISK_REMOVABLE = 2;
export const VDISK_READONLY = 4;

export const BLKIF_DISCARD_SECURE = 1 << 0;

// ---- Limits ----
export const BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;
export const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8;
export const BLKIF_SECTOR_SIZE = 512;
export const BLKIF_SECTORS_PER_PAGE = XEN_PAGE_SIZE / BLKIF_SECTOR_SIZE; // 8: last_sect must be < this
export const BLKIF_SEGMENT_SIZE = 8;
/** Segments in one indirect page (Linux SEGS_PER_INDIRECT_FRAME). */
export const BLKIF_SEGS_PER_INDIRECT_FRAME = XEN_PAGE_SIZE / BLKIF_SEGMENT_SIZE; // 512
/** Protocol ceiling for one indirect request. */
export const BLKIF_MAX_INDIRECT_SEGMENTS = BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_FRAME;
/** What Linux blkback advertises in feature-max-indirect-segments by default. */
export const BLKBACK_MAX_INDIRECT_SEGMENTS = 256;

// ---- Sizes ----
export const BLKIF_REQUEST_SIZE = 112;
export const BLKIF_RESPONSE_SIZE = 16;
export const BLKIF_REQUEST_DISCARD_SIZE = 32;
export const BLKIF_REQUEST_INDIRECT_SIZE = 64;
export const BLKIF_SLOT_SIZE = BLKIF_REQUEST_SIZE;
export const BLKIF_RING_SIZE = ringEntries(BLKIF_SLOT_SIZE); // 32

/** The protocol string frontends write ("protocol" key). */
export const XEN_IO_PROTO_ABI_X86_64 = 'x86_64-abi';

// ---- XenStore keys ----
export const BLKIF_BACKEND_KEYS = {
  mode: 'mode',
  params: 'params',
  type: 'type',
  physicalDevice: 'physical-device',
  featureFlushCache: 'feature-flush-cache',
  featureBarrier: 'feature-barrier',
  featureDiscard: 'feature-discard',
  featurePersistent: 'feature-persistent',
  featureMaxIndirectSegments: 'feature-max-indirect-segments',
  maxRingPageOrder: 'max-ring-page-order',
  multiQueueMaxQueues: 'multi-queue-max-queues',
  info: 'info',
  sectorSize: 'sector-size',
  physicalSectorSize: 'physical-sector-size',
  sectors: 'sectors',
} as const;

export const BLKIF_FRONTEND_KEYS = {
  ringRef: 'ring-ref',
  ringPageOrder: 'ring-page-order',
  eventChannel: 'event-channel',
  protocol: 'protocol',
  featurePersistent: 'feature-persistent',
  virtualDevice: 'virtual-device',
  deviceType: 'device-type',
  multiQueueNumQueues: 'multi-queue-num-queues',
} as const;

/** `ring-ref0`, `ring-ref1`... when ring-page-order > 0. */
export function blkifRingRefKey(page: number): string {
  return `ring-ref${page}`;
}

// ---- u64 helpers (little-endian) ----
function getU64AsNumber(v: DataView, o: number): number {
  return v.getUint32(o + 4, true) * 0x1_0000_0000 + v.getUint32(o, true);
}
function setU64FromNumber(v: DataView, o: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64 field out of range: ${n}`);
  v.setUint32(o, n >>> 0, true);
  v.setUint32(o + 4, Math.floor(n / 0x1_0000_0000), true);
}

// ---- blkif_request_segment (8 B): gref u32@0, first_sect u8@4, last_sect u8@5, pad 2 ----
export interface BlkifSegment {
  gref: number;
  firstSect: number;
  lastSect: number;
}

export const blkifSegment = {
  size: BLKIF_SEGMENT_SIZE,
  encode(v: DataView, o: number, f: BlkifSegment): void {
    v.setUint32(o, f.gref, true);
    v.setUint8(o + 4, f.firstSect);
    v.setUint8(o + 5, f.lastSect);
    v.setUint16(o + 6, 0, true);
  },
  decode(v: DataView, o: number, into?: BlkifSegment): BlkifSegment {
    const r = into ?? { gref: 0, firstSect: 0, lastSect: 0 };
    r.gref = v.getUint32(o, true);
    r.firstSect = v.getUint8(o + 4);
    r.lastSect = v.getUint8(o + 5);
    return r;
  },
};

// ---- blkif_request (112 B): operation u8@0, nr_segments u8@1, handle u16@2, id u64@8,
//      sector_number u64@16, seg[11]@24 ----
export interface BlkifRequest {
  operation: number;
  /** Raw value from the wire: validate it (1..11) before trusting `seg`. */
  nrSegments: number;
  handle: number;
  id: bigint;
  sectorNumber: number;
  /** Decoded entries: min(nrSegments, 11) of them (a reused object keeps all 11). */
  seg: BlkifSegment[];
}

/** A request object with all 11 segments preallocated, for decode(..., into). */
export function createBlkifRequest(): BlkifRequest {
  const seg: BlkifSegment[] = [];
  for (let i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) seg.push({ gref: 0, firstSect: 0, lastSect: 0 });
  return { operation: 0, nrSegments: 0, handle: 0, id: 0n, sectorNumber: 0, seg };
}

export const blkifRequest = {
  size: BLKIF_REQUEST_SIZE,
  encode(v: DataView, o: number, f: BlkifRequest): void {
    const n = f.nrSegments;
    if (n > BLKIF_MAX_SEGMENTS_PER_REQUEST || n > f.seg.length) throw new RangeError(`bad nr_segments ${n}`);
    v.setUint8(o, f.operation);
    v.setUint8(o + 1, n);
    v.setUint16(o + 2, f.handle, true);
    v.setUint32(o + 4, 0, true);
    v.setBigUint64(o + 8, f.id, true);
    setU64FromNumber(v, o + 16, f.sectorNumber);
    for (let i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
      const so = o + 24 + i * BLKIF_SEGMENT_SIZE;
      if (i < n) blkifSegment.encode(v, so, f.seg[i]!);
      else for (let k = 0; k < BLKIF_SEGMENT_SIZE; k++) v.setUint8(so + k, 0);
    }
  },
  decode(v: DataView, o: number, into?: BlkifRequest): BlkifRequest {
    const r = into ?? createBlkifRequest();
    r.operation = v.getUint8(o);
    r.nrSegments = v.getUint8(o + 1);
    r.handle = v.getUint16(o + 2, true);
    r.id = v.getBigUint64(o + 8, true);
    r.sectorNumber = getU64AsNumber(v, o + 16);
    const n = Math.min(r.nrSegments, BLKIF_MAX_SEGMENTS_PER_REQUEST);
    for (let i = 0; i < n; i++) {
      const s = r.seg[i];
      if (s) blkifSegment.decode(v, o + 24 + i * BLKIF_SEGMENT_SIZE, s);
      else r.seg[i] = blkifSegment.decode(v, o + 24 + i * BLKIF_SEGMENT_SIZE);
    }
    if (!into) r.seg.length = n;
    return r;
  },
};

// ---- blkif_request_discard (32 B): operation u8@0, flag u8@1, handle u16@2, id u64@8,
//      sector_number u64@16, nr_sectors u64@24 ----
export interface BlkifRequestDiscard {
  operation: number;
  flag: number;
  handle: number;
  id: bigint;
  sectorNumber: number;
  nrSectors: number;
}

export const blkifRequestDiscard = {
  size: BLKIF_REQUEST_DISCARD_SIZE,
  encode(v: DataView, o: number, f: BlkifRequestDiscard): void {
    v.setUint8(o, f.operation);
    v.setUint8(o + 1, f.flag);
    v.setUint16(o + 2, f.handle, true);
    v.setUint32(o + 4, 0, true);
    v.setBigUint64(o + 8, f.id, true);
    setU64FromNumber(v, o + 16, f.sectorNumber);
    setU64FromNumber(v, o + 24, f.nrSectors);
  },
  decode(v: DataView, o: number, into?: BlkifRequestDiscard): BlkifRequestDiscard {
    const r = into ?? { operation: 0, flag: 0, handle: 0, id: 0n, sectorNumber: 0, nrSectors: 0 };
    r.operation = v.getUint8(o);
    r.flag = v.getUint8(o + 1);
    r.handle = v.getUint16(o + 2, true);
    r.id = v.getBigUint64(o + 8, true);
    r.sectorNumber = getU64AsNumber(v, o + 16);
    r.nrSectors = getU64AsNumber(v, o + 24);
    return r;
  },
};

// ---- blkif_request_indirect (64 B on x86_64): operation u8@0, indirect_op u8@1,
//      nr_segments u16@2, id u64@8, sector_number u64@16, handle u16@24, pad u16@26,
//      indirect_grefs[8] u32@28 ----
export interface BlkifRequestIndirect {
  operation: number;
  indirectOp: number;
  nrSegments: number;
  id: bigint;
  sectorNumber: number;
  handle: number;
  /** All 8 slots as on the wire; only ceil(nrSegments / 512) of them are meaningful. */
  indirectGrefs: number[];
}

export const blkifRequestIndirect = {
  size: BLKIF_REQUEST_INDIRECT_SIZE,
  encode(v: DataView, o: number, f: BlkifRequestIndirect): void {
    v.setUint8(o, f.operation);
    v.setUint8(o + 1, f.indirectOp);
    v.setUint16(o + 2, f.nrSegments, true);
    v.setUint32(o + 4, 0, true);
    v.setBigUint64(o + 8, f.id, true);
    setU64FromNumber(v, o + 16, f.sectorNumber);
    v.setUint16(o + 24, f.handle, true);
    v.setUint16(o + 26, 0, true);
    for (let i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) v.setUint32(o + 28 + 4 * i, f.indirectGrefs[i] ?? 0, true);
  },
  decode(v: DataView, o: number, into?: BlkifRequestIndirect): BlkifRequestIndirect {
    const r = into ?? { operation: 0, indirectOp: 0, nrSegments: 0, id: 0n, sectorNumber: 0, handle: 0, indirectGrefs: [] };
    r.operation = v.getUint8(o);
    r.indirectOp = v.getUint8(o + 1);
    r.nrSegments = v.getUint16(o + 2, true);
    r.id = v.getBigUint64(o + 8, true);
    r.sectorNumber = getU64AsNumber(v, o + 16);
    r.handle = v.getUint16(o + 24, true);
    for (let i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) r.indirectGrefs[i] = v.getUint32(o + 28 + 4 * i, true);
    return r;
  },
};

/** Indirect pages needed for `nrSegments` segments. */
export function blkifIndirectPages(nrSegments: number): number {
  return Math.ceil(nrSegments / BLKIF_SEGS_PER_INDIRECT_FRAME);
}

// ---- blkif_response (16 B): id u64@0, operation u8@8, pad u8@9, status s16@10, pad 4@12 ----
export interface BlkifResponse {
  id: bigint;
  operation: number;
  status: number;
}

export const blkifResponse = {
  size: BLKIF_RESPONSE_SIZE,
  /** Writes all 16 bytes, padding included as zeroes (XSA-216). */
  encode(v: DataView, o: number, f: BlkifResponse): void {
    v.setBigUint64(o, f.id, true);
    v.setUint8(o + 8, f.operation);
    v.setUint8(o + 9, 0);
    v.setInt16(o + 10, f.status, true);
    v.setUint32(o + 12, 0, true);
  },
  decode(v: DataView, o: number, into?: BlkifResponse): BlkifResponse {
    const r = into ?? { id: 0n, operation: 0, status: 0 };
    r.id = v.getBigUint64(o, true);
    r.operation = v.getUint8(o + 8);
    r.status = v.getInt16(o + 10, true);
    return r;
  },
};
