// blkfront's read-ahead (guest/kernel/frontends/blkfront/read-ahead.ts): small reads widened to
// aligned windows of the disk, later reads answered from them, and never an answer older than
// a write that came before it. The disk is an array in memory with a read that completes when
// the test says, so the orders a backend can complete requests in are played out exactly.
import { describe, expect, it } from 'vitest';
import { MAX_WINDOW, MIN_WINDOW, ReadAhead } from '../../guest/kernel/frontends/blkfront/read-ahead.js';

const KiB = 1024;
const DISK = 4 << 20;

/** The disk's bytes at [start, end): byte i holds i's low byte xor `gen`. */
function content(start: number, end: number, gen = 0): Uint8Array {
  const b = new Uint8Array(end - start);
  for (let i = 0; i < b.length; i++) b[i] = ((start + i) & 0xff) ^ gen;
  return b;
}

function joined(views: Uint8Array[] | null): Uint8Array | null {
  if (!views) return null;
  return new Uint8Array(Buffer.concat(views));
}

describe('blkfront read-ahead', () => {
  it('widens a small read to an aligned window and answers the reads that follow from it', async () => {
    const ra = new ReadAhead(DISK);
    const w = ra.widen(300 * KiB, 316 * KiB)!;
    expect(w).toEqual({ start: 256 * KiB, end: 512 * KiB });
    const f = ra.fill(w.start, w.end, async () => content(w.start, w.end));
    expect(ra.pending(400 * KiB, 420 * KiB)).toBe(f);
    await f.done;
    expect(joined(ra.lookup(316 * KiB, 444 * KiB))).toEqual(content(316 * KiB, 444 * KiB));
    expect(ra.counters).toMatchObject({ fills: 1, hits: 1 });
    // Outside the window: nothing kept.
    expect(ra.lookup(512 * KiB, 516 * KiB)).toBeNull();
  });

  it('widens a read that straddles two windows to both, and stops at the end of the disk', () => {
    const ra = new ReadAhead(600 * KiB);
    expect(ra.widen(250 * KiB, 260 * KiB)).toEqual({ start: 0, end: 512 * KiB });
    expect(ra.widen(520 * KiB, 524 * KiB)).toEqual({ start: 512 * KiB, end: 600 * KiB });
    // Reads bigger than a window go to the disk as they are.
    expect(ra.widen(0, ra.window + 4096)).toBeNull();
  });

  it('drops what a write overlaps when the write arrives', async () => {
    const ra = new ReadAhead(DISK);
    await ra.fill(0, 256 * KiB, async () => content(0, 256 * KiB)).done;
    const t = ra.writeBegins(8 * KiB, 12 * KiB);
    expect(ra.lookup(0, 4 * KiB)).toBeNull();
    ra.writeDone(t);
    expect(ra.lookup(0, 4 * KiB)).toBeNull();
  });

  it('does not keep a window that was being read when a write to it arrived, and a read after the write does not join it', async () => {
    const ra = new ReadAhead(DISK);
    let finish!: (b: Uint8Array) => void;
    const f = ra.fill(0, 256 * KiB, () => new Promise<Uint8Array>((r) => (finish = r)));
    const t = ra.writeBegins(4 * KiB, 8 * KiB);
    expect(ra.pending(4 * KiB, 8 * KiB)).toBeUndefined();
    // The backend answered the read with the bytes from before the write.
    finish(content(0, 256 * KiB));
    expect(await f.done).not.toBeNull();
    ra.writeDone(t);
    expect(ra.lookup(4 * KiB, 8 * KiB)).toBeNull();
    expect(ra.lookup(128 * KiB, 132 * KiB)).toBeNull();
  });

  it('does not keep a window read while a write to it is still in flight (the backend may finish the read first)', async () => {
    const ra = new ReadAhead(DISK);
    const t = ra.writeBegins(100 * KiB, 104 * KiB);
    const f = ra.fill(0, 256 * KiB, async () => content(0, 256 * KiB));
    await f.done;
    ra.writeDone(t);
    expect(ra.lookup(0, 4 * KiB)).toBeNull();
    // Once the write is done, a new window is kept again.
    await ra.fill(0, 256 * KiB, async () => content(0, 256 * KiB, 0x5a)).done;
    expect(joined(ra.lookup(100 * KiB, 104 * KiB))).toEqual(content(100 * KiB, 104 * KiB, 0x5a));
  });

  it('a failed window read keeps nothing', async () => {
    const ra = new ReadAhead(DISK);
    expect(await ra.fill(0, 256 * KiB, async () => null).done).toBeNull();
    expect(await ra.fill(0, 256 * KiB, () => Promise.reject(new Error('EIO'))).done).toBeNull();
    expect(ra.lookup(0, 4096)).toBeNull();
  });

  it('shrinks the window when windows are dropped unread (random reads) and grows it while they are used, within bounds', async () => {
    const ra = new ReadAhead(64 << 20, 1 << 20);
    for (let i = 0; i < 40; i++) {
      const at = ((i * 7919) % 200) * (256 * KiB);
      const w = ra.widen(at, at + 4096)!;
      await ra.fill(w.start, w.end, async () => content(w.start, w.end)).done;
    }
    expect(ra.window).toBe(MIN_WINDOW);
    expect(ra.counters.wasted).toBeGreaterThan(0);
    for (let at = 0; at < 12 << 20; at += 4096) {
      if (ra.lookup(at, at + 4096)) continue;
      const w = ra.widen(at, at + 4096)!;
      await ra.fill(w.start, w.end, async () => content(w.start, w.end)).done;
      expect(joined(ra.lookup(at, at + 4096))).toEqual(content(at, at + 4096));
    }
    expect(ra.window).toBe(MAX_WINDOW);
  });

  it('widens only reads that continue a recent one (a few streams at once) or start the disk, as Linux tells sequential from random', () => {
    const ra = new ReadAhead(64 << 20);
    expect(ra.continues(0, 4096)).toBe(true); // the start of the disk
    expect(ra.continues(4096, 8192)).toBe(true); // where the last one ended
    // Random 4 KiB reads: none continues another, none is worth a window.
    const random = [37, 901, 4410, 12007, 2203, 15013].map((n) => n * 4096);
    for (const at of random) expect(ra.continues(at, at + 4096)).toBe(false);
    // Two streams interleaved (a file's blocks between its inode's reads) are both followed.
    expect(ra.continues(100 * 4096, 101 * 4096)).toBe(false);
    expect(ra.continues(900 * 4096, 901 * 4096)).toBe(false);
    expect(ra.continues(101 * 4096, 102 * 4096)).toBe(true);
    expect(ra.continues(901 * 4096, 902 * 4096)).toBe(true);
    expect(ra.continues(102 * 4096, 103 * 4096)).toBe(true);
  });
});
