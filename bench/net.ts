// PV network benchmark (npm run bench:net; needs root). On a private xenode instance and a
// private test LAN (bridge xnbr-bnch, LAN host 198.18.0.1 with the clients):
//   targets  pv-offload   a PV guest, netfront with checksum/TSO offloads (the default)
//            pv-nooffload a PV guest booted with xen_netfront.offload=0 (MTU-sized frames)
//            native       a namespace joined to the same bridge by a plain veth (baseline)
//   1. iperf3, one TCP stream, LAN host -> target and target -> LAN host (-R);
//   2. UDP request/response latency (64-byte datagrams, one outstanding): p50 / p99;
//   3. small-packet UDP (64-byte payloads) frames per second delivered to the target;
// interleaved over several rounds (medians), with netback's notifications per packet and
// average ring batch sizes for the PV guests. Prints a table, writes JSON to bench/results/.
// Every run is bounded in time; everything is torn down on success, error or signal.
// Record results in docs/benchmarks.md ("## PV network").
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { BenchInstance, ROOT } from './lib/instance.js';
import { fmt, median, table } from './lib/stats.js';
import { addLanHost, lanDown, lanSpawn, lanSpec, lanUp, removeLanHost, type LanSpec } from '../net/test-lan.js';

const QUICK = process.env.BENCH_QUICK === '1';
/** More kernel parameters for both PV guests (BENCH_GUEST_EXTRA='xen_netfront.busy_poll=0'),
 * to compare driver settings; dom0's side is XENODE_NET_BUSY_POLL_US. */
const GUEST_EXTRA = process.env.BENCH_GUEST_EXTRA ? ` ${process.env.BENCH_GUEST_EXTRA}` : '';
const CFG = {
  rounds: Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3)),
  tcpSeconds: QUICK ? 2 : 4,
  udpSeconds: QUICK ? 2 : 3,
  rrCount: QUICK ? 500 : 2000,
  hardLimitMs: 15 * 60_000,
};
const TARGETS = { tcpOffloadRatio: 0.5, tcpOffloadAim: 0.75, tcpNoOffloadRatio: 0.1, latencyP50Over: 1.5 };

const BRIDGE = 'xnbr-bnch';
const ADDR = { 'pv-offload': '198.18.2.10', 'pv-nooffload': '198.18.2.11', native: '198.18.2.3' } as const;
type Target = keyof typeof ADDR;
const TARGET_NAMES = Object.keys(ADDR) as Target[];
const BASE_NS = 'xnbase-bnch';
const BASE_IF = 'xnb-bnch';

const log = (m: string) => process.stderr.write(`[bench:net] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A UDP echo server on port 7. */
const ECHO_SERVER = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 7))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)`;

/** What each target runs: iperf3 -s and the echo server. */
const GUEST_SCRIPT = `#!/bin/sh\n/usr/bin/iperf3 -s -D\nexec /usr/bin/python3 -c '${ECHO_SERVER}'\n`;

/** UDP request/response from the LAN host: one datagram outstanding, RTTs in microseconds. */
const RR_CLIENT = `import socket, sys, time, json
host, n, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
msg = b"x" * 64
rtts = []
lost = 0
for i in range(n + warm):
    t = time.perf_counter_ns()
    s.sendto(msg, (host, 7))
    try:
        s.recvfrom(2048)
    except socket.timeout:
        lost += 1
        continue
    if i >= warm:
        rtts.append((time.perf_counter_ns() - t) / 1000)
rtts.sort()
if not rtts:
    sys.exit(1)
print(json.dumps({"p50": rtts[len(rtts) // 2], "p99": rtts[int(len(rtts) * 0.99)], "n": len(rtts), "lost": lost}))
`;

function inNs(netns: string, argv: string[], timeoutMs: number): { code: number; out: string } {
  const r = spawnSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function iperfTcp(lan: LanSpec, addr: string, reverse: boolean): number {
  const r = inNs(lan.netns, ['iperf3', '-c', addr, '-t', String(CFG.tcpSeconds), '-J', ...(reverse ? ['-R'] : [])], (CFG.tcpSeconds + 20) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 to ${addr}${reverse ? ' -R' : ''}: ${r.out.slice(0, 400)}`);
  return (JSON.parse(r.out).end.sum_received.bits_per_second as number) / 1e9;
}

function udpSmallPps(lan: LanSpec, addr: string): number {
  const r = inNs(lan.netns, ['iperf3', '-c', addr, '-u', '-l', '64', '-b', '0', '-t', String(CFG.udpSeconds), '-J'], (CFG.udpSeconds + 20) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 -u to ${addr}: ${r.out.slice(0, 400)}`);
  const end = JSON.parse(r.out).end;
  const sum = end.sum_received ?? end.sum;
  const received = (sum.packets as number) - ((sum.lost_packets as number) ?? 0);
  return received / (sum.seconds as number);
}

function udpRr(lan: LanSpec, addr: string): { p50: number; p99: number; lost: number } {
  const r = inNs(lan.netns, ['/usr/bin/python3', '-c', RR_CLIENT, addr, String(CFG.rrCount), '50'], 120_000);
  if (r.code !== 0) throw new Error(`UDP request/response to ${addr}: ${r.out.slice(0, 400)}`);
  return JSON.parse(r.out.trim().split('\n').pop()!);
}

async function netStats(inst: BenchInstance, dom: string): Promise<Record<string, number>> {
  const out = await inst.xl('network-stats', dom);
  const r: Record<string, number> = {};
  for (const m of out.matchAll(/^\s+(\w+)\s+([\d.]+)$/gm)) r[m[1]!] = Number(m[2]);
  return r;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(b)) d[k] = (b[k] ?? 0) - (a[k] ?? 0);
  return d;
}

let consoleTail: (() => string) | undefined;

async function waitUdpEcho(lan: LanSpec, addr: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const r = inNs(lan.netns, ['/usr/bin/python3', '-c', RR_CLIENT, addr, '3', '0'], 10_000);
    if (r.code === 0 && /"n": [1-9]/.test(r.out)) return;
    await sleep(300);
  }
  throw new Error(`${addr} does not answer UDP echo (console: ${consoleTail?.() ?? ''})`);
}

async function main(): Promise<void> {
  const inst = new BenchInstance('net');
  const lan = lanSpec({ bridge: BRIDGE, netns: 'xnlan-bnch', hostIf: 'xnl-bnch', stateDir: join(inst.dir, 'lan') });
  const children: ChildProcess[] = [];
  const cleanup = async () => {
    for (const c of children) c.kill('SIGKILL');
    removeLanHost(BASE_NS, BASE_IF);
    lanDown(lan); // before the instance dir (which holds the LAN's state) goes
    await inst.stop().catch(() => undefined);
  };
  const hard = setTimeout(() => {
    log('hard time limit reached: cleaning up');
    void cleanup().then(() => process.exit(2));
  }, CFG.hardLimitMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

  try {
    log('starting a private xenode and the test LAN');
    await inst.start();
    await lanUp(lan);
    addLanHost(lan, BASE_NS, BASE_IF, `${ADDR.native}/15`);
    // The same servers on every target.
    children.push(spawnNative(BASE_NS, ['iperf3', '-s']));
    children.push(spawnNative(BASE_NS, ['/usr/bin/python3', '-c', ECHO_SERVER]));
    // The guests see /boot of this private instance: the server script goes there.
    const boot = join(inst.env.XENODE_RUN_DIR!, 'boot');
    writeFileSync(join(boot, 'netbench-servers.sh'), GUEST_SCRIPT, { mode: 0o755 });
    for (const [name, offload] of [['pv-offload', true], ['pv-nooffload', false]] as const) {
      const cfg = join(inst.dir, `${name}.cfg`);
      writeFileSync(
        cfg,
        [
          `name = "${name}"`,
          'type = "pv"',
          'memory = 256',
          'vcpus = 1',
          `extra = "ip=${ADDR[name]}:::255.254.0.0::eth0:off${offload ? '' : ' xen_netfront.offload=0'}${GUEST_EXTRA} init=/bin/sh /boot/netbench-servers.sh"`,
          `vif = [ 'bridge=${BRIDGE},vifname=xnv-${offload ? 'o' : 'n'}' ]`,
          '',
        ].join('\n'),
      );
      await inst.xl('create', cfg);
    }
    consoleTail = () => ['pv-offload', 'pv-nooffload'].map((g) => { try { return readFileSync(inst.consoleLogPath(g), 'utf8').slice(-600); } catch { return ''; } }).join('\n---\n');
    for (const t of TARGET_NAMES) await waitUdpEcho(lan, ADDR[t]);
    log('all targets answer; measuring');

    const samples: Record<Target, { tx: number[]; rx: number[]; p50: number[]; p99: number[]; pps: number[] }> = {} as never;
    for (const t of TARGET_NAMES) samples[t] = { tx: [], rx: [], p50: [], p99: [], pps: [] };
    const ring: Record<string, Record<string, number>> = {};
    for (let round = 0; round < CFG.rounds; round++) {
      for (const t of TARGET_NAMES) {
        const before = t === 'native' ? {} : await netStats(inst, t);
        // "rx": the target receives (LAN host -> target); "tx": the target sends.
        samples[t].rx.push(iperfTcp(lan, ADDR[t], false));
        samples[t].tx.push(iperfTcp(lan, ADDR[t], true));
        if (t !== 'native') {
          const d = diff(before, await netStats(inst, t));
          const acc = (ring[t] ??= {});
          for (const [k, v] of Object.entries(d)) acc[k] = (acc[k] ?? 0) + v;
        }
        const rr = udpRr(lan, ADDR[t]);
        samples[t].p50.push(rr.p50);
        samples[t].p99.push(rr.p99);
        samples[t].pps.push(udpSmallPps(lan, ADDR[t]));
        log(`round ${round + 1} ${t}: rx ${fmt(samples[t].rx.at(-1)!, 2)} tx ${fmt(samples[t].tx.at(-1)!, 2)} Gbit/s, rr p50 ${fmt(rr.p50)} us, ${fmt(samples[t].pps.at(-1)!, 0)} pps`);
      }
    }

    const med = (t: Target, k: keyof (typeof samples)['native']) => median(samples[t][k]);
    const native = (k: keyof (typeof samples)['native']) => med('native', k);
    const perPacket = (t: Target) => {
      const r = ring[t] ?? {};
      const pk = (r.tx_packets ?? 0) + (r.rx_packets ?? 0);
      return {
        notifyPerPacket: pk ? ((r.notify_sent ?? 0) + (r.events_received ?? 0)) / pk : NaN,
        txBatchSlots: r.tx_batches ? (r.tx_slots ?? 0) / r.tx_batches : NaN,
        rxBatchPackets: r.rx_batches ? (r.rx_packets ?? 0) / r.rx_batches : NaN,
      };
    };
    const rows = [['target', 'LAN->target Gbit/s', 'target->LAN Gbit/s', 'vs native (->/<-)', 'UDP rr p50 us', 'p99 us', 'p50 vs native', '64B UDP pps', 'notify/pkt', 'tx batch (slots)', 'rx batch (pkts)']];
    const results: Record<string, unknown> = {};
    for (const t of TARGET_NAMES) {
      const pp = perPacket(t);
      const r = {
        rxGbps: med(t, 'rx'),
        txGbps: med(t, 'tx'),
        rxRatio: med(t, 'rx') / native('rx'),
        txRatio: med(t, 'tx') / native('tx'),
        rrP50us: med(t, 'p50'),
        rrP99us: med(t, 'p99'),
        p50Ratio: med(t, 'p50') / native('p50'),
        smallUdpPps: med(t, 'pps'),
        ...(t === 'native' ? {} : pp),
        samples: samples[t],
      };
      results[t] = r;
      rows.push([
        t,
        fmt(r.rxGbps, 2),
        fmt(r.txGbps, 2),
        t === 'native' ? '1.00 / 1.00' : `${fmt(r.rxRatio, 2)} / ${fmt(r.txRatio, 2)}`,
        fmt(r.rrP50us, 0),
        fmt(r.rrP99us, 0),
        fmt(r.p50Ratio, 2),
        fmt(r.smallUdpPps, 0),
        t === 'native' ? '-' : fmt(pp.notifyPerPacket, 3),
        t === 'native' ? '-' : fmt(pp.txBatchSlots, 1),
        t === 'native' ? '-' : fmt(pp.rxBatchPackets, 1),
      ]);
    }
    const o = results['pv-offload'] as { rxRatio: number; txRatio: number; p50Ratio: number };
    const n = results['pv-nooffload'] as { rxRatio: number; txRatio: number };
    const verdict = {
      tcpOffload: Math.min(o.rxRatio, o.txRatio) >= TARGETS.tcpOffloadRatio,
      tcpNoOffload: Math.min(n.rxRatio, n.txRatio) >= TARGETS.tcpNoOffloadRatio,
      latencyP50: o.p50Ratio <= TARGETS.latencyP50Over,
    };
    const when = new Date().toISOString();
    const machine = `${hostname()}: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`;
    const text = `${table(rows)}\n\nTargets: PV TCP >= ${TARGETS.tcpOffloadRatio} of native with offloads (aim ${TARGETS.tcpOffloadAim}): ${verdict.tcpOffload ? 'met' : 'MISSED'}; >= ${TARGETS.tcpNoOffloadRatio} without: ${verdict.tcpNoOffload ? 'met' : 'MISSED'}; UDP rr p50 <= ${TARGETS.latencyP50Over}x native: ${verdict.latencyP50 ? 'met' : 'MISSED'}.\n${when}, ${machine}, load average ${spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim()}\n`;
    process.stdout.write(`\n${text}`);
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `net-${when.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ when, machine, config: CFG, targets: TARGETS, verdict, results }, null, 2));
    log(`wrote ${file}`);
  } finally {
    clearTimeout(hard);
    await cleanup();
  }
}

function spawnNative(netns: string, argv: string[]): ChildProcess {
  return lanSpawn({ netns } as LanSpec, argv);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:net failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
