// Writing an ext4 filesystem holding a directory tree into a disk image, at an offset when it
// goes into a partition (`mkfs.ext4 -d DIR -E offset=BYTES`). mkfs copies the tree as it is:
// symlinks stay symlinks (their targets are not followed, so a link pointing out of DIR carries
// no host file into the image), hard links stay linked, modes and owners are kept.
//
// No journal unless asked: fuse2fs, the guest's way to mount the filesystem, cannot write one
// (it replays a journal but never writes it), so a journal only costs space and gives a
// false sense of safety.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Ext4Options {
  journal?: boolean;
  label?: string;
  /** Where the filesystem starts in the image (a partition's first byte); 0 for a whole disk. */
  offset?: number;
  /**
   * Record the tree's files as owned by root even when the caller is not root, by running
   * mkfs in a user namespace where the caller is uid 0 (for trees this program built itself).
   */
  ownedByRoot?: boolean;
}

export function sbinTool(name: string): string {
  return [`/usr/sbin/${name}`, `/sbin/${name}`, `/usr/bin/${name}`].find((p) => existsSync(p)) ?? name;
}

/** The apparent size of a tree in MiB (for a message when it does not fit). */
function treeMiB(dir: string): number | undefined {
  const r = spawnSync('du', ['-s', '--block-size=1M', dir], { encoding: 'utf8' });
  const n = Number(r.stdout?.split(/\s/)[0]);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * Writes an ext4 filesystem of `bytes` holding `dir` into `image` at `o.offset` (the image
 * file must exist when an offset is given, since a partition table is already in it).
 */
export function writeExt4(dir: string, image: string, bytes: number, o: Ext4Options = {}): void {
  const args = ['-q', '-F', '-t', 'ext4', '-d', dir];
  const ext = ['root_owner=0:0'];
  if (o.offset) ext.push(`offset=${o.offset}`);
  args.push('-E', ext.join(','));
  if (!o.journal) args.push('-O', '^has_journal');
  if (o.label) args.push('-L', o.label);
  args.push(image, `${Math.floor(bytes / 1024)}k`);
  const mkfs = sbinTool('mkfs.ext4');
  const asRoot = o.ownedByRoot && process.getuid?.() !== 0;
  const r = asRoot
    ? spawnSync('unshare', ['--map-root-user', mkfs, ...args], { encoding: 'utf8' })
    : spawnSync(mkfs, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`mkfs.ext4: ${r.error.message} (install e2fsprogs)`);
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout).trim();
    if (/Could not allocate|No space left|Could not allocate block|inode table|too small/i.test(msg)) {
      const need = treeMiB(dir);
      throw new Error(
        `${Math.floor(bytes / 1048576)} MiB is too small for the contents of ${dir}` +
          (need ? ` (they take about ${need} MiB; ext4 needs room for its own metadata on top)` : '') +
          ` - mkfs.ext4 said: ${msg.split('\n').pop()}`,
      );
    }
    throw new Error(`mkfs.ext4 failed: ${msg}`);
  }
}
