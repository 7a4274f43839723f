// Images and command lines that must not boot, or must not reach the host when they do: each
// ends with Linux's line on the guest's console and in xl dmesg, on_crash where the guest cannot
// boot, and a bystander guest running throughout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, openSync, rmSync, symlinkSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { waitGone } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';
import { busyboxAvailable, busyboxRoot } from '../helpers/busybox-root.js';

function mkfs(dir: string, image: string, size = '32M'): void {
  const m = spawnSync('mkfs.ext4', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-d', dir, '-E', 'root_owner=0:0', image, size], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mkfs.ext4: ${m.stderr}`);
}

describe.skipIf(shouldSkip() || !busyboxAvailable())('own-root boot: bad images and command lines', () => {
  const xn = new Instance('ownrootbad');
  const consoles: XlConsole[] = [];
  const roots: string[] = [];
  let bystander: XlConsole;
  beforeAll(async () => {
    await xn.start();
    await xn.create('bystander');
    await xn.waitForShell('bystander');
  });
  afterAll(async () => {
    for (const c of consoles) c.close();
    await xn.stop();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });
  const root = (extra: Record<string, string> = {}, opts: { noInit?: boolean } = {}) => {
    const r = busyboxRoot(extra, opts);
    roots.push(r);
    return r;
  };
  const attach = (dom: string) => {
    const c = new XlConsole(xn, dom).attach();
    consoles.push(c);
    return c;
  };
  const create = async (name: string, image: string, extra = 'root=/dev/xvda console=hvc0') => {
    const cfg = xn.config(name, `name = "${name}"\nmemory = 128\ndisk = [ 'file:${image},xvda,w' ]\nextra = "${extra}"\n`);
    await xn.xlOk('create', cfg);
  };
  /** The guest panics: the line on its console, the panic in xl dmesg, on_crash (destroy). */
  const expectPanic = async (name: string, consoleLine: RegExp) => {
    await waitGone(xn, name, 20_000);
    const log = xn.consoleLog(name);
    expect(log).toMatch(consoleLine);
    expect(log).toMatch(/Kernel panic - not syncing/);
    const dmesg = await xn.xlOk('dmesg');
    expect(dmesg).toMatch(new RegExp(`d\\d+: Kernel panic - not syncing`));
    expect(dmesg).toMatch(/requested shutdown \(crash\)/);
  };

  it('root= naming a device that does not exist: VFS cannot open it, the partitions are listed, panic', async () => {
    const image = join(xn.dir, 'ok.img');
    mkfs(root(), image);
    await create('nodev', image, 'root=/dev/xvdz1');
    await expectPanic('nodev', /VFS: Cannot open root device "xvdz1" or unknown-block\(0,0\): error -6[\s\S]*here are the available partitions:[\s\S]*xvda[\s\S]*Unable to mount root fs/);
  });

  it('a disk that is not a filesystem, and a corrupt ext4: no filesystem could mount root', async () => {
    const junk = join(xn.dir, 'junk.img');
    const fd = openSync(junk, 'w');
    const buf = Buffer.alloc(1 << 20);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 0xff;
    for (let i = 0; i < 8; i++) writeSync(fd, buf);
    closeSync(fd);
    await create('junk', junk);
    await expectPanic('junk', /No filesystem could mount root, tried:[\s\S]*Unable to mount root fs on unknown-block\(202:0\)/);

    // A real ext4 whose group descriptors are overwritten (1 KiB blocks: the table is block 2):
    // the superblock still says ext4; Linux refuses the descriptors.
    const corrupt = join(xn.dir, 'corrupt.img');
    mkfs(root(), corrupt);
    const cfd = openSync(corrupt, 'r+');
    writeSync(cfd, Buffer.alloc(1024, 0xa5), 0, 1024, 2048);
    closeSync(cfd);
    await create('corrupt', corrupt);
    await expectPanic('corrupt', /EXT4-fs \(xvda\): ext4_check_descriptors: Block bitmap for group 0 not in group[\s\S]*group descriptors corrupted![\s\S]*No filesystem could mount root, tried:  ext4/);
  });

  it('an image without an init, and an init that exits at once', async () => {
    const image = join(xn.dir, 'noinit.img');
    mkfs(root({}, { noInit: true }), image);
    await create('noinit', image);
    await expectPanic('noinit', /Failed to execute \/sbin\/init \(error -2\)[\s\S]*No working init found/);

    const quick = join(xn.dir, 'quick.img');
    mkfs(root(), quick);
    await create('quick', quick, 'root=/dev/xvda init=/bin/true');
    await expectPanic('quick', /Attempted to kill init! exitcode=0x00000000/);
  });

  it('symlinks pointing out of the image resolve inside it: /sbin/init to a host program, links to host files', async () => {
    const r = root();
    unlinkSync(join(r, 'sbin', 'init'));
    // Both exist on the host; neither exists in the image.
    symlinkSync('../../../../../../../../usr/bin/node', join(r, 'sbin', 'init'));
    symlinkSync('/etc/machine-id', join(r, 'host-abs'));
    symlinkSync('../../../../../../../etc/passwd', join(r, 'host-rel'));
    const image = join(xn.dir, 'links.img');
    mkfs(r, image);
    await create('links', image);
    const con = attach('links');
    // /sbin/init resolves inside the image to nothing: Linux's fallbacks reach busybox's sh.
    await con.waitFor(/Failed to execute \/sbin\/init \(error -2\)\.  Attempting defaults/);
    await con.waitFor(/# $/m);
    expect((await con.run('cat /host-abs 2>&1')).trim()).toMatch(/No such file/);
    // The image's own /etc/passwd, not the host's.
    expect((await con.run('cat /host-rel')).trim()).toBe('root::0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh');
    await xn.xlOk('destroy', 'links');
  });

  it('device nodes and setuid-root binaries planted in the image give no access and no privilege', async () => {
    const r = root();
    // /dev/mem and the host's first virtio disk, made on the host where mknod works.
    expect(spawnSync('mknod', [join(r, 'mem'), 'c', '1', '1']).status).toBe(0);
    expect(spawnSync('mknod', [join(r, 'hostdisk'), 'b', '254', '0']).status).toBe(0);
    // busybox picks its applet from argv[0]'s name, so the setuid copy keeps that name.
    mkdirSync(join(r, 'suid'));
    copyFileSync(join(r, 'bin', 'busybox'), join(r, 'suid', 'busybox'));
    chmodSync(join(r, 'suid', 'busybox'), 0o4755);
    const image = join(xn.dir, 'nodes.img');
    mkfs(r, image);
    await create('nodes', image);
    const con = attach('nodes');
    await con.waitFor(/# $/m);
    expect(await con.run('ls -l /mem')).toMatch(/^c.* 1, +1 .*\/mem/);
    expect(await con.run('ls -l /hostdisk')).toMatch(/^b.*254, +0 .*\/hostdisk/);
    expect(await con.run('head -c 16 /mem 2>&1; head -c 16 /hostdisk 2>&1')).toMatch(/Permission denied[\s\S]*Permission denied/);
    expect(await con.run('ls -l /suid/busybox')).toMatch(/^-rws/);
    // Run by an ordinary user of the guest, a setuid-root program stays that user.
    expect((await con.run('su user -c "/suid/busybox id -u"')).trim()).toBe('1000');
    await xn.xlOk('destroy', 'nodes');
  });

  it('a filesystem that fills up gives ENOSPC to the writer and the guest carries on', async () => {
    const image = join(xn.dir, 'small.img');
    mkfs(root(), image, '8M');
    await create('small', image);
    const con = attach('small');
    await con.waitFor(/# $/m);
    expect(await con.run('dd if=/dev/zero of=/fill bs=1M count=64 2>&1; echo dd=$?', 60_000)).toMatch(/No space left on device[\s\S]*dd=1/);
    await con.run('rm /fill; echo still > /after; sync');
    expect((await con.run('cat /after')).trim()).toBe('still');
    expect((await xn.xl('shutdown', '-w', 'small')).code).toBe(0);
    expect(spawnSync('e2fsck', ['-fn', image]).status).toBe(0);
  });

  it('left the bystander guest running and answering', async () => {
    bystander = attach('bystander');
    await bystander.waitFor(/[#$] $/m).catch(() => bystander.type(''));
    expect((await bystander.run('echo alive')).trim()).toBe('alive');
  });
});
