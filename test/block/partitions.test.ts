// Partitioned PV disks end to end: images with an MBR or a GPT (written by our builders, as
// `xenode mkimage --partition` writes them) given to a PV guest show their partitions as
// /dev/xvda1, /dev/xvda2 ..., each a window of the disk that reads and writes only its own
// sectors of the image; hostile tables get Linux's messages on the guest's console and break
// nothing else. The HVM guest's IDE disk shows the same partitions (/dev/hda1 ...), over the
// emulated controller and, after the PV unplug, over blkfront.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { buildGpt, buildMbr, type SectorWrite } from '../../common/disk/partition-table.js';

const S = 512;
const MIB = 1 << 20;
const DISK = 64 * MIB;
const SECTORS = DISK / S;

describe.skipIf(shouldSkip())('partitions of PV disks', () => {
  const xn = new Instance('parts');
  /** A `bytes`-long image at `name` with the table written in. */
  const image = (name: string, writes: SectorWrite[], bytes = DISK) => {
    const p = join(xn.dir, name);
    writeFileSync(p, '');
    const fd = openSync(p, 'r+');
    try {
      writeSync(fd, Buffer.alloc(1), 0, 1, bytes - 1);
      for (const w of writes) writeSync(fd, w.data, 0, w.data.length, w.lba * S);
    } finally {
      closeSync(fd);
    }
    return p;
  };
  const cfg = (name: string, disks: string[]) =>
    xn.config(name, [`name = "${name}"`, 'type = "pv"', 'memory = 128', 'vcpus = 1', 'extra = "console=hvc0"', `disk = [ ${disks.map((d) => `'${d}'`).join(', ')} ]`, ''].join('\n'));
  const run = (cmd: string, ms = 30_000) => xn.consoleRun('parts', cmd, ms);
  /** Lines the guest kernel printed on its console, without printk's time stamps. */
  const consoleLines = () => xn.consoleLog('parts').split(/\r?\n/).map((l) => l.replace(/^\[\s*\d+\.\d+\] /, ''));

  // MBR: p1 = 1 MiB..17 MiB, p2 = 17 MiB..63 MiB (ext4 made on the host inside it).
  const p1 = { start: 2048, sectors: 32768 };
  const p2 = { start: 34816, sectors: 94208 };
  // GPT: p1 = 1 MiB..9 MiB, p2 = 9 MiB..(end - 1 MiB).
  const g1 = { start: 2048, sectors: 16384 };
  const g2 = { start: 18432, sectors: SECTORS - 2048 - 18432 };
  let mbrImg = '';
  let gptImg = '';
  let manyImg = '';

  beforeAll(async () => {
    mbrImg = image('mbr.img', buildMbr({ diskSectors: SECTORS, primary: [{ ...p1, type: 0x83 }, { ...p2, type: 0x83 }] }));
    // An ext4 inside partition 2 only, with a known file: mkfs.ext4 at the partition's offset.
    const tree = join(xn.dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'hello.txt'), 'inside partition two\n');
    const mk = await xn.run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-E', `offset=${p2.start * S}`, '-d', tree, mbrImg, `${(p2.sectors * S) / 1024}k`]);
    expect(mk.code, mk.stderr).toBe(0);
    // A marker just past partition 1, which writes through /dev/xvda1 must not reach.
    const fd = openSync(mbrImg, 'r+');
    writeSync(fd, Buffer.from('FENCE-AFTER-P1'), 0, 14, (p1.start + p1.sectors) * S);
    closeSync(fd);
    gptImg = image('gpt.img', buildGpt({ diskSectors: SECTORS, partitions: [{ ...g1, label: 'boot' }, { ...g2, label: 'root' }] }));
    const gfd = openSync(gptImg, 'r+');
    writeSync(gfd, Buffer.from('FIRST-SECTOR-OF-B1'), 0, 18, g1.start * S);
    closeSync(gfd);

    // Hostile tables: entries past the end and overlapping (MBR); an extended chain that loops;
    // a GPT whose header CRC is wrong; and a disk named as a partition, whose table is not read.
    const small = 8 * MIB / S;
    const past = image('past.img', buildMbr({
      diskSectors: small,
      unchecked: true,
      primary: [{ start: 2048, sectors: 4096, type: 0x83 }, { start: 4096, sectors: 8192, type: 0x83 }, { start: 100000, sectors: 10, type: 0x83 }, { start: 6000, sectors: 1000000, type: 0x83 }],
    }), 8 * MIB);
    const loopW = buildMbr({ diskSectors: small, primary: [{ start: 2048, sectors: 12000, type: 0x05 }], logical: [{ start: 4096, sectors: 1000, type: 0x83 }, { start: 8192, sectors: 1000, type: 0x83 }] });
    const ebr2 = loopW.find((w) => w.lba === 8191)!.data;
    ebr2[0x1be + 16 + 4] = 0x05; // its link points back at the first EBR
    new DataView(ebr2.buffer).setUint32(0x1be + 16 + 8, 0, true);
    new DataView(ebr2.buffer).setUint32(0x1be + 16 + 12, 12000, true);
    const loop = image('loop.img', loopW, 8 * MIB);
    const badW = buildGpt({ diskSectors: small, partitions: [{ start: 2048, sectors: 2048 }] });
    badW.find((w) => w.lba === 1)!.data[60]! ^= 0xff; // the disk GUID changes under the CRC
    const bad = image('badcrc.img', badW, 8 * MIB);
    const named = image('named.img', buildMbr({ diskSectors: small, primary: [{ start: 2048, sectors: 2048, type: 0x83 }] }), 8 * MIB);
    // Ten logical partitions: eleven files on one disk, more receive windows than its pages.
    const many = image('many.img', buildMbr({
      diskSectors: 32 * MIB / S,
      primary: [{ start: 2048, sectors: 60000, type: 0x05 }],
      logical: Array.from({ length: 10 }, (_, k) => ({ start: 4096 + k * 5000, sectors: 4096, type: 0x83 })),
    }), 32 * MIB);
    manyImg = many;

    await xn.start();
    await xn.xlOk('create', cfg('parts', [`file:${mbrImg},xvda,w`, `file:${gptImg},xvdb,w`, `file:${past},xvdc,w`, `file:${loop},xvdd,w`, `file:${bad},xvde,w`, `file:${named},xvdf2,w`, `file:${many},xvdg,w`]));
    await xn.waitForShell('parts', 30_000);
  }, 120_000);

  afterAll(() => xn.stop(), 60_000);

  it('shows the partitions of an MBR and a GPT disk with their sizes', async () => {
    const out = await run('stat -c "%n %s" /dev/xvda* /dev/xvdb*');
    expect(out.trim().split('\n')).toEqual([
      `/dev/xvda ${DISK}`,
      `/dev/xvda1 ${p1.sectors * S}`,
      `/dev/xvda2 ${p2.sectors * S}`,
      `/dev/xvdb ${DISK}`,
      `/dev/xvdb1 ${g1.sectors * S}`,
      `/dev/xvdb2 ${g2.sectors * S}`,
    ]);
    const lines = consoleLines();
    expect(lines).toContain(' xvda: xvda1 xvda2');
    expect(lines).toContain(' xvdb: xvdb1 xvdb2');
    // Each partition is its own FUSE file, served by blkfront.
    expect(await run('grep -c "^xvd[ab][12] /dev/xvd[ab][12] fuse.blkfront" /proc/mounts')).toContain('4');
  });

  it('reads a partition from its own first sector', async () => {
    expect(await run('head -c 18 /dev/xvdb1; echo')).toContain('FIRST-SECTOR-OF-B1');
  });

  it('mounts an ext4 made on the host inside partition 2 with fuse2fs', async () => {
    const out = await run('mkdir -p /mnt/p2 && fuse2fs -o ro /dev/xvda2 /mnt/p2 && cat /mnt/p2/hello.txt; umount /mnt/p2; while pidof fuse2fs >/dev/null; do sleep 0.1; done');
    expect(out).toContain('inside partition two');
  });

  it('a write through a partition lands at its offset in the image and cannot leave it', async () => {
    const off = 5; // sectors into xvdb2
    const w = await run(`printf partition-two-data | dd of=/dev/xvdb2 bs=512 seek=${off} conv=notrunc,fsync 2>/dev/null && echo written`);
    expect(w).toContain('written');
    expect(readFileSync(gptImg).subarray((g2.start + off) * S, (g2.start + off) * S + 18).toString()).toBe('partition-two-data');
    // Two sectors from the last one of xvda1: one is written, the second has no room.
    const last = p1.sectors - 1;
    const over = await run(`dd if=/dev/zero of=/dev/xvda1 bs=512 seek=${last} count=2 conv=notrunc,fsync 2>&1; dd if=/dev/zero of=/dev/xvda1 bs=512 seek=${p1.sectors} count=1 conv=notrunc 2>&1 | head -1`);
    expect(over).toMatch(/No space left on device/);
    expect(over).toMatch(/^1\+0 records out/m);
    expect(over).toMatch(/dd: error writing '\/dev\/xvda1': No space left on device/);
    const img = readFileSync(mbrImg);
    expect(img.subarray((p1.start + p1.sectors) * S, (p1.start + p1.sectors) * S + 14).toString()).toBe('FENCE-AFTER-P1');
    // Reads stop at the end of the partition too.
    expect(await run(`dd if=/dev/xvda1 bs=512 skip=${last} 2>/dev/null | wc -c`)).toMatch(/^512$/m);
  });

  it('hostile tables: Linux\'s messages, the sane partitions kept, nothing else broken', async () => {
    const lines = consoleLines();
    // Past the end: p3 dropped, p4 cut short; p1 and p2 overlap and both stay (as on Linux).
    expect(lines).toContain(' xvdc: xvdc1 xvdc2 xvdc3 xvdc4');
    expect(lines).toContain('xvdc: p3 start 100000 is beyond EOD, truncated');
    expect(lines).toContain('xvdc: p4 size 1000000 extends beyond EOD, truncated');
    expect(lines).toContain('xvdd: extended partition chain loops back to sector 2048; the rest is ignored');
    expect(lines).toContain(' xvdd: xvdd1 < xvdd5 xvdd6 >');
    expect(lines.some((l) => /^GUID Partition Table Header CRC is wrong: [0-9a-f]+ != [0-9a-f]+$/.test(l))).toBe(true);
    expect(lines).toContain('xvde: no valid GPT; the backup GPT is only tried with "gpt" on the kernel command line');
    const out = await run('stat -c "%n %s" /dev/xvdc* /dev/xvdd* /dev/xvde* /dev/xvdf*');
    expect(out.trim().split('\n')).toEqual([
      `/dev/xvdc ${8 * MIB}`,
      `/dev/xvdc1 ${4096 * S}`,
      `/dev/xvdc2 ${8192 * S}`,
      `/dev/xvdc4 ${(16384 - 6000) * S}`,
      `/dev/xvdd ${8 * MIB}`,
      `/dev/xvdd1 1024`,
      `/dev/xvdd5 ${1000 * S}`,
      `/dev/xvdd6 ${1000 * S}`,
      `/dev/xvde ${8 * MIB}`,
      // Named as a partition by the toolstack: the whole image, its table not read.
      `/dev/xvdf2 ${8 * MIB}`,
    ]);
    // The good disks still work.
    expect(await run('head -c 18 /dev/xvdb2 >/dev/null && echo still-fine')).toContain('still-fine');
  });

  it('eleven files on one disk share its pages: each partition takes 1 MiB writes in turn', async () => {
    const out = await run('for i in 5 6 7 8 9 10 11 12 13 14; do head -c 1048576 /dev/urandom > /tmp/r && dd if=/tmp/r of=/dev/xvdg$i bs=1M conv=fsync 2>/dev/null && md5sum < /tmp/r | cut -c1-32; done', 60_000);
    const sums = out.trim().split('\n');
    expect(sums).toHaveLength(10);
    const img = readFileSync(manyImg);
    const { createHash } = await import('node:crypto');
    sums.forEach((sum, k) => {
      const at = (4096 + k * 5000) * S;
      expect(createHash('md5').update(img.subarray(at, at + MIB)).digest('hex')).toBe(sum);
    });
  });

  it('a detached disk takes its partitions with it', async () => {
    await xn.xlOk('block-detach', 'parts', 'xvdb');
    const out = await run('ls /dev/xvdb* 2>&1; grep -c "xvdb" /proc/mounts');
    expect(out).toMatch(/No such file or directory/);
    expect(out).toMatch(/^0$/m);
    expect(await run('cat /dev/xvda1 | wc -c')).toMatch(new RegExp(`^${p1.sectors * S}$`, 'm'));
  });
  it('an HVM guest shows the partitions of its IDE disk, over the emulated controller and over PV', async () => {
    const hvmImg = join(xn.dir, 'hvm.img');
    copyFileSync(mbrImg, hvmImg);
    const hvmCfg = (name: string, extra: string) =>
      xn.config(name, [`builder = 'hvm'`, `name = '${name}'`, `memory = 128`, `vcpus = 1`, `serial = 'pty'`, `boot = 'c'`, `disk = [ 'file:${hvmImg},hda,w' ]`, `extra = '${extra}'`, `on_crash = 'destroy'`, ''].join('\n'));
    for (const [name, extra] of [['hvmide', ''], ['hvmpv', 'xen_pvhvm=1']] as const) {
      const before = xn.consoleLog(name).length;
      await xn.xlOk('create', hvmCfg(name, extra));
      await xn.waitFor(`${name}'s init`, () => /Run .* as init process/.test(xn.consoleLog(name).slice(before)), 60_000);
      const lines = xn.consoleLog(name).slice(before).split(/\r?\n/).map((l) => l.replace(/^\[\s*\d+\.\d+\] /, ''));
      expect(lines).toContain(' hda: hda1 hda2');
      const out = await xn.consoleRun(name, `stat -c "%n %s" /dev/hda*; grep -o "^hda[0-9]* /dev/hda[0-9]* fuse.[a-z_]*" /proc/mounts; mkdir -p /mnt/p && fuse2fs -o ro /dev/hda2 /mnt/p && cat /mnt/p/hello.txt; umount /mnt/p; while pidof fuse2fs >/dev/null; do sleep 0.1; done; printf ${name}-was-here | dd of=/dev/hda1 bs=512 seek=7 conv=notrunc,fsync 2>/dev/null; echo done`, 60_000);
      expect(out).toContain(`/dev/hda ${DISK}\n/dev/hda1 ${p1.sectors * S}\n/dev/hda2 ${p2.sectors * S}`);
      // The emulated controller's driver, or blkfront after the unplug.
      expect(out).toContain(`hda1 /dev/hda1 fuse.${extra ? 'blkfront' : 'ata_piix'}`);
      expect(out).toContain('inside partition two');
      expect(out).toContain('done');
      expect(readFileSync(hvmImg).subarray((p1.start + 7) * S, (p1.start + 7) * S + name.length + 9).toString()).toBe(`${name}-was-here`);
      await xn.xlOk('destroy', name);
    }
  }, 180_000);
});
