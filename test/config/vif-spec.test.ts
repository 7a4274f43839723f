import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../dom0/toolstack/config/config-error.js';
import { parseVifRate, VifRateError } from '../../dom0/toolstack/config/vif-rate.js';
import {
  generateXenMac, parseVifArgs, parseVifSpec, resolveNicDefaults, vifDryRunJson, type LibxlDeviceNic,
} from '../../dom0/toolstack/config/vif-spec.js';

describe('vif rate (xlu_vif_parse_rate)', () => {
  // [rate, bytes per interval, interval in us], computed as libxlu_vif.c does.
  const RATES: Array<[string, number, number]> = [
    ['10Mb/s@20ms', 25000, 20000],
    ['10Mb/s', 62500, 50000], // default interval 50ms
    ['250KB/s', 12500, 50000],
    ['1MB/s@20ms', 20000, 20000], // the example in xl-network-configuration.5
    ['1GB/s@1s', 1_000_000_000, 1_000_000],
    ['100b/s@1', 12, 1_000_000], // bits round down to 12 bytes; no unit = seconds
    ['8Kb/s@500us', 0, 500],
    ['5B/s@10u', 0, 10],
    ['1Gb/s@2m', 250_000, 2000],
    ['010MB/s', 400_000, 50000], // strtoull base 0: a leading 0 is octal, as in xl
  ];
  it.each(RATES)('%s', (rate, bytes, usecs) => {
    expect(parseVifRate(rate)).toEqual({ rate_bytes_per_interval: bytes, rate_interval_usecs: usecs });
  });

  const BAD: Array<[string, string]> = [
    ['', 'no rate specified'],
    ['@20ms', 'no rate specified'],
    ['10mb/s', 'invalid rate'],
    ['10Mbit/s', 'invalid rate'],
    ['10Mb', 'invalid rate'],
    ['0Mb/s', 'rate overflow'],
    ['4294967296B/s', 'rate overflow'],
    ['10Mb/s@', 'invalid replenishment interval'],
    ['10Mb/s@20 ms', 'invalid replenishment interval'],
    ['10Mb/s@0ms', 'replenishment interval overflow'],
    ['10Mb/s@4295s', 'replenishment interval overflow'],
    ['4294967295GB/s@1s', 'rate too large for xenode'],
  ];
  it.each(BAD)('rejects %j: %s', (rate, problem) => {
    let err: unknown;
    try { parseVifRate(rate); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(VifRateError);
    expect((err as VifRateError).problem).toBe(problem);
  });
});

describe('vif specs', () => {
  const CASES: Array<[string, LibxlDeviceNic]> = [
    ['', {}],
    ['bridge=eth0,mac=00:16:3e:38:d4:07', { bridge: 'eth0', mac: '00:16:3e:38:d4:07' }],
    ['type=ioemu, bridge=xenbr0', { nictype: 'vif_ioemu', bridge: 'xenbr0' }],
    ['mac=aa:cc:10:00:00:a1, bridge=xenbr0', { mac: 'aa:cc:10:00:00:a1', bridge: 'xenbr0' }],
    ['mac=00:16:3E:74:3d:76,model=rtl8139,bridge=xenbr0', { mac: '00:16:3e:74:3d:76', model: 'rtl8139', bridge: 'xenbr0' }],
    ['type=vif,,mac=0:16:3e:1:2:3', { nictype: 'vif', mac: '00:16:3e:01:02:03' }],
    ['ip=10.0.0.2 10.0.0.3/24,script=vif-route,gatewaydev=eth1,vifname=web0,backend=drv,mtu=9000,devid=3,untrusted,model=e1000,rate=10Mb/s@20ms', {
      ip: '10.0.0.2 10.0.0.3/24', script: 'vif-route', gatewaydev: 'eth1', ifname: 'web0', backend_domname: 'drv', mtu: 9000,
      devid: 3, trusted: false, model: 'e1000', rate_bytes_per_interval: 25000, rate_interval_usecs: 20000,
    }],
  ];
  it.each(CASES)('%j', (spec, want) => {
    expect(parseVifSpec(spec)).toEqual({ nic: want, warnings: [] });
  });

  it('maps the deprecated netdev to gatewaydev, and ignores accel, with warnings', () => {
    const { nic, warnings } = parseVifSpec('netdev=eth0,accel=x');
    expect(nic).toEqual({ gatewaydev: 'eth0' });
    expect(warnings).toEqual([
      'the netdev parameter is deprecated, please use gatewaydev instead',
      'the accel parameter for vifs is currently not supported',
    ]);
  });

  const BAD: Array<[string, string]> = [
    ['mac=01:16:3e:00:00:01', "mac `01:16:3e:00:00:01' is a multicast address; a NIC needs a unicast one"],
    ['mac=00:16:3e:00:00', "invalid mac `00:16:3e:00:00' (six hex bytes separated by colons)"],
    ['type=emu', "invalid type `emu' (vif or ioemu)"],
    ['vifname=averyveryverylongname', "vifname `averyveryverylongname' is longer than 15 characters (Linux IFNAMSIZ)"],
    ['bridge=xenbr0 ,mac=00:16:3e:00:00:01', "bridge `xenbr0 ' is not a valid interface name (no spaces, / or :)"],
    ['mtu=40', "mtu `40' is not a number from 68 to 65535"],
    ['mtu=1500x', "mtu `1500x' is not a number from 68 to 65535"],
    ['ip=10.0.0.300', "ip `10.0.0.300' is not an IP address"],
    ['rate=10mb/s', "rate: invalid rate in `10mb/s'"],
    ['foo=bar', "unrecognized argument `foo=bar'"],
    ['nonsense', "unrecognized argument `nonsense'"],
    ['vlan=10', 'vlan is not supported by xenode'],
  ];
  it.each(BAD)('rejects %j', (spec, detail) => {
    let err: unknown;
    try { parseVifSpec(spec, { file: 'n.cfg', line: 4, column: 9, key: 'vif' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`n.cfg:4: vif: vif specification \`${spec}': ${detail}`);
  });

  it('takes network-attach arguments one per token', () => {
    expect(parseVifArgs(['bridge=xenbr1', 'mac=00:16:3e:00:00:05']).nic).toEqual({ bridge: 'xenbr1', mac: '00:16:3e:00:00:05' });
  });
});

describe('libxl NIC defaults', () => {
  it('fills every default for a PV guest', () => {
    const r = resolveNicDefaults({}, { guestType: 'pv', devid: 0 });
    expect(r).toMatchObject({
      devid: 0, mtu: 1500, model: 'rtl8139', bridge: 'xenbr0', script: 'vif-bridge', nictype: 'vif', trusted: true,
    });
    expect(r.mac).toMatch(/^00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$/);
  });

  it('makes HVM NICs emulated at creation and PV-only when hot-plugged', () => {
    expect(resolveNicDefaults({}, { guestType: 'hvm', devid: 1 }).nictype).toBe('vif_ioemu');
    expect(resolveNicDefaults({}, { guestType: 'hvm', devid: 1, hotplug: true }).nictype).toBe('vif');
    expect(resolveNicDefaults({ nictype: 'vif' }, { guestType: 'hvm', devid: 1 }).nictype).toBe('vif');
  });

  it('refuses an emulated NIC on a PV guest, and a vifname with no room for -emu', () => {
    expect(() => resolveNicDefaults({ nictype: 'vif_ioemu' }, { guestType: 'pvh', devid: 0 })).toThrow(/needs an HVM guest/);
    expect(() => resolveNicDefaults({ ifname: 'twelvechars1' }, { guestType: 'hvm', devid: 0 })).toThrow(/-emu/);
  });

  it('keeps a given MAC and derives a stable one from a seed', () => {
    expect(resolveNicDefaults({ mac: '00:16:3e:38:d4:07' }, { guestType: 'pv', devid: 0 }).mac).toBe('00:16:3e:38:d4:07');
    expect(generateXenMac('uuid/vif/0')).toBe(generateXenMac('uuid/vif/0'));
    expect(generateXenMac('uuid/vif/0')).not.toBe(generateXenMac('uuid/vif/1'));
  });
});

describe('xl -N network-attach', () => {
  it('prints libxl_device_nic JSON with the rate fields', () => {
    expect(vifDryRunJson(parseVifArgs(['bridge=xenbr0', 'rate=10Mb/s@20ms']).nic)).toBe([
      'vif: {',
      '    "bridge": "xenbr0",',
      '    "rate_bytes_per_interval": 25000,',
      '    "rate_interval_usecs": 20000',
      '}', '', '',
    ].join('\n'));
  });

  it('prints fields in IDL order', () => {
    const { nic } = parseVifSpec('trusted,rate=1MB/s,vifname=v1,type=vif,script=vif-nat,ip=10.0.0.9,mac=00:16:3e:0a:0b:0c,model=e1000,mtu=9000,backend=dd');
    expect(vifDryRunJson(nic)).toBe([
      'vif: {',
      '    "backend_domname": "dd",',
      '    "mtu": 9000,',
      '    "model": "e1000",',
      '    "mac": "00:16:3e:0a:0b:0c",',
      '    "ip": "10.0.0.9",',
      '    "ifname": "v1",',
      '    "script": "vif-nat",',
      '    "nictype": "vif",',
      '    "rate_bytes_per_interval": 50000,',
      '    "rate_interval_usecs": 50000,',
      '    "trusted": "True"',
      '}', '', '',
    ].join('\n'));
  });

  it('prints an empty NIC as libxl does', () => {
    expect(vifDryRunJson({})).toBe('vif: {\n\n}\n\n');
  });
});
