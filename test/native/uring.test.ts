// blkback's io_uring disk I/O (native/uring.cc, dom0/backends/blkback/uring-io.ts): a guest's
// memory registered once, scattered pages read and written with O_DIRECT at a file position.
// Bytes must land exactly where the spans say, the end of a file must show as a short
// transfer, errors must come back as -errno, and spans from guest-controlled numbers that
// leave the registered memory must be refused before anything reaches the kernel.
import { mkdtempSync, openSync, readSync, rmSync, writeFileSync, constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { UringIo } from '../../dom0/backends/blkback/uring-io.js';

const n = native();
const PAGE = 4096;
const MEM = 1 << 20;

// O_DIRECT needs a real filesystem (not tmpfs): /var/tmp is on the machine's disk.
const dir = mkdtempSync(join(process.env.XENODE_TEST_DISK_DIR ?? '/var/tmp', 'xenode-uring-test-'));
const fds: number[] = [];
const rings: UringIo[] = [];
const mem = (() => {
  const mfd = n.memfdCreate('uring-test', MEM);
  try {
    return new Uint8Array(n.mapShared(mfd, MEM));
  } finally {
    n.close(mfd);
  }
})();
/** Why the kernel cannot (no io_uring, or Linux < 6.15 without READV_FIXED), or ''. */
const unavailable = (() => {
  const probe = UringIo.open(mem);
  if (typeof probe === 'string') return probe;
  probe.close();
  return '';
})();
if (unavailable) console.warn(`skipping io_uring tests: ${unavailable} (blkback uses the thread pool here)`);

afterEach(() => {
  for (const r of rings.splice(0)) r.close();
  for (const fd of fds.splice(0)) n.close(fd);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ring(): UringIo {
  const r = UringIo.open(mem);
  if (typeof r === 'string') throw new Error(r);
  rings.push(r);
  return r;
}

function file(name: string, bytes: number, direct = true): number {
  const p = join(dir, name);
  writeFileSync(p, new Uint8Array(bytes));
  const fd = openSync(p, fsc.O_RDWR | (direct ? fsc.O_DIRECT : 0));
  fds.push(fd);
  return fd;
}

const run = (r: UringIo, write: boolean, fd: number, spans: number[], pos: number) =>
  new Promise<number>((resolve) => r.run(write, fd, new Float64Array(spans), spans.length / 2, pos, resolve));

describe.skipIf(unavailable !== '')('io_uring disk I/O on registered memory', () => {
  it('writes scattered pages to the file and reads them back into others, byte for byte', async () => {
    const r = ring();
    const fd = file('rw.img', 64 * PAGE);
    // pages 9, 2 and 5 of memory, each with its own pattern, written from file page 3 on
    for (const [pg, v] of [[9, 0x19], [2, 0x12], [5, 0x15]] as const) mem.fill(v, pg * PAGE, (pg + 1) * PAGE);
    expect(await run(r, true, fd, [9 * PAGE, PAGE, 2 * PAGE, PAGE, 5 * PAGE, PAGE], 3 * PAGE)).toBe(3 * PAGE);

    // what the file holds, read without the ring
    const raw = Buffer.alloc(3 * PAGE);
    const plain = openSync(join(dir, 'rw.img'), fsc.O_RDONLY);
    fds.push(plain);
    expect(readSync(plain, raw, 0, raw.length, 3 * PAGE)).toBe(3 * PAGE);
    expect([raw[0], raw[PAGE], raw[2 * PAGE], raw[3 * PAGE - 1]]).toEqual([0x19, 0x12, 0x15, 0x15]);

    // back through the ring into two spans: one page, then two contiguous pages
    mem.fill(0, 20 * PAGE, 40 * PAGE);
    expect(await run(r, false, fd, [30 * PAGE, PAGE, 20 * PAGE, 2 * PAGE], 3 * PAGE)).toBe(3 * PAGE);
    expect([mem[30 * PAGE], mem[20 * PAGE], mem[21 * PAGE], mem[22 * PAGE - 1]]).toEqual([0x19, 0x12, 0x15, 0x15]);
    expect(r.inFlight).toBe(0);
    expect(r.submitted).toBe(2);
  });

  it('keeps many requests in flight at once and answers each', async () => {
    const r = ring();
    const fd = file('many.img', 256 * PAGE);
    for (let i = 0; i < 32; i++) mem.fill(i + 1, i * PAGE, (i + 1) * PAGE);
    const writes = await Promise.all(Array.from({ length: 32 }, (_, i) => run(r, true, fd, [i * PAGE, PAGE], (31 - i) * PAGE)));
    expect(writes.every((w) => w === PAGE)).toBe(true);
    mem.fill(0, 64 * PAGE, 96 * PAGE);
    expect(await run(r, false, fd, [64 * PAGE, 32 * PAGE], 0)).toBe(32 * PAGE);
    for (let i = 0; i < 32; i++) expect(mem[(64 + i) * PAGE]).toBe(32 - i);
  });

  it('stops at the end of the file: a short transfer, not an error', async () => {
    const r = ring();
    const fd = file('short.img', 2 * PAGE);
    expect(await run(r, false, fd, [0, 4 * PAGE], PAGE)).toBe(PAGE);
    expect(await run(r, false, fd, [0, PAGE], 8 * PAGE)).toBe(0);
  });

  it('reports what the kernel refuses as -errno', async () => {
    const r = ring();
    const d = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    fds.push(d);
    expect(await run(r, false, d, [0, PAGE], 0)).toBe(-21); // EISDIR
    file('ro.img', PAGE);
    const ro = openSync(join(dir, 'ro.img'), fsc.O_RDONLY);
    fds.push(ro);
    expect(await run(r, true, ro, [0, PAGE], 0)).toBe(-9); // EBADF: not open for writing
  });

  it('refuses spans outside the registered memory, NaN, and empty lists before submitting', () => {
    const r = ring();
    const fd = file('bounds.img', 4 * PAGE);
    const u = n.uring;
    const bad: [number[], RegExp][] = [
      [[MEM - PAGE, 2 * PAGE], /outside the registered memory/],
      [[-PAGE, PAGE], /outside the registered memory/],
      [[NaN, PAGE], /outside the registered memory/],
      [[0, NaN], /outside the registered memory/],
      [[0, 0], /outside the registered memory/],
    ];
    for (const [spans, why] of bad) expect(() => r.run(false, fd, new Float64Array(spans), 1, 0, () => {})).toThrow(why);
    expect(() => r.run(false, fd, new Float64Array(2), 0, 0, () => {})).toThrow(/segment count/);
    expect(() => u.submit(9999, false, fd, new Float64Array([0, PAGE]), 1, 0, 1)).toThrow(/no such ring/);
    expect(() => r.run(false, fd, new Float64Array([0, PAGE]), 1, -1, () => {})).toThrow(/position/);
    expect(r.inFlight).toBe(0);
  });

  it('a completion callback that throws loses none of the completions reaped with it', async () => {
    const logged: string[] = [];
    const r = UringIo.open(mem, (m) => logged.push(m));
    if (typeof r === 'string') throw new Error(r);
    rings.push(r);
    const fd = file('throw.img', 8 * PAGE);
    const second = new Promise<number>((resolve) => {
      r.run(false, fd, new Float64Array([0, PAGE]), 1, 0, () => {
        throw new Error('a bug in a caller');
      });
      r.run(false, fd, new Float64Array([PAGE, PAGE]), 1, PAGE, resolve);
    });
    expect(await second).toBe(PAGE);
    await new Promise((res) => setTimeout(res, 50)); // the first may complete after the second
    expect(logged.join('\n')).toContain('a bug in a caller');
    expect(r.inFlight).toBe(0);
  });

  it('says EBUSY once as many requests as the ring holds are in flight', () => {
    const u = n.uring;
    const h = u.open(1, mem);
    const fd = file('busy.img', 4 * PAGE);
    try {
      u.submit(h.handle, false, fd, new Float64Array([0, PAGE]), 1, 0, 1);
      expect(() => u.submit(h.handle, false, fd, new Float64Array([0, PAGE]), 1, 0, 2)).toThrow(/EBUSY/);
      // once reaped, the slot is free again
      const out = new Float64Array(4);
      const deadline = Date.now() + 5000;
      let got = 0;
      while (got === 0 && Date.now() < deadline) got = u.reap(h.handle, out);
      expect([got, out[0], out[1]]).toEqual([1, 1, PAGE]);
      expect(() => u.submit(h.handle, false, fd, new Float64Array([0, PAGE]), 1, 0, 3)).not.toThrow();
    } finally {
      // the last read may still be in flight: close waits for nothing, the kernel finishes it
      u.close(h.handle);
    }
  });
});
