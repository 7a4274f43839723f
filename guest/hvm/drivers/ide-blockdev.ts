// An IDE device as the guest's programs see it: /dev/hda (ATA disk) or /dev/hdc (ATAPI
// CD-ROM), a FUSE file served by the kernel (guest/kernel/fuse/fuse-file.ts), exactly as
// blkfront exposes a PV disk, so userland cannot tell which driver is underneath.
//
// Reads become READ DMA (EXT) / ATAPI READ(10) commands of at most 1 MiB into the channel's
// bounce buffer, answered from it without a copy when one command covers the request. Writes
// of whole sectors go to the disk by DMA straight from the guest pages FUSE received them in
// (a PRD entry per page); partial sectors are read, patched and written back under the
// channel lock. fsync is FLUSH CACHE.
import { constants as fsc } from 'node:fs';
import { EIO, ENOMEDIUM, ENOSPC, EROFS } from '../../kernel/fuse/fuse-abi.js';
import type { FuseFileOps, FuseReply, RxPage } from '../../kernel/fuse/fuse-file.js';
import type { DmaPage, DmaPagePool } from '../cpu/ram.js';
import { AtaPiix, SECTOR, type DmaSegment, type IdeDevice } from './ata-piix.js';

const PAGE = 4096;

export class IdeBlockDevice implements FuseFileOps {
  private gone = false;

  constructor(
    private readonly ata: AtaPiix,
    readonly dev: IdeDevice,
    private readonly pool: DmaPagePool,
    private readonly log: (msg: string) => void,
  ) {}

  private get bytes(): number {
    return this.dev.blocks * this.dev.blockSize;
  }

  private get readonly(): boolean {
    return this.dev.kind === 'atapi';
  }

  /** The controller is gone (unplug, shutdown): everything fails with EIO from now on. */
  detach(): void {
    this.gone = true;
  }

  attr(): { size: number; mode: number } {
    return { size: this.bytes, mode: this.readonly ? 0o440 : 0o660 };
  }

  open(flags: number): number {
    if (this.dev.kind === 'atapi' && this.dev.blocks === 0) return ENOMEDIUM;
    if ((flags & 3) !== fsc.O_RDONLY && this.readonly) return EROFS;
    return 0;
  }

  allocRx(): RxPage | null {
    return this.pool.alloc();
  }

  releaseRx(p: RxPage): void {
    this.pool.release(p as DmaPage);
  }

  /** Reads [first, first+count) device blocks in command-sized pieces. */
  private async readBlocks(first: number, count: number, consume: (data: Uint8Array, block: number) => void): Promise<void> {
    const max = this.ata.maxSectors(this.dev);
    for (let b = first; b < first + count; ) {
      const n = Math.min(max, first + count - b);
      const at = b;
      if (this.dev.kind === 'ata') await this.ata.readSectors(this.dev, at, n, (d) => consume(d, at));
      else await this.ata.readBlocks(this.dev, at, n, (d) => consume(d, at));
      b += n;
    }
  }

  /** The kernel's own read of `count` 512-byte sectors from `sector` (the partition table),
   * by the same READ DMA commands as any other read. ATA disks only. */
  async readSectors(sector: number, count: number): Promise<Uint8Array> {
    if (this.gone) throw new Error(`${this.dev.name}: device gone`);
    if (this.dev.kind !== 'ata') throw new Error(`${this.dev.name}: not an ATA disk`);
    const out = new Uint8Array(count * SECTOR);
    await this.readBlocks(sector, count, (d, block) => out.set(d.subarray(0, Math.min(d.length, out.length - (block - sector) * SECTOR)), (block - sector) * SECTOR));
    return out;
  }

  read(offset: number, size: number, reply: FuseReply): void {
    if (this.gone) return reply.error(EIO);
    const end = Math.min(offset + size, this.bytes);
    if (offset >= end) return reply.data([]);
    const bs = this.dev.blockSize;
    const first = Math.floor(offset / bs);
    const count = Math.ceil(end / bs) - first;
    const skip = offset - first * bs;
    void (async () => {
      if (count <= this.ata.maxSectors(this.dev)) {
        // One command: answer from the bounce buffer while we still hold it.
        await this.readBlocks(first, count, (d) => reply.data([d.subarray(skip, skip + (end - offset))]));
        return;
      }
      const out = new Uint8Array(end - offset);
      await this.readBlocks(first, count, (d, block) => {
        const base = (block - first) * bs - skip;
        const from = Math.max(0, -base);
        const to = Math.min(d.length, out.length - base);
        if (to > from) out.set(d.subarray(from, to), base + from);
      });
      reply.data([out]);
    })().catch((e) => {
      this.log(`${this.dev.name}: read ${offset}+${size}: ${(e as Error).message}`);
      reply.error(EIO);
    });
  }

  write(offset: number, size: number, pages: RxPage[], reply: FuseReply): void {
    const rx = pages as DmaPage[];
    const giveBack = () => {
      for (const p of rx.splice(0)) this.pool.release(p);
    };
    if (this.gone) return giveBack(), reply.error(EIO);
    if (this.readonly) return giveBack(), reply.error(EROFS);
    if (offset >= this.bytes) return giveBack(), reply.error(ENOSPC);
    const len = Math.min(size, this.bytes - offset);
    const dev = this.dev;
    void (async () => {
      try {
        if (offset % SECTOR === 0 && len % SECTOR === 0) {
          // Straight from the pages FUSE wrote the data into.
          const max = this.ata.maxSectors(dev) * SECTOR;
          for (let done = 0; done < len; ) {
            const n = Math.min(max, len - done);
            const segs: DmaSegment[] = [];
            for (let at = done; at < done + n; ) {
              const p = rx[Math.floor(at / PAGE)]!;
              const po = at % PAGE;
              const k = Math.min(PAGE - po, done + n - at);
              const last = segs[segs.length - 1];
              if (last && last.gpa + last.len === p.gpa + po) last.len += k;
              else segs.push({ gpa: p.gpa + po, len: k });
              at += k;
            }
            await this.ata.writeSectors(dev, (offset + done) / SECTOR, n / SECTOR, segs);
            done += n;
          }
        } else {
          await this.readModifyWrite(offset, len, rx);
        }
        giveBack();
        reply.written(len);
      } catch (e) {
        giveBack();
        this.log(`${dev.name}: write ${offset}+${size}: ${(e as Error).message}`);
        reply.error(EIO);
      }
    })();
  }

  /** Partial sectors: per command-sized window, read the covering sectors into the bounce
   * buffer, patch, write back, all under the channel lock. */
  private async readModifyWrite(offset: number, len: number, rx: DmaPage[]): Promise<void> {
    const dev = this.dev;
    const max = this.ata.maxSectors(dev);
    const data = (i: number) => rx[Math.floor(i / PAGE)]!.view[i % PAGE]!;
    let pos = offset;
    while (pos < offset + len) {
      const s0 = Math.floor(pos / SECTOR);
      const sEnd = Math.min(Math.ceil((offset + len) / SECTOR), s0 + max);
      const winEnd = Math.min(offset + len, sEnd * SECTOR);
      await this.ata.exclusive(dev, async () => {
        let buf: Uint8Array | null = null;
        await this.ata.readSectorsLocked(dev, s0, sEnd - s0, (d) => (buf = d));
        const b = buf as unknown as Uint8Array;
        for (let p = pos; p < winEnd; p++) b[p - s0 * SECTOR] = data(p - offset);
        await this.ata.writeSectorsLocked(dev, s0, sEnd - s0, b);
      });
      pos = winEnd;
    }
  }

  fsync(_datasync: boolean, reply: FuseReply): void {
    if (this.gone) return reply.error(EIO);
    if (this.readonly) return reply.ok();
    this.ata.flush(this.dev).then(
      () => reply.ok(),
      (e) => {
        this.log(`${this.dev.name}: flush: ${(e as Error).message}`);
        reply.error(EIO);
      },
    );
  }
}

