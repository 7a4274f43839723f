// blkfront's read-ahead: what the block layer under Linux's page cache gives a disk and FUSE
// cannot give ours. The guest kernel's readahead on /dev/xvda is capped at 128 KiB and starts
// at 16 KiB, so fuse2fs reading a file block by block (a program being paged in from the root
// filesystem) reaches the ring as a run of 16-128 KiB requests, each a trip to dom0 and back:
// a busybox boot made 79 of them for 2.3 MB. Here a small buffered read is widened to an
// aligned window of the disk, and the rest of the window is kept so the reads that follow are
// answered without the ring.
//
// Only buffered reads are widened (O_DIRECT readers asked for exactly what they read), and
// only reads that continue a recent one or start the disk, as Linux's sync readahead tells
// sequential from random (page_cache_sync_ra: index - prev_index <= 1): a random 4 KiB read is
// read as is, not as a window 8-128 times its size. A few streams are followed at once, since
// fuse2fs reads an inode or an extent block between a file's data blocks. The window adapts as
// Linux's does: it doubles while windows are used and halves when they are dropped unread,
// between MIN_WINDOW and MAX_WINDOW.
//
// Coherence: every write to the disk passes through blkfront, so the cache drops what a write
// overlaps when the write arrives, and a window read while a write to it is in flight (in
// either order: the backend may complete them in any order) answers its own read but is not
// kept. Readers that joined such a window before the write are concurrent with it; a read that
// arrives after the write never joins it.

export const MIN_WINDOW = 32 * 1024;
export const MAX_WINDOW = 512 * 1024;
const START_WINDOW = 256 * 1024;
/** Streams of reads followed at once, and how near a read must start to where one ended. */
const STREAMS = 8;
const PAGE = 4096;
/** Bytes kept per disk: enough for a few windows per stream; the guest's page cache above
 * is the real cache, this only bridges the time between a window and the reads it serves. */
const CAPACITY = 4 << 20;

interface Entry {
  start: number;
  data: Uint8Array;
  used: boolean;
}

/** A window being read from the disk. */
export interface Fill {
  start: number;
  end: number;
  /** A write overlapped it: answer the readers waiting on it, keep nothing. */
  stale: boolean;
  /** The window's bytes (null: the read failed). */
  done: Promise<Uint8Array | null>;
}

export interface ReadAheadCounters {
  /** Reads answered from a kept window. */
  hits: number;
  /** Windows read from the disk for a small read. */
  fills: number;
  /** Windows dropped before any read used them. */
  wasted: number;
}

export class ReadAhead {
  /** Kept windows by start offset, least recently used first (Map order). */
  private readonly entries = new Map<number, Entry>();
  private readonly fills = new Set<Fill>();
  /** Writes between arrival and completion: [start, end) byte ranges. */
  private readonly writing = new Set<{ start: number; end: number }>();
  private bytes = 0;
  window = START_WINDOW;
  /** Where the last few small reads ended, oldest first. */
  private readonly ends: number[] = [];
  readonly counters: ReadAheadCounters = { hits: 0, fills: 0, wasted: 0 };

  constructor(
    /** The disk's size in bytes (windows stop there). */
    private readonly diskBytes: number,
    private readonly capacity = CAPACITY,
  ) {}

  /** The bytes of [offset, end) from kept windows (a list of views), or null. */
  lookup(offset: number, end: number): Uint8Array[] | null {
    const out: Uint8Array[] = [];
    for (let at = offset; at < end; ) {
      const e = this.entryAt(at);
      if (!e) return null;
      const from = at - e.start;
      const take = Math.min(e.data.length - from, end - at);
      out.push(e.data.subarray(from, from + take));
      at += take;
    }
    for (let at = offset; at < end; ) {
      const e = this.entryAt(at)!;
      e.used = true;
      // Most recently used last.
      this.entries.delete(e.start);
      this.entries.set(e.start, e);
      at = e.start + e.data.length;
    }
    this.counters.hits++;
    return out;
  }

  private entryAt(at: number): Entry | undefined {
    // Windows of different sizes may be kept at once: look for the one holding `at`.
    for (let w = MIN_WINDOW; w <= MAX_WINDOW; w *= 2) {
      const e = this.entries.get(at - (at % w));
      if (e && at < e.start + e.data.length) return e;
    }
    return undefined;
  }

  /** A window being read that holds all of [offset, end), if any. */
  pending(offset: number, end: number): Fill | undefined {
    for (const f of this.fills) if (!f.stale && f.start <= offset && end <= f.end) return f;
    return undefined;
  }

  /** Whether a small read of [offset, end) continues one of the recent reads (starting within a
   * page of where it ended) or starts the disk: only such a read is worth widening. Every
   * buffered read is noted here, hits too, so a stream is followed through its windows. */
  continues(offset: number, end: number): boolean {
    const i = this.ends.findIndex((e) => offset >= e - PAGE && offset <= e + PAGE);
    if (i >= 0) this.ends.splice(i, 1);
    else if (this.ends.length >= STREAMS) this.ends.shift();
    this.ends.push(end);
    return i >= 0 || offset === 0;
  }

  /** The window to read for a small read of [offset, end), or null when the read is too big
   * to widen. Aligned to the window size; may be two windows when the read straddles. */
  widen(offset: number, end: number): { start: number; end: number } | null {
    const w = this.window;
    if (end - offset > w) return null;
    const start = offset - (offset % w);
    return { start, end: Math.min(Math.ceil(end / w) * w, this.diskBytes) };
  }

  /** Start keeping track of a window read; `read` does the I/O. */
  fill(start: number, end: number, read: () => Promise<Uint8Array | null>): Fill {
    const f: Fill = { start, end, stale: this.writeOverlaps(start, end), done: Promise.resolve(null) };
    this.counters.fills++;
    this.fills.add(f);
    f.done = read().then(
      (data) => {
        this.fills.delete(f);
        if (data && !f.stale) this.keep(start, data);
        return data;
      },
      () => {
        this.fills.delete(f);
        return null;
      },
    );
    return f;
  }

  private writeOverlaps(start: number, end: number): boolean {
    for (const w of this.writing) if (w.start < end && start < w.end) return true;
    return false;
  }

  private keep(start: number, data: Uint8Array): void {
    // Kept in window-sized pieces so one used piece does not keep the rest alive.
    const w = this.window;
    for (let at = 0; at < data.length; at += w) {
      const piece = data.subarray(at, Math.min(at + w, data.length));
      const s = start + at;
      this.drop(s, s + piece.length);
      this.entries.set(s, { start: s, data: piece, used: false });
      this.bytes += piece.length;
    }
    while (this.bytes > this.capacity) {
      const first = this.entries.values().next().value as Entry;
      this.remove(first);
    }
  }

  private remove(e: Entry): void {
    this.entries.delete(e.start);
    this.bytes -= e.data.length;
    if (!e.used) {
      this.counters.wasted++;
      this.window = Math.max(MIN_WINDOW, this.window / 2);
    } else {
      this.window = Math.min(MAX_WINDOW, this.window * 2);
    }
  }

  /** Forget kept bytes in [start, end) (no verdict on the window size). */
  private drop(start: number, end: number): void {
    for (const e of [...this.entries.values()]) {
      if (e.start < end && start < e.start + e.data.length) {
        this.entries.delete(e.start);
        this.bytes -= e.data.length;
      }
    }
  }

  /** A write of [start, end) arrived: nothing kept or being read there may be served after it.
   * Returns the token to pass to writeDone() once the write has completed. */
  writeBegins(start: number, end: number): object {
    this.drop(start, end);
    for (const f of this.fills) if (f.start < end && start < f.end) f.stale = true;
    const token = { start, end };
    this.writing.add(token);
    return token;
  }

  writeDone(token: object): void {
    this.writing.delete(token as { start: number; end: number });
  }

  /** Forget everything (the disk went away). */
  clear(): void {
    this.entries.clear();
    for (const f of this.fills) f.stale = true;
    this.bytes = 0;
  }
}
