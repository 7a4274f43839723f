// `xenode mkimage`: guest disk images. From a directory (`mkimage DIR IMAGE SIZE`), a bootable
// busybox system (`--from busybox`) or Debian from its package repository (`--from debian`),
// each an ext4 filesystem on the whole disk (root=/dev/xvda) or, with `--partition`, in
// partition 1 of an MBR or GPT table (root=/dev/xvda1). The pieces are in common/images/.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBusyboxRoot, busyboxPasswordHash, checkBusybox } from './images/busybox-root.js';
import { configureImage, parseInit, parseNetwork } from './images/debian-config.js';
import { cacheDir, checkDebootstrap, debianTree, parsePackages, type DebianOptions, withOverlay } from './images/debian-root.js';
import { checkImageTarget, type DiskImageOptions, makeDiskImage } from './images/disk-image.js';
import { parsePartitionLabel } from './images/partition-table.js';

export const MKIMAGE_USAGE = `usage: xenode mkimage [OPTIONS] DIR IMAGE SIZE
       xenode mkimage [OPTIONS] --from busybox [--root-password PW] [--hostname NAME] IMAGE SIZE
       xenode mkimage [OPTIONS] --from debian[:SUITE] [--init systemd|sysvinit]
                      [--network ifupdown|networkd] [--packages a,b,...] [--root-password PW]
                      [--hostname NAME] [--mirror URI] IMAGE SIZE
  Make IMAGE, a raw disk of SIZE bytes (k/M/G suffix: 64M, 1G) for disk = ['file:IMAGE,xvda,w'],
  holding an ext4 filesystem with DIR's contents, or a system that boots to a login prompt
  with root= naming the disk:
    --from busybox   Debian's busybox-static with busybox init, a getty on the console,
                     DHCP on eth0 (udhcpc). Needs busybox-static on the host.
    --from debian    debootstrap of SUITE (default: the host's), from the mirror in the host's
                     apt sources, configured for a container-style guest (getty on the
                     console, units that need hardware masked). Needs root and debootstrap;
                     the first image of a kind takes a minute or two, later ones seconds
                     (cached in ${cacheDir()}/debian/).
  Root logs in without a password unless --root-password is given.
OPTIONS:
  --partition mbr|gpt  put the filesystem in partition 1 of a partition table (root=/dev/xvda1)
  --label NAME         filesystem label (default "rootfs" with --from; root=LABEL=NAME)
  --journal            keep an ext4 journal. Without it (the default) the filesystem has none:
                       the guest mounts it with fuse2fs, which cannot write a journal
  --force              overwrite IMAGE if it exists
`;

export function parseSize(s: string): number {
  const m = /^(\d+)([kKmMgGtT]?)$/.exec(s.trim());
  if (!m) throw new Error(`bad size "${s}" (use a number with k, M, G or T)`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Number(m[1]) * mult[m[2]!.toLowerCase()]!;
}

export type MkimageOptions = Omit<DiskImageOptions, 'ownedByRoot'>;

/** Creates `image` (a raw disk of `bytes`) with an ext4 filesystem holding `dir`'s files. */
export function makeImage(dir: string, image: string, bytes: number, o: MkimageOptions = {}): void {
  makeDiskImage(dir, image, bytes, o);
}

export interface MkimageArgs {
  disk: MkimageOptions;
  from?: 'busybox' | 'debian';
  debian: DebianOptions;
  rootPassword?: string;
  hostname?: string;
  positional: string[];
}

/** Parses the command line; every misuse is an error naming the offending argument. */
export function parseMkimageArgs(argv: string[]): MkimageArgs | 'help' {
  const a: MkimageArgs = { disk: {}, debian: { init: 'systemd', network: 'ifupdown', packages: [] }, positional: [] };
  const debianOnly: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--help':
      case '-h':
        return 'help';
      case '--journal':
        a.disk.journal = true;
        break;
      case '--force':
      case '-f':
        a.disk.force = true;
        break;
      case '--label':
      case '-L':
        a.disk.label = value();
        if (!/^[^\s/]{1,16}$/.test(a.disk.label)) throw new Error(`label "${a.disk.label}": at most 16 characters, no spaces or /`);
        break;
      case '--partition':
        a.disk.partition = parsePartitionLabel(value());
        break;
      case '--from': {
        const v = value();
        const [kind, suite] = v.split(':', 2) as [string, string | undefined];
        if (kind !== 'busybox' && kind !== 'debian') throw new Error(`unknown --from "${v}" (use busybox or debian[:SUITE])`);
        if (kind === 'busybox' && suite !== undefined) throw new Error(`--from busybox takes no suite ("${v}")`);
        a.from = kind;
        if (suite !== undefined) a.debian.suite = suite;
        break;
      }
      case '--init':
        a.debian.init = parseInit(value());
        debianOnly.push(arg);
        break;
      case '--network':
        a.debian.network = parseNetwork(value());
        debianOnly.push(arg);
        break;
      case '--packages':
        a.debian.packages = parsePackages(value());
        debianOnly.push(arg);
        break;
      case '--mirror':
        a.debian.mirror = value();
        debianOnly.push(arg);
        break;
      case '--root-password':
        a.rootPassword = value();
        if (/[\n:]/.test(a.rootPassword)) throw new Error('--root-password may not contain a newline or ":"');
        break;
      case '--hostname':
        a.hostname = value();
        if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})$/.test(a.hostname)) throw new Error(`"${a.hostname}" is not a host name (letters, digits, -; at most 63)`);
        break;
      default:
        if (arg.startsWith('-') && arg !== '-') throw new Error(`unknown option ${arg}`);
        a.positional.push(arg);
    }
  }
  if (a.from !== 'debian' && debianOnly.length) throw new Error(`${debianOnly[0]} is for --from debian`);
  if (!a.from && (a.rootPassword !== undefined || a.hostname !== undefined)) throw new Error('--root-password and --hostname are for --from busybox or debian');
  if (a.debian.network === 'networkd' && a.debian.init !== 'systemd') throw new Error('--network networkd needs --init systemd');
  const want = a.from ? 2 : 3;
  if (a.positional.length !== want) throw new Error(`expected ${a.from ? 'IMAGE SIZE' : 'DIR IMAGE SIZE'}, got ${a.positional.length} argument(s)`);
  return a;
}

function seconds(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

/** Builds a system tree in a scratch directory, makes the image, removes the scratch. */
function imageFromTree(
  scratch: string,
  fill: (tree: string) => void,
  image: string,
  bytes: number,
  disk: DiskImageOptions,
): ReturnType<typeof makeDiskImage> {
  try {
    fill(scratch);
    return makeDiskImage(scratch, image, bytes, disk);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function bootHint(image: string, part: unknown, label: string | undefined): string {
  const root = part ? '/dev/xvda1' : '/dev/xvda';
  return `in a config: disk = ['file:${image},xvda,w'] and root = '${root}'${label ? ` (or root=LABEL=${label})` : ''}`;
}

/** The command: returns an exit code. */
export function mkimageCommand(argv: string[]): number {
  let a: MkimageArgs | 'help';
  try {
    a = parseMkimageArgs(argv);
  } catch (e) {
    process.stderr.write(`xenode mkimage: ${(e as Error).message}\n${MKIMAGE_USAGE}`);
    return 1;
  }
  if (a === 'help') {
    process.stdout.write(MKIMAGE_USAGE);
    return 0;
  }
  const t0 = Date.now();
  if (!a.from) {
    const [dir, image, size] = a.positional as [string, string, string];
    const part = makeDiskImage(dir, image, parseSize(size), a.disk);
    process.stdout.write(`${image}: ${size} ext4 image of ${dir}${part ? ` in partition 1 of a ${a.disk.partition} table` : ''}; ${bootHint(image, part, a.disk.label)}, or fuse2fs it in a guest\n`);
    return 0;
  }
  const [image, size] = a.positional as [string, string];
  const bytes = parseSize(size);
  const disk: DiskImageOptions = { ...a.disk, label: a.disk.label ?? 'rootfs' };
  checkImageTarget(image, bytes, disk); // before minutes of work
  const password = a.rootPassword;
  let part;
  let what: string;
  if (a.from === 'busybox') {
    checkBusybox();
    const hash = password === undefined ? '' : busyboxPasswordHash(password);
    const hostname = a.hostname ?? 'busybox';
    part = imageFromTree(
      mkdtempSync(join(tmpdir(), 'xenode-busybox-')),
      (t) => buildBusyboxRoot(t, { hostname, rootPasswordHash: hash }),
      image,
      bytes,
      { ...disk, ownedByRoot: true },
    );
    what = 'busybox system';
  } else {
    checkDebootstrap();
    const { tree, cached } = debianTree(a.debian, (s) => process.stdout.write(`${s}\n`));
    const hostname = a.hostname ?? 'debian';
    part = withOverlay(tree, (view) => {
      configureImage(view, hostname, password);
      return makeDiskImage(view, image, bytes, disk);
    });
    what = `Debian ${a.debian.suite ?? 'system'} (${a.debian.init}, ${a.debian.network}${cached ? ', from the cache' : ''})`;
  }
  process.stdout.write(
    `${image}: ${size} image with a ${what}${part ? ` in partition 1 of a ${disk.partition} table` : ''}, made in ${seconds(t0)}; ` +
      `root logs in ${password === undefined ? 'without a password' : 'with the given password'}; ${bootHint(image, part, disk.label)}\n`,
  );
  return 0;
}
