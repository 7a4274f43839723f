// A busybox root filesystem tree for tests that boot a guest from its own image: Debian's
// busybox-static with its applet links and an inittab whose sysinit and shutdown lines print
// markers on the console. `extra` files are written on top (paths relative to the root).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

export function busyboxAvailable(): boolean {
  return existsSync(BUSYBOX) && spawnSync(BUSYBOX, ['--list-full']).status === 0;
}

export const TEST_INITTAB = [
  '::sysinit:/bin/echo SYSINIT-OK',
  '::respawn:-/bin/sh',
  '::ctrlaltdel:/sbin/reboot',
  '::shutdown:/bin/echo SHUTDOWN-OK',
  '',
].join('\n');

export function busyboxRoot(extra: Record<string, string> = {}, opts: { inittab?: string; noInit?: boolean } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'xenode-bbroot-'));
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'root', 'usr/bin', 'usr/sbin']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  const applets = spawnSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const a of applets) {
    if (opts.noInit && (a === 'sbin/init' || a === 'bin/sh' || a === 'linuxrc')) continue;
    const p = join(root, a);
    if (!existsSync(p)) symlinkSync('/bin/busybox', p);
  }
  writeFileSync(join(root, 'etc', 'inittab'), opts.inittab ?? TEST_INITTAB);
  writeFileSync(join(root, 'etc', 'passwd'), 'root::0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n');
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nuser:x:1000:\n');
  writeFileSync(join(root, 'etc', 'hostname'), 'bbguest\n');
  for (const [path, content] of Object.entries(extra)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}
