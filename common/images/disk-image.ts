// A raw guest disk image made from a directory tree: the whole disk an ext4 filesystem
// (`disk = ['file:IMAGE,xvda,w']`, root=/dev/xvda), or a partition table whose partition 1
// holds it (root=/dev/xvda1). Every way of making an image (`xenode mkimage DIR`, `--from
// busybox`, `--from debian`) ends here.
import { closeSync, existsSync, ftruncateSync, openSync, rmSync, statSync } from 'node:fs';
import { writeExt4 } from './ext4.js';
import { type Partition, type PartitionLabel, writePartitionTable } from './partition-table.js';

export interface DiskImageOptions {
  journal?: boolean;
  label?: string;
  /** Overwrite an existing IMAGE. */
  force?: boolean;
  partition?: PartitionLabel;
  /** See Ext4Options.ownedByRoot. */
  ownedByRoot?: boolean;
}

const MiB = 1024 * 1024;

/** Refuses an IMAGE argument that would overwrite something, before any slow work starts. */
export function checkImageTarget(image: string, bytes: number, o: DiskImageOptions): void {
  if (existsSync(image) && !o.force) throw new Error(`${image} exists (use --force to overwrite it)`);
  if (existsSync(image) && !statSync(image).isFile()) throw new Error(`${image} is not a regular file`);
  if (bytes < MiB || bytes % 1024 !== 0) throw new Error('the image must be at least 1M and a whole number of KiB');
  // A partition starts 1 MiB in (and GPT keeps a copy of its table at the end).
  if (o.partition && bytes < 2 * MiB) throw new Error('an image with a partition table must be at least 2M');
}

/**
 * Makes `image` (a sparse raw disk of `bytes`) holding `tree`; returns the partition the
 * filesystem is in, if any. A half-made image is removed when anything fails.
 */
export function makeDiskImage(tree: string, image: string, bytes: number, o: DiskImageOptions = {}): Partition | undefined {
  if (!existsSync(tree) || !statSync(tree).isDirectory()) throw new Error(`${tree} is not a directory`);
  checkImageTarget(image, bytes, o);
  const fd = openSync(image, 'w');
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  try {
    if (!o.partition) {
      writeExt4(tree, image, bytes, o);
      return undefined;
    }
    const part = writePartitionTable(image, o.partition);
    writeExt4(tree, image, part.bytes, { ...o, offset: part.start });
    return part;
  } catch (e) {
    rmSync(image, { force: true });
    throw e;
  }
}
