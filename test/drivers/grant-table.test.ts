import { describe, expect, it } from 'vitest';
import {
  GNTST_bad_gntref,
  GNTST_bad_handle,
  GNTST_bad_page,
  GNTST_general_error,
  GNTST_no_space,
  GNTST_okay,
  GNTST_permission_denied,
  GNTST_bad_copy_arg,
  GNTST_eagain,
  GNTTAB_NR_RESERVED_ENTRIES,
  GNTTAB_RESERVED_CONSOLE,
  GNTTAB_RESERVED_XENSTORE,
  grantEntryV1,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_writing,
  GTF_transitive,
  GTF_type_mask,
  gnttabErrorMessage,
} from '../../drivers/grant/grant-entry.js';
import { acquire, ActiveGrantTable, GrantTable, MappedGrantTable, pinCounts, release } from '../../drivers/grant/grant-table.js';
import { hex, scratch } from './helpers.js';

const GUEST = 5;
const DOM0 = 0;

function setup(entries = 64, memFrames?: number): { buf: SharedArrayBuffer; gt: GrantTable; mt: MappedGrantTable; raw: DataView } {
  const buf = new SharedArrayBuffer(entries * 8);
  return { buf, gt: new GrantTable(buf), mt: new MappedGrantTable(buf, { memFrames }), raw: new DataView(buf) };
}

describe('grant_table.h v1 entry', () => {
  it('has the header numbers', () => {
    expect([GTF_permit_access, GTF_transitive, GTF_type_mask, GTF_readonly, GTF_reading, GTF_writing]).toEqual([1, 3, 3, 4, 8, 16]);
    expect([GNTST_okay, GNTST_general_error, GNTST_bad_gntref, GNTST_permission_denied, GNTST_bad_page]).toEqual([0, -1, -3, -8, -9]);
    expect([GNTST_bad_copy_arg, GNTST_eagain, GNTST_no_space]).toEqual([-10, -12, -13]);
    expect([GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GNTTAB_NR_RESERVED_ENTRIES]).toEqual([0, 1, 8]);
    expect(gnttabErrorMessage(GNTST_bad_copy_arg)).toBe('copy arguments cross page boundary');
  });

  it('lays out flags@0 domid@2 frame@4, 8 bytes', () => {
    const { u8, view } = scratch(8);
    grantEntryV1.encode(view, 0, { flags: GTF_permit_access | GTF_readonly, domid: 0x0102, frame: 0x11223344 });
    expect(hex(u8)).toBe('0500' + '0201' + '44332211');
  });

  it('grantAccess publishes domid and frame with the flags written last', () => {
    const { gt, raw } = setup();
    const ref = gt.grantAccess(GUEST, 0x1234, false);
    expect(hex(new Uint8Array(raw.buffer), ref * 8, 8)).toBe('0100' + '0500' + '34120000');
    const ro = gt.grantAccess(0x7ff0, 7, true);
    expect(raw.getUint16(ro * 8, true)).toBe(GTF_permit_access | GTF_readonly);
    expect(raw.getUint16(ro * 8 + 2, true)).toBe(0x7ff0);
    expect(gt.entry(ro)).toEqual({ flags: 5, domid: 0x7ff0, frame: 7 });
  });
});

describe('GrantTable allocator', () => {
  it('never hands out reserved refs, and fills them only on request', () => {
    const { gt, raw } = setup(16);
    const refs: number[] = [];
    for (;;) {
      const r = gt.grantAccess(GUEST, 1, false);
      if (r < 0) {
        expect(r).toBe(GNTST_no_space);
        break;
      }
      refs.push(r);
    }
    expect(refs).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    gt.grantAccessAt(GNTTAB_RESERVED_XENSTORE, 0, 99, false);
    expect(raw.getUint32(8 + 4, true)).toBe(99);
    expect(() => gt.grantAccessAt(GNTTAB_RESERVED_XENSTORE, 0, 99, false)).toThrow();
    expect(() => gt.grantAccessAt(9, 0, 99, false)).toThrow();
    expect(gt.endAccess(GNTTAB_RESERVED_XENSTORE)).toBe(true);
    expect(gt.freeCount).toBe(0); // a reserved ref does not join the free list
    expect(gt.endAccess(12)).toBe(true);
    expect(gt.grantAccess(GUEST, 2, false)).toBe(12);
  });

  it('refuses to end a ref that is not granted', () => {
    const { gt } = setup();
    expect(() => gt.endAccess(20)).toThrow();
    expect(() => gt.endAccess(1000)).toThrow();
  });
});

describe('acquire / release (the mapper side)', () => {
  it('pins a grant for the right domain and returns the frame', () => {
    const { gt, mt, raw } = setup();
    const ref = gt.grantAccess(GUEST, 77, false);
    expect(acquire(mt, ref, GUEST, true)).toBe(77);
    expect(raw.getUint16(ref * 8, true)).toBe(GTF_permit_access | GTF_reading | GTF_writing);
    expect(release(mt, ref, true)).toBe(GNTST_okay);
    expect(raw.getUint16(ref * 8, true)).toBe(GTF_permit_access);
  });

  it('refuses a ref out of range, the wrong domain, an invalid entry and transitive grants', () => {
    const { gt, mt, raw } = setup();
    expect(acquire(mt, 64, GUEST, false)).toBe(GNTST_bad_gntref);
    expect(acquire(mt, -1, GUEST, false)).toBe(GNTST_bad_gntref);
    const ref = gt.grantAccess(GUEST, 3, false);
    expect(acquire(mt, ref, 6, false)).toBe(GNTST_general_error);
    expect(acquire(mt, ref + 1, GUEST, false)).toBe(GNTST_general_error); // never granted
    raw.setUint16(ref * 8, GTF_transitive, true);
    expect(acquire(mt, ref, GUEST, false)).toBe(GNTST_general_error);
    expect(pinCounts(mt, ref)).toEqual({ holders: 0, writers: 0 });
  });

  it('refuses write access to a read-only grant but allows reading', () => {
    const { gt, mt, raw } = setup();
    const ref = gt.grantAccess(GUEST, 3, true);
    expect(acquire(mt, ref, GUEST, true)).toBe(GNTST_general_error);
    expect(raw.getUint16(ref * 8, true) & (GTF_reading | GTF_writing)).toBe(0);
    expect(acquire(mt, ref, GUEST, false)).toBe(3);
    // an upgrade of an existing read pin to write is refused too
    expect(acquire(mt, ref, GUEST, true)).toBe(GNTST_general_error);
    expect(raw.getUint16(ref * 8, true) & GTF_writing).toBe(0);
    expect(release(mt, ref, false)).toBe(GNTST_okay);
  });

  it('revoking while mapped fails; after the last release it succeeds (XSA-396)', () => {
    const { gt, mt } = setup();
    const ref = gt.grantAccess(GUEST, 42, false);
    expect(acquire(mt, ref, GUEST, false)).toBe(42);
    expect(gt.isInUse(ref)).toBe(true);
    expect(gt.endAccess(ref)).toBe(false);
    expect(gt.entry(ref).flags & GTF_permit_access).toBe(GTF_permit_access); // still granted
    expect(release(mt, ref, false)).toBe(GNTST_okay);
    expect(gt.endAccess(ref)).toBe(true);
    expect(gt.entry(ref).flags).toBe(0);
    expect(acquire(mt, ref, GUEST, false)).toBe(GNTST_general_error); // revoked
  });

  it('keeps the shared bits until the last of several holders releases', () => {
    const { gt, mt } = setup();
    const ref = gt.grantAccess(GUEST, 9, false);
    expect(acquire(mt, ref, GUEST, false)).toBe(9);
    expect(acquire(mt, ref, GUEST, true)).toBe(9);
    expect(acquire(mt, ref, GUEST, true)).toBe(9);
    expect(pinCounts(mt, ref)).toEqual({ holders: 3, writers: 2 });
    expect(release(mt, ref, true)).toBe(GNTST_okay);
    expect(gt.entry(ref).flags).toBe(GTF_permit_access | GTF_reading | GTF_writing);
    expect(release(mt, ref, true)).toBe(GNTST_okay);
    expect(gt.entry(ref).flags).toBe(GTF_permit_access | GTF_reading); // last writer gone
    expect(gt.endAccess(ref)).toBe(false);
    expect(release(mt, ref, false)).toBe(GNTST_okay);
    expect(gt.entry(ref).flags).toBe(GTF_permit_access);
    expect(release(mt, ref, false)).toBe(GNTST_bad_handle); // nothing left to release
    expect(gt.endAccess(ref)).toBe(true);
  });

  it('shares pin counts between two views of the same buffer in one process', () => {
    const { buf, gt } = setup();
    const a = new MappedGrantTable(buf);
    const b = new MappedGrantTable(buf);
    const ref = gt.grantAccess(GUEST, 1, false);
    acquire(a, ref, GUEST, false);
    acquire(b, ref, GUEST, false);
    release(a, ref, false);
    expect(gt.isInUse(ref)).toBe(true);
    release(b, ref, false);
    expect(gt.isInUse(ref)).toBe(false);
  });

  it('can share an explicit active table between mappers (e.g. hypervisor and dom0)', () => {
    const { buf, gt } = setup();
    const activeBuf = new SharedArrayBuffer(ActiveGrantTable.bytesFor(64));
    // two separate ActiveGrantTable objects over one buffer, as two processes would have
    const hv = new MappedGrantTable(buf, { active: new ActiveGrantTable(64, activeBuf) });
    const d0 = new MappedGrantTable(buf, { active: new ActiveGrantTable(64, activeBuf) });
    const ref = gt.grantAccess(DOM0, 4, false);
    expect(acquire(hv, ref, DOM0, false)).toBe(4);
    expect(acquire(d0, ref, DOM0, true)).toBe(4);
    expect(release(hv, ref, false)).toBe(GNTST_okay);
    expect(gt.isInUse(ref)).toBe(true);
    expect(release(d0, ref, true)).toBe(GNTST_okay);
    expect(gt.isInUse(ref)).toBe(false);
  });

  it('caches the frame at first pin: a guest rewriting its entry does not move a holder', () => {
    const { gt, mt, raw } = setup();
    const ref = gt.grantAccess(GUEST, 10, false);
    expect(acquire(mt, ref, GUEST, false)).toBe(10);
    raw.setUint32(ref * 8 + 4, 999, true);
    raw.setUint16(ref * 8 + 2, 77, true); // and its domid
    expect(acquire(mt, ref, GUEST, false)).toBe(10);
    expect(acquire(mt, ref, 77, false)).toBe(GNTST_general_error); // pinned for GUEST only
    release(mt, ref, false);
    release(mt, ref, false);
  });

  it('refuses frames outside the granting domain memory with GNTST_bad_page and leaves no bits set', () => {
    const { gt, mt } = setup(64, 16);
    const ref = gt.grantAccess(GUEST, 16, false);
    expect(acquire(mt, ref, GUEST, true)).toBe(GNTST_bad_page);
    expect(gt.entry(ref).flags).toBe(GTF_permit_access);
    expect(gt.endAccess(ref)).toBe(true);
  });

  it('gives up on an entry whose flags keep changing under it', () => {
    const { gt, mt } = setup();
    const ref = gt.grantAccess(GUEST, 1, false);
    // Simulate a guest flipping GTF_PCD on every read: wrap the words array's CAS target.
    const words = mt.words;
    const realCas = Atomics.compareExchange;
    let flips = 0;
    (Atomics as { compareExchange: typeof Atomics.compareExchange }).compareExchange = ((
      arr: Int32Array,
      i: number,
      expected: number,
      value: number,
    ) => {
      if (arr === words) {
        flips++;
        Atomics.xor(words, i, 1 << 6);
      }
      return realCas(arr, i, expected, value);
    }) as typeof Atomics.compareExchange;
    try {
      expect(acquire(mt, ref, GUEST, false)).toBe(GNTST_general_error);
    } finally {
      (Atomics as { compareExchange: typeof Atomics.compareExchange }).compareExchange = realCas;
    }
    expect(flips).toBe(5);
    expect(pinCounts(mt, ref).holders).toBe(0);
  });
});
