// Debian guests from Debian's own package repository (`xenode mkimage --from debian`), booted
// from their disks: systemd and sysvinit each reach a login prompt on `xl console` (driven in a
// terminal, as a user types), root logs in, the image's own network configuration (ifupdown with
// DHCP) takes a lease from the test LAN, files persist across xl shutdown -w and re-create, and
// xl reboot / poweroff inside do what they say. The images are built once and cached outside
// the checkout (/var/cache/xenode), so only a machine's first run pays for debootstrap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRoot } from '../helpers/busybox-root.js';
import { Instance, shouldSkip, XENODE } from '../helpers/instance.js';
import { TestLan, netShouldSkip } from '../helpers/lan.js';
import { waitGone } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';

const BUILD_MS = 15 * 60_000;

function buildImage(image: string, init: 'systemd' | 'sysvinit'): void {
  const r = spawnSync(process.execPath, [XENODE, 'mkimage', '--force', '--from', 'debian', '--init', init, '--hostname', `deb-${init}`, image, '1G'], {
    encoding: 'utf8',
    timeout: BUILD_MS,
  });
  if (r.status !== 0) throw new Error(`xenode mkimage --from debian --init ${init} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

function imageFile(image: string, path: string): string | null {
  const r = spawnSync('debugfs', ['-R', `cat ${path}`, image], { encoding: 'utf8' });
  return r.status === 0 && !/File not found/.test(r.stderr) ? r.stdout : null;
}

describe.skipIf(shouldSkip() || netShouldSkip())('Debian guests booted from their own disks', () => {
  const xn = new Instance('debian');
  const lan = new TestLan('deb', xn.dir);
  const consoles: XlConsole[] = [];
  const images = { systemd: '', sysvinit: '' };
  beforeAll(async () => {
    await xn.start();
    await lan.up();
  });
  afterAll(async () => {
    for (const c of consoles) c.close();
    await xn.stop();
    lan.down();
  });
  const create = async (name: string, image: string, mac: string) => {
    const cfg = xn.config(
      name,
      `name = "${name}"\nmemory = 256\nvif = [ 'bridge=${lan.bridge},mac=${mac}' ]\ndisk = [ 'file:${image},xvda,w' ]\nroot = "/dev/xvda"\nextra = "console=hvc0"\n`,
    );
    await xn.xlOk('create', cfg);
    const c = new XlConsole(xn, name).attach();
    consoles.push(c);
    return c;
  };
  const login = async (c: XlConsole) => {
    await c.waitFor(/login: $/m, 60_000);
    c.type('root');
    await c.waitFor(/root@deb-\S+:~# $/m, 20_000);
  };

  it('systemd boots to a login prompt, root logs in, the system is running in a container, DHCP gives eth0 a lease', { timeout: BUILD_MS + 180_000 }, async () => {
    images.systemd = join(xn.dir, 'deb-systemd.img');
    buildImage(images.systemd, 'systemd');
    const con = await create('dsys', images.systemd, '00:16:3e:de:b0:01');
    await con.waitFor(/Welcome to Debian GNU\/Linux/, 60_000);
    await login(con);
    // systemd's own verdict: every unit started (it waits for jobs still running).
    expect((await con.run('systemctl is-system-running --wait', 60_000)).trim()).toBe('running');
    expect((await con.run('systemd-detect-virt')).trim()).toBe('container-other');
    expect((await con.run('cat /proc/1/comm')).trim()).toBe('systemd');
    await xn.waitFor('a DHCP lease for dsys', () => lan.leases().some((l) => l.mac === '00:16:3e:de:b0:01'), 30_000);
    const addr = lan.leases().find((l) => l.mac === '00:16:3e:de:b0:01')!.address;
    expect(await con.run('ip -4 -o addr show eth0')).toContain(addr);
    expect(lan.ping(addr)).toBe(true);
  });

  it('systemd: a file survives xl shutdown -w and a re-create; xl reboot and poweroff inside', { timeout: 240_000 }, async () => {
    const con = consoles[0]!;
    await con.run('echo kept-by-debian > /root/kept; sync');
    expect((await xn.xl('shutdown', '-w', 'dsys')).code).toBe(0);
    expect(imageFile(images.systemd, '/root/kept')).toBe('kept-by-debian\n');
    expect(spawnSync('e2fsck', ['-fn', images.systemd]).status).toBe(0);
    const again = await create('dsys', images.systemd, '00:16:3e:de:b0:01');
    await login(again);
    expect((await again.run('cat /root/kept')).trim()).toBe('kept-by-debian');
    const before = Number((await xn.xlOk('domid', 'dsys')).trim());
    await xn.xlOk('reboot', 'dsys');
    await xn.waitFor('dsys to come back', async () => {
      const r = await xn.xl('domid', 'dsys');
      return r.code === 0 && Number(r.stdout.trim()) !== before;
    }, 30_000);
    const rebooted = new XlConsole(xn, 'dsys').attach();
    consoles.push(rebooted);
    await login(rebooted);
    rebooted.type('poweroff');
    await waitGone(xn, 'dsys', 30_000);
  });

  it('sysvinit boots to a login prompt, takes a lease with ifupdown, and stops on xl shutdown -w and reboots on xl reboot', { timeout: BUILD_MS + 180_000 }, async () => {
    images.sysvinit = join(xn.dir, 'deb-sysvinit.img');
    buildImage(images.sysvinit, 'sysvinit');
    const con = await create('dsysv', images.sysvinit, '00:16:3e:de:b0:02');
    await con.waitFor(/INIT: version/, 60_000);
    await login(con);
    expect((await con.run('cat /proc/1/comm')).trim()).toBe('init');
    expect((await con.run('runlevel')).trim()).toMatch(/^N 2$/);
    await xn.waitFor('a DHCP lease for dsysv', () => lan.leases().some((l) => l.mac === '00:16:3e:de:b0:02'), 30_000);
    const before = Number((await xn.xlOk('domid', 'dsysv')).trim());
    await xn.xlOk('reboot', 'dsysv');
    await xn.waitFor('dsysv to come back', async () => {
      const r = await xn.xl('domid', 'dsysv');
      return r.code === 0 && Number(r.stdout.trim()) !== before;
    }, 60_000);
    const again = new XlConsole(xn, 'dsysv').attach();
    consoles.push(again);
    await login(again);
    expect((await xn.xl('shutdown', '-w', 'dsysv')).code).toBe(0);
    expect((await xn.xlOk('list')).includes('dsysv')).toBe(false);
  });

  it("ip= on the command line configures eth0 before the image's init runs, as Linux's ipconfig does", async () => {
    // An image with no network configuration of its own: only the command line configures eth0.
    const tree = busyboxRoot();
    const bb = join(xn.dir, 'bb-static.img');
    const r = spawnSync(process.execPath, [XENODE, 'mkimage', tree, bb, '32M'], { encoding: 'utf8' });
    rmSync(tree, { recursive: true, force: true });
    expect(r.status, r.stderr).toBe(0);
    const cfg = xn.config(
      'bbip',
      `name = "bbip"\nmemory = 128\nvif = [ 'bridge=${lan.bridge},mac=00:16:3e:de:b0:03' ]\ndisk = [ 'file:${bb},xvda,w' ]\nroot = "/dev/xvda"\nextra = "console=hvc0 ip=198.18.0.77::198.18.0.1:255.254.0.0:bbip:eth0:off"\n`,
    );
    await xn.xlOk('create', cfg);
    const con = new XlConsole(xn, 'bbip').attach();
    consoles.push(con);
    await con.waitFor(/IP-Config: Complete/);
    await con.waitFor(/# $/m, 30_000);
    expect(await con.run('ip -4 -o addr show eth0')).toContain('198.18.0.77/15');
    expect(lan.ping('198.18.0.77')).toBe(true);
    await xn.xlOk('destroy', 'bbip');
  });
});
