// Kernel-level IP autoconfiguration, before init (Linux net/ipv4/ipconfig.c and
// Documentation/admin-guide/nfs/nfsroot.rst):
//
//   ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>
//   ip=dhcp | ip=on | ip=any | ip=both | ip=bootp    DHCP on the device (all of them if none named)
//   ip=off | ip=none                                 nothing at all
//
// Without ip= on the command line, a vif whose toolstack entry has ip= (vif = ['ip=198.18.1.5/15'])
// gets that address statically: the Xen way of handing a PV guest its address. So does a vif
// hot-plugged later (xl network-attach ... ip=), once its backend connects.
// A netmask left out comes from the address class, as ipconfig.c does. DNS servers (from DHCP
// or the ip= fields) go to /etc/resolv.conf. Messages are ipconfig.c's.
import { writeFileSync } from 'node:fs';
import { ip } from '../../../net/ip.js';
import { dhcp, rebind, type DhcpLease } from './dhcp.js';
import { netdevs, type NetDevice } from './netdev.js';

export interface IpParam {
  client?: string;
  server?: string;
  gateway?: string;
  netmask?: string;
  hostname?: string;
  device?: string;
  autoconf: 'off' | 'dhcp' | 'static';
  dns: string[];
}

const DYNAMIC = new Set(['on', 'any', 'dhcp', 'both', 'bootp', 'rarp']);

const isV4 = (s: string | undefined): s is string =>
  !!s && /^\d{1,3}(\.\d{1,3}){3}$/.test(s) && s.split('.').every((p) => Number(p) <= 255);

/** Parses the value of `ip=` (undefined when absent). */
export function parseIpParam(v: string | undefined): IpParam | undefined {
  if (v === undefined) return undefined;
  if (v === 'off' || v === 'none') return { autoconf: 'off', dns: [] };
  if (DYNAMIC.has(v)) return { autoconf: 'dhcp', dns: [] };
  const f = v.split(':');
  const field = (i: number) => (f[i] ?? '').trim() || undefined;
  const p: IpParam = {
    client: field(0),
    server: field(1),
    gateway: field(2),
    netmask: field(3),
    hostname: field(4),
    device: field(5),
    autoconf: 'static',
    dns: [field(7), field(8)].filter(isV4),
  };
  const auto = field(6);
  if (auto && DYNAMIC.has(auto)) p.autoconf = 'dhcp';
  else if (!isV4(p.client)) p.autoconf = auto === 'off' || auto === 'none' ? 'off' : 'dhcp';
  return p;
}

/** The class-based default ipconfig.c falls back to. */
export function classfulNetmask(addr: string): string {
  const a = Number(addr.split('.')[0]);
  return a < 128 ? '255.0.0.0' : a < 192 ? '255.255.0.0' : '255.255.255.0';
}

export function maskToPrefix(mask: string): number {
  return mask.split('.').reduce((n, o) => n + (Number(o) >>> 0).toString(2).replace(/0/g, '').length, 0);
}

function prefixToMask(len: number): string {
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join('.');
}

interface StaticConfig {
  address: string;
  netmask: string;
  gateway?: string;
  dns: string[];
  hostname?: string;
}

async function apply(dev: NetDevice, c: StaticConfig, printk: (s: string) => void): Promise<void> {
  const pfx = maskToPrefix(c.netmask);
  await ip([...dev.ipNetns, 'addr', 'add', `${c.address}/${pfx}`, 'dev', dev.name]);
  await ip([...dev.ipNetns, 'link', 'set', 'dev', dev.name, 'up']);
  if (c.gateway) await ip([...dev.ipNetns, 'route', 'replace', 'default', 'via', c.gateway, 'dev', dev.name]).catch((e) => printk(`IP-Config: cannot add the default route: ${(e as Error).message}`));
  // A routed vif (vif-route) has dom0 on the other end and no gateway: dom0 answers ARP for
  // its own addresses there, so everything is on-link.
  else if (dev.routed) await ip([...dev.ipNetns, 'route', 'replace', 'default', 'dev', dev.name]).catch((e) => printk(`IP-Config: cannot add the default route: ${(e as Error).message}`));
  if (c.dns.length && dev.ipNetns.length === 0) {
    try {
      writeFileSync('/etc/resolv.conf', c.dns.map((d) => `nameserver ${d}\n`).join(''));
    } catch {
      /* a read-only /etc: no DNS configuration */
    }
  }
  printk('IP-Config: Complete:');
  printk(`     device=${dev.name}, hwaddr=${dev.mac}, ipaddr=${c.address}, mask=${c.netmask}, gw=${c.gateway ?? '255.255.255.255'}`);
  printk(`     host=${c.hostname ?? c.address}, domain=, nis-domain=(none)`);
  if (c.dns.length) printk(`     nameserver0=${c.dns[0]}${c.dns[1] ? `, nameserver1=${c.dns[1]}` : ''}`);
}

/** From a vif's ip= key: "198.18.1.5/15" or "198.18.1.5 198.18.1.6" (the first IPv4 wins). */
export function staticFromVifIp(v: string): StaticConfig | undefined {
  for (const w of v.trim().split(/\s+/)) {
    const [addr, len] = w.split('/');
    if (!isV4(addr)) continue;
    const n = len !== undefined && /^\d+$/.test(len) && Number(len) <= 32 ? Number(len) : undefined;
    return { address: addr, netmask: n !== undefined ? prefixToMask(n) : classfulNetmask(addr), dns: [] };
  }
  return undefined;
}

export interface IpAutoconfigOptions {
  /** The value of ip= on the kernel command line, if any. */
  ipParam: string | undefined;
  /** devids of the vifs this domain has (device/vif/). */
  vifs: number[];
  /** A vif's ip= as the toolstack wrote it (backend key), if any: without it, every vif is
   * waited for and its netfront asked. */
  backendIp?: (devid: number) => Promise<string | undefined>;
  printk: (s: string) => void;
  /** How long to wait for the NICs' backends to connect. */
  carrierTimeoutMs?: number;
  dhcpTimeoutMs?: number;
}

/** Configures the guest's NICs before init; never throws (a failure is printed, as Linux does). */
export async function ipAutoconfig(o: IpAutoconfigOptions): Promise<void> {
  const param = parseIpParam(o.ipParam);
  if (param?.autoconf === 'off' || o.vifs.length === 0) return;
  // Without ip=, only vifs the toolstack gave an address are waited for and configured.
  const statics = new Map<number, StaticConfig>();
  if (!param && o.backendIp) {
    for (const id of o.vifs) {
      const v = await o.backendIp(id).catch(() => undefined);
      const c = v ? staticFromVifIp(v) : undefined;
      if (c) statics.set(id, c);
    }
    if (statics.size === 0) return;
  }
  const want = param || !o.backendIp ? o.vifs : [...statics.keys()];
  const devs = await netdevs.waitFor(want, o.carrierTimeoutMs ?? 10_000);
  if (devs.length < want.length) o.printk(`IP-Config: ${want.length - devs.length} network device(s) did not get a carrier in time`);
  try {
    if (!param) {
      for (const dev of devs) {
        const c = statics.get(dev.devid) ?? (dev.backendIp ? staticFromVifIp(dev.backendIp) : undefined);
        if (c) await apply(dev, c, o.printk);
      }
      return;
    }
    const candidates = param.device ? devs.filter((d) => d.name === param.device) : devs;
    if (candidates.length === 0) {
      o.printk(`IP-Config: Device \`${param.device ?? 'eth0'}' not found`);
      return;
    }
    if (param.autoconf === 'static' && isV4(param.client)) {
      const dev = candidates[0]!;
      await apply(
        dev,
        {
          address: param.client,
          netmask: isV4(param.netmask) ? param.netmask : classfulNetmask(param.client),
          gateway: isV4(param.gateway) ? param.gateway : undefined,
          dns: param.dns,
          hostname: param.hostname,
        },
        o.printk,
      );
      return;
    }
    // DHCP on every candidate at once; the first answer wins (ipconfig.c's ic_dynamic).
    o.printk('Sending DHCP requests .');
    const timeout = o.dhcpTimeoutMs ?? 20_000;
    const results = await Promise.all(candidates.map(async (dev) => ({ dev, lease: await dhcp(dev, timeout, o.printk) })));
    const got = results.find((r): r is { dev: NetDevice; lease: DhcpLease } => r.lease !== null);
    if (!got) {
      o.printk('IP-Config: Auto-configuration of network failed');
      return;
    }
    const { dev, lease } = got;
    o.printk(`IP-Config: Got DHCP answer from ${lease.server}, my address is ${lease.address}`);
    const fromLease = (l: DhcpLease): StaticConfig => ({
      address: l.address,
      netmask: l.netmask,
      gateway: isV4(param.gateway) ? param.gateway : l.router,
      dns: param.dns.length ? param.dns : l.dns,
      hostname: param.hostname ?? l.hostname,
    });
    await apply(dev, fromLease(lease), o.printk);
    keepLease(dev, lease, fromLease, o.printk, o.dhcpTimeoutMs ?? 20_000);
  } catch (e) {
    o.printk(`IP-Config: ${(e as Error).message}`);
  }
}

/** NICs hot-plugged into the running guest (xl network-attach) whose vif has ip= get that
 * address once their backend connects, as the ones present at boot do. Without ip= they stay
 * unconfigured, as a hot-plugged NIC in Linux does until userland configures it. */
export function configureHotplugged(printk: (s: string) => void, carrierTimeoutMs = 20_000): () => void {
  return netdevs.onAdd((dev) => {
    void (async () => {
      const [ready] = await netdevs.waitFor([dev.devid], carrierTimeoutMs);
      if (!ready || ready !== dev) return;
      const c = dev.backendIp ? staticFromVifIp(dev.backendIp) : undefined;
      if (c) await apply(dev, c, printk).catch((e) => printk(`IP-Config: ${dev.name}: ${(e as Error).message}`));
    })();
  });
}

/**
 * Keeps a DHCP lease for as long as the guest runs (dhclient's job on a Linux system; Linux's
 * ipconfig.c never renews): at half the lease time ask the server to extend it, retrying at
 * half the time left while there is no answer. A NAK, or an expiry without an answer, gives
 * the address up and starts over with DISCOVER, as RFC 2131 says. Leases of 2^32-1 seconds
 * are infinite.
 */
export function keepLease(dev: NetDevice, first: DhcpLease, toConfig: (l: DhcpLease) => StaticConfig, printk: (s: string) => void, dhcpTimeoutMs: number): void {
  let lease = first;
  let expires = Date.now() + (lease.leaseSecs ?? 0) * 1000;
  const later = (ms: number) => setTimeout(() => void tick(), Math.max(1000, Math.min(ms, 2 ** 31 - 1)));
  const giveUp = async (why: string) => {
    printk(`IP-Config: ${dev.name}: ${why}; giving up ${lease.address}`);
    await ip([...dev.ipNetns, 'addr', 'del', `${lease.address}/${maskToPrefix(lease.netmask)}`, 'dev', dev.name]).catch(() => {});
    const fresh = await dhcp(dev, dhcpTimeoutMs, printk);
    if (!fresh) {
      printk(`IP-Config: ${dev.name}: no DHCP answer; trying again in 60 s`);
      expires = 0;
      later(60_000);
      return;
    }
    printk(`IP-Config: Got DHCP answer from ${fresh.server}, my address is ${fresh.address}`);
    await apply(dev, toConfig(fresh), printk).catch((e) => printk(`IP-Config: ${(e as Error).message}`));
    start(fresh);
  };
  const tick = async () => {
    if (!netdevs.all().includes(dev)) return; // the NIC was unplugged: its lease goes with it
    if (!dev.carrier()) return later(5000);
    if (expires === 0) return giveUp('no lease');
    const r = await rebind(dev, lease, 4000);
    if (r === 'nak') return giveUp('the server refused the lease (NAK)');
    if (r && r.address === lease.address) return start(r);
    const left = expires - Date.now();
    if (left <= 0) return giveUp('the lease expired without an answer');
    later(left / 2);
  };
  const start = (l: DhcpLease) => {
    lease = l;
    const secs = l.leaseSecs;
    if (secs === undefined || secs === 0xffffffff) return;
    expires = Date.now() + secs * 1000;
    later((secs * 1000) / 2);
  };
  start(first);
}
