// PV disks end to end: guests whose disks cross the blkif ring between the guest kernel's
// blkfront and dom0's blkback, used by the guest's own programs (dd, md5sum, mkfs.ext4,
// fuse2fs), with the bytes in the image file after the guest is gone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { rpcCall } from '../../dom0/toolstack/rpc.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

describe.skipIf(shouldSkip())('PV block devices', () => {
  const xn = new Instance('block');
  const img = (name: string, mib: number) => {
    const p = join(xn.dir, name);
    writeFileSync(p, '');
    truncateSync(p, mib * 1024 * 1024);
    return p;
  };
  const cfg = (name: string, disks: string[], extra = '') =>
    xn.config(name, [`name = "${name}"`, 'type = "pv"', 'memory = 128', 'vcpus = 1', `extra = "console=hvc0${extra}"`, `disk = [ ${disks.map((d) => `'${d}'`).join(', ')} ]`, ''].join('\n'));
  const boot = async (name: string, file: string) => {
    await xn.xlOk('create', file);
    await xn.waitForShell(name);
  };
  const run = (name: string, cmd: string, ms = 30_000) => xn.consoleRun(name, cmd, ms);

  beforeAll(() => xn.start());
  afterAll(() => xn.stop());

  it('random data written in a guest is in the image after destroy, and reads back after re-create', async () => {
    const disk = img('data.img', 32);
    const file = cfg('data', [`file:${disk},xvda,w`]);
    await boot('data', file);
    // blkback registers the guest's memory with io_uring in the background (a few hundred ms);
    // big requests take the ring from then on.
    const vbdStats = async () => (await rpcCall<Record<string, Record<string, number>>>(join(xn.dir, 'run', 'toolstack.sock'), 'device-stats'))[`vbd/${(await xn.xlOk('domid', 'data')).trim()}/51712`]!;
    await xn.waitFor('io_uring registered', async () => (await vbdStats()).uring === 1, 15_000);
    const out = await run('data', 'ls -l /dev/xvda; head -c 6291456 /dev/urandom > /tmp/r && dd if=/tmp/r of=/dev/xvda bs=1M conv=fsync,notrunc 2>/dev/null && md5sum < /tmp/r');
    expect(out).toMatch(/^-rw-rw---- 1 root root 33554432 .* \/dev\/xvda$/m);
    const sum = /([0-9a-f]{32})/.exec(out)?.[1];
    expect(sum).toBeDefined();
    // The 1 MiB writes went to the image through io_uring with the guest's memory registered.
    const stats = await vbdStats();
    expect(stats.uring).toBe(1);
    expect(stats.uring_req).toBeGreaterThanOrEqual(6);
    await xn.xlOk('destroy', 'data');
    expect(md5(readFileSync(disk).subarray(0, 6 << 20))).toBe(sum);

    await boot('data', file);
    expect(await run('data', 'head -c 6291456 /dev/xvda | md5sum')).toContain(sum!);
    const list = await xn.xlOk('block-list', 'data');
    const domid = (await xn.xlOk('domid', 'data')).trim();
    expect(list.split('\n')[0]).toBe('Vdev  BE  handle state evt-ch ring-ref BE-path                       ');
    expect(list.split('\n')[1]).toMatch(new RegExp(`^51712 0   ${domid.padEnd(6)} 4     \\d+ +\\d+ +/local/domain/0/backend/vbd/${domid}/51712$`));
    await xn.xlOk('destroy', 'data');
  });

  it('one request at a time (queue depth 1) is busy-polled by blkback, not slept on', async () => {
    const disk = img('qd1.img', 8);
    await boot('qd1', cfg('qd1', [`file:${disk},xvda,w`]));
    const domid = (await xn.xlOk('domid', 'qd1')).trim();
    const vbd = async () => (await rpcCall<Record<string, Record<string, number>>>(join(xn.dir, 'run', 'toolstack.sock'), 'device-stats'))[`vbd/${domid}/51712`]!;
    const before = await vbd();
    // 400 direct 4 KiB reads, each issued when the last is answered.
    await run('qd1', 'dd if=/dev/xvda of=/dev/null bs=4k count=400 iflag=direct 2>&1 | tail -1');
    const after = await vbd();
    expect(after.rd_req! - before.rd_req!).toBeGreaterThanOrEqual(400);
    const polls = after.busy_polls! - before.busy_polls!;
    const hits = after.busy_poll_hits! - before.busy_poll_hits!;
    // Not every request: after 4 spins in a row that miss (a busy machine), polling backs off
    // for the next 64 chances. But it happens, and mostly finds the next request.
    expect(polls).toBeGreaterThanOrEqual(50);
    expect(hits).toBeGreaterThanOrEqual(polls / 2); // the next request was caught spinning
    await xn.xlOk('destroy', 'qd1');
  });

  it('a filesystem made and mounted inside the guest (mkfs.ext4, fuse2fs) survives a reboot', async () => {
    const disk = img('fs.img', 48);
    const file = cfg('fs', [`format=raw, vdev=xvda, access=rw, target=${disk}`]);
    await boot('fs', file);
    const made = await run(
      'fs',
      'mkfs.ext4 -q -F -O ^has_journal /dev/xvda && mkdir -p /mnt/d && fuse2fs /dev/xvda /mnt/d && ' +
        'echo persisted-$((6*7)) > /mnt/d/note && mkdir /mnt/d/dir && head -c 200000 /dev/urandom > /mnt/d/dir/blob && ' +
        'md5sum /mnt/d/dir/blob && umount /mnt/d; while pidof fuse2fs >/dev/null; do sleep 0.1; done; echo unmounted',
      60_000,
    );
    expect(made).toContain('unmounted');
    const sum = /([0-9a-f]{32})/.exec(made)![1]!;
    const domid = (await xn.xlOk('domid', 'fs')).trim();
    await xn.xlOk('reboot', 'fs');
    await xn.waitFor('fs to come back', async () => (await xn.xl('domid', 'fs')).stdout.trim() !== domid && (await xn.xl('domid', 'fs')).code === 0, 20_000);
    await xn.waitForShell('fs');
    const after = await run('fs', 'mkdir -p /mnt/d && fuse2fs -o ro /dev/xvda /mnt/d && cat /mnt/d/note && md5sum /mnt/d/dir/blob; umount /mnt/d', 30_000);
    expect(after).toContain('persisted-42');
    expect(after).toContain(sum);
    await xn.xlOk('destroy', 'fs');
    // And the host sees an ext4 filesystem with the file in it.
    const fsck = await xn.run('/usr/sbin/e2fsck', ['-fn', disk]);
    expect(fsck.code).toBe(0);
  });

  it('hot-attaches a second disk to a running guest (the key=value form), lists it, and detaches it', async () => {
    const disk = img('hot0.img', 8);
    const second = img('hot1.img', 16);
    await boot('hot', cfg('hot', [`phy:${disk},xvda,w`]));
    const domid = (await xn.xlOk('domid', 'hot')).trim();
    await xn.xlOk('block-attach', 'hot', `format=raw, vdev=xvde, access=rw, target=${second}`);
    const list = (await xn.xlOk('block-list', 'hot')).trim().split('\n');
    expect(list).toHaveLength(3);
    expect(list[2]).toMatch(new RegExp(`^51776 0   ${domid.padEnd(6)} 4 .* /local/domain/0/backend/vbd/${domid}/51776$`));
    const params = await xn.xenstore('xenstore-read', `/local/domain/0/backend/vbd/${domid}/51776/params`);
    expect(params.stdout.trim()).toBe(second);
    const out = await run('hot', 'ls -l /dev/xvde && printf hot-plugged | dd of=/dev/xvde bs=512 seek=3 conv=notrunc,fsync 2>/dev/null && echo written');
    expect(out).toMatch(/16777216 .* \/dev\/xvde/);
    expect(out).toContain('written');
    expect(readFileSync(second).subarray(1536, 1547).toString()).toBe('hot-plugged');

    await xn.xlOk('block-detach', 'hot', 'xvde');
    expect((await xn.xlOk('block-list', 'hot')).trim().split('\n')).toHaveLength(2);
    expect(await run('hot', 'ls /dev/xvde 2>&1; grep -c xvde /proc/mounts')).toMatch(/No such file or directory[\s\S]*^0$/m);
    expect((await xn.xenstore('xenstore-exists', `/local/domain/0/backend/vbd/${domid}/51776`)).code).not.toBe(0);
    // Detaching what is not there says so, as xl does.
    const again = await xn.xl('block-detach', 'hot', 'xvde');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('Error: Device xvde not connected.');
    // The first disk carries on.
    expect(await run('hot', 'echo still > /dev/xvda && head -c 5 /dev/xvda')).toContain('still');
  });

  it('read-only disks and cdroms refuse writes with EROFS; an empty drive has no medium', async () => {
    const ro = img('ro.img', 4);
    writeFileSync(ro, 'read-only-content', { flag: 'r+' });
    const iso = img('cd.iso', 2);
    writeFileSync(iso, 'CD001', { flag: 'r+' });
    await xn.xlOk('block-attach', 'hot', `${ro},raw,xvdb,r`);
    await xn.xlOk('block-attach', 'hot', `${iso},raw,hdc:cdrom,r`);
    await xn.xlOk('block-attach', 'hot', 'devtype=cdrom, vdev=hdd, access=ro, target=');
    const out = await run(
      'hot',
      'head -c 17 /dev/xvdb; echo; head -c 5 /dev/hdc; echo; echo x > /dev/xvdb; dd if=/dev/zero of=/dev/hdc bs=512 count=1; ' +
        'fio --name=w --filename=/dev/xvdb --rw=write --size=4k --output-format=terse 2>&1 | grep -o "Read-only file system" | head -1; cat /dev/hdd',
    );
    expect(out).toContain('read-only-content');
    expect(out).toContain('CD001');
    expect(out).toMatch(/cannot create \/dev\/xvdb: Read-only file system/);
    expect(out).toMatch(/failed to open '\/dev\/hdc': Read-only file system/);
    expect(out).toMatch(/cat: \/dev\/hdd: No medium found/);
    expect(readFileSync(ro).subarray(0, 17).toString()).toBe('read-only-content');
    const domid = (await xn.xlOk('domid', 'hot')).trim();
    const info = await xn.xenstore('xenstore-read', `/local/domain/0/backend/vbd/${domid}/5632/info`);
    expect(info.stdout.trim()).toBe('7'); // VDISK_CDROM | VDISK_REMOVABLE | VDISK_READONLY
  });

  it('xl -N block-attach prints libxl JSON; bad specs, missing targets and qcow2 fail cleanly', async () => {
    const dry = await xn.xlOk('-N', 'block-attach', 'hot', 'format=raw, vdev=xvdf, access=rw, target=/dev/sde');
    expect(dry).toBe('disk: {\n    "pdev_path": "/dev/sde",\n    "vdev": "xvdf",\n    "format": "raw",\n    "readwrite": 1\n}\n\n');
    const bad = await xn.xl('-N', 'block-attach', 'hot', 'format=bogus,vdev=xvdf,target=/x');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('unknown value for format');

    const missing = await xn.xl('block-attach', 'hot', `${join(xn.dir, 'nope.img')},raw,xvdf,w`);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/ENOENT[\s\S]*libxl_device_disk_add failed\./);
    const q = img('q.img', 1);
    const qcow = await xn.xl('block-attach', 'hot', `format=qcow2, vdev=xvdg, target=${q}`);
    expect(qcow.code).not.toBe(0);
    expect(qcow.stderr).toContain('format qcow2 is not supported');
    const rows = (await xn.xlOk('block-list', 'hot')).trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    expect(rows).not.toContain('51792'); // xvdf
    expect(rows).not.toContain('51808'); // xvdg
    expect(existsSync(join(xn.dir, 'nope.img'))).toBe(false);
    await xn.xlOk('destroy', 'hot');
  });
});
