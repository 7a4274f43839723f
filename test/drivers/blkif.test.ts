import { describe, expect, it } from 'vitest';
import {
  BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
  BLKIF_MAX_INDIRECT_SEGMENTS,
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RING_SIZE,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  BLKIF_SEGS_PER_INDIRECT_FRAME,
  blkifIndirectPages,
  blkifRequest,
  blkifRequestDiscard,
  blkifRequestIndirect,
  blkifResponse,
  blkifSegment,
  createBlkifRequest,
  VDISK_CDROM,
  VDISK_READONLY,
  VDISK_REMOVABLE,
} from '../../drivers/wire/blkif.js';
import { hex, nonZero, scratch } from './helpers.js';

describe('blkif.h constants', () => {
  it('has the header numbers', () => {
    expect([BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT]).toEqual([
      0, 1, 2, 3, 5, 6,
    ]);
    expect([BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY]).toEqual([-2, -1, 0]);
    expect([VDISK_CDROM, VDISK_REMOVABLE, VDISK_READONLY]).toEqual([1, 2, 4]);
    expect(BLKIF_MAX_SEGMENTS_PER_REQUEST).toBe(11);
    expect(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST).toBe(8);
    expect(BLKIF_SEGS_PER_INDIRECT_FRAME).toBe(512);
    expect(BLKIF_MAX_INDIRECT_SEGMENTS).toBe(4096);
    expect(BLKIF_RING_SIZE).toBe(32);
    expect(blkifIndirectPages(513)).toBe(2);
  });
});

describe('blkif.h layouts (x86_64, exact bytes)', () => {
  it('blkif_request_segment: gref@0 first_sect@4 last_sect@5, 8 bytes', () => {
    const { u8, view } = scratch(8);
    u8.fill(0xff);
    blkifSegment.encode(view, 0, { gref: 0x01020304, firstSect: 1, lastSect: 7 });
    expect(hex(u8)).toBe('04030201' + '01' + '07' + '0000');
  });

  it('blkif_request: op@0 nr@1 handle@2 id@8 sector@16 seg[11]@24, 112 bytes', () => {
    const { u8, view } = scratch(112);
    u8.fill(0xff);
    const req = createBlkifRequest();
    req.operation = BLKIF_OP_WRITE;
    req.nrSegments = 2;
    req.handle = 0xca00;
    req.id = 0x1122334455667788n;
    req.sectorNumber = 0x0000_0102_0304_0506;
    req.seg[0] = { gref: 0x10, firstSect: 0, lastSect: 7 };
    req.seg[1] = { gref: 0x11, firstSect: 2, lastSect: 3 };
    blkifRequest.encode(view, 0, req);
    expect(hex(u8, 0, 24)).toBe('01' + '02' + '00ca' + '00000000' + '8877665544332211' + '0605040302010000');
    expect(hex(u8, 24, 16)).toBe('10000000' + '0007' + '0000' + '11000000' + '0203' + '0000');
    expect(u8.subarray(40, 112).every((b) => b === 0)).toBe(true); // unused segments zeroed
    expect(blkifRequest.size).toBe(112);
    expect(24 + 11 * 8).toBe(112); // seg[10] ends exactly at the struct's end

    const d = blkifRequest.decode(view, 0);
    expect(d.operation).toBe(1);
    expect(d.nrSegments).toBe(2);
    expect(d.handle).toBe(0xca00);
    expect(d.id).toBe(0x1122334455667788n);
    expect(d.sectorNumber).toBe(0x0000_0102_0304_0506);
    expect(d.seg).toEqual([
      { gref: 0x10, firstSect: 0, lastSect: 7 },
      { gref: 0x11, firstSect: 2, lastSect: 3 },
    ]);
  });

  it('seg[10] sits at byte 104', () => {
    const { u8, view } = scratch(112);
    const req = createBlkifRequest();
    req.nrSegments = 11;
    req.seg[10] = { gref: 0xabcdef01, firstSect: 0, lastSect: 0 };
    blkifRequest.encode(view, 0, req);
    expect(hex(u8, 104, 4)).toBe('01efcdab');
  });

  it('decodes a hostile nr_segments without reading past the struct', () => {
    const { u8, view } = scratch(112);
    u8[1] = 200;
    const d = blkifRequest.decode(view, 0);
    expect(d.nrSegments).toBe(200); // kept raw, for blkback to reject
    expect(d.seg.length).toBe(11);
    const reused = createBlkifRequest();
    expect(blkifRequest.decode(view, 0, reused)).toBe(reused);
  });

  it('a sector number above 2^53 decodes to something larger than any real disk', () => {
    const { view } = scratch(112);
    view.setBigUint64(16, 0xffff_ffff_ffff_fff0n, true);
    expect(blkifRequest.decode(view, 0).sectorNumber).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
  });

  it('blkif_request_discard: op@0 flag@1 handle@2 id@8 sector@16 nr_sectors@24', () => {
    const { u8, view } = scratch(32);
    blkifRequestDiscard.encode(view, 0, {
      operation: BLKIF_OP_DISCARD,
      flag: 1,
      handle: 3,
      id: 9n,
      sectorNumber: 0x100,
      nrSectors: 0x20000,
    });
    expect(hex(u8)).toBe('05' + '01' + '0300' + '00000000' + '0900000000000000' + '0001000000000000' + '0000020000000000');
    expect(blkifRequestDiscard.decode(view, 0)).toEqual({ operation: 5, flag: 1, handle: 3, id: 9n, sectorNumber: 0x100, nrSectors: 0x20000 });
  });

  it('blkif_request_indirect: op@0 indirect_op@1 nr_segments(u16)@2 id@8 sector@16 handle@24 grefs[8]@28', () => {
    const { u8, view } = scratch(64);
    blkifRequestIndirect.encode(view, 0, {
      operation: BLKIF_OP_INDIRECT,
      indirectOp: BLKIF_OP_READ,
      nrSegments: 600,
      id: 1n,
      sectorNumber: 2,
      handle: 0x0102,
      indirectGrefs: [0x21, 0x22],
    });
    expect(hex(u8, 0, 28)).toBe('06' + '00' + '5802' + '00000000' + '0100000000000000' + '0200000000000000' + '0201' + '0000');
    expect(hex(u8, 28, 8)).toBe('21000000' + '22000000');
    expect(nonZero(u8.subarray(36))).toEqual([]);
    const d = blkifRequestIndirect.decode(view, 0);
    expect(d.nrSegments).toBe(600);
    expect(d.indirectGrefs).toEqual([0x21, 0x22, 0, 0, 0, 0, 0, 0]);
  });

  it('blkif_response: id@0 op@8 status@10, padding 9 and 12..15 zeroed', () => {
    const { u8, view } = scratch(16);
    u8.fill(0xee);
    blkifResponse.encode(view, 0, { id: 0xfedcba9876543210n, operation: BLKIF_OP_READ, status: BLKIF_RSP_EOPNOTSUPP });
    expect(hex(u8)).toBe('1032547698badcfe' + '00' + '00' + 'feff' + '00000000');
    expect(blkifResponse.decode(view, 0)).toEqual({ id: 0xfedcba9876543210n, operation: 0, status: -2 });
  });
});
