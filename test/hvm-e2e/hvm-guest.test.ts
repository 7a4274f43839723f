// HVM end to end: a guest from a classic HVM config (builder='hvm', disk on hda, a cdrom on
// hdc, an ioemu vif, serial='pty') boots xenode's HVM OS, which finds its devices by scanning
// PCI and drives them through their registers: every access an ioreq to the device model in
// the stub domain. Then the same guest with PV drivers (xen_pvhvm=1) unplugs the emulated
// NIC and disks and carries on over netfront/blkfront.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Instance } from '../helpers/instance.js';
import { TestLan, netShouldSkip } from '../helpers/lan.js';
import { linkStats } from '../../net/ip.js';

const GUEST_IP = '198.18.2.10';
const MAC = '00:16:3e:38:d4:15';
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

describe.skipIf(netShouldSkip())('HVM guests on emulated devices', () => {
  const xn = new Instance('hvm');
  const lan = new TestLan('hvm', xn.dir);
  let disk = '';
  let iso = '';
  let isoBytes: Buffer;

  /** examples/winxp-hvm.cfg's shape, with this test's files and bridge. */
  const config = (name: string, extra: string) =>
    xn.config(
      name,
      [
        `kernel          = '/usr/lib/xen/boot/hvmloader'`,
        `builder         = 'hvm'`,
        `device_model    = '/usr/lib/xen/bin/qemu-dm'`,
        `memory          = '128'`,
        `vcpus           = '1'`,
        `disk            = [ 'file:${disk},hda,w', 'file:${iso},hdc:cdrom,r' ]`,
        `name            = '${name}'`,
        `vif             = [ 'type=ioemu, bridge=${lan.bridge}, mac=${MAC}' ]`,
        `extra           = 'ip=${GUEST_IP}::198.18.0.1:255.254.0.0::eth0:off ${extra}'`,
        `on_poweroff     = 'destroy'`,
        `on_reboot       = 'restart'`,
        `on_crash        = 'destroy'`,
        `boot            = 'cd'`,
        `serial          = 'pty'`,
        '',
      ].join('\n'),
    );

  /** Create and wait for this boot's init: the console log keeps earlier boots of the same
   * name, and an HVM guest prints no domain id to tell them apart, so look past the old end. */
  const start = async (name: string, extra = '') => {
    const before = xn.consoleLog(name).length;
    await xn.xlOk('create', config(name, extra));
    await xn.waitFor(`${name}'s init`, () => /Run .* as init process/.test(xn.consoleLog(name).slice(before)), 60_000);
  };

  beforeAll(async () => {
    disk = join(xn.dir, 'hvm-disk.img');
    writeFileSync(disk, Buffer.alloc(32 << 20));
    const isoDir = join(xn.dir, 'iso');
    mkdirSync(isoDir);
    writeFileSync(join(isoDir, 'README.TXT'), 'xenode cdrom\n'.repeat(1000));
    iso = join(xn.dir, 'data.iso');
    execFileSync('genisoimage', ['-quiet', '-o', iso, '-V', 'XENODE', isoDir]);
    isoBytes = readFileSync(iso);
    await xn.start();
    await lan.up();
    await start('winxp');
  }, 90_000);

  afterAll(async () => {
    await xn.stop();
    lan.down();
  }, 60_000);

  it('gets a shell on xl console through its emulated 16550 UART', async () => {
    const out = await xn.consoleRun('winxp', 'echo serial-ok $(hostname)');
    expect(out).toContain('serial-ok winxp');
    const log = xn.consoleLog('winxp');
    expect(log).toMatch(/serial8250: ttyS0 at I\/O 0x3f8/);
    expect(log).toMatch(/8139too: eth0: RealTek RTL8139 .*00:16:3e:38:d4:15/);
    expect(log).toMatch(/ata1\.00: ATA-7/);
  });

  it('answers ping and HTTP from the LAN host over the emulated RTL8139', async () => {
    await xn.consoleRun('winxp', 'cd /tmp && echo hvm-page > index.html && (python3 -m http.server 80 >/dev/null 2>&1 &)');
    await xn.waitFor('ping over the emulated NIC', () => lan.ping(GUEST_IP, 1), 20_000);
    expect(lan.ping(GUEST_IP, 3)).toBe(true);
    let page = '';
    await xn.waitFor('HTTP from the guest', () => {
      const r = lan.exec(['curl', '-s', '-m', '3', `http://${GUEST_IP}/index.html`]);
      page = r.out;
      return r.code === 0;
    }, 20_000);
    expect(page).toContain('hvm-page');
    // The frames went through the emulated NIC's TAP, not a PV vif.
    const domid = (await xn.xlOk('domid', 'winxp')).trim();
    expect(linkStats(`vif${domid}.0-emu`).txPackets).toBeGreaterThan(0);
  });

  it('reads an ISO image through the ATAPI cdrom', async () => {
    const out = await xn.consoleRun('winxp', `dd if=/dev/hdc bs=2048 count=${isoBytes.length / 2048} 2>/dev/null | md5sum`);
    expect(out).toContain(md5(isoBytes));
    const w = await xn.consoleRun('winxp', 'echo x | dd of=/dev/hdc 2>&1; true');
    expect(w).toMatch(/Read-only file system|Permission denied|Operation not permitted/);
  });

  it('keeps data written through the emulated IDE disk across a re-create', async () => {
    // Random data made in the guest, written with fsync through ata_piix's DMA path.
    const wrote = await xn.consoleRun('winxp', 'head -c 262144 /dev/urandom > /tmp/p && dd if=/tmp/p of=/dev/hda bs=64k conv=fsync 2>/dev/null && md5sum < /tmp/p');
    const hex = /([0-9a-f]{32})/.exec(wrote)![1]!;
    await xn.xlOk('destroy', 'winxp');
    expect(md5(readFileSync(disk).subarray(0, 262144))).toBe(hex);
    writeFileSync(join(xn.dir, 'payload.md5'), hex);
    await start('winxp');
    const again = await xn.consoleRun('winxp', 'dd if=/dev/hda bs=64k count=4 2>/dev/null | md5sum');
    expect(again).toContain(hex);
  }, 120_000);

  it('with PV drivers (xen_pvhvm=1) unplugs the emulated NIC and disks and keeps working over PV', async () => {
    await xn.xlOk('destroy', 'winxp');
    await start('pvhvm', 'xen_pvhvm=1');
    const log = xn.consoleLog('pvhvm');
    expect(log).toMatch(/unplug/i);
    const domid = (await xn.xlOk('domid', 'pvhvm')).trim();
    await xn.waitFor('ping over netfront', () => lan.ping(GUEST_IP, 1), 30_000);
    const before = linkStats(`vif${domid}.0`).rxPackets;
    expect(lan.ping(GUEST_IP, 3)).toBe(true);
    // The PV vif carries the traffic now.
    expect(linkStats(`vif${domid}.0`).rxPackets).toBeGreaterThan(before);
    // And the disk data written earlier through the emulated IDE is there over blkfront.
    const hex = readFileSync(join(xn.dir, 'payload.md5'), 'utf8');
    const out = await xn.consoleRun('pvhvm', 'ls /dev; dd if=/dev/hda bs=64k count=4 2>/dev/null | md5sum');
    expect(out).toContain(hex);
  }, 90_000);

  it('a device model that crashes takes down only its own guest, which follows on_crash', async () => {
    // 'pvhvm' from the test above is still running; a second HVM guest's device model dies.
    const victim = 'dmcrash';
    const cfg = xn.config(victim, [`builder = 'hvm'`, `name = '${victim}'`, `memory = 128`, `serial = 'pty'`, `on_crash = 'destroy'`, ''].join('\n'));
    const before = xn.consoleLog(victim).length;
    await xn.xlOk('create', cfg);
    await xn.waitFor(`${victim}'s init`, () => /Run .* as init process/.test(xn.consoleLog(victim).slice(before)), 60_000);
    const { rpcCall } = await import('../../dom0/toolstack/rpc.js');
    await rpcCall(join(xn.dir, 'run', 'toolstack.sock'), 'dm-fault', { dom: victim });
    await xn.waitFor(`${victim} to be destroyed by on_crash`, async () => !(await xn.list()).some((r) => r.name === victim), 20_000);
    expect(xn.log()).toMatch(/device model of domain \d+ ended/);
    expect(xn.log()).toMatch(new RegExp(`"${victim}" crashed; action destroy`));
    // The other HVM guest and its device model carry on.
    expect(await xn.consoleRun('pvhvm', 'echo still-here')).toContain('still-here');
  }, 120_000);
});

