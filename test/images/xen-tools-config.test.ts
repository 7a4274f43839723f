// The configs Debian's xen-tools (4.9.2) writes for a PV guest, accepted unchanged by `xl create
// -n`. xen-create-image --dir=/srv/xen --dist=bookworm --size=2G --swap=128M --dhcp wrote
// fixtures/xen-tools-bookworm.cfg (xen-tools boots bookworm with pygrub and a kernel inside the
// image); --dist=jessie --kernel=... --initrd=... (a dist without pygrub) wrote
// fixtures/xen-tools-kernel.cfg. Only the image paths were changed, to /srv/xen and /boot.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { XL } from '../helpers/instance.js';

const fixture = (name: string) => fileURLToPath(new URL(`../config/fixtures/${name}`, import.meta.url));
const dryRun = (name: string) => spawnSync(process.execPath, [XL, 'create', '-n', fixture(name)], { encoding: 'utf8' });

describe("xen-tools' PV guest configs", () => {
  it('bookworm (pygrub, root on xvda2, swap on xvda1) is accepted unchanged', () => {
    const r = dryRun('xen-tools-bookworm.cfg');
    expect(r.status, r.stderr).toBe(0);
    const cfg = JSON.parse(r.stdout);
    expect(cfg.c_info).toMatchObject({ type: 'pv', name: 'xtguest' });
    expect(cfg.b_info).toMatchObject({ cmdline: 'root=/dev/xvda2 ro', bootloader: 'pygrub', max_memkb: 262144 });
    expect(cfg.disks).toEqual([
      { pdev_path: '/srv/xen/domains/xtguest/disk.img', vdev: 'xvda2', format: 'raw', readwrite: 1 },
      { pdev_path: '/srv/xen/domains/xtguest/swap.img', vdev: 'xvda1', format: 'raw', readwrite: 1 },
    ]);
    expect(cfg.nics).toEqual([{ devid: 0, mac: '00:16:3e:46:b7:45' }]);
    expect(cfg.on_crash).toBe('restart');
    // xm's dhcp= is named as ignored, not silently dropped.
    expect(r.stderr).toMatch(/dhcp: `dhcp' is an xm option that xl ignores/);
  });

  it('the kernel= form (kernel, ramdisk, extra) is accepted unchanged', () => {
    const r = dryRun('xen-tools-kernel.cfg');
    expect(r.status, r.stderr).toBe(0);
    const cfg = JSON.parse(r.stdout);
    expect(cfg.b_info).toMatchObject({ kernel: '/boot/vmlinuz-test', ramdisk: '/boot/initrd.img-test', cmdline: 'root=/dev/xvda2 ro elevator=noop' });
    expect(cfg.disks.map((d: { vdev: string }) => d.vdev)).toEqual(['xvda2', 'xvda1']);
  });
});
