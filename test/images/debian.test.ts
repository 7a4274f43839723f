// `xenode mkimage --from debian`: a Debian image from Debian's repository (debootstrap, cached in
// /var/cache/xenode), configured to boot in xenode's container-style guest. Root only. The first
// build on a machine takes as long as debootstrap (measured 111-310 s on a shared 2-core
// machine, 75-80 s of CPU), later ones seconds: so this runs when the cached tree exists, or
// when XENODE_TEST_DEBIAN=1 asks for the build (not in CI by default: often over its 2 minutes).
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cat, debugfs, fsck, mkimage, stat } from './helpers.js';
import { isRoot } from '../helpers/instance.js';
import { hostSuite } from '../../common/images/apt-sources.js';
import { cacheEntry } from '../../common/images/debian-root.js';

const dir = mkdtempSync(join(tmpdir(), 'xenode-images-deb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const suite = hostSuite();
const cached = suite !== undefined && existsSync(join(cacheEntry(suite, { init: 'systemd', network: 'ifupdown', packages: [] }), 'built.json'));
const run = isRoot && existsSync('/usr/sbin/debootstrap') && (cached || process.env.XENODE_TEST_DEBIAN === '1');
if (!run) console.warn('skipping the Debian image build: needs root, debootstrap and a cached tree or XENODE_TEST_DEBIAN=1');

describe.skipIf(!run)('mkimage --from debian', () => {
  it('builds a systemd Debian with a console getty, container-hostile units masked, root without a password', { timeout: 900_000 }, () => {
    const img = join(dir, 'deb.img');
    const r = mkimage(['--from', 'debian', '--hostname', 'debtest', img, '2G']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Debian system \(systemd, ifupdown/);
    expect(fsck(img).code).toBe(0);
    expect(debugfs(img, 'features')).not.toMatch(/has_journal/);

    expect(stat(img, '/sbin/init')).toMatchObject({ type: 'symlink', link: '/lib/systemd/systemd' });
    expect(stat(img, '/lib/systemd/systemd')?.type).toBe('regular');
    for (const u of ['sys-kernel-debug.mount', 'sys-kernel-tracing.mount', 'sys-kernel-config.mount', 'systemd-journald-audit.socket']) {
      expect(stat(img, `/etc/systemd/system/${u}`), u).toMatchObject({ type: 'symlink', link: '/dev/null' });
    }
    // No VTs in a guest: the getty runs on the console.
    expect(stat(img, '/etc/systemd/system/getty.target.wants/getty@tty1.service')).toBeUndefined();
    expect(stat(img, '/etc/systemd/system/getty.target.wants/console-getty.service')).toMatchObject({ type: 'symlink' });
    expect(cat(img, '/lib/systemd/system/console-getty.service')).toMatch(/^TTYPath=\/dev\/console$/m);

    expect(cat(img, '/etc/shadow')).toMatch(/^root::/m);
    expect(cat(img, '/etc/hostname')).toBe('debtest\n');
    expect(cat(img, '/etc/hosts')).toMatch(/127\.0\.1\.1\s+debtest/);
    expect(cat(img, '/etc/machine-id')).toBe('');
    expect(cat(img, '/etc/resolv.conf')).toBe('');
    expect(cat(img, '/etc/fstab')).not.toMatch(/^[^#\s]\S*\s+\/\s/m);
    expect(cat(img, '/etc/network/interfaces')).toMatch(/^auto eth0\niface eth0 inet dhcp$/m);
    expect(stat(img, '/sbin/dhclient')?.type).toBe('regular');
    // apt's downloads are not carried in the image.
    expect(debugfs(img, 'ls /var/cache/apt/archives')).not.toMatch(/\.deb/);

    // The second image of the same kind comes from the cache, with its own name and password.
    const img2 = join(dir, 'deb2.img');
    const t0 = Date.now();
    const r2 = mkimage(['--from', 'debian', '--hostname', 'debtwo', '--root-password', 'pw', '--partition', 'gpt', img2, '2G']);
    const took = Date.now() - t0;
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/from the cache/);
    expect(took).toBeLessThan(60_000);
    const part = `${img2}?offset=${2048 * 512}`;
    expect(fsck(part).code).toBe(0);
    expect(cat(part, '/etc/hostname')).toBe('debtwo\n');
    expect(cat(part, '/etc/shadow')).toMatch(/^root:\$y\$/m);
  });
});
