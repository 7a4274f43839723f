// HVM guests booting their own OS from emulated devices: the BIOS's boot order (boot=) picks
// the device, as on a PC. boot='c' runs the init of the disk's first Linux partition with every
// sector crossing the emulated PIIX3 IDE controller; boot='d' boots an ISO 9660 disc as a live
// CD; with PV drivers (xen_pvhvm=1) the same disk boots over blkfront after the unplug; a
// machine with nothing bootable says "No bootable device." and runs the built-in kernel's
// userland. Driven through `xl console` (the serial line) in a terminal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip, XENODE } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';
import { busyboxAvailable, busyboxRoot } from '../helpers/busybox-root.js';
import { rpcCall } from '../../dom0/toolstack/rpc.js';

interface Metrics {
  ide?: Record<string, number>;
}

describe.skipIf(shouldSkip() || !busyboxAvailable())('HVM guests booting their own OS from emulated devices', () => {
  const xn = new Instance('hvmboot');
  const consoles: XlConsole[] = [];
  const roots: string[] = [];
  let disk = '';
  beforeAll(async () => {
    await xn.start();
    disk = join(xn.dir, 'mbr.img');
    const r = spawnSync(process.execPath, [XENODE, 'mkimage', '--from', 'busybox', '--partition', 'mbr', disk, '64M'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mkimage: ${r.stderr}`);
  });
  afterAll(async () => {
    for (const c of consoles) c.close();
    await xn.stop();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });
  const hvm = async (name: string, lines: string[]) => {
    await xn.xlOk('create', xn.config(name, [`name = "${name}"`, 'builder = "hvm"', 'memory = 256', 'serial = "pty"', ...lines, ''].join('\n')));
    const c = new XlConsole(xn, name).attach();
    consoles.push(c);
    return c;
  };
  const dm = async (name: string) => rpcCall<{ metrics: Metrics | null }>(join(xn.dir, 'run', 'toolstack.sock'), 'dm-metrics', { dom: (await xn.xlOk('domid', name)).trim() });

  it("boot='c': the disk's first Linux partition over emulated IDE, to a login prompt on the serial console", async () => {
    const con = await hvm('hvmc', ['boot = "c"', `disk = [ 'file:${disk},hda,w' ]`]);
    await con.waitFor(/Booting from Hard Disk/);
    await con.waitFor(/VFS: Mounted root \(ext4 filesystem\) on device 3:1\./);
    await con.waitFor(/login: $/m, 30_000);
    con.type('root');
    await con.waitFor(/# $/m);
    expect(await con.run('grep " / " /proc/mounts')).toMatch(/^\/dev\/hda1 \/ fuse\.ext4 rw/);
    expect((await con.run('cat /proc/1/comm')).trim()).toBe('init');
    // Its /proc describes the domain, not the host: its memory, its vCPU, its command line.
    // (busybox's cat reads them with sendfile: the whole text must come that way too).
    const memTotalKiB = Number(/MemTotal:\s+(\d+) kB/.exec(await con.run('cat /proc/meminfo'))?.[1]);
    expect(memTotalKiB).toBeGreaterThan(200 * 1024);
    expect(memTotalKiB).toBeLessThanOrEqual(256 * 1024);
    expect((await con.run('grep -c ^processor /proc/cpuinfo')).trim()).toBe('1');
    expect(await con.run('cat /proc/cmdline')).toMatch(/root=|xenode\.boot/);
    // Every sector came through the emulated controller: it counted them.
    const m = await dm('hvmc');
    expect(m.metrics?.ide?.sectorsRead ?? 0).toBeGreaterThan(1000);
    await con.run('echo over-ide > /root/ide; sync');
    expect((await xn.xl('shutdown', '-F', '-w', 'hvmc')).code === 0 || (await xn.xl('destroy', 'hvmc')).code === 0).toBe(true);
  });

  it('with PV drivers (xen_pvhvm=1) the same disk boots over blkfront after the unplug', async () => {
    const con = await hvm('hvmpv', ['boot = "c"', `disk = [ 'file:${disk},hda,w' ]`, 'extra = "xen_pvhvm=1"']);
    await con.waitFor(/unplug/i);
    await con.waitFor(/login: $/m, 30_000);
    con.type('root');
    await con.waitFor(/# $/m);
    const stats = await rpcCall<Record<string, Record<string, number>>>(join(xn.dir, 'run', 'toolstack.sock'), 'device-stats');
    const domid = (await xn.xlOk('domid', 'hvmpv')).trim();
    const vbd = Object.entries(stats).find(([k]) => k.startsWith(`vbd/${domid}/`))?.[1];
    expect(vbd?.rd_sect ?? 0).toBeGreaterThan(1000);
    await xn.xlOk('destroy', 'hvmpv');
  });

  it("boot='d': an ISO 9660 disc whose files are a root filesystem boots as a live CD, read-only", async () => {
    // A bootable disc (El Torito, as live CDs are): the boot image itself is never run here.
    const tree = busyboxRoot({ 'etc/issue': 'live cd\n', 'boot/eltorito.img': '\0'.repeat(2048) });
    roots.push(tree);
    const iso = join(xn.dir, 'live.iso');
    const g = spawnSync('genisoimage', ['-quiet', '-R', '-b', 'boot/eltorito.img', '-c', 'boot/boot.cat', '-no-emul-boot', '-boot-load-size', '4', '-o', iso, tree], { encoding: 'utf8' });
    expect(g.status, g.stderr).toBe(0);
    const con = await hvm('hvmd', ['boot = "d"', `disk = [ 'file:${iso},hdc:cdrom,r' ]`]);
    await con.waitFor(/Booting from DVD\/CD/);
    await con.waitFor(/VFS: Mounted root \(iso9660 filesystem\) readonly/);
    await con.waitFor(/SYSINIT-OK/);
    await con.waitFor(/# $/m);
    expect((await con.run('cat /etc/issue')).trim()).toBe('live cd');
    expect(await con.run('touch /x 2>&1')).toMatch(/Read-only file system/);
    await xn.xlOk('destroy', 'hvmd');
  });

  it('nothing bootable: "No bootable device." and the built-in kernel runs its own userland', async () => {
    const blank = join(xn.dir, 'blank.img');
    writeFileSync(blank, Buffer.alloc(4 << 20));
    const con = await hvm('hvmn', ['boot = "c"', `disk = [ 'file:${blank},hda,w' ]`]);
    await con.waitFor(/No bootable device\./);
    await con.waitFor(/[#$] $/m, 30_000);
    expect((await con.run('echo built-in')).trim()).toBe('built-in');
    await xn.xlOk('destroy', 'hvmn');
  });
});
