// The test LAN: a "LAN host" that is a network namespace joined to a guests' bridge by a veth,
// addressed in 198.18.0.0/15 (RFC 2544's benchmarking range, never routed on the Internet),
// running dnsmasq as the LAN's DHCP server. `xenode lan up|down|exec`, the tests and the
// benchmarks all use it. It touches nothing of the machine's own: no address on the bridge,
// no route, no firewall rule, no uplink; everything it makes carries a name marking it as
// xenode's and goes away with `lan down` (the bridge too, if the LAN created it and nothing
// else is plugged in).
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDir } from '../common/paths.js';
import { ensureBridge, removeBridgeIfUnused } from './bridge.js';
import { IP, ipSync, linkExists, netnsExists, validIfname } from './ip.js';

export interface LanSpec {
  /** The guests' bridge the LAN host joins (xenbr0 unless told). */
  bridge: string;
  /** The LAN host's network namespace. */
  netns: string;
  /** The veth end plugged into the bridge (in dom0's namespace). */
  hostIf: string;
  /** The LAN host's interface inside its namespace. */
  lanIf: string;
  /** The LAN host's address, with prefix. */
  address: string;
  /** dnsmasq's pool. */
  dhcpRange: [string, string];
  dhcpNetmask: string;
  /** dnsmasq's lease time (its syntax: 12h, 2m ...; 2 minutes at least). */
  leaseTime: string;
  /** Where dnsmasq's pid, lease and log files live. */
  stateDir: string;
}

export const LAN_PREFIX = 15;

export function lanSpec(opts: { bridge?: string; netns?: string; hostIf?: string; stateDir?: string; leaseTime?: string } = {}): LanSpec {
  const netns = opts.netns ?? 'xenode-lan';
  return {
    bridge: opts.bridge ?? 'xenbr0',
    netns,
    hostIf: opts.hostIf ?? (netns === 'xenode-lan' ? 'xnlan0' : `xnl-${netns.replace(/[^A-Za-z0-9]/g, '').slice(-10)}`),
    lanIf: 'lan0',
    address: `198.18.0.1/${LAN_PREFIX}`,
    dhcpRange: ['198.18.0.100', '198.18.0.199'],
    dhcpNetmask: '255.254.0.0',
    leaseTime: opts.leaseTime ?? '12h',
    stateDir: opts.stateDir ?? join(runDir(), 'lan', netns),
  };
}

/** The LAN host's own address, without prefix. */
export function lanHostAddress(spec: LanSpec): string {
  return spec.address.split('/')[0]!;
}

function check(spec: LanSpec): void {
  for (const n of [spec.bridge, spec.hostIf, spec.lanIf]) if (!validIfname(n)) throw new Error(`"${n}" is not a valid interface name`);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(spec.netns)) throw new Error(`"${spec.netns}" is not a valid namespace name`);
}

/** The LAN's dnsmasq: the process whose command line names this LAN's pid file (found even
 * when the state directory is already gone, so a teardown in any order stops it). */
function dnsmasqPid(spec: LanSpec): number | null {
  const mine = (pid: number) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv[0]!.endsWith('dnsmasq') && argv.includes(`--pid-file=${join(spec.stateDir, 'dnsmasq.pid')}`);
    } catch {
      return false;
    }
  };
  try {
    const pid = Number(readFileSync(join(spec.stateDir, 'dnsmasq.pid'), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && mine(pid)) return pid;
  } catch {
    /* no pid file: look for it */
  }
  for (const d of readdirSync('/proc')) if (/^\d+$/.test(d) && mine(Number(d))) return Number(d);
  return null;
}

/** The bridge the LAN was brought up on (recorded at `up`), else the spec's. */
function lanBridge(spec: LanSpec): string {
  try {
    return readFileSync(join(spec.stateDir, 'bridge'), 'utf8').trim() || spec.bridge;
  } catch {
    return spec.bridge;
  }
}

export interface LanStatus {
  up: boolean;
  bridge: string;
  netns: string;
  address: string;
  dhcp: boolean;
  leases: { mac: string; address: string; hostname: string }[];
}

export function lanStatus(spec: LanSpec): LanStatus {
  const leases: LanStatus['leases'] = [];
  try {
    for (const line of readFileSync(join(spec.stateDir, 'dnsmasq.leases'), 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 4) leases.push({ mac: f[1]!, address: f[2]!, hostname: f[3]! });
    }
  } catch {
    /* no leases yet */
  }
  return { up: netnsExists(spec.netns), bridge: lanBridge(spec), netns: spec.netns, address: spec.address, dhcp: dnsmasqPid(spec) !== null, leases };
}

/** Brings the LAN up; on any failure undoes what it did and throws. */
export async function lanUp(spec: LanSpec): Promise<LanStatus> {
  check(spec);
  if (netnsExists(spec.netns)) throw new Error(`the LAN namespace ${spec.netns} already exists (xenode lan down first)`);
  if (linkExists(spec.hostIf)) throw new Error(`an interface named ${spec.hostIf} already exists`);
  try {
    ensureBridge(spec.bridge);
    ipSync(['netns', 'add', spec.netns]);
    ipSync(['link', 'add', spec.hostIf, 'type', 'veth', 'peer', 'name', spec.lanIf, 'netns', spec.netns]);
    ipSync(['link', 'set', 'dev', spec.hostIf, 'master', spec.bridge, 'up']);
    ipSync(['-n', spec.netns, 'link', 'set', 'dev', 'lo', 'up']);
    ipSync(['-n', spec.netns, 'addr', 'add', spec.address, 'dev', spec.lanIf]);
    ipSync(['-n', spec.netns, 'link', 'set', 'dev', spec.lanIf, 'up']);
    await startDnsmasq(spec);
  } catch (e) {
    lanDown(spec);
    throw e;
  }
  return lanStatus(spec);
}

async function startDnsmasq(spec: LanSpec): Promise<void> {
  mkdirSync(spec.stateDir, { recursive: true });
  writeFileSync(join(spec.stateDir, 'bridge'), `${spec.bridge}\n`);
  const pidFile = join(spec.stateDir, 'dnsmasq.pid');
  rmSync(pidFile, { force: true });
  writeFileSync(join(spec.stateDir, 'dnsmasq.leases'), '');
  const args = [
    'netns', 'exec', spec.netns, 'dnsmasq',
    '--conf-file=/dev/null',
    `--pid-file=${pidFile}`,
    `--dhcp-leasefile=${join(spec.stateDir, 'dnsmasq.leases')}`,
    `--log-facility=${join(spec.stateDir, 'dnsmasq.log')}`,
    '--log-dhcp',
    '--port=0', // DHCP only: no DNS service
    `--interface=${spec.lanIf}`,
    '--bind-interfaces',
    `--dhcp-range=${spec.dhcpRange[0]},${spec.dhcpRange[1]},${spec.dhcpNetmask},${spec.leaseTime}`,
    `--dhcp-option=option:router,${lanHostAddress(spec)}`,
    '--dhcp-authoritative',
    '--no-ping', // our own segment: no need to probe an address before offering it
  ];
  const r = spawnSync(IP, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dnsmasq did not start: ${(r.stderr || r.stdout || '').trim()}`);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (dnsmasqPid(spec) !== null) return;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`dnsmasq did not write ${pidFile}`);
}

/** Removes the LAN: dnsmasq, the namespace (and with it the veth), the bridge if we made it
 * and it is now empty. Best effort: safe after a partial `up` or twice. */
export function lanDown(spec: LanSpec): void {
  const bridge = lanBridge(spec);
  const pid = dnsmasqPid(spec);
  if (pid !== null) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && existsSync(`/proc/${pid}`)) spawnSync('sleep', ['0.02']);
  }
  if (netnsExists(spec.netns)) spawnSync(IP, ['netns', 'del', spec.netns]);
  if (linkExists(spec.hostIf)) spawnSync(IP, ['link', 'del', 'dev', spec.hostIf]);
  removeBridgeIfUnused(bridge);
  rmSync(spec.stateDir, { recursive: true, force: true });
}

/** Runs a program on the LAN host (inherits stdio when `inherit`). */
export function lanExecSync(spec: LanSpec, argv: string[], opts: { inherit?: boolean; timeoutMs?: number; input?: string } = {}): SpawnSyncReturns<string> {
  if (!netnsExists(spec.netns)) throw new Error(`the LAN is not up (no namespace ${spec.netns}): xenode lan up`);
  return spawnSync(IP, ['netns', 'exec', spec.netns, ...argv], {
    encoding: 'utf8',
    stdio: opts.inherit ? 'inherit' : ['pipe', 'pipe', 'pipe'],
    timeout: opts.timeoutMs,
    input: opts.input,
  });
}

/** The same, in the background (a server for the duration of a test). */
export function lanSpawn(spec: LanSpec, argv: string[]): ChildProcess {
  return spawn(IP, ['netns', 'exec', spec.netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Another host on the LAN: namespace `netns` joined to the bridge by a plain veth, with
 * `address` (the benchmarks' native baseline, and a second LAN host for tests). */
export function addLanHost(spec: LanSpec, netns: string, hostIf: string, address: string): void {
  if (!validIfname(hostIf) || !/^[A-Za-z0-9_.-]{1,64}$/.test(netns)) throw new Error('bad LAN host names');
  try {
    ipSync(['netns', 'add', netns]);
    ipSync(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    ipSync(['link', 'set', 'dev', hostIf, 'master', spec.bridge, 'up']);
    ipSync(['-n', netns, 'link', 'set', 'dev', 'lo', 'up']);
    ipSync(['-n', netns, 'addr', 'add', address, 'dev', 'eth0']);
    ipSync(['-n', netns, 'link', 'set', 'dev', 'eth0', 'up']);
  } catch (e) {
    removeLanHost(netns, hostIf);
    throw e;
  }
}

export function removeLanHost(netns: string, hostIf: string): void {
  if (netnsExists(netns)) spawnSync(IP, ['netns', 'del', netns]);
  if (linkExists(hostIf)) spawnSync(IP, ['link', 'del', 'dev', hostIf]);
}
