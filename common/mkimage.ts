// `xenode mkimage DIR IMAGE SIZE`: a guest disk image holding an ext4 filesystem with DIR's
// contents (mkfs.ext4 -d), ready for `disk = ['file:IMAGE,xvda,w']`. Inside the guest it is
// /dev/xvda, mounted with `fuse2fs /dev/xvda /mnt` (docs/block.md).
//
// The filesystem has no journal by default: fuse2fs, the guest's way to mount it, cannot
// write an ext4 journal. `--journal` keeps one (for images also used elsewhere).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

export const MKIMAGE_USAGE = `usage: xenode mkimage [--journal] [--label NAME] [--force] DIR IMAGE SIZE
  Make IMAGE (SIZE bytes, with a k/M/G suffix: 64M, 1G) holding an ext4 filesystem with the
  contents of DIR. The image is a raw disk for disk = ['file:IMAGE,xvda,w'].
`;

export function parseSize(s: string): number {
  const m = /^(\d+)([kKmMgGtT]?)$/.exec(s.trim());
  if (!m) throw new Error(`bad size "${s}" (use a number with k, M, G or T)`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Number(m[1]) * mult[m[2]!.toLowerCase()]!;
}

export interface MkimageOptions {
  journal?: boolean;
  label?: string;
  /** Overwrite an existing IMAGE. */
  force?: boolean;
}

/** Creates `image` (a raw disk of `bytes`) with an ext4 filesystem holding `dir`'s files. */
export function makeImage(dir: string, image: string, bytes: number, o: MkimageOptions = {}): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
  if (existsSync(image) && !o.force) throw new Error(`${image} exists (use --force to overwrite it)`);
  if (bytes < 1024 * 1024 || bytes % 1024 !== 0) throw new Error('the image must be at least 1M and a whole number of KiB');
  const args = ['-q', '-F', '-t', 'ext4', '-d', dir, '-E', 'root_owner=0:0'];
  if (!o.journal) args.push('-O', '^has_journal');
  if (o.label) args.push('-L', o.label);
  args.push(image, `${bytes / 1024}k`);
  const mkfs = ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'].find((p) => existsSync(p)) ?? 'mkfs.ext4';
  const r = spawnSync(mkfs, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`mkfs.ext4: ${r.error.message} (install e2fsprogs)`);
  if (r.status !== 0) throw new Error(`mkfs.ext4 failed: ${(r.stderr || r.stdout).trim()}`);
}

/** The command: returns an exit code. */
export function mkimageCommand(argv: string[]): number {
  const o: MkimageOptions = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--journal') o.journal = true;
    else if (a === '--force' || a === '-f') o.force = true;
    else if (a === '--label' || a === '-L') o.label = argv[++i];
    else if (a === '--help' || a === '-h') {
      process.stdout.write(MKIMAGE_USAGE);
      return 0;
    } else rest.push(a);
  }
  if (rest.length !== 3) {
    process.stderr.write(MKIMAGE_USAGE);
    return 1;
  }
  const [dir, image, size] = rest as [string, string, string];
  makeImage(dir, image, parseSize(size), o);
  process.stdout.write(`${image}: ${size} ext4 image of ${dir}; in a guest: disk = ['file:${image},xvda,w'], then fuse2fs /dev/xvda /mnt\n`);
  return 0;
}
