// A DHCP client in the guest kernel, for `ip=dhcp`: what Linux's net/ipv4/ipconfig.c does
// before init runs. Like ipconfig.c it works below the guest's IP stack: it builds whole
// Ethernet frames and sends them on the NIC itself (netfront's TX ring), and sees replies
// before the stack does (a sniffer on netfront's RX path), so it needs no address, no route
// and no socket. DISCOVER -> OFFER -> REQUEST -> ACK (RFC 2131), broadcast flag set so
// the server answers to the broadcast address; retries with backoff. Unlike ipconfig.c, the
// lease is then kept: `rebind` asks the server to extend it (REQUEST with ciaddr, RFC 2131
// 4.4.5), which ipconfig.ts does at half the lease time.
import { randomInt } from 'node:crypto';
import type { NetDevice } from './netdev.js';
import { inetChecksum } from '../../../net/inet-csum.js';

const BOOTREQUEST = 1;
const BOOTREPLY = 2;
const DHCP_MAGIC = 0x63825363;
const DHCPDISCOVER = 1;
const DHCPOFFER = 2;
const DHCPREQUEST = 3;
const DHCPACK = 5;
const DHCPNAK = 6;
const OPT_PAD = 0;
const OPT_SUBNET = 1;
const OPT_ROUTER = 3;
const OPT_DNS = 6;
const OPT_HOSTNAME = 12;
const OPT_DOMAIN = 15;
const OPT_REQ_IP = 50;
const OPT_LEASE = 51;
const OPT_MSG_TYPE = 53;
const OPT_SERVER_ID = 54;
const OPT_PARAMS = 55;
const OPT_END = 255;

export interface DhcpLease {
  address: string;
  netmask: string;
  router?: string;
  dns: string[];
  server: string;
  leaseSecs?: number;
  hostname?: string;
  domain?: string;
}

function ip4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ip4bytes(s: string): number[] {
  return s.split('.').map(Number);
}

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

/** An Ethernet/IPv4/UDP frame from 0.0.0.0:68 to 255.255.255.255:67 carrying `bootp`. */
function frame(mac: string, bootp: Uint8Array): Uint8Array {
  const udpLen = 8 + bootp.length;
  const ipLen = 20 + udpLen;
  const f = new Uint8Array(14 + ipLen);
  f.fill(0xff, 0, 6);
  f.set(macBytes(mac), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  const ip = 14;
  f[ip] = 0x45;
  f[ip + 2] = ipLen >>> 8;
  f[ip + 3] = ipLen & 0xff;
  f[ip + 8] = 64; // TTL
  f[ip + 9] = 17; // UDP
  f.fill(255, ip + 16, ip + 20); // dst 255.255.255.255, src 0.0.0.0
  const c = inetChecksum(f, ip, ip + 20);
  f[ip + 10] = c >>> 8;
  f[ip + 11] = c & 0xff;
  const udp = ip + 20;
  f[udp + 1] = 68;
  f[udp + 3] = 67;
  f[udp + 4] = udpLen >>> 8;
  f[udp + 5] = udpLen & 0xff; // checksum 0: none (allowed over IPv4)
  f.set(bootp, udp + 8);
  return f;
}

function bootpMessage(mac: string, xid: number, secs: number, type: number, extra: number[], ciaddr?: string): Uint8Array {
  const b = new Uint8Array(300); // BOOTP minimum, options padded
  const v = new DataView(b.buffer);
  b[0] = BOOTREQUEST;
  b[1] = 1; // Ethernet
  b[2] = 6;
  v.setUint32(4, xid);
  v.setUint16(8, Math.min(secs, 0xffff));
  v.setUint16(10, 0x8000); // broadcast: we cannot receive unicast before we have an address
  if (ciaddr) b.set(ip4bytes(ciaddr), 12);
  b.set(macBytes(mac), 28);
  v.setUint32(236, DHCP_MAGIC);
  const opts = [OPT_MSG_TYPE, 1, type, OPT_PARAMS, 5, OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN, ...extra, OPT_END];
  b.set(opts, 240);
  return b;
}

interface Reply {
  type: number;
  yiaddr: string;
  options: Map<number, Uint8Array>;
}

/** Parses a frame if it is a BOOTREPLY for `xid` and `mac`; null otherwise. */
export function parseReply(f: Uint8Array, xid: number, mac: string): Reply | null {
  if (f.length < 14 + 20 + 8 + 240 || f[12] !== 0x08 || f[13] !== 0x00) return null;
  const ip = 14;
  if (f[ip]! >>> 4 !== 4 || f[ip + 9] !== 17) return null;
  const ihl = (f[ip]! & 0x0f) * 4;
  const udp = ip + ihl;
  if (f.length < udp + 8 + 240 || ((f[udp + 2]! << 8) | f[udp + 3]!) !== 68) return null;
  const b = f.subarray(udp + 8);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] !== BOOTREPLY || v.getUint32(4) !== xid || v.getUint32(236) !== DHCP_MAGIC) return null;
  const want = macBytes(mac);
  for (let i = 0; i < 6; i++) if (b[28 + i] !== want[i]) return null;
  const options = new Map<number, Uint8Array>();
  let o = 240;
  while (o < b.length) {
    const code = b[o]!;
    if (code === OPT_END) break;
    if (code === OPT_PAD) {
      o++;
      continue;
    }
    const len = b[o + 1];
    if (len === undefined || o + 2 + len > b.length) break;
    options.set(code, b.subarray(o + 2, o + 2 + len));
    o += 2 + len;
  }
  const type = options.get(OPT_MSG_TYPE)?.[0] ?? 0;
  return { type, yiaddr: ip4(b, 16), options };
}

function leaseOf(r: Reply): DhcpLease {
  const ips = (code: number) => {
    const v = r.options.get(code);
    const out: string[] = [];
    for (let i = 0; v && i + 4 <= v.length; i += 4) out.push(ip4(v, i));
    return out;
  };
  const text = (code: number) => {
    const v = r.options.get(code);
    return v ? Buffer.from(v).toString('latin1').replace(/\0+$/, '') : undefined;
  };
  const lease = r.options.get(OPT_LEASE);
  return {
    address: r.yiaddr,
    netmask: ips(OPT_SUBNET)[0] ?? '255.255.255.0',
    router: ips(OPT_ROUTER)[0],
    dns: ips(OPT_DNS),
    server: ips(OPT_SERVER_ID)[0] ?? '0.0.0.0',
    leaseSecs: lease && lease.length === 4 ? new DataView(lease.buffer, lease.byteOffset, 4).getUint32(0) : undefined,
    hostname: text(OPT_HOSTNAME),
    domain: text(OPT_DOMAIN),
  };
}

/** Runs DHCP on `dev` until a lease is acknowledged or `timeoutMs` passes (then null). */
export async function dhcp(dev: NetDevice, timeoutMs: number, log: (s: string) => void): Promise<DhcpLease | null> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  let pending: ((r: Reply) => void) | null = null;
  let xid = randomInt(1, 0x7fffffff);
  dev.sniffer = (f) => {
    const r = parseReply(f, xid, dev.mac);
    if (!r) return false;
    pending?.(r);
    return true; // ours: the guest's stack has no use for it
  };
  const exchange = (msg: Uint8Array, want: number[], waitMs: number): Promise<Reply | null> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending = null;
        resolve(null);
      }, waitMs);
      pending = (r) => {
        if (!want.includes(r.type)) return;
        clearTimeout(timer);
        pending = null;
        resolve(r);
      };
      if (!dev.xmit(frame(dev.mac, msg))) {
        clearTimeout(timer);
        pending = null;
        resolve(null);
      }
    });
  try {
    let wait = 1000;
    while (Date.now() < deadline) {
      const secs = Math.floor((Date.now() - start) / 1000);
      const offer = await exchange(bootpMessage(dev.mac, xid, secs, DHCPDISCOVER, []), [DHCPOFFER], Math.min(wait, deadline - Date.now()));
      if (!offer) {
        wait = Math.min(wait * 2, 4000);
        xid = randomInt(1, 0x7fffffff);
        continue;
      }
      const server = offer.options.get(OPT_SERVER_ID);
      const req = [OPT_REQ_IP, 4, ...ip4bytes(offer.yiaddr), ...(server && server.length === 4 ? [OPT_SERVER_ID, 4, ...server] : [])];
      const ack = await exchange(bootpMessage(dev.mac, xid, secs, DHCPREQUEST, req), [DHCPACK, DHCPNAK], Math.max(1, Math.min(2000, deadline - Date.now())));
      if (ack?.type === DHCPACK) return leaseOf(ack);
      log(`DHCP: ${ack ? 'NAK' : 'no ACK'} from server, retrying`);
      xid = randomInt(1, 0x7fffffff);
    }
    return null;
  } finally {
    dev.sniffer = null;
  }
}

/**
 * Extends a lease (RFC 2131's REBINDING request: ciaddr = our address, no server identifier,
 * broadcast, so any server of the LAN may answer). Resolves with the renewed lease, 'nak' if
 * the server refuses the address (it must then be given up), or null without an answer.
 */
export async function rebind(dev: NetDevice, lease: DhcpLease, timeoutMs: number): Promise<DhcpLease | 'nak' | null> {
  const xid = randomInt(1, 0x7fffffff);
  return new Promise((resolve) => {
    const done = (v: DhcpLease | 'nak' | null) => {
      clearTimeout(timer);
      if (dev.sniffer === sniff) dev.sniffer = null;
      resolve(v);
    };
    const sniff = (f: Uint8Array) => {
      const r = parseReply(f, xid, dev.mac);
      if (!r) return false;
      if (r.type === DHCPACK) done(leaseOf(r));
      else if (r.type === DHCPNAK) done('nak');
      return true;
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    // Below the stack like the first exchange; another exchange on this device wins.
    if (dev.sniffer) return done(null);
    dev.sniffer = sniff;
    if (!dev.xmit(frame(dev.mac, bootpMessage(dev.mac, xid, 0, DHCPREQUEST, [], lease.address)))) done(null);
  });
}
