// GNTTABOP_copy semantics: copy bytes between two places, either of which may be a frame
// another domain granted us (checked and pinned with acquire/release for the duration of
// the copy) or a buffer of our own. Pure function over shared memory: no I/O.
//
// Xen's rules, in its order: a granted side never crosses its page (offset + len > 4096 ->
// GNTST_bad_copy_arg); then the source is pinned read-only and the destination writable
// (type, domid, readonly checks -> GNTST_general_error and friends); a granted frame must lie
// inside the granting domain's memory (GNTST_bad_page). A local buffer only has to contain
// [offset, offset + len): it is ours, Xen's page rule guards other domains' frames.
import { acquire, MappedGrantTable, release } from './grant-mapper.js';
import { GNTST_bad_copy_arg, GNTST_bad_page, GNTST_okay } from './grant-entry.js';

const PAGE = 4096;

/** A domain that granted us access: its grant table and its memory (frame f is bytes
 * [f*4096, f*4096 + 4096) of `memory`). */
export interface GrantingDomain {
  table: MappedGrantTable;
  memory: Uint8Array;
}

/** A granted frame: grant `ref` of `domain`, at byte `offset` within that frame. */
export interface GrantRefEndpoint {
  domain: GrantingDomain;
  ref: number;
  offset: number;
}

/** Our own memory: `buf` at byte `offset`. */
export interface LocalEndpoint {
  buf: Uint8Array;
  offset: number;
}

export type CopyEndpoint = GrantRefEndpoint | LocalEndpoint;

function isGrant(e: CopyEndpoint): e is GrantRefEndpoint {
  return (e as GrantRefEndpoint).domain !== undefined;
}

function validOffset(n: number): boolean {
  return Number.isInteger(n) && n >= 0;
}

function checkBounds(e: CopyEndpoint, len: number): boolean {
  if (!validOffset(e.offset)) return false;
  if (isGrant(e)) return e.offset + len <= PAGE;
  return e.offset + len <= e.buf.length;
}

/** Copies `len` bytes from `src` to `dst` on behalf of domain `mapperDomid`; returns a
 * GNTST_ status (GNTST_okay on success, nothing written otherwise). */
export function grantCopy(src: CopyEndpoint, dst: CopyEndpoint, len: number, mapperDomid: number): number {
  if (!Number.isInteger(len) || len < 0 || len > PAGE) return GNTST_bad_copy_arg;
  if (!checkBounds(src, len) || !checkBounds(dst, len)) return GNTST_bad_copy_arg;

  let srcBytes: Uint8Array;
  let srcStart: number;
  let dstBytes: Uint8Array;
  let dstStart: number;

  // Source first (read-only pin), then destination (writable pin), as Xen orders them.
  if (isGrant(src)) {
    const frame = acquire(src.domain.table, src.ref, mapperDomid, false);
    if (frame < 0) return frame;
    if ((frame + 1) * PAGE > src.domain.memory.length) {
      release(src.domain.table, src.ref, false);
      return GNTST_bad_page;
    }
    srcBytes = src.domain.memory;
    srcStart = frame * PAGE + src.offset;
  } else {
    srcBytes = src.buf;
    srcStart = src.offset;
  }

  if (isGrant(dst)) {
    const frame = acquire(dst.domain.table, dst.ref, mapperDomid, true);
    if (frame < 0 || (frame + 1) * PAGE > dst.domain.memory.length) {
      if (frame >= 0) release(dst.domain.table, dst.ref, true);
      if (isGrant(src)) release(src.domain.table, src.ref, false);
      return frame < 0 ? frame : GNTST_bad_page;
    }
    dstBytes = dst.domain.memory;
    dstStart = frame * PAGE + dst.offset;
  } else {
    dstBytes = dst.buf;
    dstStart = dst.offset;
  }

  // Short copies element by element (no view allocation); longer ones through set(), which
  // is a memmove even when both arrays share one buffer.
  if (len <= 32) {
    if (srcBytes.buffer === dstBytes.buffer && dstBytes.byteOffset + dstStart > srcBytes.byteOffset + srcStart) {
      for (let i = len - 1; i >= 0; i--) dstBytes[dstStart + i] = srcBytes[srcStart + i]!;
    } else {
      for (let i = 0; i < len; i++) dstBytes[dstStart + i] = srcBytes[srcStart + i]!;
    }
  } else {
    dstBytes.set(srcBytes.subarray(srcStart, srcStart + len), dstStart);
  }

  if (isGrant(dst)) release(dst.domain.table, dst.ref, true);
  if (isGrant(src)) release(src.domain.table, src.ref, false);
  return GNTST_okay;
}
