import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../dom0/toolstack/config/config-error.js';
import { diskDryRunJson, parseDiskSpec, type LibxlDeviceDisk } from '../../dom0/toolstack/config/disk-spec.js';
import { devidToVdev, parseVdev, vdevToDevid } from '../../common/vdev-number.js';

/** Fields xlu_disk_parse() leaves at their init values unless a spec sets them. */
const BASE: LibxlDeviceDisk = {
  vdev: '', backend: 'unknown', format: 'raw', removable: 0, readwrite: 1, is_cdrom: 0,
  direct_io_safe: false, specification: 'unknown',
};
const CDROM = { removable: 1, readwrite: 0, is_cdrom: 1 } as const;

// Each case: the spec and libxl_device_disk as Xen's parser fills it (traced through libxlu_disk_l.l).
const CASES: Array<[string, Partial<LibxlDeviceDisk>]> = [
  // xl-disk-configuration.5: "these strings are equivalent"
  ['/dev/vg/guest-volume,,hda', { pdev_path: '/dev/vg/guest-volume', vdev: 'hda' }],
  ['/dev/vg/guest-volume,raw,hda,rw', { pdev_path: '/dev/vg/guest-volume', vdev: 'hda' }],
  ['format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume', { pdev_path: '/dev/vg/guest-volume', vdev: 'hda' }],
  ['raw:/dev/vg/guest-volume,hda,w', { pdev_path: '/dev/vg/guest-volume', vdev: 'hda' }],
  // "As are these"
  ['/root/image.iso,,hdc,cdrom', { pdev_path: '/root/image.iso', vdev: 'hdc', ...CDROM }],
  ['/root/image.iso,,hdc,,cdrom', { pdev_path: '/root/image.iso', vdev: 'hdc', ...CDROM }],
  ['/root/image.iso,raw,hdc,devtype=cdrom', { pdev_path: '/root/image.iso', vdev: 'hdc', ...CDROM }],
  ['format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso', { pdev_path: '/root/image.iso', vdev: 'hdc', ...CDROM }],
  ['raw:/root/image.iso,hdc:cdrom,ro', { pdev_path: '/root/image.iso', vdev: 'hdc', ...CDROM }],
  // empty cdrom drives (xend's syntax and the new one)
  [',hdc:cdrom,r', { pdev_path: '', vdev: 'hdc', format: 'empty', ...CDROM }],
  [',raw,hdc,ro,devtype=cdrom', { pdev_path: '', vdev: 'hdc', format: 'empty', ...CDROM }],
  ['vdev=hdc,devtype=cdrom', { vdev: 'hdc', format: 'empty', ...CDROM }],
  // classic xm configs (examples/linux-pv.cfg, winxp-hvm.cfg)
  ['phy:/dev/vg01/winxp0,hda,w', { pdev_path: '/dev/vg01/winxp0', vdev: 'hda' }],
  ['phy:/dev/loop0,ioemu:hdc:cdrom,r', { pdev_path: '/dev/loop0', vdev: 'hdc', ...CDROM }],
  ['phy:/dev/vg01/linux0,xvda,w', { pdev_path: '/dev/vg01/linux0', vdev: 'xvda' }],
  ['file:/var/lib/xenode/web.img,xvda,w', { pdev_path: '/var/lib/xenode/web.img', vdev: 'xvda' }],
  ['format=raw, vdev=xvde, access=rw, target=/dev/sde', { pdev_path: '/dev/sde', vdev: 'xvde' }],
  ['/path/x.iso,raw,hdc,ro,devtype=cdrom', { pdev_path: '/path/x.iso', vdev: 'hdc', ...CDROM }],
  ['file:/opt/florizel.img,hda,w', { pdev_path: '/opt/florizel.img', vdev: 'hda' }],
  ['file:/root/slackware-12.0-install-dvd.iso,hdc:cdrom,r', { pdev_path: '/root/slackware-12.0-install-dvd.iso', vdev: 'hdc', ...CDROM }],
  ['file:/opt/florizel.img,ioemu:hda,w', { pdev_path: '/opt/florizel.img', vdev: 'hda' }],
  ['phy:VG_new/LV_iSCSI1,hda1,w', { pdev_path: 'VG_new/LV_iSCSI1', vdev: 'hda1' }],
  ['nbd:IP 20001,hda1,w', { pdev_path: 'IP 20001', vdev: 'hda1', script: 'block-nbd' }],
  // other prefixes, flags and keys
  ['tap:aio:/img,xvda,w', { pdev_path: '/img', vdev: 'xvda' }],
  ['tap:qcow2:/img.qcow2,xvda,w', { pdev_path: '/img.qcow2', vdev: 'xvda', format: 'qcow2' }],
  ['/vm.vhd,vhd,xvdb,r', { pdev_path: '/vm.vhd', vdev: 'xvdb', format: 'vhd', readwrite: 0 }],
  ['/vm.qed,qed,xvdb', { pdev_path: '/vm.qed', vdev: 'xvdb', format: 'qed' }],
  ['/dev/sdb,,xvdb,,direct-io-safe,no-discard,untrusted',
    { pdev_path: '/dev/sdb', vdev: 'xvdb', direct_io_safe: true, discard_enable: false, trusted: false }],
  ['vdev=xvdc, backendtype=qdisk, discard, target=/var/a,b.img',
    { pdev_path: '/var/a,b.img', vdev: 'xvdc', backend: 'qdisk', discard_enable: true }],
  ['backend=driverdom, specification=xen, vdev=xvdd, target=/x', { pdev_path: '/x', vdev: 'xvdd', backend_domname: 'driverdom', specification: 'xen' }],
  ['script=block-iscsi,vdev=xvdf,target=iqn.2001-05.com.example:disk0', { pdev_path: 'iqn.2001-05.com.example:disk0', vdev: 'xvdf', script: 'block-iscsi' }],
  // xend's empty-drive form without cdrom: libxlu takes it (format empty, not removable).
  [',xvdg:disk,w', { pdev_path: '', vdev: 'xvdg', format: 'empty' }],
];

describe('disk specs', () => {
  it.each(CASES)('%s', (spec, want) => {
    const got = parseDiskSpec(spec);
    expect(got).toEqual({ ...BASE, ...want });
  });

  it('takes a spec split over several arguments, as xl block-attach does', () => {
    expect(parseDiskSpec(['/dev/sdc', 'raw', 'xvdc'])).toEqual({ ...BASE, pdev_path: '/dev/sdc', vdev: 'xvdc' });
  });

  const BAD: Array<[string, string]> = [
    ['/dev/sdb,qcow3,xvdb', "unknown value for format: near `qcow3'"],
    // vdev:devtype only counts after a deprecated prefix or an empty target; here it lands in format.
    ['/dev/xvdg,xvdg:disk,w', "unknown value for format: near `xvdg:disk'"],
    ['/a,raw,xvda,rw,extra', "too many positional parameters: near `extra'"],
    ['foo=bar,/a,xvda', "unknown parameter: near `foo=b'"],
    ['lvm:/dev/x,xvda', "unknown deprecated disk prefix: near `lvm:'"],
    ['/a,raw', 'no vdev specified'],
    ['vdev=xvda', 'no target specified (and device not removable)'],
    ['backend=dd, target=/x, vdev=xvdd', 'no vdev specified'],
    ['/a,raw,xvda,rw,format=qcow2', "format respecified: near `qcow2'"],
    ['/a,raw,xvda,access=rx', "unknown value for access: near `rx'"],
    ['/a,raw,xvda,devtype=floppy', "unknown value for type: near `devtype=floppy'"],
    ['/a=b,xvda', "bad disk syntax: near `=b,xvda'"],
    ['/a,raw,xvda,backendtype=nbd', "unknown value for backendtype: near `nbd'"],
    ['colo,/a,xvda', "COLO disk replication is not supported by xenode: near `colo'"],
    ['/a,raw,xvda,specification=virtio', "specification=virtio is not supported by xenode: near `virtio'"],
  ];
  it.each(BAD)('rejects %s', (spec, detail) => {
    let err: unknown;
    try { parseDiskSpec(spec, { file: 'g.cfg', line: 7, column: 3, key: 'disk' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`g.cfg:7: disk: disk specification \`${spec}': ${detail}`);
  });

  it('prints what `xl -N block-attach` prints', () => {
    expect(diskDryRunJson(parseDiskSpec('format=raw, vdev=xvde, access=rw, target=/dev/sde'))).toBe([
      'disk: {',
      '    "pdev_path": "/dev/sde",',
      '    "vdev": "xvde",',
      '    "format": "raw",',
      '    "readwrite": 1',
      '}',
      '',
      '',
    ].join('\n'));
    expect(diskDryRunJson(parseDiskSpec(',raw,hdc,ro,devtype=cdrom'))).toBe([
      'disk: {',
      '    "pdev_path": "",',
      '    "vdev": "hdc",',
      '    "format": "empty",',
      '    "removable": 1,',
      '    "is_cdrom": 1',
      '}', '', '',
    ].join('\n'));
    expect(diskDryRunJson(parseDiskSpec('vdev=xvdc,backendtype=phy,no-discard,trusted,script=block-x,target=/dev/sdc'))).toBe([
      'disk: {',
      '    "pdev_path": "/dev/sdc",',
      '    "vdev": "xvdc",',
      '    "backend": "phy",',
      '    "format": "raw",',
      '    "script": "block-x",',
      '    "readwrite": 1,',
      '    "discard_enable": "False",',
      '    "trusted": "True"',
      '}', '', '',
    ].join('\n'));
  });
});

describe('virtual device numbers', () => {
  const TABLE: Array<[string, number]> = [
    ['xvda', 51712], ['xvdb', 51728], ['xvde', 51776], ['xvda1', 51713], ['xvdp15', 51967],
    ['xvdq', (1 << 28) | (16 << 8)], ['xvda16', (1 << 28) | 16], ['xvdaa', (1 << 28) | (26 << 8)],
    ['xvdaa1', (1 << 28) | (26 << 8) | 1],
    ['hda', 768], ['hdb', 832], ['hdc', 5632], ['hdd', 5696], ['hda1', 769], ['hdc63', 5695],
    ['sda', 2048], ['sdb', 2064], ['sdp15', 2303],
    ['d0p0', 51712], ['d0p1', 51713], ['d16p0', (1 << 28) | (16 << 8)],
    ['51712', 51712], ['0xca00', 51712],
  ];
  it.each(TABLE)('%s = %i', (vdev, devid) => {
    expect(vdevToDevid(vdev)).toBe(devid);
  });

  it.each(['hde', 'sdq', 'sda16', 'hda64', 'xvda0', 'xvd', 'vda', 'xvdA', ''])('rejects %j', (vdev) => {
    expect(vdevToDevid(vdev)).toBe(-1);
  });

  it('decodes kind, disk and partition', () => {
    expect(parseVdev('xvdb3')).toEqual({ devid: 51731, kind: 'xvd', disk: 1, partition: 3 });
    expect(parseVdev('hdc')).toEqual({ devid: 5632, kind: 'hd', disk: 2, partition: 0 });
  });

  const REVERSE: Array<[number, string]> = [
    [51712, 'xvda'], [51776, 'xvde'], [51713, 'xvda1'], [768, 'hda'], [832, 'hdb'], [5632, 'hdc'], [5696, 'hdd'],
    [2048, 'sda'], [2303, 'sdp15'], [(1 << 28) | (16 << 8), 'xvdq'], [(1 << 28) | (26 << 8), 'xvdaa'], [(1 << 28) | 16, 'xvda16'],
  ];
  it.each(REVERSE)('%i is %s', (devid, vdev) => {
    expect(devidToVdev(devid)).toBe(vdev);
  });

  it('round-trips every short xvd, hd and sd name', () => {
    const names = ['xvda', 'xvdz', 'xvdaa', 'xvdzz', 'xvdabc7', 'hdd63', 'sdk9'];
    for (const n of names) expect(devidToVdev(vdevToDevid(n))).toBe(n);
    expect(devidToVdev(1234)).toBeUndefined();
  });
});
