// `xenode uplink BRIDGE IFACE`: bridge guests onto a real LAN by making the machine's own
// network interface a port of the guests' bridge (what Xen's old network-bridge script did).
// The machine's IPv4 addresses and routes move from IFACE to the bridge, which also takes
// IFACE's MAC so DHCP leases and neighbours' ARP caches stay valid.
//
// This changes the machine's own network configuration, so xenode never does it by itself:
// without --yes the command only prints what it would run (and how to undo it). All steps go
// to `ip -batch` in one call, so a remote session loses connectivity for a moment at most.
// Not persistent: a reboot or the distribution's network manager may undo it.
import { execFileSync } from 'node:child_process';
import { IP, validIfname } from './ip.js';

export interface IfState {
  mac: string;
  /** "198.18.0.5/24" style, IPv4 only. */
  addresses: string[];
  /** `ip route` lines that use the interface (dev IFACE), IPv4, kernel-installed ones left out. */
  routes: string[];
}

/** Reads what moving IFACE would carry over (read-only). */
export function readIfState(iface: string): IfState {
  const addrs = JSON.parse(execFileSync(IP, ['-j', '-4', 'addr', 'show', 'dev', iface], { encoding: 'utf8' })) as {
    address?: string;
    addr_info?: { local: string; prefixlen: number }[];
  }[];
  const link = JSON.parse(execFileSync(IP, ['-j', 'link', 'show', 'dev', iface], { encoding: 'utf8' })) as { address?: string }[];
  const routes = JSON.parse(execFileSync(IP, ['-j', '-4', 'route', 'show', 'dev', iface], { encoding: 'utf8' })) as {
    dst: string;
    gateway?: string;
    protocol?: string;
    metric?: number;
  }[];
  return {
    mac: link[0]?.address ?? '',
    addresses: (addrs[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
    routes: routes
      .filter((r) => r.protocol !== 'kernel')
      .map((r) => [r.dst, ...(r.gateway ? ['via', r.gateway] : []), ...(r.metric !== undefined ? ['metric', String(r.metric)] : [])].join(' ')),
  };
}

export interface UplinkPlan {
  apply: string[];
  undo: string[];
}

/** The `ip -batch` lines that move IFACE's configuration onto BRIDGE, and the reverse. */
export function uplinkPlan(bridge: string, iface: string, st: IfState, bridgeExists: boolean): UplinkPlan {
  if (!validIfname(bridge) || !validIfname(iface)) throw new Error('bad interface name');
  if (bridge === iface) throw new Error('the bridge and the uplink must differ');
  const apply: string[] = [];
  const undo: string[] = [];
  if (!bridgeExists) apply.push(`link add name ${bridge} type bridge`);
  if (st.mac) apply.push(`link set dev ${bridge} address ${st.mac}`);
  apply.push(`link set dev ${iface} master ${bridge}`, `link set dev ${bridge} up`);
  for (const a of st.addresses) apply.push(`addr del ${a} dev ${iface}`, `addr add ${a} dev ${bridge}`);
  for (const r of st.routes) apply.push(`route replace ${r} dev ${bridge}`);
  for (const a of st.addresses) undo.push(`addr del ${a} dev ${bridge}`, `addr add ${a} dev ${iface}`);
  undo.push(`link set dev ${iface} nomaster`);
  for (const r of st.routes) undo.push(`route replace ${r} dev ${iface}`);
  if (!bridgeExists) undo.push(`link del dev ${bridge}`);
  return { apply, undo };
}

export const UPLINK_WARNING = `This changes the machine's own network configuration:
  - IFACE becomes a port of BRIDGE; its IPv4 addresses and routes (the default route
    among them) move to BRIDGE, which also takes IFACE's MAC address;
  - every guest on BRIDGE is then on the same Ethernet segment as this machine: it can
    get a lease from the LAN's DHCP server and be reached by everyone on the LAN;
  - a firewall or network manager that refers to IFACE by name may need updating, and
    the change does not survive a reboot.
Run it from a console, not only over a network session on IFACE.`;

export function applyUplink(plan: UplinkPlan): void {
  execFileSync(IP, ['-batch', '-'], { input: plan.apply.join('\n') + '\n', stdio: ['pipe', 'inherit', 'inherit'] });
}
