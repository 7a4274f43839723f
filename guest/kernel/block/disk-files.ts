// A disk's files in /dev, as Linux would show the disk: /dev/xvda for the whole of it and
// /dev/xvda1, /dev/xvda2 ... for the partitions of its MBR or GPT (read with the driver's own
// sector reads, common/disk/partition-table.ts), each a FUSE file over a byte range of the same
// driver object (partition-view.ts), each registered in the kernel's block-device table with
// Linux's numbers. Both disk drivers use it: blkfront for PV disks and the HVM kernel's IDE
// driver.
//
// A filesystem the kernel mounts itself (the root) gets a file of its own over the same bytes
// (driverFile(), under /run/xenode/disks, outside the guest's view) whose page cache is in
// write-back mode: fuse2fs writes block by block, 4 KiB at a time, and through a write-through
// file each block was a request to the backend; with write-back the kernel gathers them into
// requests of up to 1 MiB, and fuse2fs's fsync (every fsync in the guest, and its unmount)
// writes them back and flushes the disk before it returns. The files users open stay
// write-through: a write past the end fails at write(2), as on a Linux block device, and the
// two page caches are apart the way a Linux block device's and a mounted filesystem's are.
//
// Every file keeps a receive window (up to 1 MiB of pages) for requests; with several files on
// one disk an idle file's window is taken back when the disk runs short (FuseFile refills it on
// its next request), so partitions cannot starve each other or the disk's own I/O.
import { mkdirSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { scanPartitions, partitionName, type Partition, type SectorReader } from '../../../common/disk/partition-table.js';
import { FuseFile, type FuseFileOps } from '../fuse/fuse-file.js';
import { registerBlockDevice, unregisterBlockDevice, freeExtMinor } from './block-devices.js';
import { BLOCK_EXT_MAJOR, diskNumbers } from './device-numbers.js';
import { PartitionView } from './partition-view.js';

const SECTOR = 512;

/** Where driverFile() puts its files, in the guest kernel's own mount namespace. */
export const DRIVER_FILES_DIR = '/run/xenode/disks';

export interface DiskFilesOptions {
  /** The disk's name in /dev: xvda, hda, xvdb3 (a disk given under a partition's name). */
  name: string;
  /** The driver object serving the whole disk. */
  ops: FuseFileOps;
  sectors: number;
  readonly: boolean;
  /** fuse.<subtype> in /proc/mounts: the driver's name. */
  subtype: string;
  /** The driver's sector read, for the partition table; none: no scan (a cdrom, a disk named
   * as a partition). */
  read?: SectorReader;
  /** Linux's `gpt` parameter (partition-table.ts). */
  forceGpt?: boolean;
  /** The kernel log (partition messages go there as Linux prints them). */
  printk: (msg: string) => void;
  /** Where the files go (default /dev, in the guest kernel's own mount namespace). */
  dir?: string;
  /** Where driverFile() puts its files (default DRIVER_FILES_DIR). */
  driverDir?: string;
}

interface Exposed {
  name: string;
  fuse: FuseFile;
  start: number;
  bytes: number;
  /** A driverFile(): not in /dev, not in the block-device table. */
  driver: boolean;
}

export class DiskFiles {
  private readonly files: Exposed[] = [];
  private active: FuseFile | null = null;
  private closed = false;
  /** The partitions exposed (after Linux's checks). */
  partitions: Partition[] = [];

  private constructor(private readonly o: DiskFilesOptions) {}

  /** Mount /dev/<name>, read the partition table, mount and register each partition. Throws
   * only when the whole disk's file cannot be made. */
  static async expose(o: DiskFilesOptions): Promise<DiskFiles> {
    const d = new DiskFiles(o);
    const bytes = o.sectors * SECTOR;
    d.mount(o.name, 0, bytes);
    const num = diskNumbers(o.name);
    if (num) registerBlockDevice({ name: o.name, major: num.major, minor: num.firstMinor, sectors: o.sectors, readonly: o.readonly, path: d.path(o.name), driverFile: () => d.driverFile(o.name) });
    else o.printk(`${o.name}: no Linux device number for this name; not in /proc/partitions`);
    if (!o.read || o.sectors === 0 || !num || num.minors === 1) return d;
    const scan = await scanPartitions({ name: o.name, sectors: o.sectors }, o.read, { forceGpt: o.forceGpt });
    for (const m of scan.messages) o.printk(m);
    for (const p of scan.partitions) {
      const name = partitionName(o.name, p.number);
      try {
        d.mount(name, p.start * SECTOR, p.sectors * SECTOR);
      } catch (e) {
        o.printk(`${name}: cannot create ${d.path(name)}: ${(e as Error).message}`);
        continue;
      }
      const own = p.number < num.minors;
      registerBlockDevice({
        name,
        major: own ? num.major : BLOCK_EXT_MAJOR,
        minor: own ? num.firstMinor + p.number : freeExtMinor(BLOCK_EXT_MAJOR),
        sectors: p.sectors,
        readonly: o.readonly,
        parent: o.name,
        path: d.path(name),
        partUuid: p.uuid,
        partLabel: p.label,
        driverFile: () => d.driverFile(name),
      });
      d.partitions.push(p);
    }
    return d;
  }

  private get driverDir(): string {
    return this.o.driverDir ?? DRIVER_FILES_DIR;
  }

  private path(name: string): string {
    return `${this.o.dir ?? '/dev'}/${name}`;
  }

  private mount(name: string, start: number, bytes: number, driver = false): FuseFile {
    let fuse: FuseFile | null = null;
    const view = new PartitionView(this.o.ops, start, bytes, {
      onRequest: () => (this.active = fuse),
      reclaim: () => this.reclaim(),
    });
    const target = driver ? `${this.driverDir}/${name}` : this.path(name);
    fuse = new FuseFile(target, view, { name, subtype: this.o.subtype, log: this.o.printk, writebackCache: driver && !this.o.readonly });
    fuse.mount();
    this.files.push({ name, fuse, start, bytes, driver });
    return fuse;
  }

  /** The write-back file over `name`'s bytes for a filesystem the kernel mounts (made once). */
  async driverFile(name: string): Promise<string> {
    if (this.closed) throw new Error(`${name}: the disk is gone`);
    const made = this.files.find((f) => f.driver && f.name === name);
    if (made) return made.fuse.target;
    const dev = this.files.find((f) => !f.driver && f.name === name);
    if (!dev) throw new Error(`${name}: no such device on ${this.o.name}`);
    mkdirSync(this.driverDir, { recursive: true, mode: 0o700 });
    const target = this.mount(name, dev.start, dev.bytes, true).target;
    // In write-back mode the kernel keeps a regular file's size itself and never takes it from
    // GETATTR; a mount's root file starts at size 0. A truncate sets it from our answer (the
    // device's size, whatever was asked): asynchronously, since this loop serves the SETATTR.
    if (!this.o.readonly) await truncate(target, dev.bytes);
    return target;
  }

  /** Every idle file gives back its receive window (it refills on its next request). */
  reclaim(): void {
    for (const f of this.files) f.fuse.dropReceivePages();
  }

  /** Pages came back: files that stopped reading for want of them go on. */
  resume(): void {
    for (const f of this.files) f.fuse.resume();
  }

  /** Take the requests waiting on every file now (the disk is about to be busy a while). */
  pollRequests(): void {
    for (const f of this.files) f.fuse.pollRequests();
  }

  /** /dev/fuse of the file that had the last request (-1 if none is open): where a busy
   * poll looks for the next one. */
  get activeFd(): number {
    return (this.active ?? this.files[0]?.fuse)?.deviceFd ?? -1;
  }

  /** Names in /dev, the whole disk first. */
  get names(): string[] {
    return this.files.filter((f) => !f.driver).map((f) => f.name);
  }

  /** Unregister everything, then unmount the partitions and the disk. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of [...this.files].reverse()) if (!f.driver) unregisterBlockDevice(f.name);
    for (const f of this.files.splice(0).reverse()) f.fuse.close();
    this.active = null;
  }
}
