// Span I/O: the addon's readv/writev/preadv/pwritev of (offset, length) spans of one buffer
// (a guest's memory), which the net and block data paths use instead of a view per page. The
// spans come from code that handles guest-controlled numbers, so every span is bounds-checked
// here; bytes must land exactly where the spans say, short transfers must say so.
import { closeSync, openSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { SpanIov } from '../../native/span-iov.js';

const n = native();
const fds: number[] = [];
const track = (fd: number) => (fds.push(fd), fd);

afterEach(() => {
  for (const fd of fds.splice(0)) {
    try {
      n.close(fd);
    } catch {
      // closed by the test
    }
  }
});

/** A memory of `size` bytes whose byte i is i & 0xff. */
function patterned(size: number): Uint8Array {
  const m = new Uint8Array(new SharedArrayBuffer(size));
  for (let i = 0; i < size; i++) m[i] = i & 0xff;
  return m;
}

const spans = (...pairs: number[]) => new Float64Array(pairs);

describe('positional span I/O (blkback)', () => {
  it('writes and reads back exactly the bytes the spans name, in order', () => {
    const fd = track(n.memfdCreate('span-test', 1 << 16));
    const mem = patterned(1 << 16);
    // three spans, out of order in memory, written from file offset 100
    expect(n.pwritevSegs(fd, mem, spans(8192, 10, 0, 5, 4096, 7), 3, 100)).toBe(22);
    const back = new Uint8Array(new SharedArrayBuffer(64));
    expect(n.preadvSegs(fd, back, spans(0, 22), 1, 100)).toBe(22);
    const want = [...mem.subarray(8192, 8202), ...mem.subarray(0, 5), ...mem.subarray(4096, 4103)];
    expect([...back.subarray(0, 22)]).toEqual(want);
  });

  it('reads fewer bytes only at the end of the file', () => {
    const fd = track(n.memfdCreate('span-eof', 4096));
    const mem = new Uint8Array(new SharedArrayBuffer(16384));
    expect(n.preadvSegs(fd, mem, spans(0, 4096, 8192, 4096), 2, 2048)).toBe(2048);
  });

  it('takes more spans than one preadv can (IOV_MAX), in pieces', () => {
    const fd = track(n.memfdCreate('span-many', 8192));
    const mem = patterned(8192);
    const many = new Float64Array(2 * 3000);
    for (let k = 0; k < 3000; k++) {
      many[2 * k] = 3000 - 1 - k; // one byte each, backwards
      many[2 * k + 1] = 1;
    }
    expect(n.pwritevSegs(fd, mem, many, 3000, 0)).toBe(3000);
    const back = new Uint8Array(new SharedArrayBuffer(3000));
    n.preadvSegs(fd, back, spans(0, 3000), 1, 0);
    expect(back[0]).toBe(mem[2999]);
    expect(back[2999]).toBe(mem[0]);
  });

  it('on the thread pool: the callback gets the bytes moved, or -errno', async () => {
    const fd = track(n.memfdCreate('span-async', 1 << 16));
    const mem = patterned(1 << 16);
    const wrote = await new Promise<number>((r) => n.pwritevSegsAsync(fd, mem, spans(4096, 8192), 1, 0, r));
    expect(wrote).toBe(8192);
    const back = new Uint8Array(new SharedArrayBuffer(8192));
    const read = await new Promise<number>((r) => n.preadvSegsAsync(fd, back, spans(0, 8192), 1, 0, r));
    expect(read).toBe(8192);
    expect(back[0]).toBe(mem[4096]);
    const ro = track(openSync('/dev/null', 'r'));
    const err = await new Promise<number>((r) => n.pwritevSegsAsync(ro, mem, spans(0, 16), 1, 0, r));
    expect(err).toBe(-9); // EBADF: not open for writing
    fds.splice(fds.indexOf(ro), 1);
    closeSync(ro);
  });
});

describe('span bounds (what a bad ring request could make of them)', () => {
  const fd = () => track(n.memfdCreate('span-bounds', 4096));
  const mem = new Uint8Array(new SharedArrayBuffer(8192));

  it.each([
    ['past the end', spans(8000, 200)],
    ['negative offset', spans(-1, 10)],
    ['negative length', spans(0, -10)],
    ['NaN offset', spans(Number.NaN, 10)],
    ['infinite length', spans(0, Number.POSITIVE_INFINITY)],
  ])('refuses a span %s, moving nothing', (_what, bad) => {
    const f = fd();
    expect(() => n.pwritevSegs(f, mem, bad, 1, 0)).toThrow(RangeError);
    expect(() => n.writevSegs(f, null, null, mem, bad, 1)).toThrow(RangeError);
    expect(() => n.readvSegs(f, null, mem, bad, 1)).toThrow(RangeError);
    expect(n.fdSize(f)).toBe(4096);
  });

  it('refuses a count beyond the list, a list of the wrong type, a bad position', () => {
    const f = fd();
    expect(() => n.pwritevSegs(f, mem, spans(0, 1), 2, 0)).toThrow(RangeError);
    expect(() => n.pwritevSegs(f, mem, new Int32Array([0, 1]) as unknown as Float64Array, 1, 0)).toThrow(TypeError);
    expect(() => n.pwritevSegs(f, mem, spans(0, 1), 1, -1)).toThrow(RangeError);
    expect(() => n.pwritevSegs(f, mem, spans(0, 1), 1, 0.5)).toThrow(RangeError);
  });

  it('readv/writev refuse more than IOV_MAX buffers rather than truncate', () => {
    const f = fd();
    const many = new Float64Array(2 * 1100).fill(0);
    expect(() => n.writevSegs(f, null, null, mem, many, 1100)).toThrow(/too many buffers/);
  });
});

describe('SpanIov', () => {
  it('a header then spans of one buffer go out in order', () => {
    const fd = track(n.memfdCreate('spaniov', 4096));
    const mem = patterned(8192);
    const iov = new SpanIov(4);
    iov.setHead(new Uint8Array([0xaa, 0xbb]));
    iov.addSpan(mem, 300, 3);
    iov.add(mem.subarray(10, 12)); // a view of the same buffer: still a span
    expect(iov.writev(fd)).toBe(7);
    const back = new Uint8Array(new SharedArrayBuffer(7));
    n.preadvSegs(fd, back, spans(0, 7), 1, 0);
    expect([...back]).toEqual([0xaa, 0xbb, mem[300], mem[301], mem[302], 10, 11]);
  });

  it('falls back to views when the spans lie in different buffers, or outgrow it', () => {
    const fd = track(n.memfdCreate('spaniov-mixed', 4096));
    const a = patterned(64);
    const b = new Uint8Array([7, 8, 9]);
    const iov = new SpanIov(1);
    iov.setHead(new Uint8Array([1]));
    iov.add(a.subarray(5, 7));
    iov.add(b); // another buffer
    iov.addSpan(a, 0, 1); // and over capacity
    expect(iov.writev(fd)).toBe(7);
    const back = new Uint8Array(new SharedArrayBuffer(7));
    n.preadvSegs(fd, back, spans(0, 7), 1, 0);
    expect([...back]).toEqual([1, 5, 6, 7, 8, 9, 0]);
  });
});
