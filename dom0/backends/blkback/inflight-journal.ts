// blkback's journal of the requests it has taken off a vbd's ring and not yet answered where
// the frontend can see it, so that a dom0 started after this one died can answer them
// (docs/architecture.md, "dom0 restarts"). blkback answers in completion order: when dom0
// dies, the requests still owed are not the ones after rsp_prod in the ring, and their slots
// may already hold newer requests; only the copy blkback took knows them. So each request's
// slot bytes go to this file (the run dir's, which outlives dom0) as it is taken, and the
// response index it was answered at as it is answered. The file is mapped shared, so these
// are plain stores (no system call per request) that outlive the process in the page cache,
// in the order they were made. A successor redoes every request not
// answered below the ring's published rsp_prod: reads and writes again (the guest's pages are
// still its buffers: blkfront reuses them only after the answer), a flush again.
//
// Entry (128 bytes): u32 state (0 free, 1 taken, 2 answered), u32 ring index taken at, u32
// response index answered at, u32 0, then the request slot (112 bytes).
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { native } from '../../../native/index.js';
import { dirname, join } from 'node:path';
import { runDir } from '../../../common/paths.js';
import { BLKIF_SLOT_SIZE } from '../../../drivers/wire/blkif.js';

const ENTRY = 128;
const HDR = 16;
const TAKEN = 1;
const ANSWERED = 2;

/** A request a predecessor owed an answer for. */
export interface OwedRequest {
  ringIndex: number;
  slot: Uint8Array;
}

export function journalPath(domid: number, devid: number): string {
  return join(runDir(), 'blkback', `${domid}-${devid}.inflight`);
}

/** `a` comes before `b` in u32 index arithmetic. */
const before = (a: number, b: number) => ((b - a - 1) >>> 0) < 0x80000000;

export class InflightJournal {
  /** The mapped file; null once removed. */
  private map: { bytes: Uint8Array; words: Uint32Array } | null;
  private readonly free: number[] = [];
  /** Entries answered, by the response index they were answered at, until it is published. */
  private readonly unpublished = new Map<number, number>();

  /** A fresh journal for a ring with `ringSize` slots (any old one is replaced). */
  constructor(private readonly path: string, ringSize: number) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Requests owed are at most a ring's worth; answered ones wait for their push too.
    const entries = 2 * ringSize + 2;
    const fd = openSync(path, 'w+', 0o600);
    try {
      ftruncateSync(fd, entries * ENTRY);
      const sab = native().mapShared(fd, entries * ENTRY);
      this.map = { bytes: new Uint8Array(sab), words: new Uint32Array(sab) };
    } finally {
      closeSync(fd);
    }
    for (let i = entries - 1; i >= 0; i--) this.free.push(i);
  }

  /**
   * What a predecessor left: the requests it took and had not answered below `rspProd` (the
   * ring's published response producer), in the order it took them. undefined: no journal.
   */
  static owed(path: string, rspProd: number): OwedRequest[] | undefined {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      return undefined;
    }
    const out: OwedRequest[] = [];
    for (let off = 0; off + ENTRY <= bytes.length; off += ENTRY) {
      const state = bytes.readUInt32LE(off);
      const ringIndex = bytes.readUInt32LE(off + 4);
      const rspIndex = bytes.readUInt32LE(off + 8);
      if (state === TAKEN || (state === ANSWERED && !before(rspIndex, rspProd))) {
        out.push({ ringIndex, slot: new Uint8Array(bytes.subarray(off + HDR, off + HDR + BLKIF_SLOT_SIZE)) });
      }
    }
    return out.sort((a, b) => (before(a.ringIndex, b.ringIndex) ? -1 : 1));
  }

  /** A request was taken at `ringIndex`: its copy goes in before anything is done for it.
   * Returns its entry, for answered(); -1 if the journal is full (not expected: see above). */
  taken(ringIndex: number, slot: Uint8Array): number {
    const e = this.free.pop();
    if (e === undefined || !this.map) return -1;
    const w = (e * ENTRY) / 4;
    this.map.bytes.set(slot.subarray(0, BLKIF_SLOT_SIZE), e * ENTRY + HDR);
    this.map.words[w + 1] = ringIndex >>> 0;
    Atomics.store(this.map.words, w, TAKEN); // last, and ordered: the entry counts once it is whole
    return e;
  }

  /** Its response went into the ring at `rspIndex` (visible once pushed). */
  answered(e: number, rspIndex: number): void {
    if (e < 0 || !this.map) return;
    const w = (e * ENTRY) / 4;
    // The index first: a successor must never see ANSWERED with another request's index.
    this.map.words[w + 2] = rspIndex >>> 0;
    Atomics.store(this.map.words, w, ANSWERED);
    this.unpublished.set(e, rspIndex >>> 0);
  }

  /** rsp_prod is published up to `rspProd`: entries answered below it are free again. Their
   * bytes can stay: a successor sees they were answered. */
  published(rspProd: number): void {
    for (const [e, idx] of this.unpublished) {
      if (!before(idx, rspProd)) continue;
      this.unpublished.delete(e);
      this.free.push(e);
    }
  }

  /** The vbd disconnected cleanly: nothing is owed. (The mapping goes with its last view.) */
  remove(): void {
    if (!this.map) return;
    this.map = null;
    rmSync(this.path, { force: true });
  }
}
