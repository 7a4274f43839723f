// Driver comparison (npm run bench; needs root, iperf3, fio, dnsmasq): the same workloads, in
// one run, over four configurations
//   native     a LAN-side namespace on the same bridge by a plain veth; host fio on the image
//   pv         a PV guest: netfront/netback vif, blkfront/blkback disk (xvda)
//   pvhvm      an HVM guest with PV drivers (xen_pvhvm=1: emulated NIC and IDE unplugged)
//   emulated   an HVM guest on emulated devices: RTL8139 NIC and PIIX3 IDE disk, every register
//              access an ioreq to the device model in the stub domain
// Workloads, run inside each guest as guest processes started on its console (and natively in
// the namespace / on the host): iperf3 TCP bulk both directions and UDP 64-byte rate to the
// LAN host, UDP request/response latency to it, fio 4 KiB random read at QD1 and QD32 and
// 1 MiB sequential read and write on copies of the same image file. Around each run it reads the
// mechanism: ioreq exits and interrupts per frame / per I/O (device model counters,
// toolstack `dm-metrics`), event-channel notifications and ring batches (netback/blkback,
// `device-stats`), CPU time of dom0, the stub domain and the guest (its cgroup) per GB.
// Configurations are interleaved per workload (the order reversed every other round) so the
// drift of this shared machine hits them alike. Prints two tables, writes JSON and an SVG chart
// to bench/results/ (`--record` also copies the chart to docs/compare.svg). Every workload is
// bounded in time; the whole run has a hard limit; everything is removed on success, error or
// signal. Results: docs/benchmarks.md, "Driver comparison".
import { spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { BenchInstance, ROOT } from './lib/instance.js';
import { fmt, median, table } from './lib/stats.js';
import { addLanHost, lanDown, lanSpawn, lanSpec, lanUp, removeLanHost } from '../net/test-lan.js';
import { isBridge } from '../net/bridge.js';
import { consoleRun, waitForShell } from './lib/compare/console.js';
import { guestCgroup, mechanism, NativeCgroup, snapshot, type Mechanism, type Probe } from './lib/compare/counters.js';
import { ECHO_SERVER, parseResult, WORKLOAD_SCRIPT } from './lib/compare/workload-script.js';
import { renderChart, short, type Group } from './lib/compare/chart.js';
import { bootOnce, type BootRun } from './lib/compare/boot-column.js';
import { XENODE } from './lib/instance.js';

const QUICK = process.env.BENCH_QUICK === '1';
const RECORD = process.argv.includes('--record');
const CFG = {
  rounds: Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3)),
  tcpSeconds: QUICK ? 2 : 3,
  udpSeconds: QUICK ? 2 : 3,
  rrCount: QUICK ? 300 : 2000,
  rrSeconds: QUICK ? 2 : 3,
  fioSeconds: QUICK ? 2 : 3,
  seqDepth: 4,
  imageMiB: 512,
  guestMiB: 256,
  hardLimitMs: 20 * 60_000,
};
const TARGETS = { pvOverEmuTcp: 10, pvOverEmuRand32: 5, pvhvmWithin: 0.1 };

const BRIDGE = 'xnbr-cmp';
const LAN_HOST = '198.18.0.1';
const NATIVE_NS = 'xnbase-cmp';
const NATIVE_IF = 'xnb-cmp';

type ConfigKey = 'native' | 'pv' | 'pvhvm' | 'emulated';
interface Config {
  key: ConfigKey;
  label: string;
  short: string;
  color: string;
  ip: string;
  mac?: string;
  guest?: string;
  disk: string;
  hvm: boolean;
  pv: boolean;
}
const CONFIGS: Config[] = [
  { key: 'native', label: 'native (veth / host file)', short: 'N', color: '#7f7f7f', ip: '198.18.2.3', disk: '', hvm: false, pv: false },
  { key: 'pv', label: 'PV', short: 'PV', color: '#1f77b4', ip: '198.18.2.10', mac: '00:16:3e:5c:02:10', guest: 'cmp-pv', disk: '/dev/xvda', hvm: false, pv: true },
  { key: 'pvhvm', label: 'PV-on-HVM', short: 'PVH', color: '#2ca02c', ip: '198.18.2.11', mac: '00:16:3e:5c:02:11', guest: 'cmp-pvhvm', disk: '/dev/hda', hvm: true, pv: true },
  { key: 'emulated', label: 'emulated (RTL8139 / IDE)', short: 'EMU', color: '#d62728', ip: '198.18.2.12', mac: '00:16:3e:5c:02:12', guest: 'cmp-emu', disk: '/dev/hda', hvm: true, pv: false },
];

type WorkloadKey = 'tcp_tx' | 'tcp_rx' | 'udp_pps' | 'udp_rr' | 'rand4k_qd1' | 'rand4k_qd32' | 'seq1m_read' | 'seq1m_write';
interface Workload {
  key: WorkloadKey;
  label: string;
  chart: [string, string];
  kind: 'net' | 'disk';
  unit: string;
  /** The headline number from the workload's result line. */
  value: (r: Record<string, number>) => number;
  higherIsBetter: boolean;
  args: (c: Config) => string[];
}
const WORKLOADS: Workload[] = [
  { key: 'tcp_tx', label: 'TCP bulk, guest -> LAN host', chart: ['TCP bulk', 'guest -> LAN'], kind: 'net', unit: 'Mbit/s', value: (r) => r.bps! / 1e6, higherIsBetter: true, args: () => ['tcp', LAN_HOST, String(CFG.tcpSeconds)] },
  { key: 'tcp_rx', label: 'TCP bulk, LAN host -> guest', chart: ['TCP bulk', 'LAN -> guest'], kind: 'net', unit: 'Mbit/s', value: (r) => r.bps! / 1e6, higherIsBetter: true, args: () => ['tcp', LAN_HOST, String(CFG.tcpSeconds), 'R'] },
  { key: 'udp_pps', label: 'UDP 64 B, guest -> LAN host (received)', chart: ['UDP 64 B rate', 'guest -> LAN'], kind: 'net', unit: 'pkt/s', value: (r) => r.pps!, higherIsBetter: true, args: () => ['udp', LAN_HOST, String(CFG.udpSeconds)] },
  { key: 'udp_rr', label: 'UDP 64 B request/response p50', chart: ['UDP 64 B RTT', 'p50 (1/latency)'], kind: 'net', unit: 'us', value: (r) => r.p50!, higherIsBetter: false, args: () => ['rr', LAN_HOST, String(CFG.rrCount), String(CFG.rrSeconds)] },
  { key: 'rand4k_qd1', label: 'fio 4 KiB random read, QD1', chart: ['4 KiB rand read', 'QD1'], kind: 'disk', unit: 'IOPS', value: (r) => r.iops!, higherIsBetter: true, args: (c) => ['fio', c.disk, String(CFG.fioSeconds), 'randread', '4k', '1'] },
  { key: 'rand4k_qd32', label: 'fio 4 KiB random read, QD32', chart: ['4 KiB rand read', 'QD32'], kind: 'disk', unit: 'IOPS', value: (r) => r.iops!, higherIsBetter: true, args: (c) => ['fio', c.disk, String(CFG.fioSeconds), 'randread', '4k', '32'] },
  { key: 'seq1m_read', label: `fio 1 MiB sequential read, QD${CFG.seqDepth}`, chart: ['1 MiB seq read', `QD${CFG.seqDepth}`], kind: 'disk', unit: 'MiB/s', value: (r) => r.mibps!, higherIsBetter: true, args: (c) => ['fio', c.disk, String(CFG.fioSeconds), 'read', '1M', String(CFG.seqDepth)] },
  { key: 'seq1m_write', label: `fio 1 MiB sequential write, QD${CFG.seqDepth}`, chart: ['1 MiB seq write', `QD${CFG.seqDepth}`], kind: 'disk', unit: 'MiB/s', value: (r) => r.mibps!, higherIsBetter: true, args: (c) => ['fio', c.disk, String(CFG.fioSeconds), 'write', '1M', String(CFG.seqDepth)] },
];

interface Run {
  round: number;
  result: Record<string, number>;
  value: number;
  mech: Mechanism;
  /** Exits and notifications per workload unit: per device frame (net), per fio I/O (disk). */
  exitsPer: number;
  notifyPer: number;
  /** CPU seconds per GB the workload moved. */
  cpuPerGB: { dom0: number; stubdom: number; guest: number; total: number };
}

const log = (m: string) => process.stderr.write(`[bench:compare] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fail(what: string, r: { status: number | null; stdout?: string; stderr?: string }): never {
  throw new Error(`${what} failed (${r.status}): ${`${r.stderr ?? ''}${r.stdout ?? ''}`.slice(-600)}`);
}

function checkTools(): void {
  if (process.getuid?.() !== 0) throw new Error('the driver comparison needs root (namespaces, cgroups, TAPs)');
  for (const t of ['/usr/bin/iperf3', '/usr/bin/fio', '/usr/sbin/dnsmasq', '/usr/bin/python3', '/dev/net/tun', '/sys/fs/cgroup/cpuacct']) {
    if (!existsSync(t)) throw new Error(`needs ${t} (scripts/setup.sh installs the tools)`);
  }
  if (!existsSync(join(ROOT, 'dist', 'boot', 'hvm-kernel.mjs'))) throw new Error('not built: npm run build');
}

async function main(): Promise<void> {
  checkTools();
  const inst = new BenchInstance('cmp');
  const lan = lanSpec({ bridge: BRIDGE, netns: 'xnlan-cmp', hostIf: 'xnl-cmp', stateDir: join(inst.dir, 'lan') });
  const nativeCg = new NativeCgroup(inst);
  const children: ChildProcess[] = [];
  let cleaned: Promise<void> | null = null;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const c of children) if (c.exitCode === null && c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
      nativeCg.remove();
      // The LAN first: its dnsmasq is found through its pid file, under the instance's dir.
      removeLanHost(NATIVE_NS, NATIVE_IF);
      lanDown(lan);
      await inst.stop().catch((e) => log(`stop: ${(e as Error).message}`));
      // Ports of guests still on our bridge (a run killed mid-way), then the bridge.
      if (isBridge(BRIDGE)) {
        for (const port of readdirSafe(`/sys/class/net/${BRIDGE}/brif`)) spawnSync('ip', ['link', 'set', 'dev', port, 'nomaster']);
        spawnSync('ip', ['link', 'del', 'dev', BRIDGE]);
      }
    })());
  const hard = setTimeout(() => {
    log('hard time limit reached: cleaning up');
    void cleanup().then(() => process.exit(2));
  }, CFG.hardLimitMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

  const started = Date.now();
  try {
    // Leftovers of an earlier, killed run.
    removeLanHost(NATIVE_NS, NATIVE_IF);
    lanDown(lan);
    log('starting a private xenode instance and the test LAN');
    await inst.start();
    await lanUp(lan);
    addLanHost(lan, NATIVE_NS, NATIVE_IF, `${CONFIGS[0]!.ip}/15`);
    children.push(lanSpawn(lan, ['iperf3', '-s', '--idle-timeout', '30']));
    children.push(lanSpawn(lan, ['/usr/bin/python3', '-c', ECHO_SERVER]));
    nativeCg.create();

    const boot = join(inst.env.XENODE_RUN_DIR!, 'boot');
    const script = join(boot, 'cmpbench.py');
    writeFileSync(script, WORKLOAD_SCRIPT, { mode: 0o644 });
    const image = join(inst.dir, 'disk.img');
    log(`filling a ${CFG.imageMiB} MiB image`);
    const fill = spawnSync('fio', ['--name=fill', `--filename=${image}`, `--size=${CFG.imageMiB}M`, '--rw=write', '--bs=1M', '--direct=1', '--ioengine=libaio', '--iodepth=4'], { encoding: 'utf8', timeout: 120_000 });
    if (fill.status !== 0) fail('fio fill', fill);
    CONFIGS[0]!.disk = image;
    // Each guest gets its own copy of the filled image: a second read-write user of one image
    // is refused, as Xen's block script refuses it.
    const imageOf = (c: Config) => (c.guest ? `${image}.${c.key}` : image);
    for (const c of CONFIGS.filter((x) => x.guest)) {
      const cp = spawnSync('cp', ['--sparse=always', image, imageOf(c)], { encoding: 'utf8', timeout: 120_000 });
      if (cp.status !== 0) fail(`copy the image for ${c.key}`, cp);
    }

    // The three guests, up at once (idle ones cost next to nothing).
    for (const c of CONFIGS.filter((x) => x.guest)) {
      const lines = [`name = "${c.guest}"`, `memory = ${CFG.guestMiB}`, 'vcpus = 1', `vif = [ '${c.hvm ? 'type=ioemu, ' : ''}bridge=${BRIDGE}, mac=${c.mac}' ]`];
      const ip = `ip=${c.ip}::${LAN_HOST}:255.254.0.0::eth0:off`;
      if (c.hvm) {
        lines.push(`builder = "hvm"`, `disk = [ 'file:${imageOf(c)},hda,w' ]`, `serial = "pty"`, `boot = "c"`, `extra = "${ip}${c.pv ? ' xen_pvhvm=1' : ''}"`);
      } else {
        lines.push('type = "pv"', `disk = [ 'file:${imageOf(c)},xvda,w' ]`, `extra = "${ip} console=hvc0"`);
      }
      const cfg = join(inst.dir, `${c.guest}.cfg`);
      writeFileSync(cfg, lines.join('\n') + '\n');
      log(`xl create ${c.guest}`);
      await inst.xl('create', cfg);
      // One at a time: on a busy machine three boots at once can outlast the kernel's wait for
      // its NIC (ip= is applied only to NICs connected within 10 s).
      await waitForInit(inst, c.guest!, 90_000);
      await waitForShell(inst, c.guest!, 60_000);
    }
    const dom0Pid = await inst.dom0Pid();
    const probes = new Map<ConfigKey, Probe>();
    probes.set('native', { domid: null, dom0Pid, cgroupDir: nativeCg.dir, hvm: false });
    for (const c of CONFIGS.filter((x) => x.guest)) {
      const domid = Number((await inst.xl('domid', c.guest!)).trim());
      probes.set(c.key, { domid, dom0Pid, cgroupDir: guestCgroup(inst, domid), hvm: c.hvm });
      // If ip= found no connected NIC at boot, configure eth0 as an administrator would.
      const addr = await consoleRun(inst, c.guest!, 'ip -4 -o addr show dev eth0');
      if (!addr.includes(`${c.ip}/`)) {
        log(`${c.guest}: eth0 was not configured at boot (${addr.trim() || 'no address'}); configuring it`);
        await consoleRun(inst, c.guest!, `ip addr add ${c.ip}/15 dev eth0; ip link set dev eth0 up`);
      }
      // The LAN answers (and ARP is warm) before anything is measured.
      await runWorkload(inst, c, ['rr', LAN_HOST, '5', '3'], 20_000, nativeCg, 10);
      log(`${c.guest} (domain ${domid}) is up and reaches the LAN host`);
    }
    await runWorkload(inst, CONFIGS[0]!, ['rr', LAN_HOST, '5', '3'], 20_000, nativeCg, 3);
    const unplug = /^.*unplug.*$/im.exec(readFileSync(inst.consoleLogPath('cmp-pvhvm'), 'utf8'));
    log(`cmp-pvhvm: ${unplug ? unplug[0].trim() : 'no unplug line on its console'}`);

    // Measure: per workload, every configuration in turn, the order reversed every other round.
    const runs = new Map<string, Run[]>();
    for (let round = 0; round < CFG.rounds; round++) {
      const order = round % 2 === 0 ? CONFIGS : [...CONFIGS].reverse();
      for (const w of WORKLOADS) {
        for (const c of order) {
          const probe = probes.get(c.key)!;
          // Every disk run starts with none of the image in dom0's page cache: the emulated
          // IDE backend does buffered I/O, blkback and native fio O_DIRECT.
          if (w.kind === 'disk') dropCache(imageOf(c));
          await sleep(700); // the device model reports its counters every ~0.5 s
          const a = await snapshot(inst, probe);
          const limit = (w.kind === 'disk' ? CFG.fioSeconds : Math.max(CFG.tcpSeconds, CFG.rrSeconds)) * 1000 + 60_000;
          const result = await runWorkload(inst, c, w.args(c), limit, nativeCg, 1);
          const b = await snapshot(inst, probe);
          if (probe.hvm) {
            await sleep(700);
            b.dm = (await snapshot(inst, probe)).dm;
          }
          const mech = mechanism(w.kind, a, b, c.hvm, c.pv);
          const denom = w.kind === 'disk' ? result.ios! : mech.units;
          const gb = result.bytes! / 1e9;
          const cpu = mech.cpuS;
          const run: Run = {
            round,
            result,
            value: w.value(result),
            mech,
            exitsPer: mech.exits / denom,
            notifyPer: mech.notifies / denom,
            cpuPerGB: { dom0: cpu.dom0 / gb, stubdom: cpu.stubdom / gb, guest: cpu.guest / gb, total: (cpu.dom0 + cpu.stubdom + cpu.guest) / gb },
          };
          const k = `${w.key}/${c.key}`;
          runs.set(k, [...(runs.get(k) ?? []), run]);
          log(`round ${round + 1}/${CFG.rounds} ${w.key} ${c.key}: ${fmt(run.value, w.unit === 'Mbit/s' || w.unit === 'us' ? 1 : 0)} ${w.unit}` +
            (c.key === 'native' ? '' : `, exits/unit ${fmt(run.exitsPer, 2)}, notify/unit ${fmt(run.notifyPer, 3)}`) +
            `, CPU ${fmt(cpu.dom0, 2)}/${fmt(cpu.stubdom, 2)}/${fmt(cpu.guest, 2)} s`);
        }
      }
    }
    // The boot column: the same image from its disk to the login prompt over each driver.
    const bootImage = join(inst.dir, 'boot-busybox.img');
    const mk = spawnSync(process.execPath, [XENODE, 'mkimage', '--from', 'busybox', '--partition', 'mbr', bootImage, '64M'], { encoding: 'utf8', timeout: 120_000 });
    if (mk.status !== 0) fail('xenode mkimage --from busybox', mk);
    const boots: BootRun[] = [];
    for (let round = 0; round < CFG.rounds; round++) {
      const order = (['pv', 'pvhvm', 'emulated'] as const).slice();
      if (round % 2) order.reverse();
      for (const key of order) {
        const b = await bootOnce(inst, key, bootImage);
        boots.push(b);
        log(`round ${round + 1}/${CFG.rounds} boot ${key}: ${fmt(b.ms, 0)} ms, ${b.sectorsRead} sectors read, ${b.exits} exits, ${b.notifies} irq|notify`);
      }
    }
    const elapsedS = (Date.now() - started) / 1000;
    report(runs, elapsedS, undefined, boots);
  } finally {
    clearTimeout(hard);
    await cleanup();
  }
}

/** Writes back and drops this one file's pages from the page cache (nothing else's). */
function dropCache(file: string): void {
  spawnSync('dd', ['if=/dev/null', `of=${file}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0'], { stdio: 'ignore', timeout: 60_000 });
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore', timeout: 60_000 });
}

function readdirSafe(dir: string): string[] {
  try {
    return spawnSync('ls', [dir], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The HVM guest prints no domain id before init; a fresh instance's log has one boot each. */
async function waitForInit(inst: BenchInstance, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (/Run .* as init process/.test(readFileSync(inst.consoleLogPath(name), 'utf8'))) return;
    } catch {
      /* no log yet */
    }
    await sleep(200);
  }
  let tail = '';
  try {
    tail = readFileSync(inst.consoleLogPath(name), 'utf8').slice(-1500);
  } catch {
    /* none */
  }
  throw new Error(`${name} did not start init in ${timeoutMs} ms; console:\n${tail}`);
}

/** One workload on one configuration; retried (for the preflight) up to `tries` times. */
async function runWorkload(inst: BenchInstance, c: Config, args: string[], limitMs: number, cg: NativeCgroup, tries: number): Promise<Record<string, number>> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      if (c.key === 'native') {
        const argv = ['/usr/bin/python3', join(inst.env.XENODE_RUN_DIR!, 'boot', 'cmpbench.py'), ...args];
        const full = args[0] === 'fio' ? argv : ['ip', 'netns', 'exec', NATIVE_NS, ...argv];
        const r = spawnSync(cg.wrap(full)[0]!, cg.wrap(full).slice(1), { encoding: 'utf8', timeout: limitMs, maxBuffer: 16 << 20 });
        return parseResult(`${r.stdout ?? ''}${r.stderr ?? ''}`, `native ${args.join(' ')}`);
      }
      const out = await consoleRun(inst, c.guest!, `python3 /boot/cmpbench.py ${args.join(' ')}`, limitMs);
      return parseResult(out, `${c.guest} ${args.join(' ')}`);
    } catch (e) {
      last = e;
      if (i + 1 < tries) await sleep(1000);
    }
  }
  throw last;
}

function report(runs: Map<string, Run[]>, elapsedS: number, from?: { when: string; machine: string; load: string }, boots: BootRun[] = []): void {
  const get = (w: Workload, c: Config) => runs.get(`${w.key}/${c.key}`) ?? [];
  const med = (xs: number[]) => median(xs.filter((x) => Number.isFinite(x)));
  const value = (w: Workload, c: Config) => med(get(w, c).map((r) => r.value));
  /** "Goodness" relative to native: throughput ratio, or native latency / latency. */
  const rel = (w: Workload, c: Config, base: Config) => (w.higherIsBetter ? value(w, c) / value(w, base) : value(w, base) / value(w, c));
  const native = CONFIGS[0]!;
  const byKey = (k: ConfigKey) => CONFIGS.find((c) => c.key === k)!;
  const digits = (w: Workload) => (w.unit === 'Mbit/s' ? 1 : 0);

  // Table 1: what each configuration achieved.
  const t1: string[][] = [['workload', 'unit', ...CONFIGS.map((c) => c.label), 'PV / emulated', 'PV-on-HVM / PV']];
  for (const w of WORKLOADS) {
    t1.push([
      w.label,
      w.unit,
      ...CONFIGS.map((c) => (c.key === 'native' ? fmt(value(w, c), digits(w)) : `${fmt(value(w, c), digits(w))} (${fmt(rel(w, c, native), 3)}x)`)),
      `${fmt(rel(w, byKey('pv'), byKey('emulated')), 1)}x`,
      `${fmt(rel(w, byKey('pvhvm'), byKey('pv')), 2)}x`,
    ]);
  }
  // Table 2: the mechanism.
  const t2: string[][] = [['workload', 'config', 'exits/unit', 'irq|notify/unit', 'batch', 'bytes/frame', 'CPU s/GB dom0', 'stubdom', 'guest', 'total']];
  const mechOf = (w: Workload, c: Config) => {
    const rs = get(w, c);
    return {
      exitsPer: med(rs.map((r) => r.exitsPer)),
      notifyPer: med(rs.map((r) => r.notifyPer)),
      batch: med(rs.map((r) => r.mech.batch)),
      bytesPerFrame: med(rs.map((r) => r.mech.bytesPerFrame)),
      cpu: {
        dom0: med(rs.map((r) => r.cpuPerGB.dom0)),
        stubdom: med(rs.map((r) => r.cpuPerGB.stubdom)),
        guest: med(rs.map((r) => r.cpuPerGB.guest)),
        total: med(rs.map((r) => r.cpuPerGB.total)),
      },
    };
  };
  for (const w of WORKLOADS) {
    for (const c of CONFIGS) {
      const m = mechOf(w, c);
      const nat = c.key === 'native';
      t2.push([
        w.key,
        c.key,
        nat ? '-' : fmt(m.exitsPer, 2),
        nat ? '-' : fmt(m.notifyPer, 3),
        nat ? '-' : fmt(m.batch, 1),
        nat ? '-' : fmt(m.bytesPerFrame, 0),
        fmt(m.cpu.dom0, 2),
        fmt(m.cpu.stubdom, 2),
        fmt(m.cpu.guest, 2),
        fmt(m.cpu.total, 2),
      ]);
    }
  }

  const pv = byKey('pv');
  const emu = byKey('emulated');
  const pvhvm = byKey('pvhvm');
  const tcpRatio = Math.min(rel(WORKLOADS[0]!, pv, emu), rel(WORKLOADS[1]!, pv, emu));
  const rand32 = WORKLOADS.find((w) => w.key === 'rand4k_qd32')!;
  const randRatio = rel(rand32, pv, emu);
  const pvhvmDev = WORKLOADS.map((w) => ({ w: w.key, ratio: rel(w, pvhvm, pv) }));
  const outside = pvhvmDev.filter((d) => !(d.ratio >= 1 - TARGETS.pvhvmWithin));
  const verdict = {
    pvOverEmuTcp: { ratio: tcpRatio, target: TARGETS.pvOverEmuTcp, met: tcpRatio >= TARGETS.pvOverEmuTcp },
    pvOverEmuRand4kQd32: { ratio: randRatio, target: TARGETS.pvOverEmuRand32, met: randRatio >= TARGETS.pvOverEmuRand32 },
    pvhvmWithin10pctOfPv: { ratios: pvhvmDev, met: outside.length === 0, slower: outside.map((d) => d.w) },
  };

  // The boot column (a busybox image from its own disk to "login:").
  const bootKeys = ['pv', 'pvhvm', 'emulated'] as const;
  const bootOf = (k: (typeof bootKeys)[number]) => {
    const rs = boots.filter((b) => b.key === k);
    return { ms: med(rs.map((b) => b.ms)), sectorsRead: med(rs.map((b) => b.sectorsRead)), requests: med(rs.map((b) => b.requests)), exits: med(rs.map((b) => b.exits)), notifies: med(rs.map((b) => b.notifies)), runs: rs };
  };
  const t3: string[][] = [['boot to login (busybox, own disk)', ...bootKeys.map((k) => byKey(k).label)]];
  if (boots.length) {
    t3.push(['xl create to "login:" (ms)', ...bootKeys.map((k) => fmt(bootOf(k).ms, 0))]);
    t3.push(['sectors read', ...bootKeys.map((k) => fmt(bootOf(k).sectorsRead, 0))]);
    t3.push(['requests | IDE commands', ...bootKeys.map((k) => fmt(bootOf(k).requests, 0))]);
    t3.push(['ioreq exits (UART excluded)', ...bootKeys.map((k) => fmt(bootOf(k).exits, 0))]);
    t3.push(['irq | notify', ...bootKeys.map((k) => fmt(bootOf(k).notifies, 0))]);
  }

  const when = from?.when ?? new Date().toISOString();
  const load = from?.load ?? readFileSync('/proc/loadavg', 'utf8').trim();
  const machine = from?.machine ?? `${hostname()}: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`;
  const lines = [
    '',
    `Driver comparison: the same workloads over native, PV, PV-on-HVM and emulated devices (${CFG.rounds} interleaved round(s), medians; ratio vs native in brackets)`,
    table(t1),
    '',
    'Mechanism (medians): exits = ioreq exits to the device model (console UART excluded); irq|notify = interrupts (emulated) or event-channel',
    'notifications both ways (PV); unit = device frame (network) or fio I/O (disk); batch = frames per ring wake-up/push (PV net), requests per',
    'frontend notification (PV disk), frames or commands per interrupt (emulated); CPU = seconds of CPU per GB moved (native: the client process).',
    table(t2),
    '',
    ...(boots.length ? ['Boot: the same MBR-partitioned busybox image from its disk to the login prompt over each driver (medians).', table(t3), ''] : []),
    `Targets: PV >= ${TARGETS.pvOverEmuTcp}x emulated on TCP bulk: ${fmt(tcpRatio, 1)}x ${verdict.pvOverEmuTcp.met ? 'met' : 'MISSED'}; ` +
      `PV >= ${TARGETS.pvOverEmuRand32}x emulated on 4 KiB random read QD32: ${fmt(randRatio, 1)}x ${verdict.pvOverEmuRand4kQd32.met ? 'met' : 'MISSED'}; ` +
      `PV-on-HVM within ${TARGETS.pvhvmWithin * 100}% of PV: ${verdict.pvhvmWithin10pctOfPv.met ? 'met' : `MISSED on ${outside.map((d) => `${d.w} (${fmt(d.ratio, 2)}x)`).join(', ')}`}.`,
    `${when}, ${machine}, load average ${load}, ${Math.round(elapsedS)} s`,
    '',
  ];
  process.stdout.write(lines.join('\n'));

  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const results: Record<string, Record<string, unknown>> = {};
  for (const w of WORKLOADS) {
    results[w.key] = {};
    for (const c of CONFIGS) {
      results[w.key]![c.key] = { value: value(w, c), unit: w.unit, relNative: rel(w, c, native), mechanism: mechOf(w, c), runs: get(w, c) };
    }
  }
  const file = from ? '(not rewritten)' : join(dir, `compare-${when.replace(/[:.]/g, '-')}.json`);
  const doc = { when, machine, load, elapsedS, config: CFG, targets: TARGETS, verdict, configs: CONFIGS.map(({ key, label }) => ({ key, label })), workloads: WORKLOADS.map(({ key, label, unit }) => ({ key, label, unit })), results, boot: Object.fromEntries(boots.length ? bootKeys.map((k) => [k, bootOf(k)]) : []) };
  if (!from) {
    writeFileSync(file, JSON.stringify(doc, null, 2));
    writeFileSync(join(dir, 'compare-latest.json'), JSON.stringify(doc, null, 2));
  }

  // The chart.
  const guests = CONFIGS.filter((c) => c.key !== 'native');
  const perfGroups: Group[] = WORKLOADS.map((w) => ({
    label: w.chart[0],
    sub: w.chart[1],
    bars: CONFIGS.map((c) => ({ series: c.label, value: rel(w, c, native), text: w.unit === 'us' ? `${short(value(w, c))}us` : w.unit === 'Mbit/s' ? `${short(value(w, c) * 1e6)}b` : short(value(w, c)) })),
  }));
  const mechGroups = (pick: (m: ReturnType<typeof mechOf>) => number): Group[] =>
    WORKLOADS.map((w) => ({ label: w.chart[0], sub: w.chart[1], bars: guests.map((c) => ({ series: c.label, value: pick(mechOf(w, c)), text: short(pick(mechOf(w, c))) })) }));
  const cpuWorkloads = WORKLOADS.filter((w) => ['tcp_tx', 'tcp_rx', 'rand4k_qd32', 'seq1m_read', 'seq1m_write'].includes(w.key));
  const cpuGroups: Group[] = cpuWorkloads.map((w) => ({
    label: w.chart[0],
    sub: w.chart[1],
    bars: CONFIGS.map((c) => {
      const m = mechOf(w, c);
      return { series: c.label, value: m.cpu.total, text: short(m.cpu.total), segments: [{ name: 'guest', value: m.cpu.guest }, { name: 'dom0', value: m.cpu.dom0 }, { name: 'stub domain', value: m.cpu.stubdom }] };
    }),
  }));
  const svg = renderChart({
    title: 'xenode: the same guest workloads over native, PV, PV-on-HVM and emulated devices',
    subtitle: `${when.slice(0, 10)}, ${cpus().length} vCPU ${cpus()[0]?.model ?? ''}, shared machine (load ${load.split(' ').slice(0, 3).join(' ')}); ${CFG.rounds} interleaved rounds, medians`,
    series: CONFIGS.map((c) => ({ name: c.label, color: c.color, short: c.short })),
    segments: [{ name: 'guest', color: '#9ecae1' }, { name: 'dom0', color: '#fdae6b' }, { name: 'stub domain', color: '#c994c7' }],
    panels: [
      { title: 'Performance relative to native (log scale; higher is better)', subtitle: 'Bar height: throughput / native throughput, or native latency / latency. Label: what was achieved (bits/s, packets/s, IOPS, MiB/s, microseconds).', groups: perfGroups, log: true, unit: 'x native', ref: { value: 1, label: 'native' }, height: 330 },
      { title: 'ioreq exits per frame / per I/O (log scale)', subtitle: 'Every register access of an emulated device traps to the device model in the stub domain; PV drivers make none (shown as 0).', groups: mechGroups((m) => m.exitsPer), log: true, unit: 'exits per unit', height: 280 },
      { title: 'Interrupts (emulated) or event-channel notifications (PV) per frame / per I/O (log scale)', subtitle: 'PV rings suppress notifications while the other side is busy (event indices) and carry up to 64 KiB per frame (GSO): fewer, bigger wake-ups.', groups: mechGroups((m) => m.notifyPer), log: true, unit: 'per unit', height: 280 },
      { title: 'CPU seconds per GB moved (log scale; lower is better)', subtitle: 'Thin bars: guest (its cgroup: kernel, drivers, workload; native: the client process), dom0, stub domain; dashed frame and label: their total.', groups: cpuGroups, log: true, unit: 'CPU s / GB', height: 300 },
    ],
    footer: `bench/compare.ts, ${when}: ${machine}`,
  });
  writeFileSync(join(dir, 'compare.svg'), svg);
  if (RECORD) copyFileSync(join(dir, 'compare.svg'), join(ROOT, 'docs', 'compare.svg'));
  log(`wrote ${file}, ${join(dir, 'compare.svg')}${RECORD ? ' and docs/compare.svg' : ''}`);
}

/** `--from FILE.json`: tables and chart again from a recorded run (no guests, no root). */
function fromFile(path: string): void {
  const doc = JSON.parse(readFileSync(path, 'utf8')) as {
    when: string; machine: string; load: string; elapsedS: number; config: typeof CFG;
    results: Record<string, Record<string, { runs: Run[] }>>;
  };
  CFG.rounds = doc.config.rounds;
  const runs = new Map<string, Run[]>();
  for (const [w, byConfig] of Object.entries(doc.results)) for (const [c, r] of Object.entries(byConfig)) runs.set(`${w}/${c}`, r.runs);
  report(runs, doc.elapsedS, doc);
}

const fromArg = process.argv.indexOf('--from');
if (fromArg > 0) {
  fromFile(process.argv[fromArg + 1] ?? join(ROOT, 'bench', 'results', 'compare-latest.json'));
  process.exit(0);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:compare failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
