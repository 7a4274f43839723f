// Running `xenode mkimage` as a user does, and looking into the images it makes with
// e2fsprogs' own tools (debugfs, e2fsck) and util-linux's partx: never through xenode's code.
import { spawnSync } from 'node:child_process';
import { XENODE } from '../helpers/instance.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function mkimage(args: string[], opts: { uid?: number } = {}): Run {
  const cmd = opts.uid === undefined ? process.execPath : 'setpriv';
  const argv = opts.uid === undefined
    ? [XENODE, 'mkimage', ...args]
    : [`--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', process.execPath, XENODE, 'mkimage', ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 900_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** debugfs -R REQUEST on an image (`IMAGE?offset=N` reaches a partition). */
export function debugfs(image: string, request: string): string {
  return spawnSync('/usr/sbin/debugfs', ['-R', request, image], { encoding: 'utf8' }).stdout;
}

export function cat(image: string, path: string): string {
  return debugfs(image, `cat ${path}`);
}

/** What debugfs' stat says about a path: type, mode, owner, symlink target. */
export function stat(image: string, path: string): { type: string; mode: number; uid: number; gid: number; link?: string } | undefined {
  const out = debugfs(image, `stat ${path}`);
  const m = /Type: (\S+)\s+Mode:\s+(\d+)/.exec(out);
  if (!m) return undefined;
  const owner = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(out)!;
  // A short target is kept in the inode ("fast link"); a longer one in a data block, which cat reads.
  const link = m[1] === 'symlink' ? (/Fast link dest: "(.*)"/.exec(out)?.[1] ?? cat(image, path)) : undefined;
  return { type: m[1]!, mode: parseInt(m[2]!, 8), uid: Number(owner[1]), gid: Number(owner[2]), link };
}

/** e2fsck -fn: exit 0 = clean, read-only check. */
export function fsck(image: string): Run {
  const r = spawnSync('/usr/sbin/e2fsck', ['-fn', image], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
