import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../dom0/toolstack/config/config-error.js';
import { parseDomainConfigFile, parseDomainConfigText } from '../../dom0/toolstack/config/domain-config.js';

const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const warningKeys = (w: Array<{ key?: string }>) => w.map((x) => x.key).sort();

describe('classic xm configs', () => {
  it('linux-pv.cfg: a PV guest', () => {
    const { config: c, warnings } = parseDomainConfigFile(example('linux-pv.cfg'));
    // Its kernel is recorded, not loaded: xl-style, the warning says what xenode does instead.
    expect(warningKeys(warnings)).toEqual(['kernel']);
    expect(warnings[0]!.message).toMatch(/^ignoring kernel `\/mnt\/xen\/linux\/vmlinux' \(recorded, not loaded\): xenode's PV guests run xenode's own PV kernel/);
    expect(c).toMatchObject({
      name: 'linux', type: 'pv', typeFrom: 'default', uuidGenerated: true,
      memoryMiB: 256, maxMemMiB: 256, vcpus: 2, maxVcpus: 2,
      kernel: '/mnt/xen/linux/vmlinux',
      cmdline: 'root=/dev/xvda1 console=hvc0 init=/sbin/init rootfstype=ext4 rootflags=nobarrier',
      onPoweroff: 'destroy', onReboot: 'restart', onWatchdog: 'destroy', onCrash: 'restart', onSoftReset: 'soft-reset',
    });
    expect(c.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(c.hvm).toBeUndefined();
    expect(c.disks).toEqual([{
      spec: 'phy:/dev/vg01/linux0,xvda,w', devid: 51712, line: 5,
      disk: {
        pdev_path: '/dev/vg01/linux0', vdev: 'xvda', backend: 'unknown', format: 'raw', removable: 0, readwrite: 1,
        is_cdrom: 0, direct_io_safe: false, specification: 'unknown',
      },
    }]);
    expect(c.nics).toHaveLength(1);
    expect(c.nics[0]!.nic).toEqual({ bridge: 'eth0', mac: '00:16:3e:38:d4:07', devid: 0 });
    expect(c.nics[0]!.resolved).toEqual({
      bridge: 'eth0', mac: '00:16:3e:38:d4:07', devid: 0, mtu: 1500, model: 'rtl8139', script: 'vif-bridge',
      nictype: 'vif', trusted: true,
    });
  });

  it('winxp-hvm.cfg: an HVM guest from xm days', () => {
    const { config: c, warnings } = parseDomainConfigFile(example('winxp-hvm.cfg'));
    expect(c).toMatchObject({
      name: 'winxp', type: 'hvm', typeFrom: 'builder', memoryMiB: 1024, maxMemMiB: 1024, vcpus: 2, maxVcpus: 2,
      kernel: undefined, onCrash: 'restart', onReboot: 'restart', onPoweroff: 'destroy',
      hvm: { boot: 'c' }, vnc: { enable: true, listen: '' }, sdl: { enable: false },
      xm: { dhcp: 'dhcp', builder: 'hvm', deviceModel: '/usr/lib/xen/bin/qemu-dm', vncviewer: 0 },
    });
    expect(c.disks.map((d) => [d.disk.pdev_path, d.disk.vdev, d.devid, d.disk.is_cdrom, d.disk.readwrite]))
      .toEqual([['/dev/vg01/winxp0', 'hda', 768, 0, 1], ['/dev/loop0', 'hdc', 5632, 1, 0]]);
    expect(c.nics[0]!.resolved).toMatchObject({ bridge: 'eth0', mac: '00:16:3e:38:d4:15', nictype: 'vif_ioemu' });
    // xl would say the same things: builder deprecated, hvmloader kernel, device_model, vncviewer; xm's dhcp.
    expect(warningKeys(warnings)).toEqual(['builder', 'device_model', 'dhcp', 'kernel', 'vncviewer']);
    expect(warnings.find((w) => w.key === 'kernel')).toMatchObject({ line: 1, file: example('winxp-hvm.cfg') });
  });

  it('florizel: its Python is refused, the xl-valid remainder parses', () => {
    const e = errorOf(() => parseDomainConfigFile(fixture('florizel-xm-python.cfg')));
    expect(e.errors[0]!.message).toMatch(/florizel-xm-python\.cfg:1: `import' is Python: Python is not supported by xl/);

    const { config: c, warnings } = parseDomainConfigFile(fixture('florizel-hvm.cfg'));
    expect(c).toMatchObject({
      name: 'florizel', type: 'hvm', memoryMiB: 384, shadowMemoryMiB: 16, vcpus: 1,
      hvm: { boot: 'cda', serial: 'pty', vga: 'cirrus' }, vnc: { enable: true }, sdl: { enable: false },
    });
    expect(c.disks.map((d) => [d.disk.pdev_path, d.disk.vdev, d.disk.is_cdrom]))
      .toEqual([['/opt/florizel.img', 'hda', 0], ['/root/slackware-12.0-install-dvd.iso', 'hdc', 1]]);
    expect(c.nics[0]!.nic).toEqual({ nictype: 'vif_ioemu', bridge: 'xenbr0', devid: 0 });
    expect(c.nics[0]!.resolved.mac).toMatch(/^00:16:3e:/);
    expect(warningKeys(warnings)).toEqual(['boot', 'builder', 'kernel', 'shadow_memory']);
  });

  it('iSCSI1: a PV guest with a ramdisk', () => {
    const { config: c, warnings } = parseDomainConfigFile(fixture('iscsi1-pv.cfg'));
    expect(c).toMatchObject({
      name: 'iSCSI1', type: 'pv', memoryMiB: 128, vcpus: 1, kernel: '/boot/vmlinuz-2.6.13-15.8-xen',
      ramdisk: '/boot/initrd-2.6.13-15.8-xen', cmdline: 'root=/dev/hda1 ro', xm: { dhcp: 'dhcp', hostname: 'iSCSI1' },
    });
    expect(c.disks[0]).toMatchObject({ devid: 769, disk: { pdev_path: 'VG_new/LV_iSCSI1', vdev: 'hda1' } });
    expect(c.nics[0]!.nic).toEqual({ mac: 'aa:cc:10:00:00:a1', bridge: 'xenbr0', devid: 0 });
    expect(warningKeys(warnings)).toEqual(['dhcp', 'hostname', 'kernel', 'ramdisk']);
  });
});

describe('example configs', () => {
  it('pv-shell.cfg', () => {
    const { config: c, warnings } = parseDomainConfigFile(example('pv-shell.cfg'));
    expect(warnings).toEqual([]);
    expect(c).toMatchObject({ name: 'shell', type: 'pv', typeFrom: 'type', cmdline: 'console=hvc0', disks: [], nics: [] });
  });

  it('pv-web.cfg', () => {
    const { config: c, warnings } = parseDomainConfigFile(example('pv-web.cfg'));
    expect(warnings).toEqual([]);
    expect(c).toMatchObject({ name: 'web', vcpus: 2, memoryMiB: 512, cpuWeight: 512 });
    expect(c.cmdline).toMatch(/^ip=dhcp init=\/bin\/sh -c "mkdir -p \/srv && fuse2fs -o ro \/dev\/xvda \/srv && exec python3 -m http.server -d \/srv 80"$/);
    expect(c.disks[0]).toMatchObject({ devid: 51712, disk: { pdev_path: '/var/lib/xenode/web.img', readwrite: 0 } });
    expect(c.nics[0]!.nic).toMatchObject({ mac: '00:16:3e:00:00:80', rate_bytes_per_interval: 25000, rate_interval_usecs: 20000 });
  });
});

describe('settings', () => {
  const base = 'name = "t"\n';
  const parse = (extra: string) => parseDomainConfigText(base + extra, 't.cfg');

  it('applies xl defaults', () => {
    const { config: c } = parse('');
    expect(c).toMatchObject({
      memoryMiB: 32, maxMemMiB: 32, vcpus: 1, maxVcpus: 1, onPoweroff: 'destroy', onReboot: 'restart',
      onWatchdog: 'destroy', onCrash: 'destroy', disks: [], nics: [],
    });
  });

  it('reads numbers in strings, hex and octal as xl does', () => {
    expect(parse("memory = '1024'\nmaxmem = 0x800\nvcpus='2'\nmaxvcpus=010\n").config)
      .toMatchObject({ memoryMiB: 1024, maxMemMiB: 2048, vcpus: 2, maxVcpus: 8 });
  });

  it('uses cmdline over root/extra, with a warning', () => {
    const { config, warnings } = parse('cmdline = "quiet"\nroot = "/dev/xvda1"\n');
    expect(config.cmdline).toBe('quiet');
    expect(warnings[0]).toMatchObject({ key: 'cmdline', message: 'ignoring root= and extra= in favour of cmdline=' });
    expect(parse('root = "/dev/xvda1"\n').config.cmdline).toBe('root=/dev/xvda1');
  });

  it('decides the type from type=, builder= or the default, and says which', () => {
    expect(parse('type = "pvh"\n').config).toMatchObject({ type: 'pvh', typeFrom: 'type' });
    expect(parse('type = "h"\n').config.type).toBe('hvm'); // xl matches prefixes
    expect(parse("builder = 'generic'\n").config).toMatchObject({ type: 'pv', typeFrom: 'builder' });
    expect(parse("builder = 'hvm'\ntype = 'hvm'\n").config).toMatchObject({ type: 'hvm', typeFrom: 'type' });
    const linux = parse("builder = 'linux'\n");
    expect(linux.config).toMatchObject({ type: 'pv', typeFrom: 'builder' });
    expect(linux.warnings[0]!.message).toMatch(/xm's name for a PV guest/);
  });

  it('reads cpus as a string or a list', () => {
    const s = parse('vcpus = 4\ncpus = "0-3,^1"\n').config.cpus;
    expect(s).toEqual({ form: 'string', set: { text: '0-3,^1', terms: [
      { exclude: false, all: false, from: 0, to: 3 }, { exclude: true, all: false, from: 1, to: 1 },
    ] } });
    const l = parse("vcpus = 2\ncpus = [ '2', 'all' ]\n").config.cpus;
    expect(l?.form === 'list' && l.perVcpu.map((x) => x.text)).toEqual(['2', 'all']);
  });

  it('accepts every shutdown action', () => {
    for (const a of ['destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart']) {
      expect(parse(`on_crash = "${a}"\n`).config.onCrash).toBe(a);
    }
  });

  it('warns about unknown keys, unsupported xl keys and weight', () => {
    const { warnings } = parse('frobnicate = 1\npci = [ "01:00.0" ]\nweight = 256\n');
    expect(warnings.map((w) => [w.line, w.key, w.message])).toEqual([
      [2, 'frobnicate', 'unknown option `frobnicate\' ignored (xl ignores unknown options too)'],
      [3, 'pci', '`pci\' is an xl option that xenode does not support; ignored'],
      [4, 'weight', 'unknown option `weight\' ignored: the credit scheduler weight is `cpu_weight\''],
    ]);
  });
});

describe('bad configs name file, line and key', () => {
  const BAD: Array<[string, string]> = [
    ['kernel = "/k"\n', 'bad.cfg: name: domain name must be specified'],
    ['name = "x"\nkernel = "/k"\nmemory = "lots"\n', "bad.cfg:3: memory: `lots' is not a valid number"],
    ['name = "x"\nkernel = "/k"\nmemory = 0\n', "bad.cfg:3: memory: value `0' is smaller than the minimum 1"],
    ['name = "x"\nkernel = "/k"\nmemory += 5\n', "bad.cfg:3: memory: can't use += with numbers"],
    ['name = "x"\nkernel = "/k"\nmemory = [ 5 ]\n', 'bad.cfg:3: memory: is a list but should be a single value'],
    ['name = "x"\nkernel = "/k"\ndisk = "/a,raw,xvda"\n', 'bad.cfg:3: disk: is a single value but should be a list'],
    ['name = "x"\nkernel = "/k"\ntype = "hvm"\nbuilder = "generic"\n',
      'bad.cfg:4: builder: contradicting "builder" and "type" options specified (builder=\'generic\' means pv, type=\'hvm\')'],
    ['name = "x"\nkernel = "/k"\ntype = "xen"\n', "bad.cfg:3: type: invalid domain type `xen' (pv, pvh or hvm)"],
    ['name = "x"\nkernel = "/k"\nvcpus = 4\nmaxvcpus = 2\n', 'bad.cfg:4: maxvcpus: maxvcpus (2) < vcpus (4)'],
    ['name = "x"\nkernel = "/k"\nmemory = 512\nmaxmem = 256\n', 'bad.cfg:4: maxmem: maxmem (256 MiB) is smaller than memory (512 MiB)'],
    ['name = "x"\nkernel = "/k"\nuuid = "1234"\n', "bad.cfg:3: uuid: failed to parse UUID `1234' (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"],
    ['name = "x"\nkernel = "/k"\ncpus = "3-1"\n', 'bad.cfg:3: cpus: Invalid pcpu range: 3-1.'],
    ['name = "x"\nkernel = "/k"\ncpus = "^all"\n', 'bad.cfg:3: cpus: Can\'t combine "^" and "all".'],
    ['name = "x"\nkernel = "/k"\non_crash = "explode"\n',
      "bad.cfg:3: on_crash: unknown on_crash action `explode' (one of destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart, soft-reset)"],
    ['name = "x"\ntype = "hvm"\nboot = "cz"\n', "bad.cfg:3: boot: boot order `cz' may hold only c (hard disk), d (cd-rom) and n (network)"],
    ['name = "x"\nkernel = "/k"\ndisk = [ "/a,raw,xvda", "/b,raw,d0p0" ]\n', "bad.cfg:3: disk: vdev `d0p0' is the same device (51712) as `xvda'"],
    ['name = "x"\nkernel = "/k"\ndisk = [ "/a,raw,vda" ]\n',
      "bad.cfg:3: disk: invalid or unsupported virtual disk identifier `vda' (use xvdX, hdX, sdX or dNpN)"],
    ['name = "x"\nkernel = "/k"\nvif = [ "type=ioemu" ]\n',
      'bad.cfg:3: vif: type=ioemu needs an HVM guest (libxl: "trying to create PV or PVH guest with an emulated interface")'],
    ['name = "x"\ntype="hvm"\nvnclisten = "0.0.0.0:1"\nvncdisplay = 2\n', 'bad.cfg:4: vncdisplay: display specified both in vnclisten and vncdisplay'],
    ['name = "x"\nkernel = "/k"\ndevice_model_version = "qemu-upstream"\n',
      "bad.cfg:3: device_model_version: unknown device_model_version `qemu-upstream' (qemu-xen or qemu-xen-traditional)"],
  ];
  it.each(BAD)('%j', (text, message) => {
    expect(errorOf(() => parseDomainConfigText(text, 'bad.cfg')).message).toBe(message);
  });

  it('collects several errors at once, each with its line', () => {
    const text = [
      'name = "x"',
      'kernel = "/k"',
      'on_crash = "explode"',
      'disk = [ "/a,raw,xvda",',
      '         "/b,qcow9,xvdb" ]',
      "vif = [ 'mac=01:00:5e:00:00:01' ]",
    ].join('\n');
    const e = errorOf(() => parseDomainConfigText(text, 'multi.cfg'));
    expect(e.errors.map((x) => `${x.line}:${x.column} ${x.key}`)).toEqual(['3:1 on_crash', '5:10 disk', '6:9 vif']);
    expect(e.errors[1]!.message).toBe("multi.cfg:5: disk: disk specification `/b,qcow9,xvdb': unknown value for format: near `qcow9'");
    expect(e.message.split('\n')).toHaveLength(3);
  });
});
