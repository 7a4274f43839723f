// `xenode mkimage --from busybox`: a busybox system that boots to a login prompt, checked as
// its init will find it (files, applet links, inittab, shadow) with e2fsprogs' tools.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cat, fsck, mkimage, stat } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'xenode-images-bb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const haveBusybox = existsSync('/bin/busybox');

describe.skipIf(!haveBusybox && process.env.CI !== 'true')('mkimage --from busybox', () => {
  const img = join(dir, 'bb.img');
  const withPw = join(dir, 'bb-pw.img');

  it('makes a clean ext4 image with busybox init, its applet links and a console getty', () => {
    const r = mkimage(['--from', 'busybox', '--hostname', 'bbtest', img, '16M']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/busybox system.*root = '\/dev\/xvda'/);
    expect(statSync(img).size).toBe(16 << 20);
    expect(fsck(img).code).toBe(0);

    const bb = stat(img, '/bin/busybox')!;
    expect(bb).toMatchObject({ type: 'regular', uid: 0, gid: 0 });
    expect(bb.mode & 0o777).toBe(0o755);
    // Every applet the binary has, at its usual place, as a link to /bin/busybox.
    const applets = spawnSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => a && a !== 'linuxrc');
    expect(applets.length).toBeGreaterThan(200);
    for (const a of ['sbin/init', 'bin/sh', 'sbin/getty', 'bin/login', 'sbin/udhcpc', 'sbin/ifup', 'sbin/poweroff', 'sbin/reboot']) {
      expect(stat(img, `/${a}`), a).toMatchObject({ type: 'symlink', link: '/bin/busybox', uid: 0 });
    }
    const listed = spawnSync('/usr/sbin/debugfs', ['-R', 'ls -p /usr/bin', img], { encoding: 'utf8' }).stdout;
    for (const a of applets.filter((x) => x.startsWith('usr/bin/'))) expect(listed).toContain(`/${a.slice(8)}/`);

    const inittab = cat(img, '/etc/inittab');
    expect(inittab).toMatch(/^::sysinit:\/etc\/init\.d\/rcS$/m);
    expect(inittab).toMatch(/^::respawn:\/sbin\/getty .*console/m);
    expect(inittab).toMatch(/^::ctrlaltdel:\/sbin\/reboot$/m);
    expect(inittab).toMatch(/^::shutdown:/m);
    const rcS = cat(img, '/etc/init.d/rcS');
    expect(stat(img, '/etc/init.d/rcS')!.mode & 0o111).toBe(0o111);
    expect(rcS).toMatch(/mounted \/proc \|\| mount -t proc/);
    expect(rcS).toMatch(/hostname -F \/etc\/hostname/);
    expect(rcS).toMatch(/ip link set lo up/);
    expect(rcS).toMatch(/ifup -a/);

    expect(cat(img, '/etc/hostname')).toBe('bbtest\n');
    expect(cat(img, '/etc/passwd')).toMatch(/^root:x:0:0:root:\/root:\/bin\/sh$/m);
    // Empty password field: busybox login lets root in without asking.
    expect(cat(img, '/etc/shadow')).toMatch(/^root::/m);
    expect(stat(img, '/etc/shadow')!.mode & 0o777).toBe(0o600);
    expect(cat(img, '/etc/network/interfaces')).toMatch(/^iface eth0 inet dhcp$/m);
    // Where this busybox's udhcpc looks for its script (compiled in).
    expect(readFileSync('/bin/busybox').includes(Buffer.from('/etc/udhcpc/default.script\0'))).toBe(true);
    expect(stat(img, '/etc/udhcpc/default.script')!.mode & 0o755).toBe(0o755);
    expect(cat(img, '/etc/fstab')).toMatch(/proc/);
    expect(stat(img, '/root')).toMatchObject({ type: 'directory', uid: 0 });
    expect(stat(img, '/root')!.mode & 0o777).toBe(0o700);
    expect(stat(img, '/tmp')!.mode & 0o7777).toBe(0o1777);
    expect(stat(img, '/var/run')).toMatchObject({ type: 'symlink', link: '/run' });
    for (const d of ['/proc', '/sys', '/dev', '/run', '/etc/network/if-up.d']) expect(stat(img, d)?.type, d).toBe('directory');
  });

  it('sets a root password that busybox login accepts (SHA-512 crypt of the given password)', () => {
    const r = mkimage(['--from', 'busybox', '--root-password', 'tiger7', withPw, '16M']);
    expect(r.code, r.stderr).toBe(0);
    const hash = /^root:([^:]*):/m.exec(cat(withPw, '/etc/shadow'))![1]!;
    expect(hash).toMatch(/^\$6\$/);
    const salt = hash.split('$')[2]!;
    const again = (pw: string) => spawnSync('/bin/busybox', ['mkpasswd', '-m', 'sha512', '-S', salt, pw], { encoding: 'utf8' }).stdout.trim();
    expect(again('tiger7')).toBe(hash);
    expect(again('tiger8')).not.toBe(hash);
    expect(r.stdout).not.toContain('tiger7');
  });
});
