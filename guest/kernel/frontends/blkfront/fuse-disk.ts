// One PV disk as the guest's programs see it: the operations behind /dev/<vdev> (a FUSE
// file, fuse-file.ts), turned into blkif requests on the ring (ring-io.ts).
//
// Sector math is in 512-byte units whatever the backend's sector-size. A byte range becomes
// the sectors that cover it, laid out from byte 0 of a run of pages (sector i of the run in
// page i/8, slot i%8), one segment per page, at most maxSegments per request. Reads answer
// straight from those pages; aligned writes send the pages the request's data was read into.
// Writes that do not cover whole sectors (`echo x > /dev/xvda`) read, patch and write back
// the sectors they touch, exclusive of other writes.
import { constants as fsc } from 'node:fs';
import { BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_OKAY } from '../../../../drivers/wire/blkif.js';
import { EIO, ENOMEDIUM, ENOSPC, EROFS } from '../../fuse/fuse-abi.js';
import { FUSE_MAX_IO, type FuseFileOps, type FuseReply, type RxPage } from '../../fuse/fuse-file.js';
import type { IoPage, PagePool } from './page-pool.js';
import { BlkfrontRing } from './ring-io.js';
import { ReadAhead } from './read-ahead.js';

const SECTOR = 512;
const SECTORS_PER_PAGE = 8;
const PAGE = 4096;

export interface DiskInfo {
  /** 512-byte sectors. */
  sectors: number;
  readonly: boolean;
  cdrom: boolean;
  /** How fsync reaches the backend. */
  flush: 'flush' | 'barrier' | 'none';
}

export interface DiskCounters {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
  flushes: number;
  rmw: number;
  ioErrors: number;
}

/** Writers share; a read-modify-write excludes everyone else who writes. */
class WriteLock {
  private shared = 0;
  private exclusive = false;
  private readonly waiters: { excl: boolean; go: () => void }[] = [];

  async acquire(excl: boolean): Promise<void> {
    if (this.tryAcquire(excl)) return;
    await new Promise<void>((go) => this.waiters.push({ excl, go }));
  }

  /** Takes the lock now if nobody holds it against us or waits before us. */
  tryAcquire(excl: boolean): boolean {
    if (!this.canGo(excl) || this.waiters.length !== 0) return false;
    this.take(excl);
    return true;
  }

  private canGo(excl: boolean): boolean {
    return excl ? !this.exclusive && this.shared === 0 : !this.exclusive;
  }

  private take(excl: boolean): void {
    if (excl) this.exclusive = true;
    else this.shared++;
  }

  release(excl: boolean): void {
    if (excl) this.exclusive = false;
    else this.shared--;
    while (this.waiters.length && this.canGo(this.waiters[0]!.excl)) {
      const w = this.waiters.shift()!;
      this.take(w.excl);
      w.go();
    }
  }
}

/** A WRITE at least this big is sent to the backend as soon as it is read from FUSE, not at the
 * end of the turn: reading the next 1 MiB request from /dev/fuse takes the guest kernel
 * ~0.25 ms, which the disk can spend on this one. */
const EAGER_BYTES = 64 * 1024;

export class BlkDisk implements FuseFileOps {
  private readonly lock = new WriteLock();
  /** A READ reply's spans (reused: the reply copies them at once). */
  private readonly spans = new Float64Array(2 * (FUSE_MAX_IO / PAGE + 1));
  private gone = false;
  /** Reads the requests waiting on /dev/fuse now (set once the FUSE file is mounted). */
  pollRequests: (() => void) | null = null;
  /** Out of pages: asks the disk's idle FUSE files to give back their receive windows. */
  reclaim: (() => void) | null = null;
  /** Send requests to the backend before copying the answers of others (off: as they come). */
  eager = true;
  readonly counters: DiskCounters = { reads: 0, writes: 0, readBytes: 0, writeBytes: 0, flushes: 0, rmw: 0, ioErrors: 0 };
  /** Small buffered reads widened to windows of the disk (read-ahead.ts); null: off. */
  readonly readAhead: ReadAhead | null;

  constructor(
    private readonly ring: BlkfrontRing,
    private readonly pool: PagePool,
    readonly info: DiskInfo,
    private readonly log: (msg: string) => void,
    opts: { readAhead?: boolean } = {},
  ) {
    this.readAhead = opts.readAhead === false ? null : new ReadAhead(info.sectors * SECTOR);
  }

  private get bytes(): number {
    return this.info.sectors * SECTOR;
  }

  /** The backend went away: everything from now on fails with EIO. */
  detach(): void {
    this.gone = true;
    this.readAhead?.clear();
  }

  attr(): { size: number; mode: number } {
    return { size: this.bytes, mode: this.info.readonly ? 0o440 : 0o660 };
  }

  open(flags: number): number {
    if (this.info.cdrom && this.info.sectors === 0) return ENOMEDIUM;
    if ((flags & 3) !== fsc.O_RDONLY && this.info.readonly) return EROFS;
    return 0;
  }

  get rxMemory(): Uint8Array {
    return this.pool.mem;
  }

  allocRx(): RxPage | null {
    return this.pool.alloc();
  }

  allocRxMany(n: number): RxPage[] | null {
    return this.pool.allocMany(n);
  }

  releaseRx(p: RxPage): void {
    this.pool.release(p as IoPage);
  }

  /** `n` pages, waiting for the pool if need be (all or nothing, so waiters cannot deadlock
   * holding halves). */
  private async pages(n: number): Promise<IoPage[]> {
    for (;;) {
      // In ascending frame order (allocMany sorts them): neighbouring frames make one span
      // here and one segment at the host's disk (page-pool.ts says why that matters).
      let got = this.pool.allocMany(n);
      if (!got && this.reclaim) {
        this.reclaim();
        got = this.pool.allocMany(n);
      }
      if (got) return got;
      await new Promise<void>((r) => this.pool.onFree(r));
    }
  }

  /** Read or write `n` sectors from `sector` through `pages` (laid out from byte 0). */
  private async transfer(op: number, sector: number, n: number, pages: IoPage[]): Promise<boolean> {
    const used = Math.ceil(n / SECTORS_PER_PAGE);
    const max = this.ring.maxSegments;
    let ok: boolean;
    if (used <= max) {
      // The usual case (up to 1 MiB with indirect descriptors): one request.
      ok = (await this.ring.submit(op, sector, used === pages.length ? pages : pages.slice(0, used), n)) === BLKIF_RSP_OKAY;
    } else {
      const waits: Promise<number>[] = [];
      for (let k = 0; k < used; k += max) {
        const part = pages.slice(k, Math.min(used, k + max));
        waits.push(this.ring.submit(op, sector + k * SECTORS_PER_PAGE, part, Math.min(n - k * SECTORS_PER_PAGE, part.length * SECTORS_PER_PAGE)));
      }
      ok = (await Promise.all(waits)).every((s) => s === BLKIF_RSP_OKAY);
    }
    if (!ok) this.counters.ioErrors++;
    return ok;
  }

  /** The kernel's own read of `count` sectors from `sector` (the partition table), through
   * the ring like any other, a copy out of the I/O pages. Rejects on an I/O error. */
  async readSectors(sector: number, count: number): Promise<Uint8Array> {
    if (sector < 0 || count < 0 || sector + count > this.info.sectors) throw new RangeError(`sectors ${sector}+${count} are past the end of the disk`);
    const out = new Uint8Array(count * SECTOR);
    const chunk = FUSE_MAX_IO / SECTOR;
    for (let done = 0; done < count; done += chunk) {
      const n = Math.min(chunk, count - done);
      const pages = await this.pages(Math.ceil(n / SECTORS_PER_PAGE));
      try {
        if (this.gone || !(await this.transfer(BLKIF_OP_READ, sector + done, n, pages))) throw new Error(`I/O error reading sector ${sector + done}`);
        for (let i = 0; i < pages.length; i++) {
          const take = Math.min(PAGE, (n - i * SECTORS_PER_PAGE) * SECTOR);
          out.set(pages[i]!.view.subarray(0, take), done * SECTOR + i * PAGE);
        }
      } finally {
        for (const p of pages) this.pool.release(p);
      }
    }
    return out;
  }

  read(offset: number, size: number, reply: FuseReply, flags = 0): void {
    if (this.gone) return reply.error(EIO);
    const end = Math.min(offset + size, this.bytes);
    if (offset >= end) return reply.data([]);
    const ra = this.readAhead;
    if (ra && (flags & fsc.O_DIRECT) === 0) {
      const sequential = ra.continues(offset, end);
      const kept = ra.lookup(offset, end);
      if (kept) return this.answerRead(reply, end - offset, kept);
      const fill = ra.pending(offset, end);
      if (fill) return void fill.done.then((data) => this.answerFromWindow(reply, offset, end, fill.start, data));
      const w = sequential ? ra.widen(offset, end) : null;
      if (w) {
        const f = ra.fill(w.start, w.end, () => this.readWindow(w.start, w.end));
        return void f.done.then((data) => this.answerFromWindow(reply, offset, end, w.start, data));
      }
    }
    this.readDirect(offset, end, reply);
  }

  private answerRead(reply: FuseReply, bytes: number, views: Uint8Array[]): void {
    this.counters.reads++;
    this.counters.readBytes += bytes;
    reply.data(views);
  }

  private answerFromWindow(reply: FuseReply, offset: number, end: number, start: number, data: Uint8Array | null): void {
    if (!data || this.gone) return reply.error(EIO);
    this.answerRead(reply, end - offset, [data.subarray(offset - start, end - start)]);
  }

  /** [start, end) of the disk (sector-aligned) into a buffer of its own; null on an I/O error. */
  private async readWindow(start: number, end: number): Promise<Uint8Array | null> {
    const n = (end - start) / SECTOR;
    const want = Math.ceil(n / SECTORS_PER_PAGE);
    const pages = this.pool.allocMany(want) ?? (await this.pages(want));
    try {
      if (this.gone || !(await this.transfer(BLKIF_OP_READ, start / SECTOR, n, pages))) return null;
      const out = new Uint8Array(end - start);
      for (let i = 0; i < pages.length; i++) out.set(pages[i]!.view.subarray(0, Math.min(PAGE, end - start - i * PAGE)), i * PAGE);
      return out;
    } finally {
      for (const p of pages) this.pool.release(p);
    }
  }

  private readDirect(offset: number, end: number, reply: FuseReply): void {
    const s0 = Math.floor(offset / SECTOR);
    const n = Math.ceil(end / SECTOR) - s0;
    void (async () => {
      // Pages now if the pool has them, so the request goes on the ring in this same turn.
      const want = Math.ceil(n / SECTORS_PER_PAGE);
      const pages = this.pool.allocMany(want) ?? (await this.pages(want));
      try {
        if (!(await this.transfer(BLKIF_OP_READ, s0, n, pages)) || this.gone) return reply.error(EIO);
        if (this.eager && end - offset >= EAGER_BYTES) {
          // Before spending ~0.25 ms copying this answer into the reader's buffer: take the
          // requests that arrived meanwhile and send them, so the disk works during the copy.
          this.pollRequests?.();
          this.ring.kickNow();
        }
        this.counters.reads++;
        this.counters.readBytes += end - offset;
        // The reply as spans of guest memory; neighbouring frames make one span.
        const spans = this.spans;
        let k = -1;
        let skip = offset - s0 * SECTOR;
        let left = end - offset;
        let prevPfn = -2;
        for (const p of pages) {
          if (left <= 0) break;
          const take = Math.min(PAGE - skip, left);
          if (k >= 0 && skip === 0 && p.pfn === prevPfn + 1) spans[2 * k + 1] = spans[2 * k + 1]! + take;
          else {
            k++;
            spans[2 * k] = p.pfn * PAGE + skip;
            spans[2 * k + 1] = take;
          }
          prevPfn = p.pfn;
          left -= take;
          skip = 0;
        }
        reply.spans(this.pool.mem, spans, k + 1);
      } finally {
        for (const p of pages) this.pool.release(p);
      }
    })().catch((e) => {
      this.log(`read: ${(e as Error).message}`);
    });
  }

  write(offset: number, size: number, pages: RxPage[], reply: FuseReply): void {
    const rx = pages as IoPage[];
    const done = (fn: () => void) => {
      for (const p of rx) this.pool.release(p);
      fn();
    };
    if (this.gone) return done(() => reply.error(EIO));
    if (this.info.readonly) return done(() => reply.error(EROFS));
    if (offset >= this.bytes) return done(() => reply.error(ENOSPC));
    const len = Math.min(size, this.bytes - offset);
    // Nothing read ahead from here on may answer a read that comes after this write.
    const ra = this.readAhead;
    const token = ra?.writeBegins(offset, offset + len);
    const finished = () => token && ra!.writeDone(token);
    if (offset % SECTOR === 0 && len % SECTOR === 0) {
      void (async () => {
        // Taken at once when free, so the request goes on the ring before we return.
        if (!this.lock.tryAcquire(false)) await this.lock.acquire(false);
        let ok = false;
        try {
          const sent = this.transfer(BLKIF_OP_WRITE, offset / SECTOR, len / SECTOR, rx);
          if (this.eager && len >= EAGER_BYTES) this.ring.kickNow();
          ok = await sent;
        } finally {
          this.lock.release(false);
          finished();
        }
        if (ok) {
          this.counters.writes++;
          this.counters.writeBytes += len;
        }
        done(() => (ok && !this.gone ? reply.written(len) : reply.error(EIO)));
      })().catch((e) => this.log(`write: ${(e as Error).message}`));
      return;
    }
    // Partial sectors: keep the bytes, give the receive pages back, read-modify-write.
    const data = new Uint8Array(len);
    for (let i = 0, at = 0; at < len; i++) {
      const take = Math.min(4096, len - at);
      data.set(rx[i]!.view.subarray(0, take), at);
      at += take;
    }
    for (const p of rx) this.pool.release(p);
    void (async () => {
      this.counters.rmw++;
      await this.lock.acquire(true);
      let ok = false;
      const s0 = Math.floor(offset / SECTOR);
      const n = Math.ceil((offset + len) / SECTOR) - s0;
      const work = await this.pages(Math.ceil(n / SECTORS_PER_PAGE));
      try {
        if (await this.transfer(BLKIF_OP_READ, s0, n, work)) {
          let at = offset - s0 * SECTOR;
          for (let d = 0; d < len; ) {
            const pi = Math.floor(at / 4096);
            const po = at % 4096;
            const take = Math.min(4096 - po, len - d);
            work[pi]!.view.set(data.subarray(d, d + take), po);
            d += take;
            at += take;
          }
          ok = await this.transfer(BLKIF_OP_WRITE, s0, n, work);
        }
      } finally {
        for (const p of work) this.pool.release(p);
        this.lock.release(true);
        finished();
      }
      if (ok) {
        this.counters.writes++;
        this.counters.writeBytes += len;
      }
      if (ok && !this.gone) reply.written(len);
      else reply.error(EIO);
    })().catch((e) => this.log(`write: ${(e as Error).message}`));
  }

  fsync(_datasync: boolean, reply: FuseReply): void {
    if (this.gone) return reply.error(EIO);
    if (this.info.flush === 'none' || this.info.readonly) return reply.ok();
    this.counters.flushes++;
    const op = BlkfrontRing.flushOp(this.info.flush === 'barrier');
    void this.ring.submit(op, 0, [], 0).then((st) => {
      if (st === BLKIF_RSP_OKAY) return reply.ok();
      if (st === BLKIF_RSP_EOPNOTSUPP) {
        // As Linux blkfront: the backend cannot flush after all; stop asking.
        this.log(`${this.info.flush} op failed: not supported by the backend; disabling`);
        this.info.flush = 'none';
        return reply.ok();
      }
      this.counters.ioErrors++;
      reply.error(EIO);
    });
  }
}
