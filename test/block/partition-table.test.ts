// The partition-table codec (common/disk/partition-table.ts) from raw bytes: MBR with logical
// partitions, GPT, and hostile tables (past the end, overlapping, looping chains, bad CRCs),
// each answered as Linux answers it; and a cross-check against util-linux's partx on images
// made with our builders and with sfdisk.
import { describe, expect, it, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  buildGpt,
  buildMbr,
  gptUsable,
  GPT_TYPE,
  partitionName,
  scanPartitions,
  type Partition,
  type ScanOptions,
  type SectorWrite,
} from '../../common/disk/partition-table.js';

const S = 512;

/** A disk in memory: `sectors` sectors with the writes applied. */
function disk(sectors: number, writes: SectorWrite[]): Uint8Array {
  const d = new Uint8Array(sectors * S);
  for (const w of writes) d.set(w.data, w.lba * S);
  return d;
}

function reader(d: Uint8Array, reads: number[] = []) {
  return async (lba: number, count: number) => {
    reads.push(lba);
    if ((lba + count) * S > d.length) throw new Error('read past the end');
    return d.slice(lba * S, (lba + count) * S);
  };
}

const scan = (d: Uint8Array, o: ScanOptions = {}, name = 'xvda') => scanPartitions({ name, sectors: d.length / S }, reader(d), o);
const brief = (ps: Partition[]) => ps.map((p) => [p.number, p.start, p.sectors]);

/** Re-seals a GPT header after a test changed it (its CRC over the first 92 bytes). */
function resealHeader(d: Uint8Array, lba: number): void {
  const h = d.subarray(lba * S, lba * S + 92);
  const dv = new DataView(d.buffer, lba * S);
  dv.setUint32(16, 0, true);
  dv.setUint32(16, crc32(h) >>> 0, true);
}

describe('MBR', () => {
  it('reads primary partitions, numbered by slot', async () => {
    const d = disk(16384, buildMbr({ diskSectors: 16384, primary: [{ start: 2048, sectors: 4096, type: 0x83 }, null, { start: 8192, sectors: 8192, type: 0x82 }] }));
    const r = await scan(d);
    expect(r.format).toBe('mbr');
    expect(brief(r.partitions)).toEqual([[1, 2048, 4096], [3, 8192, 8192]]);
    expect(r.partitions[0]!.type).toBe(0x83);
    expect(r.partitions[0]!.uuid).toBe('78656e6f-01');
    expect(r.messages).toEqual([' xvda: xvda1 xvda3']);
  });

  it('numbers logical partitions 5, 6 ... and shows the extended one as two sectors', async () => {
    const d = disk(32768, buildMbr({
      diskSectors: 32768,
      primary: [{ start: 2048, sectors: 4096, type: 0x83 }, { start: 6144, sectors: 26624, type: 0x0f }],
      logical: [{ start: 8192, sectors: 2048, type: 0x83 }, { start: 12288, sectors: 20480, type: 0x82 }],
    }));
    const r = await scan(d);
    expect(brief(r.partitions)).toEqual([[1, 2048, 4096], [2, 6144, 2], [5, 8192, 2048], [6, 12288, 20480]]);
    expect(r.partitions[1]!.extended).toBe(true);
    expect(r.messages).toEqual([' xvda: xvda1 xvda2 < xvda5 xvda6 >']);
  });

  it('names partitions of a disk whose name ends in a digit with a p', async () => {
    expect(partitionName('xvda', 2)).toBe('xvda2');
    expect(partitionName('nvme0n1', 2)).toBe('nvme0n1p2');
    const d = disk(4096, buildMbr({ diskSectors: 4096, primary: [{ start: 64, sectors: 100, type: 0x83 }] }));
    expect((await scan(d, {}, 'nvme0n1')).messages).toEqual([' nvme0n1: p1']);
  });

  it('is not a table without 55 AA, with a bad boot flag, or when it is a FAT boot sector', async () => {
    const d = disk(4096, buildMbr({ diskSectors: 4096, primary: [{ start: 64, sectors: 100, type: 0x83 }] }));
    const noMagic = d.slice();
    noMagic[511] = 0;
    expect(await scan(noMagic)).toEqual({ format: null, partitions: [], messages: [] });
    const badBoot = d.slice();
    badBoot[0x1be] = 0x12;
    expect((await scan(badBoot)).partitions).toEqual([]);
    // FAT: reserved sectors, FAT count, media byte: recognised, no partitions.
    badBoot.set([1, 0], 14);
    badBoot[16] = 2;
    badBoot[21] = 0xf8;
    expect(await scan(badBoot)).toEqual({ format: 'mbr', partitions: [], messages: [' xvda:'] });
    expect(await scan(new Uint8Array(4096 * S))).toEqual({ format: null, partitions: [], messages: [] });
  });

  it('drops a partition starting past the end and cuts one running past it, with Linux\'s warnings', async () => {
    const d = disk(8192, buildMbr({
      diskSectors: 8192,
      unchecked: true,
      primary: [{ start: 2048, sectors: 2048, type: 0x83 }, { start: 4096, sectors: 100000, type: 0x83 }, { start: 9000, sectors: 10, type: 0x83 }],
    }));
    const r = await scan(d);
    expect(brief(r.partitions)).toEqual([[1, 2048, 2048], [2, 4096, 4096]]);
    expect(r.messages).toEqual([' xvda: xvda1 xvda2 xvda3', 'xvda: p2 size 100000 extends beyond EOD, truncated', 'xvda: p3 start 9000 is beyond EOD, truncated']);
  });

  it('keeps overlapping partitions, as Linux does (each stays inside its own range)', async () => {
    const d = disk(8192, buildMbr({ diskSectors: 8192, primary: [{ start: 2048, sectors: 4096, type: 0x83 }, { start: 4096, sectors: 4096, type: 0x83 }] }));
    expect(brief((await scan(d)).partitions)).toEqual([[1, 2048, 4096], [2, 4096, 4096]]);
  });

  it('stops a looping extended chain the first time it comes back', async () => {
    const d = disk(32768, buildMbr({
      diskSectors: 32768,
      primary: [{ start: 2048, sectors: 30000, type: 0x05 }],
      logical: [{ start: 4096, sectors: 1000, type: 0x83 }, { start: 8192, sectors: 1000, type: 0x83 }],
    }));
    // The second EBR (sector 8191) links back to the first (offset 0 in the extended).
    const second = 8191 * S + 0x1be + 16;
    d[second + 4] = 0x05;
    new DataView(d.buffer).setUint32(second + 8, 0, true);
    new DataView(d.buffer).setUint32(second + 12, 30000, true);
    const r = await scan(d);
    expect(brief(r.partitions)).toEqual([[1, 2048, 2], [5, 4096, 1000], [6, 8192, 1000]]);
    expect(r.messages).toEqual(['xvda: extended partition chain loops back to sector 2048; the rest is ignored', ' xvda: xvda1 < xvda5 xvda6 >']);
    // A chain of links without data partitions ends after 100 of them (msdos.c's loopct).
    const reads: number[] = [];
    const empty = disk(32768, buildMbr({ diskSectors: 32768, primary: [{ start: 1, sectors: 32000, type: 0x05 }] }));
    for (let k = 0; k < 300; k++) {
      const at = 1 + k * 10;
      empty[at * S + 510] = 0x55;
      empty[at * S + 511] = 0xaa;
      empty[at * S + 0x1be + 4] = 0x05;
      new DataView(empty.buffer).setUint32(at * S + 0x1be + 8, (k + 1) * 10, true);
      new DataView(empty.buffer).setUint32(at * S + 0x1be + 12, 10, true);
    }
    const e = await scanPartitions({ name: 'xvda', sectors: 32768 }, reader(empty, reads));
    expect(brief(e.partitions)).toEqual([[1, 1, 2]]);
    expect(reads.length).toBeLessThanOrEqual(102);
  });

  it('numbers no partition at or above the limit', async () => {
    const logical = Array.from({ length: 30 }, (_, k) => ({ start: 100 + k * 100, sectors: 50, type: 0x83 }));
    const d = disk(8192, buildMbr({ diskSectors: 8192, primary: [{ start: 64, sectors: 8000, type: 0x05 }], logical: logical.map((l, k) => ({ ...l, ebr: k === 0 ? 64 : l.start - 1 })) }));
    const all = await scan(d);
    expect(all.partitions.map((p) => p.number)).toEqual([1, ...Array.from({ length: 30 }, (_, k) => 5 + k)]);
    const r = await scan(d, { limit: 16 });
    expect(r.partitions.map((p) => p.number)).toEqual([1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('says when sector 0 cannot be read, and when the table lies past the end', async () => {
    const r = await scanPartitions({ name: 'xvda', sectors: 4096 }, async () => { throw new Error('EIO'); });
    expect(r).toEqual({ format: null, partitions: [], messages: [' xvda: unable to read partition table'] });
    const d = disk(8192, buildMbr({ diskSectors: 8192, unchecked: true, primary: [{ start: 64, sectors: 100, type: 0x83 }, { start: 9000, sectors: 900, type: 0x05 }] }));
    const p = await scan(d);
    expect(brief(p.partitions)).toEqual([[1, 64, 100]]);
    expect(p.messages).toEqual([' xvda: xvda1 xvda2 < >', 'xvda: partition table partially beyond EOD, truncated', 'xvda: p2 start 9000 is beyond EOD, truncated']);
  });

  it('refuses to build what cannot be a table', () => {
    expect(() => buildMbr({ diskSectors: 100, primary: [{ start: 10, sectors: 200, type: 0x83 }] })).toThrow(/not inside the disk/);
    expect(() => buildMbr({ diskSectors: 100, primary: [null, null, null, null, null] })).toThrow(/four primary/);
    expect(() => buildMbr({ diskSectors: 1000, primary: [{ start: 10, sectors: 20, type: 0x83 }], logical: [{ start: 40, sectors: 5, type: 0x83 }] })).toThrow(/extended/);
  });
});

describe('GPT', () => {
  const layout = (diskSectors: number) => ({
    diskSectors,
    diskGuid: '11111111-2222-3333-4444-555555555555',
    partitions: [
      { start: 2048, sectors: 4096, type: GPT_TYPE.efiSystem, label: 'esp', uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-000000000001' },
      { start: 6144, sectors: 8192, label: 'root', uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-000000000002' },
    ],
  });

  it('reads the entries behind a protective MBR, numbered by entry', async () => {
    const d = disk(16384, buildGpt(layout(16384)));
    const r = await scan(d);
    expect(r.format).toBe('gpt');
    expect(brief(r.partitions)).toEqual([[1, 2048, 4096], [2, 6144, 8192]]);
    expect(r.partitions[1]).toMatchObject({ type: GPT_TYPE.linux, label: 'root', uuid: 'aaaaaaaa-bbbb-cccc-dddd-000000000002' });
    expect(r.messages).toEqual([' xvda: xvda1 xvda2']);
    expect(gptUsable(16384)).toEqual({ first: 34, last: 16350 });
  });

  it('refuses a primary header with a bad CRC, and uses the backup only with "gpt"', async () => {
    const d = disk(16384, buildGpt(layout(16384)));
    d[S + 100 - 8]! ^= 1; // inside the header's 92 bytes (reserved at +56.. is the disk GUID)
    d[S + 60]! ^= 0xff;
    const r = await scan(d);
    expect(r.format).toBeNull();
    expect(r.partitions).toEqual([]);
    expect(r.messages[0]).toMatch(/^GUID Partition Table Header CRC is wrong: [0-9a-f]+ != [0-9a-f]+$/);
    expect(r.messages[1]).toBe('xvda: no valid GPT; the backup GPT is only tried with "gpt" on the kernel command line');
    const f = await scan(d, { forceGpt: true });
    expect(brief(f.partitions)).toEqual([[1, 2048, 4096], [2, 6144, 8192]]);
    expect(f.messages).toContain('Primary GPT is invalid, using alternate GPT.');
  });

  it('refuses an entry array whose CRC does not match, and a header claiming absurd sizes', async () => {
    const d = disk(16384, buildGpt(layout(16384)));
    const arr = d.slice();
    arr[2 * S + 32]! ^= 1; // entry 1's first LBA
    expect((await scan(arr)).messages[0]).toBe('GUID Partition Entry Array CRC check failed.');
    const huge = d.slice();
    new DataView(huge.buffer).setUint32(S + 80, 0x10000000, true);
    resealHeader(huge, 1);
    expect((await scan(huge)).messages[0]).toBe('GUID Partition Table is too large: 34359738368 > 4194304 bytes');
    const size = d.slice();
    new DataView(size.buffer).setUint32(S + 84, 64, true);
    resealHeader(size, 1);
    expect((await scan(size)).messages[0]).toBe('GUID Partition Entry Size check failed.');
    const usable = d.slice();
    new DataView(usable.buffer).setBigUint64(S + 48, 99999n, true);
    resealHeader(usable, 1);
    expect((await scan(usable)).messages[0]).toBe('GPT: last_usable_lba incorrect: 99999 > 16383');
    const sig = d.slice();
    sig[S] = 0x46;
    expect((await scan(sig)).messages[0]).toMatch(/^GUID Partition Table Header signature is wrong/);
  });

  it('uses the primary when the backup is bad, and warns where the two differ', async () => {
    const d = disk(16384, buildGpt(layout(16384)));
    d[16383 * S + 60]! ^= 0xff;
    const r = await scan(d);
    expect(brief(r.partitions)).toEqual([[1, 2048, 4096], [2, 6144, 8192]]);
    expect(r.messages).toContain('Alternate GPT is invalid, using primary GPT.');
    // An image grown after partitioning: the backup is no longer at the end.
    const grown = new Uint8Array(20000 * S);
    grown.set(d);
    d[16383 * S + 60]! ^= 0xff;
    grown.set(d.subarray(16383 * S), 16383 * S);
    const g = await scan(grown);
    expect(brief(g.partitions)).toEqual([[1, 2048, 4096], [2, 6144, 8192]]);
    expect(g.messages).toContain('GPT:Primary header thinks Alt. header is not at the end of the disk.');
    expect(g.messages).toContain('GPT:16383 != 19999');
  });

  it('drops entries past the end or ending before they start; keeps overlapping ones', async () => {
    const d = disk(16384, buildGpt({
      diskSectors: 16384,
      unchecked: true,
      partitions: [{ start: 2048, sectors: 4096 }, { start: 4096, sectors: 4096 }, { start: 16000, sectors: 1000 }, { start: 20000, sectors: 10 }],
    }));
    const r = await scan(d);
    expect(brief(r.partitions)).toEqual([[1, 2048, 4096], [2, 4096, 4096]]);
    // Entry 3 ends past the last LBA and 4 starts past it: is_pte_valid() drops both silently.
    expect(r.messages).toEqual([' xvda: xvda1 xvda2']);
    const backwards = d.slice();
    new DataView(backwards.buffer).setBigUint64(2 * S + 40, 100n, true); // entry 1 ends at 100
    const arr = backwards.subarray(2 * S, 34 * S);
    new DataView(backwards.buffer).setUint32(S + 88, crc32(arr) >>> 0, true);
    resealHeader(backwards, 1);
    expect(brief((await scan(backwards)).partitions)).toEqual([[2, 4096, 4096]]);
  });

  it('refuses to build entries outside the usable sectors', () => {
    expect(() => buildGpt({ diskSectors: 16384, partitions: [{ start: 10, sectors: 100 }] })).toThrow(/outside the usable sectors 34\.\.16350/);
    expect(() => buildGpt({ diskSectors: 50, partitions: [] })).toThrow(/too small/);
  });
});

describe('cross-check with util-linux partx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-pt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const have = (tool: string) => spawnSync(tool, ['--version']).status === 0;

  function image(name: string, sectors: number, writes: SectorWrite[] = []): string {
    const p = join(dir, name);
    writeFileSync(p, '');
    const fd = openSync(p, 'r+');
    try {
      writeSync(fd, Buffer.alloc(1), 0, 1, sectors * S - 1);
      for (const w of writes) writeSync(fd, w.data, 0, w.data.length, w.lba * S);
    } finally {
      closeSync(fd);
    }
    return p;
  }

  /** partx's NR START SECTORS rows, and ours (an extended partition is two sectors to Linux). */
  async function compare(p: string): Promise<number[][]> {
    const px = spawnSync('partx', ['-g', '-o', 'NR,START,SECTORS', p], { encoding: 'utf8' });
    expect(px.status, px.stderr).toBe(0);
    const theirs = px.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    const d = new Uint8Array(readFileSync(p));
    const ours = (await scan(d)).partitions;
    expect(ours.map((q) => [q.number, q.start, q.extended ? 0 : q.sectors])).toEqual(theirs.map(([n, s, c]) => [n, s, ours.find((q) => q.number === n)?.extended ? 0 : c]));
    for (const q of ours.filter((x) => x.extended)) expect(q.sectors).toBe(2);
    return theirs;
  }

  it.skipIf(!have('partx'))('agrees on MBR and GPT images our builders made', async () => {
    const mbr = image('mbr.img', 131072, buildMbr({
      diskSectors: 131072,
      primary: [{ start: 2048, sectors: 20480, type: 0x83, bootable: true }, { start: 22528, sectors: 100000, type: 0x05 }],
      logical: [{ start: 24576, sectors: 40960, type: 0x83 }, { start: 67584, sectors: 50000, type: 0x82 }],
    }));
    expect(await compare(mbr)).toHaveLength(4);
    const gpt = image('gpt.img', 131072, buildGpt({ diskSectors: 131072, partitions: [{ start: 2048, sectors: 2048, type: GPT_TYPE.biosBoot }, null, { start: 4096, sectors: 120000, label: 'root' }] }));
    expect(await compare(gpt)).toEqual([[1, 2048, 2048], [3, 4096, 120000]]);
    // sfdisk reads back what we wrote, names included.
    if (have('sfdisk')) {
      const dump = spawnSync('sfdisk', ['-d', gpt], { encoding: 'utf8' });
      expect(dump.stdout).toMatch(/gpt\.img3 : start=\s*4096, size=\s*120000, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=[0-9A-F-]{36}, name="root"/);
      const v = spawnSync('sfdisk', ['--verify', gpt], { encoding: 'utf8' });
      expect(v.stdout).toContain('No errors detected.');
    }
  });

  it.skipIf(!have('partx') || !have('sfdisk'))('agrees on MBR and GPT images sfdisk made', async () => {
    const mbr = image('sf-mbr.img', 131072);
    const a = spawnSync('sfdisk', ['-q', mbr], { input: 'label: dos\n2048,8192,83\n10240,,5\n12288,10000,83\n24576,,82\n', encoding: 'utf8' });
    expect(a.status, a.stderr).toBe(0);
    expect((await compare(mbr)).map((r) => r[0])).toEqual([1, 2, 5, 6]);
    const gpt = image('sf-gpt.img', 131072);
    const b = spawnSync('sfdisk', ['-q', gpt], { input: 'label: gpt\n,8M,U\n,20M,L\n,,S\n', encoding: 'utf8' });
    expect(b.status, b.stderr).toBe(0);
    const rows = await compare(gpt);
    expect(rows.map((r) => r[0])).toEqual([1, 2, 3]);
    expect((await scan(new Uint8Array(readFileSync(gpt)))).partitions.map((p) => p.type)).toEqual([GPT_TYPE.efiSystem, GPT_TYPE.linux, GPT_TYPE.linuxSwap]);
  });
});
