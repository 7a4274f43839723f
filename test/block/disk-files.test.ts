// A disk's files (guest/kernel/block/disk-files.ts) on the host's FUSE, in a scratch directory:
// the whole disk and each partition as real FUSE files, registered in the guest kernel's
// block-device table with Linux's numbers, and gone (files and entries) when the disk goes.
// The disk under them is an image in memory standing in for a driver; the guests' drivers are
// tested end to end in partitions.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shouldSkip } from '../helpers/instance.js';
import { buildMbr } from '../../common/disk/partition-table.js';
import { DiskFiles } from '../../guest/kernel/block/disk-files.js';
import { blockDevices } from '../../guest/kernel/block/block-devices.js';
import type { FuseFileOps, FuseReply, RxPage } from '../../guest/kernel/fuse/fuse-file.js';

const S = 512;

/** An image in memory behind the FuseFileOps a driver implements. */
class ImageDisk implements FuseFileOps {
  constructor(readonly bytes: Uint8Array) {}
  attr() {
    return { size: this.bytes.length, mode: 0o660 };
  }
  open() {
    return 0;
  }
  allocRx(): RxPage {
    return { view: new Uint8Array(4096) };
  }
  releaseRx(): void {}
  read(offset: number, size: number, reply: FuseReply): void {
    reply.data([this.bytes.subarray(offset, Math.min(offset + size, this.bytes.length))]);
  }
  write(offset: number, size: number, pages: RxPage[], reply: FuseReply): void {
    const len = Math.min(size, this.bytes.length - offset);
    for (let at = 0; at < len; at += 4096) this.bytes.set(pages[at / 4096]!.view.subarray(0, Math.min(4096, len - at)), offset + at);
    reply.written(len);
  }
  fsync(_d: boolean, reply: FuseReply): void {
    reply.ok();
  }
}

describe.skipIf(shouldSkip())('a disk\'s files and their block-device entries', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-diskfiles-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('mounts the disk and its partitions, registers them with Linux\'s numbers, and removes both on close', async () => {
    const sectors = 8192;
    const img = new Uint8Array(sectors * S);
    for (const w of buildMbr({ diskSectors: sectors, primary: [{ start: 64, sectors: 1000, type: 0x83 }, { start: 2048, sectors: 4096, type: 0x83 }] })) img.set(w.data, w.lba * S);
    img.set(new TextEncoder().encode('start-of-p2'), 2048 * S);
    const logged: string[] = [];
    const files = await DiskFiles.expose({
      name: 'xvdb',
      ops: new ImageDisk(img),
      sectors,
      readonly: false,
      subtype: 'test',
      read: async (lba, n) => img.slice(lba * S, (lba + n) * S),
      printk: (m) => logged.push(m),
      dir,
    });
    try {
      expect(logged).toEqual([' xvdb: xvdb1 xvdb2']);
      expect(files.names).toEqual(['xvdb', 'xvdb1', 'xvdb2']);
      expect(blockDevices()).toEqual([
        { name: 'xvdb', major: 202, minor: 16, sectors: 8192, readonly: false, path: join(dir, 'xvdb'), driverFile: expect.any(Function) },
        { name: 'xvdb1', major: 202, minor: 17, sectors: 1000, readonly: false, parent: 'xvdb', path: join(dir, 'xvdb1'), partUuid: '78656e6f-01', partLabel: undefined, driverFile: expect.any(Function) },
        { name: 'xvdb2', major: 202, minor: 18, sectors: 4096, readonly: false, parent: 'xvdb', path: join(dir, 'xvdb2'), partUuid: '78656e6f-02', partLabel: undefined, driverFile: expect.any(Function) },
      ]);
      // Real files: read from the partition's first byte, sized as the partition.
      const p2 = await readFile(join(dir, 'xvdb2'));
      expect(p2.length).toBe(4096 * S);
      expect(p2.subarray(0, 11).toString()).toBe('start-of-p2');
      // A write over the end of partition 1 is cut there; the next one has no room.
      const fh = await open(join(dir, 'xvdb1'), 'r+');
      try {
        const { bytesWritten } = await fh.write(Buffer.alloc(1024, 0x41), 0, 1024, 1000 * S - 512);
        expect(bytesWritten).toBe(512);
        await expect(fh.write(Buffer.alloc(512, 0x42), 0, 512, 1000 * S)).rejects.toThrow(/ENOSPC/);
      } finally {
        await fh.close();
      }
      expect(img[(64 + 999) * S]).toBe(0x41);
      expect(img[(64 + 1000) * S]).toBe(0);
    } finally {
      files.close();
    }
    expect(blockDevices()).toEqual([]);
    expect(existsSync(join(dir, 'xvdb1'))).toBe(false);
  });

  it("gives a filesystem driver a write-back file of a partition: the partition's size, small writes gathered, all of them in the disk after fsync", async () => {
    const sectors = 8192;
    const img = new Uint8Array(sectors * S);
    for (const w of buildMbr({ diskSectors: sectors, primary: [{ start: 2048, sectors: 4096, type: 0x83 }] })) img.set(w.data, w.lba * S);
    const disk = new ImageDisk(img);
    const writes: number[] = [];
    const write = disk.write.bind(disk);
    disk.write = (offset, size, pages, reply) => (writes.push(size), write(offset, size, pages, reply));
    let fsyncs = 0;
    disk.fsync = (_d, reply) => (fsyncs++, reply.ok());
    const driverDir = join(dir, 'drivers');
    const files = await DiskFiles.expose({ name: 'xvdc', ops: disk, sectors, readonly: false, subtype: 'test', read: async (lba, n) => img.slice(lba * S, (lba + n) * S), printk: () => {}, dir, driverDir });
    try {
      const dev = blockDevices().find((d) => d.name === 'xvdc1')!;
      const path = await dev.driverFile!();
      expect(path).toBe(join(driverDir, 'xvdc1'));
      expect(await dev.driverFile!()).toBe(path); // made once
      expect(files.names).toEqual(['xvdc', 'xvdc1']); // not a device of its own
      const fh = await open(path, 'r+');
      try {
        expect((await fh.stat()).size).toBe(4096 * S);
        // 64 writes of 4 KiB, as fuse2fs writes blocks.
        for (let i = 0; i < 64; i++) await fh.write(Buffer.alloc(4096, 0x61 + (i % 26)), 0, 4096, 64 * 1024 + i * 4096);
        await fh.sync();
      } finally {
        await fh.close();
      }
      expect(fsyncs).toBeGreaterThan(0);
      expect(writes.length).toBeLessThan(64);
      for (let i = 0; i < 64; i++) expect(img[2048 * S + 64 * 1024 + i * 4096]).toBe(0x61 + (i % 26));
    } finally {
      files.close();
    }
    expect(existsSync(join(driverDir, 'xvdc1'))).toBe(false);
  });
});
