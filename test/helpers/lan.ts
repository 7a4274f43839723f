// The test LAN for network tests: the same code as `xenode lan up` (net/test-lan.ts), on a
// private bridge xnbr-<label> with a private LAN host namespace xnlan-<label>, so a test never
// meets a user's xenbr0 or another suite. down() removes everything the suite made (LAN,
// extra hosts, left-over vifs of this suite's bridge) and is safe after a failure.
import { existsSync, readdirSync } from 'node:fs';
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { addLanHost, lanDown, lanExecSync, lanHostAddress, lanSpawn, lanSpec, lanStatus, lanUp, removeLanHost, type LanSpec } from '../../net/test-lan.js';
import { isBridge } from '../../net/bridge.js';
import { inCI, isRoot } from './instance.js';

/** Why network tests cannot run here, or null. */
export function netSkipReason(): string | null {
  if (!isRoot) return 'needs root';
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  for (const tool of ['/usr/sbin/dnsmasq', '/usr/bin/iperf3', '/usr/bin/curl', '/usr/bin/ping']) {
    if (!existsSync(tool)) return `needs ${tool} (scripts/setup.sh installs it)`;
  }
  return null;
}

/** describe.skipIf(netShouldSkip())(...): under CI a missing requirement fails instead. */
export function netShouldSkip(): boolean {
  const why = netSkipReason();
  if (why && inCI) throw new Error(`CI requires the network suites, but they cannot run: ${why}`);
  if (why) console.warn(`skipping network suite: ${why}`);
  return why !== null;
}

export class TestLan {
  readonly spec: LanSpec;
  readonly bridge: string;
  private readonly hosts: { netns: string; hostIf: string }[] = [];

  constructor(readonly label: string, stateDir: string, opts: { leaseTime?: string } = {}) {
    if (label.length > 8) throw new Error('TestLan label: at most 8 characters (interface names)');
    this.bridge = `xnbr-${label}`;
    this.spec = lanSpec({ bridge: this.bridge, netns: `xnlan-${label}`, hostIf: `xnl-${label}`, stateDir: join(stateDir, 'lan'), leaseTime: opts.leaseTime });
  }

  /** The LAN host's address (198.18.0.1). */
  get host(): string {
    return lanHostAddress(this.spec);
  }

  async up(): Promise<void> {
    this.down(); // leftovers of an earlier, killed run
    await lanUp(this.spec);
  }

  /** The LAN's dnsmasq is running. */
  dhcpRunning(): boolean {
    return lanStatus(this.spec).dhcp;
  }

  leases(): { mac: string; address: string }[] {
    return lanStatus(this.spec).leases;
  }

  exec(argv: string[], timeoutMs = 20_000): { code: number; out: string } {
    const r = lanExecSync(this.spec, argv, { timeoutMs });
    return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  }

  /** The same without blocking this process (when the data path runs in it: hostile tests). */
  run(argv: string[], timeoutMs = 20_000): Promise<{ code: number; out: string }> {
    return runIn(this.spec.netns, argv, timeoutMs);
  }

  spawn(argv: string[]): ChildProcess {
    return lanSpawn(this.spec, argv);
  }

  /** ping from the LAN host; true when all `count` answers came back. */
  ping(addr: string, count = 3, intervalS = 0.2): boolean {
    return this.exec(['ping', '-c', String(count), '-i', String(intervalS), '-W', '2', addr]).code === 0;
  }

  /** Another host on the LAN (the benchmarks' native baseline). */
  addHost(name: string, address: string): { netns: string; exec: (argv: string[], timeoutMs?: number) => { code: number; out: string } } {
    const netns = `xnh${name}-${this.label}`.slice(0, 30);
    const hostIf = `xnh${name}${this.label}`.slice(0, 15);
    removeLanHost(netns, hostIf);
    addLanHost(this.spec, netns, hostIf, address);
    this.hosts.push({ netns, hostIf });
    return {
      netns,
      exec: (argv, timeoutMs = 20_000) => {
        const r = spawnSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8', timeout: timeoutMs });
        return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
      },
    };
  }

  down(): void {
    for (const h of this.hosts.splice(0)) removeLanHost(h.netns, h.hostIf);
    lanDown(this.spec);
    // vifs still plugged into our bridge (a suite killed mid-way): unplug, then drop the bridge.
    if (isBridge(this.bridge)) {
      for (const port of readdirSync(`/sys/class/net/${this.bridge}/brif`)) spawnSync('ip', ['link', 'set', 'dev', port, 'nomaster']);
      spawnSync('ip', ['link', 'del', 'dev', this.bridge]);
    }
  }
}

/** Runs argv in a network namespace, asynchronously. */
export function runIn(netns: string, argv: string[], timeoutMs = 20_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Interfaces and namespaces of ours still on the machine (for leak assertions). */
export function leftovers(label: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync('/sys/class/net')) if (n.includes(label)) out.push(n);
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of ns.split('\n')) if (line.includes(label)) out.push(`netns:${line.split(' ')[0]}`);
  return out;
}
