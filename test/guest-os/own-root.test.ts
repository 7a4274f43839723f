// A guest booting its own OS from its own disk (root=): busybox's init as PID 1 of the guest,
// driven through `xl console` in a terminal as a user does; its files persist on the image
// across shutdown and re-create; poweroff, reboot, xl shutdown -w and xl reboot do what they
// say; the host's files are out of its reach.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip, XENODE } from '../helpers/instance.js';
import { waitGone } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';
import { busyboxAvailable, busyboxRoot } from '../helpers/busybox-root.js';

function mkimage(dir: string, image: string, size = '32M'): void {
  const m = spawnSync('mkfs.ext4', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-d', dir, '-E', 'root_owner=0:0', image, size], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mkfs.ext4: ${m.stderr}`);
}

function imageFile(image: string, path: string): string | null {
  const r = spawnSync('debugfs', ['-R', `cat ${path}`, image], { encoding: 'utf8' });
  return r.status === 0 && !/File not found/.test(r.stderr) ? r.stdout : null;
}

describe.skipIf(shouldSkip() || !busyboxAvailable())('a guest booted from its own root filesystem', () => {
  const xn = new Instance('ownroot');
  const consoles: XlConsole[] = [];
  let image = '';
  let root = '';
  beforeAll(async () => {
    await xn.start();
    root = busyboxRoot({ 'etc/motd': 'the image motd\n' });
    image = join(xn.dir, 'bb.img');
    mkimage(root, image);
  });
  afterAll(async () => {
    for (const c of consoles) c.close();
    await xn.stop();
    rmSync(root, { recursive: true, force: true });
  });
  const attach = (dom: string) => {
    const c = new XlConsole(xn, dom).attach();
    consoles.push(c);
    return c;
  };
  const cfg = (name: string, extra = 'root=/dev/xvda console=hvc0') =>
    xn.config(name, `name = "${name}"\nmemory = 128\ndisk = [ 'file:${image},xvda,w' ]\nextra = "${extra}"\n`);

  it('boots busybox init from the disk to a shell on xl console, as PID 1 of what the guest sees', async () => {
    await xn.xlOk('create', cfg('bb1'));
    const con = attach('bb1');
    await con.waitFor(/SYSINIT-OK/);
    await con.waitFor(/# $/m);
    expect((await con.run('cat /proc/1/comm')).trim()).toBe('init');
    expect((await con.run('cat /etc/motd')).trim()).toBe('the image motd');
    expect((await con.run('cat /proc/mounts | grep " / "')).trim()).toMatch(/^\/dev\/xvda \/ fuse\.ext4 rw/);
    // The image's own cat (busybox, which reads with sendfile) sees the domain's /proc files.
    expect(await con.run('cat /proc/meminfo')).toMatch(/^MemTotal:\s+1\d{5} kB/m);
    expect((await con.run('cat /proc/cmdline')).trim()).toBe('root=/dev/xvda console=hvc0');
    // None of the host's files: no /boot (the kernel image), no host /usr, no checkout.
    expect((await con.run('ls /boot /usr/bin/node /usr/lib 2>&1 | grep -c "No such file"')).trim()).toBe('3');
    // Its own devices and consoles.
    expect((await con.run('ls /dev')).split(/\s+/)).toEqual(expect.arrayContaining(['console', 'hvc0', 'null', 'zero', 'urandom', 'tty', 'ptmx', 'pts', 'shm', 'xvda']));
  });

  it('keeps what the guest wrote across poweroff inside the guest and a re-create', async () => {
    const con = consoles[0]!;
    await con.run('echo written-in-the-guest > /root/note; sync');
    con.type('poweroff');
    await waitGone(xn, 'bb1', 10_000);
    expect(xn.consoleLog('bb1')).toMatch(/SHUTDOWN-OK/);
    expect(imageFile(image, '/root/note')).toBe('written-in-the-guest\n');
    expect(spawnSync('e2fsck', ['-fn', image]).status).toBe(0);
    await xn.xlOk('create', cfg('bb1'));
    const again = attach('bb1');
    await again.waitFor(/# $/m);
    expect((await again.run('cat /root/note')).trim()).toBe('written-in-the-guest');
  });

  it('stops cleanly on xl shutdown -w, running the image\'s own shutdown', async () => {
    const r = await xn.xl('shutdown', '-w', 'bb1');
    expect(r.code).toBe(0);
    expect((await xn.xlOk('list')).includes('bb1')).toBe(false);
    expect(xn.consoleLog('bb1').match(/SHUTDOWN-OK/g)!.length).toBeGreaterThanOrEqual(2);
  });

  it('restarts on xl reboot and on reboot typed inside the guest', async () => {
    await xn.xlOk('create', cfg('bb2'));
    const first = Number((await xn.xlOk('domid', 'bb2')).trim());
    const con = attach('bb2');
    await con.waitFor(/# $/m);
    await xn.xlOk('reboot', 'bb2');
    await xn.waitFor('bb2 rebooted', async () => {
      const r = await xn.xl('domid', 'bb2');
      return r.code === 0 && Number(r.stdout.trim()) !== first;
    }, 15_000);
    const second = Number((await xn.xlOk('domid', 'bb2')).trim());
    const con2 = attach('bb2');
    await con2.waitFor(/# $/m);
    con2.type('reboot');
    await xn.waitFor('bb2 rebooted from inside', async () => {
      const r = await xn.xl('domid', 'bb2');
      return r.code === 0 && Number(r.stdout.trim()) !== second;
    }, 15_000);
    await xn.xlOk('destroy', 'bb2');
  });

  it('finds root=LABEL= on a GPT partition of an image made by xenode mkimage, mounts it read-only with ro, and remount,rw works', async () => {
    const gpt = join(xn.dir, 'gpt.img');
    const r = spawnSync(process.execPath, [XENODE, 'mkimage', '--from', 'busybox', '--partition', 'gpt', '--label', 'bbroot', gpt, '64M'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    await xn.xlOk('create', xn.config('bbgpt', `name = "bbgpt"\nmemory = 128\ndisk = [ 'file:${gpt},xvda,w' ]\nextra = "root=LABEL=bbroot ro console=hvc0"\n`));
    const con = attach('bbgpt');
    await con.waitFor(/VFS: Mounted root \(ext4 filesystem\) readonly on device 202:1\./);
    await con.waitFor(/login: $/m);
    con.type('root');
    await con.waitFor(/# $/m);
    expect(await con.run('touch /ro-test 2>&1')).toMatch(/Read-only file system/);
    await con.run('mount -o remount,rw /');
    expect((await con.run('touch /rw-test && echo made')).trim()).toBe('made');
    expect((await xn.xl('shutdown', '-w', 'bbgpt')).code).toBe(0);
  });

  it("boots the layout Xen's Debian tooling writes: root on a disk named xvda2, swap on xvda1, root=/dev/xvda2 ro", async () => {
    // xen-create-image gives each image its own vdev named like a partition, no table inside.
    const rootImg = join(xn.dir, 'xvda2.img');
    const swapImg = join(xn.dir, 'swap.img');
    const r = spawnSync(process.execPath, [XENODE, 'mkimage', '--from', 'busybox', rootImg, '32M'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(spawnSync('sh', ['-c', `truncate -s 16M ${swapImg} && mkswap ${swapImg}`]).status).toBe(0);
    await xn.xlOk('create', xn.config('xtools', [
      'name = "xtools"', 'memory = 128', "root = '/dev/xvda2 ro'",
      `disk = [ 'file:${rootImg},xvda2,w', 'file:${swapImg},xvda1,w' ]`, '',
    ].join('\n')));
    const con = attach('xtools');
    await con.waitFor(/login: $/m);
    con.type('root');
    await con.waitFor(/# $/m);
    expect(await con.run('ls -l /dev/xvda1 /dev/xvda2')).toMatch(/16777216[\s\S]*xvda1[\s\S]*33554432[\s\S]*xvda2/);
    expect(await con.run('grep " / " /proc/mounts')).toMatch(/^\/dev\/xvda2 \/ fuse\.ext4 ro/);
    expect((await xn.xl('shutdown', '-w', 'xtools')).code).toBe(0);
  });

  it('acts on xl sysrq as Linux does: sync, then an immediate reboot', async () => {
    await xn.xlOk('create', cfg('bbsys'));
    const con = attach('bbsys');
    await con.waitFor(/# $/m);
    const before = Number((await xn.xlOk('domid', 'bbsys')).trim());
    await xn.xlOk('sysrq', 'bbsys', 's');
    await con.waitFor(/sysrq: Emergency Sync[\s\S]*Emergency Sync complete/);
    await xn.xlOk('sysrq', 'bbsys', 'b');
    await xn.waitFor('bbsys restarted', async () => {
      const r = await xn.xl('domid', 'bbsys');
      return r.code === 0 && Number(r.stdout.trim()) !== before;
    }, 15_000);
    await xn.xlOk('destroy', 'bbsys');
  });
});
