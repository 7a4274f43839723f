// `xenode mkimage` refuses bad input with a message naming what was wrong, leaves nothing
// half-made behind, and never carries a host file into an image through a symlink.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsck, mkimage, stat } from './helpers.js';
import { isRoot } from '../helpers/instance.js';

const dir = mkdtempSync(join(tmpdir(), 'xenode-images-bad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mkimage bad input', () => {
  it('says the size is too small for the contents, and leaves no image behind', () => {
    const src = join(dir, 'big');
    mkdirSync(src);
    writeFileSync(join(src, 'blob'), randomBytes(12 << 20));
    const img = join(dir, 'small.img');
    const r = mkimage([src, img, '8M']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/8 MiB is too small for the contents of .*big \(they take about 1[23] MiB/);
    expect(existsSync(img)).toBe(false);
    const p = mkimage(['--partition', 'gpt', src, img, '12M']);
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/too small/);
    expect(existsSync(img)).toBe(false);
  });

  it('names unknown --from, --init, --network, --partition values and misplaced options', () => {
    const img = join(dir, 'never.img');
    const cases: [string[], RegExp][] = [
      [['--from', 'alpine', img, '64M'], /unknown --from "alpine" \(use busybox or debian\[:SUITE\]\)/],
      [['--from', 'debian', '--init', 'openrc', img, '1G'], /unknown init "openrc" \(use systemd or sysvinit\)/],
      [['--from', 'debian', '--network', 'wicked', img, '1G'], /unknown network configuration "wicked"/],
      [['--from', 'debian', '--init', 'sysvinit', '--network', 'networkd', img, '1G'], /networkd needs --init systemd/],
      [['--from', 'debian', '--packages', 'vim,Bad_Name', img, '1G'], /"Bad_Name" is not a Debian package name/],
      [['--from', 'busybox', '--init', 'systemd', img, '64M'], /--init is for --from debian/],
      [['--from', 'busybox:edge', img, '64M'], /--from busybox takes no suite/],
      [['--partition', 'apm', dir, img, '64M'], /unknown partition table "apm" \(use mbr or gpt\)/],
      [['--root-password', 'x', dir, img, '64M'], /--root-password and --hostname are for --from/],
      [['--from', 'busybox', '--hostname', 'bad name', img, '64M'], /"bad name" is not a host name/],
      [['--from', 'busybox', img], /expected IMAGE SIZE, got 1/],
      [[dir, img, '12 parsecs'], /bad size "12 parsecs"/],
      [['--frobnicate', dir, img, '64M'], /unknown option --frobnicate/],
      [['--from'], /--from needs a value/],
    ];
    for (const [args, msg] of cases) {
      const r = mkimage(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
    expect(existsSync(img)).toBe(false);
  });

  it('does not overwrite an existing IMAGE without --force', () => {
    const img = join(dir, 'exists.img');
    writeFileSync(img, 'precious');
    for (const args of [[dir, img, '8M'], ['--from', 'busybox', img, '16M'], ['--from', 'debian', img, '1G']]) {
      const r = mkimage(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/exists\.img exists \(use --force to overwrite it\)/);
      expect(readFileSync(img, 'utf8')).toBe('precious');
    }
    const src = join(dir, 'small');
    mkdirSync(src);
    const r = mkimage(['--force', src, img, '8M']);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(img).size).toBe(8 << 20);
  });

  it('carries symlinks that point out of DIR as symlinks, never the host files they name', () => {
    const secret = join(dir, 'host-secret');
    const marker = `host-only-${randomBytes(8).toString('hex')}`;
    writeFileSync(secret, `${marker}\n`);
    const src = join(dir, 'linky');
    mkdirSync(join(src, 'sbin'), { recursive: true });
    symlinkSync(secret, join(src, 'abs-link'));
    symlinkSync('../../../../../../..' + secret, join(src, 'sbin', 'rel-link'));
    symlinkSync('/', join(src, 'root-link'));
    const img = join(dir, 'linky.img');
    const r = mkimage([src, img, '8M']);
    expect(r.code, r.stderr).toBe(0);
    expect(fsck(img).code).toBe(0);
    expect(stat(img, '/abs-link')).toMatchObject({ type: 'symlink', link: secret });
    expect(stat(img, '/sbin/rel-link')).toMatchObject({ type: 'symlink', link: '../../../../../../..' + secret });
    expect(stat(img, '/root-link')).toMatchObject({ type: 'symlink', link: '/' });
    // The host file's bytes are nowhere in the image (the link text is; the contents are not).
    expect(readFileSync(img).includes(Buffer.from(marker))).toBe(false);
  });

  it.skipIf(!isRoot)('--from debian says it needs root when run by another user', () => {
    const r = mkimage(['--from', 'debian', join(dir, 'd.img'), '1G'], { uid: 65534 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--from debian needs root/);
  });

  it.skipIf(!isRoot || !existsSync('/usr/sbin/debootstrap'))('--from debian says when the repository cannot be reached', () => {
    // A package list no cached tree has, so the repository is really asked for.
    const r = mkimage(['--from', 'debian', '--mirror', 'http://127.0.0.1:9/debian', '--packages', 'hello', join(dir, 'd.img'), '1G']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the Debian repository: http:\/\/127\.0\.0\.1:9\/debian\/dists\/bookworm\/Release/);
    expect(existsSync(join(dir, 'd.img'))).toBe(false);
  });
});
