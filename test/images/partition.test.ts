// `xenode mkimage --partition mbr|gpt`: the filesystem in partition 1 of a real partition table,
// as util-linux's partx and e2fsprogs' e2fsck/debugfs see it (not as xenode's code reads it).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cat, fsck, mkimage } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'xenode-images-part-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const src = join(dir, 'tree');
mkdirSync(join(src, 'etc'), { recursive: true });
writeFileSync(join(src, 'etc', 'motd'), 'inside partition one\n');

function partx(image: string): { nr: number; start: number; sectors: number; type: string }[] {
  const r = spawnSync('partx', ['-g', '-o', 'NR,START,SECTORS,TYPE', image], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').map((l) => {
    const [nr, start, sectors, type] = l.trim().split(/\s+/);
    return { nr: Number(nr), start: Number(start), sectors: Number(sectors), type: type! };
  });
}

/** Filesystem size in bytes, from its superblock. */
function fsBytes(image: string): number {
  const out = spawnSync('/usr/sbin/dumpe2fs', ['-h', image], { encoding: 'utf8' }).stdout;
  return Number(/Block count:\s+(\d+)/.exec(out)![1]) * Number(/Block size:\s+(\d+)/.exec(out)![1]);
}

describe('mkimage --partition', () => {
  for (const [label, type] of [['gpt', '0fc63daf-8483-4772-8e79-3d69d8477de4'], ['mbr', '0x83']] as const) {
    it(`${label}: one Linux partition from sector 2048 holding a clean ext4 with the directory`, () => {
      const img = join(dir, `${label}.img`);
      const r = mkimage(['--partition', label, src, img, '32M']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/partition 1 of a .* table.*root = '\/dev\/xvda1'/);
      expect(statSync(img).size).toBe(32 << 20);
      const parts = partx(img);
      expect(parts).toHaveLength(1);
      expect(parts[0]).toMatchObject({ nr: 1, start: 2048, type });
      // MBR runs to the last sector; GPT keeps 33 sectors at the end for its backup table and
      // sfdisk ends the partition on a 1 MiB boundary before them.
      const end = parts[0]!.start + parts[0]!.sectors;
      if (label === 'mbr') expect(end).toBe(65536);
      else expect(end).toBe(65536 - 2048);
      const part = `${img}?offset=${2048 * 512}`;
      expect(fsck(part).code).toBe(0);
      expect(fsBytes(part)).toBeLessThanOrEqual(parts[0]!.sectors * 512);
      expect(fsBytes(part)).toBeGreaterThan((parts[0]!.sectors - 2048) * 512);
      expect(cat(part, '/etc/motd')).toBe('inside partition one\n');
      // Sector 0 is the table, not a filesystem.
      expect(fsck(img).code).not.toBe(0);
    });
  }

  it('puts a busybox system in a partition too', () => {
    const img = join(dir, 'bb-gpt.img');
    const r = mkimage(['--from', 'busybox', '--partition', 'gpt', img, '16M']);
    expect(r.code, r.stderr).toBe(0);
    expect(partx(img)[0]).toMatchObject({ nr: 1, start: 2048 });
    expect(fsck(`${img}?offset=${2048 * 512}`).code).toBe(0);
    expect(cat(`${img}?offset=${2048 * 512}`, '/etc/inittab')).toMatch(/sysinit/);
  });
});
