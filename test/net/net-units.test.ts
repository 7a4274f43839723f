// The pieces of PV networking that need no root: offload mapping, checksum placement, the
// rate limiter, ip= parsing, the DHCP client's messages, the vif device entries, the uplink
// plan, the TAP fd pool.
import { describe, expect, it } from 'vitest';
import { findChecksum, newCsumPlace } from '../../net/csum-setup.js';
import { decodeVnetHdr, encodeVnetHdr, newVnetHdr, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP } from '../../net/vnet-hdr.js';
import { newPacketOffload, offloadFromRxFlags, offloadFromTxFlags, offloadFromVnet, rxFlagsOf, txFlagsOf, vnetFromOffload } from '../../drivers/netif/offload.js';
import { NETRXF_csum_blank, NETRXF_data_validated, NETTXF_csum_blank, NETTXF_data_validated, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6 } from '../../drivers/wire/netif.js';
import { MIN_BURST_BYTES, parseRateKey, TokenBucket } from '../../dom0/backends/netback/rate-limit.js';
import { classfulNetmask, maskToPrefix, parseIpParam, staticFromVifIp } from '../../guest/kernel/net/ipconfig.js';
import { parseReply } from '../../guest/kernel/net/dhcp.js';
import { vifDeviceEntries } from '../../dom0/toolstack/devices/vif.js';
import { parseVifSpec, resolveNicDefaults } from '../../dom0/toolstack/config/vif-spec.js';
import { uplinkPlan } from '../../net/uplink.js';
import { parseTunFds } from '../../guest/kernel/frontends/netfront/tap-provider.js';

/** Ethernet + IPv4 + TCP (or UDP) headers, as a stack would send them. */
function ipv4Packet(proto: 6 | 17, opts: { vlan?: boolean; frag?: boolean } = {}): Uint8Array {
  const p = new Uint8Array(200);
  let o = 12;
  if (opts.vlan) {
    p.set([0x81, 0x00, 0x00, 0x05], o);
    o += 4;
  }
  p.set([0x08, 0x00], o);
  o += 2;
  p[o] = 0x45;
  if (opts.frag) p[o + 6] = 0x20; // MF
  p[o + 9] = proto;
  o += 20;
  if (proto === 6) p[o + 12] = 0x80; // data offset 8 words: 32 bytes of TCP header
  return p;
}

function ipv6Packet(withHopByHop: boolean): Uint8Array {
  const p = new Uint8Array(200);
  p.set([0x86, 0xdd], 12);
  p[14] = 0x60;
  p[14 + 6] = withHopByHop ? 0 : 6;
  let o = 54;
  if (withHopByHop) {
    p[o] = 6; // next: TCP
    p[o + 1] = 0; // 8 bytes
    o += 8;
  }
  p[o + 12] = 0x50;
  return p;
}

describe('checksum placement (skb_checksum_setup)', () => {
  it('finds TCP and UDP over IPv4, with and without a VLAN tag', () => {
    const c = newCsumPlace();
    expect(findChecksum(ipv4Packet(6), 200, c)).toBe(true);
    expect(c).toMatchObject({ csumStart: 34, csumOffset: 16, hdrLen: 66, ipVersion: 4, proto: 6 });
    expect(findChecksum(ipv4Packet(17, { vlan: true }), 200, c)).toBe(true);
    expect(c).toMatchObject({ csumStart: 38, csumOffset: 6, ipVersion: 4, proto: 17 });
  });

  it('walks IPv6 extension headers', () => {
    const c = newCsumPlace();
    expect(findChecksum(ipv6Packet(false), 200, c)).toBe(true);
    expect(c).toMatchObject({ csumStart: 54, csumOffset: 16, hdrLen: 74, ipVersion: 6 });
    expect(findChecksum(ipv6Packet(true), 200, c)).toBe(true);
    expect(c.csumStart).toBe(62);
  });

  it('refuses fragments, other protocols and headers cut short', () => {
    const c = newCsumPlace();
    expect(findChecksum(ipv4Packet(6, { frag: true }), 200, c)).toBe(false);
    const icmp = ipv4Packet(6);
    icmp[23] = 1;
    expect(findChecksum(icmp, 200, c)).toBe(false);
    expect(findChecksum(ipv4Packet(6), 40, c)).toBe(false);
    expect(findChecksum(new Uint8Array(10), 10, c)).toBe(false);
  });
});

describe('offload between vnet headers and netif', () => {
  it('vnet -> netif: NEEDS_CSUM is csum_blank + data_validated, GSO TCPv4/v6 ride in extra info', () => {
    const o = newPacketOffload();
    const v = { ...newVnetHdr(), flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448 };
    expect(offloadFromVnet(v, o)).toBe(true);
    expect(o).toEqual({ csumBlank: true, dataValidated: true, gsoType: XEN_NETIF_GSO_TYPE_TCPV4, gsoSize: 1448 });
    expect(txFlagsOf(o)).toBe(NETTXF_csum_blank | NETTXF_data_validated);
    expect(rxFlagsOf(o)).toBe(NETRXF_csum_blank | NETRXF_data_validated);
    expect(offloadFromVnet({ ...v, gsoType: VIRTIO_NET_HDR_GSO_TCPV6 }, o)).toBe(true);
    expect(o.gsoType).toBe(XEN_NETIF_GSO_TYPE_TCPV6);
    expect(offloadFromVnet({ ...v, gsoType: VIRTIO_NET_HDR_GSO_UDP }, o)).toBe(false);
    expect(offloadFromVnet({ ...v, flags: VIRTIO_NET_HDR_F_DATA_VALID, gsoType: 0 }, o)).toBe(true);
    expect(o).toMatchObject({ csumBlank: false, dataValidated: true });
  });

  it('netif -> vnet: checksum place and GSO header length from the packet headers', () => {
    const o = newPacketOffload();
    offloadFromTxFlags(NETTXF_csum_blank | NETTXF_data_validated, o);
    o.gsoType = XEN_NETIF_GSO_TYPE_TCPV4;
    o.gsoSize = 1448;
    const v = newVnetHdr();
    expect(vnetFromOffload(o, ipv4Packet(6), 200, v)).toBe(true);
    expect(v).toEqual({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: 66, csumStart: 34, csumOffset: 16 });
    // GSO of the wrong IP version, or of UDP, or of size 0, is refused.
    o.gsoType = XEN_NETIF_GSO_TYPE_TCPV6;
    expect(vnetFromOffload(o, ipv4Packet(6), 200, v)).toBe(false);
    o.gsoType = XEN_NETIF_GSO_TYPE_TCPV4;
    expect(vnetFromOffload(o, ipv4Packet(17), 200, v)).toBe(false);
    o.gsoSize = 0;
    expect(vnetFromOffload(o, ipv4Packet(6), 200, v)).toBe(false);
    offloadFromRxFlags(NETRXF_data_validated, o);
    expect(vnetFromOffload(o, ipv4Packet(6), 200, v)).toBe(true);
    expect(v.flags).toBe(VIRTIO_NET_HDR_F_DATA_VALID);
  });

  it('the vnet header codec is little-endian, 12 bytes', () => {
    const b = new Uint8Array(12);
    encodeVnetHdr(b, { flags: 1, gsoType: 4, hdrLen: 0x0102, gsoSize: 0x0304, csumStart: 0x0506, csumOffset: 0x0708 });
    expect([...b]).toEqual([1, 4, 2, 1, 4, 3, 6, 5, 8, 7, 0, 0]);
    expect(decodeVnetHdr(b)).toEqual({ flags: 1, gsoType: 4, hdrLen: 0x0102, gsoSize: 0x0304, csumStart: 0x0506, csumOffset: 0x0708 });
  });
});

describe('the vif rate limiter (netback credit)', () => {
  it('reads libxl\'s rate key', () => {
    expect(parseRateKey('25000,20000')).toEqual({ bytesPerInterval: 25000, intervalUsecs: 20000 });
    expect(parseRateKey('')).toBeUndefined();
    expect(parseRateKey('0,20000')).toBeUndefined();
    expect(parseRateKey('abc')).toBeUndefined();
  });

  it('lets the configured rate through on average, charging each packet once', () => {
    // 10Mb/s@20ms: 25000 bytes per 20 ms.
    const tb = new TokenBucket({ bytesPerInterval: 25000, intervalUsecs: 20000 }, 0);
    let now = 0;
    let sent = 0;
    while (now < 10_000) {
      const wait = tb.take(1514, now);
      if (wait === 0) sent += 1514;
      else now += wait;
    }
    const rate = (sent * 1000) / now;
    expect(Math.abs(rate - 1_250_000) / 1_250_000).toBeLessThan(0.02);
    expect(tb.bytesPerSecond).toBe(1_250_000);
  });

  it('a 64 KiB GSO packet passes even when one interval is smaller', () => {
    const tb = new TokenBucket({ bytesPerInterval: 1000, intervalUsecs: 10000 }, 0);
    const wait = tb.take(65536, 0);
    expect(wait).toBeGreaterThan(0);
    expect(tb.take(65536, wait)).toBe(0);
    expect(MIN_BURST_BYTES).toBeGreaterThanOrEqual(65536);
  });
});

describe('kernel IP autoconfiguration (ip=)', () => {
  it('parses nfsroot.txt\'s forms', () => {
    expect(parseIpParam('dhcp')?.autoconf).toBe('dhcp');
    expect(parseIpParam('off')?.autoconf).toBe('off');
    expect(parseIpParam('198.18.1.10::198.18.0.1:255.254.0.0:web:eth0:off')).toMatchObject({
      client: '198.18.1.10', gateway: '198.18.0.1', netmask: '255.254.0.0', hostname: 'web', device: 'eth0', autoconf: 'static',
    });
    expect(parseIpParam(':::::eth1:dhcp')).toMatchObject({ device: 'eth1', autoconf: 'dhcp' });
    expect(parseIpParam('198.18.1.10:::::eth0:off:198.18.0.53')?.dns).toEqual(['198.18.0.53']);
  });

  it('netmasks: classful defaults, prefixes, vif ip= keys', () => {
    expect(classfulNetmask('10.1.2.3')).toBe('255.0.0.0');
    expect(classfulNetmask('172.16.0.1')).toBe('255.255.0.0');
    expect(classfulNetmask('198.18.1.1')).toBe('255.255.255.0');
    expect(maskToPrefix('255.254.0.0')).toBe(15);
    expect(staticFromVifIp('198.18.1.5/15')).toEqual({ address: '198.18.1.5', netmask: '255.254.0.0', dns: [] });
    expect(staticFromVifIp('fe80::1 198.18.1.6')?.address).toBe('198.18.1.6');
  });

  it('the DHCP client takes only replies for its own xid and MAC', () => {
    const mac = '00:16:3e:01:02:03';
    const frame = new Uint8Array(14 + 20 + 8 + 300);
    frame.set([0x08, 0x00], 12);
    frame[14] = 0x45;
    frame[14 + 9] = 17;
    frame.set([0, 67, 0, 68], 34);
    const b = frame.subarray(42);
    const v = new DataView(b.buffer, b.byteOffset);
    b[0] = 2;
    v.setUint32(4, 0x1234);
    b.set([198, 18, 0, 150], 16);
    b.set([0x00, 0x16, 0x3e, 0x01, 0x02, 0x03], 28);
    v.setUint32(236, 0x63825363);
    b.set([53, 1, 2, 1, 4, 255, 254, 0, 0, 3, 4, 198, 18, 0, 1, 54, 4, 198, 18, 0, 1, 255], 240);
    const r = parseReply(frame, 0x1234, mac);
    expect(r?.type).toBe(2);
    expect(r?.yiaddr).toBe('198.18.0.150');
    expect(parseReply(frame, 0x9999, mac)).toBeNull();
    expect(parseReply(frame, 0x1234, '00:16:3e:ff:ff:ff')).toBeNull();
  });
});

describe('the vif device kind and the TAP pool', () => {
  it('writes the keys libxl writes, rate as "bytes,usecs"', () => {
    const { nic } = parseVifSpec('bridge=xenbr0,mac=00:16:3e:38:d4:07,ip=198.18.1.5,rate=10Mb/s@20ms,vifname=web0');
    const e = vifDeviceEntries(resolveNicDefaults(nic, { guestType: 'pv', devid: 0 }));
    expect(e.type).toBe('vif');
    expect(e.backend).toMatchObject({ mac: '00:16:3e:38:d4:07', bridge: 'xenbr0', handle: '0', type: 'vif', mtu: '1500', ip: '198.18.1.5', vifname: 'web0', rate: '25000,20000' });
    expect(e.backend.script).toMatch(/\/net\/scripts\/vif-bridge$/);
    expect(e.frontend).toEqual({ handle: '0', mac: '00:16:3e:38:d4:07', mtu: '1500' });
  });

  it('a MAC left out is random under Xen\'s OUI', () => {
    const a = resolveNicDefaults({}, { guestType: 'pv', devid: 0 }).mac;
    const b = resolveNicDefaults({}, { guestType: 'pv', devid: 0 }).mac;
    expect(a).toMatch(/^00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$/);
    expect(a).not.toBe(b);
  });

  it('reads the jailer\'s fd list', () => {
    expect(parseTunFds('4-11')).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(parseTunFds('4,6')).toEqual([4, 6]);
    expect(parseTunFds(undefined)).toEqual([]);
  });
});

describe('xenode uplink (planned, never run here)', () => {
  it('moves addresses and routes to the bridge and says how to undo it', () => {
    const plan = uplinkPlan('xenbr0', 'eno1', { mac: '52:54:00:12:34:56', addresses: ['192.0.2.10/24'], routes: ['default via 192.0.2.1'] }, false);
    expect(plan.apply).toEqual([
      'link add name xenbr0 type bridge',
      'link set dev xenbr0 address 52:54:00:12:34:56',
      'link set dev eno1 master xenbr0',
      'link set dev xenbr0 up',
      'addr del 192.0.2.10/24 dev eno1',
      'addr add 192.0.2.10/24 dev xenbr0',
      'route replace default via 192.0.2.1 dev xenbr0',
    ]);
    expect(plan.undo).toContain('link set dev eno1 nomaster');
    expect(plan.undo).toContain('link del dev xenbr0');
    expect(() => uplinkPlan('eno1', 'eno1', { mac: '', addresses: [], routes: [] }, true)).toThrow();
  });
});

describe('TCP GRO (net/gro.ts)', () => {
  function csum(b: Uint8Array, from: number, to: number, acc = 0): number {
    let s = acc;
    for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  }
  /** An Ethernet/IPv4/TCP segment with valid checksums. */
  function segment(seq: number, payload: number, flags = 0x10): Uint8Array {
    const len = 14 + 20 + 20 + payload;
    const f = new Uint8Array(len);
    f.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00], 0);
    f.set([0x45, 0, (len - 14) >> 8, (len - 14) & 0xff, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], 14);
    const ipc = ~csum(f, 14, 34) & 0xffff;
    f[24] = ipc >> 8;
    f[25] = ipc & 0xff;
    const t = 34;
    f.set([0x13, 0x88, 0x30, 0x39], t);
    new DataView(f.buffer).setUint32(t + 4, seq);
    new DataView(f.buffer).setUint32(t + 8, 777);
    f[t + 12] = 0x50;
    f[t + 13] = flags;
    f[t + 14] = 0xff;
    for (let i = 0; i < payload; i++) f[t + 20 + i] = (seq + i) & 0xff;
    const tc = ~csum(f, t, len, csum(f, 26, 34) + 6 + (len - t)) & 0xffff;
    f[t + 16] = tc >> 8;
    f[t + 17] = tc & 0xff;
    return f;
  }

  it('merges consecutive segments into one GSO frame the kernel can take', async () => {
    const { TcpGro } = await import('../../net/gro.js');
    const out: { vnet: Uint8Array; frame: Uint8Array }[] = [];
    const gro = new TcpGro((vnet, frame) => (out.push({ vnet: vnet.slice(), frame: frame.slice() }), true));
    for (let i = 0; i < 3; i++) {
      const s = segment(1000 + i * 100, 100);
      expect(gro.add(s, s.length, false)).toBe(true);
    }
    expect(out).toHaveLength(0);
    gro.flush();
    expect(out).toHaveLength(1);
    const { vnet, frame } = out[0]!;
    expect(decodeVnetHdr(vnet)).toEqual({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 100, hdrLen: 54, csumStart: 34, csumOffset: 16 });
    expect(frame.length).toBe(54 + 300);
    expect((frame[16]! << 8) | frame[17]!).toBe(340); // IP total length
    expect(csum(frame, 14, 34)).toBe(0xffff); // IP header checksum valid
    // The TCP field holds the pseudo-header sum (CHECKSUM_PARTIAL), the payload is in order.
    expect((frame[50]! << 8) | frame[51]!).toBe(csum(frame, 26, 34, 6 + 320));
    for (let i = 0; i < 300; i++) expect(frame[54 + i]).toBe((1000 + i) & 0xff);
    expect(gro.merged).toBe(2);
  });

  it('leaves alone what it must not merge: a bad checksum, a gap, other protocols', async () => {
    const { TcpGro } = await import('../../net/gro.js');
    const out: Uint8Array[] = [];
    const gro = new TcpGro((_v, frame) => (out.push(frame.slice()), true));
    const a = segment(1000, 100);
    const bad = segment(1100, 100);
    bad[60]! ^= 0xff;
    expect(gro.add(a, a.length, false)).toBe(true);
    expect(gro.add(bad, bad.length, false)).toBe(false); // refused, and what was held is written
    expect(out).toHaveLength(1);
    const gap = segment(1300, 100);
    expect(gro.add(gap, gap.length, true)).toBe(true);
    const next = segment(1500, 100);
    expect(gro.add(next, next.length, true)).toBe(true); // not 1400: a new train
    expect(out).toHaveLength(2);
    const syn = segment(1600, 100, 0x12);
    expect(gro.add(syn, syn.length, true)).toBe(false);
    expect(gro.add(new Uint8Array(60), 60, true)).toBe(false);
    gro.flush();
    expect(out).toHaveLength(3);
  });
});
