import { describe, expect, it } from 'vitest';
import { grantCopy, GrantingDomain } from '../../drivers/grant/grant-copy.js';
import {
  GNTST_bad_copy_arg,
  GNTST_bad_gntref,
  GNTST_bad_page,
  GNTST_general_error,
  GNTST_okay,
} from '../../drivers/grant/grant-entry.js';
import { GrantTable, MappedGrantTable, pinCounts } from '../../drivers/grant/grant-table.js';

const BACKEND = 0;
const FRAMES = 8;

function guest(): { dom: GrantingDomain; gt: GrantTable } {
  const tableBuf = new SharedArrayBuffer(32 * 8);
  const memory = new Uint8Array(new SharedArrayBuffer(FRAMES * 4096));
  return { gt: new GrantTable(tableBuf), dom: { table: new MappedGrantTable(tableBuf), memory } };
}

describe('grantCopy (GNTTABOP_copy semantics)', () => {
  it('copies from a granted frame into a local buffer, holding GTF_reading only meanwhile', () => {
    const { dom, gt } = guest();
    dom.memory.set([1, 2, 3, 4, 5], 2 * 4096 + 100);
    const ref = gt.grantAccess(BACKEND, 2, true);
    const local = new Uint8Array(64);
    expect(grantCopy({ domain: dom, ref, offset: 100 }, { buf: local, offset: 10 }, 5, BACKEND)).toBe(GNTST_okay);
    expect([...local.subarray(10, 15)]).toEqual([1, 2, 3, 4, 5]);
    expect(gt.isInUse(ref)).toBe(false);
    expect(gt.endAccess(ref)).toBe(true);
  });

  it('copies a local buffer into a writable grant and refuses a read-only one', () => {
    const { dom, gt } = guest();
    const rw = gt.grantAccess(BACKEND, 5, false);
    const ro = gt.grantAccess(BACKEND, 6, true);
    const data = new Uint8Array(100).fill(0xab);
    expect(grantCopy({ buf: data, offset: 0 }, { domain: dom, ref: rw, offset: 4000 }, 96, BACKEND)).toBe(GNTST_okay);
    expect(dom.memory[5 * 4096 + 4000]).toBe(0xab);
    expect(dom.memory[5 * 4096 + 4095]).toBe(0xab);
    expect(dom.memory[6 * 4096]).toBe(0);
    expect(grantCopy({ buf: data, offset: 0 }, { domain: dom, ref: ro, offset: 0 }, 10, BACKEND)).toBe(GNTST_general_error);
    expect(dom.memory[6 * 4096]).toBe(0);
  });

  it('never crosses a page: offset + len > 4096 is GNTST_bad_copy_arg, with nothing pinned', () => {
    const { dom, gt } = guest();
    const ref = gt.grantAccess(BACKEND, 1, false);
    const local = new Uint8Array(8192);
    expect(grantCopy({ domain: dom, ref, offset: 4000 }, { buf: local, offset: 0 }, 97, BACKEND)).toBe(GNTST_bad_copy_arg);
    expect(grantCopy({ buf: local, offset: 0 }, { domain: dom, ref, offset: 1 }, 4096, BACKEND)).toBe(GNTST_bad_copy_arg);
    expect(grantCopy({ buf: local, offset: 0 }, { domain: dom, ref, offset: 0 }, 4097, BACKEND)).toBe(GNTST_bad_copy_arg);
    expect(grantCopy({ buf: local, offset: 0 }, { domain: dom, ref, offset: -1 }, 1, BACKEND)).toBe(GNTST_bad_copy_arg);
    // local buffers are bounded by their own length
    expect(grantCopy({ domain: dom, ref, offset: 0 }, { buf: new Uint8Array(10), offset: 5 }, 6, BACKEND)).toBe(GNTST_bad_copy_arg);
    expect(pinCounts(dom.table, ref)).toEqual({ holders: 0, writers: 0 });
    // exactly to the end of the page is fine
    expect(grantCopy({ domain: dom, ref, offset: 4000 }, { buf: local, offset: 0 }, 96, BACKEND)).toBe(GNTST_okay);
  });

  it('refuses a frame outside the granting domain memory with GNTST_bad_page', () => {
    const { dom, gt } = guest();
    const bad = gt.grantAccess(BACKEND, FRAMES, false); // one past the end
    const ok = gt.grantAccess(BACKEND, 0, false);
    const local = new Uint8Array(16);
    expect(grantCopy({ domain: dom, ref: bad, offset: 0 }, { buf: local, offset: 0 }, 16, BACKEND)).toBe(GNTST_bad_page);
    expect(grantCopy({ domain: dom, ref: ok, offset: 0 }, { domain: dom, ref: bad, offset: 0 }, 16, BACKEND)).toBe(GNTST_bad_page);
    // every pin taken on the way was dropped again
    expect(gt.isInUse(bad)).toBe(false);
    expect(gt.isInUse(ok)).toBe(false);
  });

  it('refuses grants for another domain and bad refs, releasing the source it had pinned', () => {
    const { dom, gt } = guest();
    const src = gt.grantAccess(BACKEND, 1, true);
    const other = gt.grantAccess(7, 2, false);
    expect(grantCopy({ domain: dom, ref: src, offset: 0 }, { domain: dom, ref: other, offset: 0 }, 8, BACKEND)).toBe(GNTST_general_error);
    expect(grantCopy({ domain: dom, ref: src, offset: 0 }, { domain: dom, ref: 999, offset: 0 }, 8, BACKEND)).toBe(GNTST_bad_gntref);
    expect(gt.isInUse(src)).toBe(false);
  });

  it('copies between two grants of the same domain, overlapping frames included', () => {
    const { dom, gt } = guest();
    for (let i = 0; i < 64; i++) dom.memory[4 * 4096 + i] = i;
    const a = gt.grantAccess(BACKEND, 4, false);
    const b = gt.grantAccess(BACKEND, 4, false);
    expect(grantCopy({ domain: dom, ref: a, offset: 0 }, { domain: dom, ref: b, offset: 8 }, 48, BACKEND)).toBe(GNTST_okay);
    expect([...dom.memory.subarray(4 * 4096 + 8, 4 * 4096 + 16)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(dom.memory[4 * 4096 + 55]).toBe(47);
    // and a short overlapping copy (element-wise path) behaves like memmove too
    for (let i = 0; i < 16; i++) dom.memory[4 * 4096 + i] = i;
    expect(grantCopy({ domain: dom, ref: a, offset: 0 }, { domain: dom, ref: a, offset: 2 }, 8, BACKEND)).toBe(GNTST_okay);
    expect([...dom.memory.subarray(4 * 4096, 4 * 4096 + 10)]).toEqual([0, 1, 0, 1, 2, 3, 4, 5, 6, 7]);
    expect(gt.isInUse(a) || gt.isInUse(b)).toBe(false);
  });
});
