// A byte range of a disk as a file of its own: what /dev/xvda1 or /dev/hda2 is, over the same
// driver object that serves the whole disk (blkfront's BlkDisk, the IDE driver's
// IdeBlockDevice). Reads stop at the partition's end; a write starting at or past it gets
// ENOSPC and one running over it is cut short there, so nothing written through a partition
// lands outside it. fsync flushes the whole disk, as it does on Linux.
//
// Every file of a disk (the whole disk too) is one of these, so the disk's owner (disk-files.ts)
// learns which file is busy and can take back the receive pages idle files hold.
import { ENOSPC } from '../fuse/fuse-abi.js';
import type { FuseFileOps, FuseReply, RxPage } from '../fuse/fuse-file.js';

export interface PartitionViewHooks {
  /** A request came in through this view. */
  onRequest(): void;
  /** The disk is out of receive pages: ask idle files to give theirs back. */
  reclaim(): void;
}

export class PartitionView implements FuseFileOps {
  constructor(
    private readonly disk: FuseFileOps,
    /** First byte on the disk. */
    readonly start: number,
    /** Length in bytes. */
    readonly bytes: number,
    private readonly hooks: PartitionViewHooks,
  ) {}

  attr(): { size: number; mode: number } {
    return { size: this.bytes, mode: this.disk.attr().mode };
  }

  open(flags: number): number {
    return this.disk.open(flags);
  }

  get rxMemory(): Uint8Array | undefined {
    return this.disk.rxMemory;
  }

  allocRx(): RxPage | null {
    const p = this.disk.allocRx();
    if (p) return p;
    this.hooks.reclaim();
    return this.disk.allocRx();
  }

  allocRxMany(n: number): RxPage[] | null {
    if (!this.disk.allocRxMany) return null;
    return this.disk.allocRxMany(n) ?? (this.hooks.reclaim(), this.disk.allocRxMany(n));
  }

  releaseRx(p: RxPage): void {
    this.disk.releaseRx(p);
  }

  read(offset: number, size: number, reply: FuseReply, flags?: number): void {
    this.hooks.onRequest();
    if (offset >= this.bytes) return reply.data([]);
    this.disk.read(this.start + offset, Math.min(size, this.bytes - offset), reply, flags);
  }

  write(offset: number, size: number, pages: RxPage[], reply: FuseReply): void {
    this.hooks.onRequest();
    if (offset >= this.bytes) {
      for (const p of pages) this.disk.releaseRx(p);
      return reply.error(ENOSPC);
    }
    // The disk gives every page back, the ones past the cut too.
    this.disk.write(this.start + offset, Math.min(size, this.bytes - offset), pages, reply);
  }

  fsync(datasync: boolean, reply: FuseReply): void {
    this.hooks.onRequest();
    this.disk.fsync(datasync, reply);
  }
}
