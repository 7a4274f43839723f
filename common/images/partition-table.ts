// A partition table on a disk image, written and read with util-linux's own tools so that
// what an image holds is what every Linux tool (and a Linux guest) would see: `sfdisk` (Debian
// `fdisk`) writes one Linux partition filling the disk, `partx` reads the result back.
// MBR ("dos" to sfdisk) gets type 0x83, GPT the Linux filesystem type GUID; both start at
// sector 2048 (1 MiB), the alignment every partitioning tool uses today.
import { spawnSync } from 'node:child_process';
import { sbinTool } from './ext4.js';

export type PartitionLabel = 'mbr' | 'gpt';

export interface Partition {
  number: number;
  /** In bytes from the start of the disk. */
  start: number;
  bytes: number;
  type: string;
}

export function parsePartitionLabel(s: string | undefined): PartitionLabel {
  if (s === 'mbr' || s === 'dos' || s === 'msdos') return 'mbr';
  if (s === 'gpt') return 'gpt';
  throw new Error(`unknown partition table "${s ?? ''}" (use mbr or gpt)`);
}

/** Writes a table with one Linux partition spanning the (already sized) image. */
export function writePartitionTable(image: string, label: PartitionLabel): Partition {
  const script = label === 'gpt' ? 'label: gpt\n,,L\n' : 'label: dos\n,,L\n';
  const r = spawnSync(sbinTool('sfdisk'), ['--quiet', '--no-reread', '--no-tell-kernel', image], {
    input: script,
    encoding: 'utf8',
  });
  if (r.error) throw new Error(`sfdisk: ${r.error.message} (install Debian's fdisk package)`);
  if (r.status !== 0) throw new Error(`sfdisk could not write a ${label} table on ${image}: ${(r.stderr || r.stdout).trim()}`);
  const parts = readPartitions(image);
  if (parts.length !== 1) throw new Error(`sfdisk wrote ${parts.length} partitions on ${image}, expected 1`);
  return parts[0]!;
}

/** The partitions in an image's table, as `partx` reads them (sectors are 512 bytes). */
export function readPartitions(image: string): Partition[] {
  const r = spawnSync(sbinTool('partx'), ['-g', '-o', 'NR,START,SECTORS,TYPE', image], { encoding: 'utf8' });
  if (r.error) throw new Error(`partx: ${r.error.message} (install util-linux)`);
  if (r.status !== 0) throw new Error(`partx could not read a partition table on ${image}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[0]!))
    .map((f) => ({ number: Number(f[0]), start: Number(f[1]) * 512, bytes: Number(f[2]) * 512, type: f[3] ?? '' }));
}
