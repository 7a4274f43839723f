// Mounting the root filesystem. The guest kernel is root only of its own user namespace, and
// Linux lets a user namespace mount FUSE but not ext4 on a block device, so the filesystem
// driver is a FUSE program run by the kernel: fuse2fs (e2fsprogs) for ext2/3/4. It stays the
// kernel's child, outside the guest's pid namespace, so the guest's shutdown cannot kill it
// before it has written back; unmounting makes it write back and exit.
//
// fuse2fs is chosen for the reasons in README.md's dependency table: it is Debian's packaged
// userspace ext4 (lklfuse is not packaged), it honours fsync with a flush of the device, and
// it is what the guest's own programs use to mount their other disks.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { native } from '../../../native/index.js';
import type { RootDevice } from './root-device.js';
import { ROOTBOOT } from './own-init.js';

const MNT_DETACH = 2;

interface FsDriver {
  program: string[];
  readonlyOnly: boolean;
  /** The driver's command line: device, mount point, FUSE options (foreground). */
  args(dev: string, dir: string, opts: string[]): string[];
}

const FUSE2FS: FsDriver = {
  program: ['/usr/sbin/fuse2fs', '/sbin/fuse2fs', '/usr/bin/fuse2fs'],
  readonlyOnly: false,
  args: (dev, dir, opts) => [dev, dir, '-f', '-o', opts.join(',')],
};

/** Filesystems the kernel can mount as root, and the program that serves each: ext2/3/4 with
 * fuse2fs, ISO 9660 (a live CD; Rock Ridge gives it symlinks and modes) with fuseiso, whose
 * -n keeps it from writing a mount table of its own. */
const DRIVERS: Record<string, FsDriver> = {
  ext4: FUSE2FS,
  ext3: FUSE2FS,
  ext2: FUSE2FS,
  iso9660: {
    program: ['/usr/bin/fuseiso'],
    readonlyOnly: true,
    args: (dev, dir, opts) => ['-n', dev, dir, '-f', '-o', opts.filter((o) => o !== 'ro').join(',')],
  },
};

export function supportedRootFsTypes(): string[] {
  return Object.keys(DRIVERS);
}

/** rootflags fuse2fs understands; the others (nobarrier, noatime, data=...) have no meaning
 * for it and are reported, not passed on (fuse2fs would refuse to mount). */
const FUSE2FS_FLAGS = /^(errors=(panic|continue|remount-ro)|norecovery|minixdf|noload)$/;

export interface MountedRoot {
  dir: string;
  fstype: string;
  /** Resolves when the filesystem driver has exited (after an unmount: written back). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  unmount(timeoutMs: number): Promise<boolean>;
}

function isMountPoint(dir: string): boolean {
  // Field 5 of /proc/self/mountinfo is the mount point (octal escapes for blanks).
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

function findProgram(candidates: string[]): string {
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`${candidates[0]} not installed`);
  return found;
}

/** Mount `dev` (of type `fstype`) at `dir`. Rejects with the driver's own complaint. */
export async function mountRoot(
  dev: RootDevice,
  fstype: string,
  dir: string,
  opts: { flags: string[]; readonlyDevice: boolean; log: (msg: string) => void },
): Promise<MountedRoot> {
  const driver = DRIVERS[fstype];
  if (!driver) throw new Error(`unknown filesystem type '${fstype}'`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const passed = opts.flags.filter((f) => FUSE2FS_FLAGS.test(f));
  const ignored = opts.flags.filter((f) => !FUSE2FS_FLAGS.test(f) && f !== 'ro' && f !== 'rw');
  if (ignored.length) opts.log(`${fstype} (${dev.name}): rootflags ${ignored.join(',')} have no effect here (${driver === FUSE2FS ? 'fuse2fs' : 'fuseiso'}); ignored`);
  // allow_other: every user of the guest, not only its root, uses the root filesystem.
  const o = ['allow_other', ...passed];
  if (opts.readonlyDevice || driver.readonlyOnly) o.push('ro');
  const program = findProgram(driver.program);
  // As the guest's userland (rootboot's `filesystem`): the superblock is then the guest's own,
  // and `mount -o remount,rw /` in the guest works.
  const child: ChildProcess = spawn(ROOTBOOT, ['filesystem', '--', program, ...driver.args(dev.path, dir, o)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString('utf8')).slice(-4096);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));

  const deadline = Date.now() + 20_000;
  while (!isMountPoint(dir)) {
    if (done) {
      const why = output.split('\n').map((l) => l.trim()).filter((l) => l && !/^fuse2fs \d|^Using /.test(l));
      throw new Error(why.join('; ') || `${program} exited before mounting`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${program} did not mount within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  // fuse2fs's warnings (a journal it will not write, a filesystem not cleanly unmounted) are
  // worth a line on the console, as ext4 prints its own.
  for (const l of output.split('\n')) if (/warning|recover|journal/i.test(l)) opts.log(`EXT4-fs (${dev.name}): ${l.trim()}`);

  return {
    dir,
    fstype,
    exited,
    async unmount(timeoutMs: number): Promise<boolean> {
      if (!done) {
        try {
          native().umount2(dir, MNT_DETACH);
        } catch {
          /* already gone */
        }
      }
      const t = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
      if ((await Promise.race([exited, t])) === 'timeout') {
        child.kill('SIGKILL');
        return false;
      }
      return true;
    },
  };
}
