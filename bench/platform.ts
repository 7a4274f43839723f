// Platform benchmarks (npm run bench:platform; needs root): on a private xenode instance,
//   1. `xl create` to console-ready latency, 20 creates (destroyed in between): median/p90;
//   2. event-channel round trip dom0 <-> guest (the "echo" diagnostic split device) against
//      a raw futex ping-pong and an eventfd + uv_poll ping-pong between two host processes,
//      interleaved in the same run;
//   3. xenstore operations per second over xenstored's socket (stock client, sequential and
//      pipelined), against a Node unix-socket echo and the stock C client;
//   4. memory and CPU of 20 idle guests at once, per guest (guest processes + dom0's share).
// Prints a table and writes JSON to bench/results/. Every loop is bounded in count and time;
// everything started is torn down on success, error or signal. Record results in
// docs/benchmarks.md ("## Platform").
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem, release, hostname } from 'node:os';
import { join } from 'node:path';
import { XsClient } from '../drivers/xenstore/client.js';
import { BenchInstance, ROOT } from './lib/instance.js';
import { summarise, median, nowMs, fmt, table, type Summary } from './lib/stats.js';
import { procMem, sumMem, domainPids, domainCgroupUsage, domainCpuNs, procCpuNs, memfdAllocated, MiB, type ProcMem } from './lib/procmem.js';
import { futexPingPong, eventfdPingPong, type PingPong } from './lib/native-pingpong.js';
import { xenstoreRates, cToolRate, type Rate, type XsRates } from './lib/xs-bench.js';
import { killAll } from './lib/children.js';
import { ConsoleTap } from './lib/console-tap.js';

const QUICK = process.env.BENCH_QUICK === '1';
const CFG = {
  creates: QUICK ? 5 : 20,
  idleGuests: QUICK ? 5 : 20,
  guestMemoryMiB: 128,
  pingRounds: Number(process.env.BENCH_PING_ROUNDS ?? (QUICK ? 2 : 7)),
  pingIterations: QUICK ? 500 : 2000,
  pingWarmup: 200,
  xsRounds: QUICK ? 1 : 3,
  xsMaxOps: QUICK ? 5000 : 30_000,
  xsMaxMs: QUICK ? 500 : 1000,
  xsDepth: 64,
  cToolPaths: 2000,
  idleCpuWindowMs: 3000,
  /** The whole run is killed (after cleanup) past this. */
  hardLimitMs: 8 * 60_000,
};

/** BENCH_ONLY=latency,pingpong,xenstore,idle runs a subset (for development; the table needs all). */
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
const want = (phase: string) => !ONLY || ONLY.has(phase);

const TARGETS = {
  consoleReadyMedianMs: 300,
  memoryPerGuestMiB: 48,
  evtchnOverFutex: 2,
  xenstoreOpsPerSec: 20_000,
};

// ---------------------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

interface CreateTiming {
  name: string;
  domid: number;
  /** `xl create` process, start to exit (parse config, toolstack builds and unpauses). */
  xlMs: number;
  /** From `xl create` start until the console shows init being run. */
  initMs: number;
  /** From `xl create` start until the shell on the console answers an echo: console-ready. */
  readyMs: number;
}

/** `xl create` a guest and wait until its shell answers on the console. */
async function createToConsoleReady(inst: BenchInstance, name: string): Promise<CreateTiming> {
  const cfg = inst.guestConfig(name, CFG.guestMemoryMiB);
  const t0 = nowMs();
  await inst.xl('create', cfg);
  const tXl = nowMs();
  const { domid, tty } = await inst.rpc<{ domid: number; tty: string }>('console', { dom: name });
  const tap = new ConsoleTap(tty);
  try {
    const tInit = await tap.waitFor(/Run \S+ as init process/, 15_000);
    // Keystrokes reach the shell once the kernel has wired hvc0 input to init's pty (right
    // after that line); resend if the first line was typed before the shell read anything.
    for (let attempt = 0; ; attempt++) {
      tap.type('echo XN""RDY\n');
      try {
        const tReady = await tap.waitFor(/XNRDY/, 1000);
        return { name, domid, xlMs: tXl - t0, initMs: tInit - t0, readyMs: tReady - t0 };
      } catch (e) {
        if (attempt >= 9) throw e;
      }
    }
  } finally {
    tap.close();
  }
}

function memSummary(m: ProcMem) {
  return { rssMiB: m.rss / MiB, pssMiB: m.pss / MiB, ussMiB: m.uss / MiB, anonMiB: m.anon / MiB, pssShmemMiB: m.pssShmem / MiB };
}

const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

// ---------------------------------------------------------------------------- phases

async function phaseLatency(inst: BenchInstance) {
  log(`console-ready latency: ${CFG.creates} creates`);
  const runs: CreateTiming[] = [];
  const destroyMs: number[] = [];
  for (let i = 0; i < CFG.creates; i++) {
    const r = await createToConsoleReady(inst, `lat${i}`);
    runs.push(r);
    const t = nowMs();
    await inst.rpc('destroy', { dom: r.name });
    destroyMs.push(nowMs() - t);
  }
  // The floor under both halves: `xl` and the guest kernel are each one Node process start.
  const nodeStartMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = nowMs();
    spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore', timeout: 10_000 });
    nodeStartMs.push(nowMs() - t);
  }
  return {
    runs,
    nodeStart: summarise(nodeStartMs),
    xl: summarise(runs.map((r) => r.xlMs)),
    init: summarise(runs.map((r) => r.initMs)),
    ready: summarise(runs.map((r) => r.readyMs)),
    destroy: summarise(destroyMs),
  };
}

async function waitForState(xs: XsClient, path: string, want: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await xs.read(path).catch(() => '')) === String(want)) return;
    await sleep(20);
  }
  throw new Error(`${path} did not reach state ${want} within ${timeoutMs} ms`);
}

/** Set the CPU affinity of every thread of `pids` (taskset -a -p). */
function pin(pids: number[], cpuList: string): void {
  for (const pid of pids) spawnSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
}

interface Placement {
  name: string;
  /** CPU lists for the two ends (dom0 / the bench process; the guest / the child). */
  a: string;
  b: string;
}

async function phasePingPong(inst: BenchInstance) {
  log('event-channel round trip vs native ping-pong');
  const guest = await createToConsoleReady(inst, 'echo');
  const xs = await XsClient.connect(inst.xenstoredSocket);
  const all = `0-${cpus().length - 1}`;
  const placements: Placement[] = [{ name: 'unpinned', a: all, b: all }];
  if (cpus().length >= 2) placements.push({ name: 'same-cpu', a: '0', b: '0' }, { name: 'cross-cpu', a: '0', b: '1' });
  const dom0 = await inst.dom0Pid();
  const guestPids = domainPids(inst.cgroup, guest.domid);
  let fx: PingPong | null = null;
  let ef: PingPong | null = null;
  try {
    await inst.rpc('device-attach', { dom: 'echo', device: { type: 'echo', devid: 0, backend: {}, frontend: {} } });
    await waitForState(xs, `/local/domain/0/backend/echo/${guest.domid}/0/state`, 4, 10_000);
    await waitForState(xs, `/local/domain/${guest.domid}/device/echo/0/state`, 4, 10_000);
    fx = await futexPingPong(CFG.hardLimitMs);
    ef = await eventfdPingPong(CFG.hardLimitMs);
    const byPlacement: Record<string, ReturnType<typeof pingPongSummary>> = {};
    for (const pl of placements) {
      pin([process.pid, dom0], pl.a);
      pin([fx.pid, ef.pid, ...guestPids], pl.b);
      await sleep(50);
      const rounds: { futexUs: number; eventfdUs: number; evtchnUs: number; evtchnP90Us: number }[] = [];
      for (let r = 0; r < CFG.pingRounds; r++) {
        const f = summarise(await fx.run(CFG.pingIterations, CFG.pingWarmup, 30_000));
        const e = summarise(await ef.run(CFG.pingIterations, CFG.pingWarmup, 30_000));
        const x = await inst.rpc<{ medianUs: number; p90Us: number }>('evtchn-pingpong', {
          dom: 'echo', devid: 0, iterations: CFG.pingIterations, warmup: CFG.pingWarmup, timeoutMs: 30_000,
        });
        rounds.push({ futexUs: f.median, eventfdUs: e.median, evtchnUs: x.medianUs, evtchnP90Us: x.p90Us });
        log(`  ${pl.name} round ${r + 1}: futex ${fmt(f.median)} us, eventfd ${fmt(e.median)} us, evtchn ${fmt(x.medianUs)} us`);
      }
      byPlacement[pl.name] = pingPongSummary(rounds);
    }
    pin([process.pid, dom0, fx.pid, ef.pid, ...guestPids], all);
    const stats = await inst.rpc<Record<string, Record<string, number>>>('device-stats');
    // Unplug through the normal path: the backend closes, the frontend follows, both dirs go.
    const tDetach = nowMs();
    await inst.rpc('device-detach', { dom: 'echo', type: 'echo', devid: 0 });
    const detachMs = nowMs() - tDetach;
    return {
      iterationsPerRound: CFG.pingIterations,
      roundsPerPlacement: CFG.pingRounds,
      placements: byPlacement,
      backendStats: stats[`echo/${guest.domid}/0`] ?? null,
      detachMs,
    };
  } finally {
    pin([process.pid, dom0], all);
    fx?.close();
    ef?.close();
    xs.close();
    await inst.rpc('destroy', { dom: 'echo' }).catch(() => {});
  }
}

/** Medians over rounds (each round's median of N round trips) and the ratios between them. */
function pingPongSummary(rounds: { futexUs: number; eventfdUs: number; evtchnUs: number; evtchnP90Us: number }[]) {
  const futexUs = median(rounds.map((r) => r.futexUs));
  const eventfdUs = median(rounds.map((r) => r.eventfdUs));
  const evtchnUs = median(rounds.map((r) => r.evtchnUs));
  return {
    rounds,
    futexUs,
    eventfdUs,
    evtchnUs,
    evtchnP90Us: median(rounds.map((r) => r.evtchnP90Us)),
    evtchnOverFutex: evtchnUs / futexUs,
    evtchnOverEventfd: evtchnUs / eventfdUs,
  };
}

async function phaseXenstore(inst: BenchInstance) {
  log('xenstore operations per second');
  const rates: XsRates = await xenstoreRates(inst.xenstoredSocket, await inst.dom0Pid(), join(inst.dir, 'echo.sock'), {
    rounds: CFG.xsRounds,
    maxOps: CFG.xsMaxOps,
    maxMs: CFG.xsMaxMs,
    depth: CFG.xsDepth,
  });
  const cTool: Rate | null = await cToolRate(inst.env, '/local/domain/0/name', CFG.cToolPaths, 20_000);
  return { ...rates, cToolRead: cTool };
}

async function phaseIdleGuests(inst: BenchInstance) {
  const n = CFG.idleGuests;
  log(`${n} idle guests at once: memory and CPU`);
  const hvPid = inst.hypervisorPid();
  const d0Pid = await inst.dom0Pid();
  await sleep(1000);
  const before = { dom0: procMem(d0Pid), hv: procMem(hvPid) };
  const creates: CreateTiming[] = [];
  const t0 = nowMs();
  try {
    for (let i = 0; i < n; i++) creates.push(await createToConsoleReady(inst, `idle${i}`));
    const allReadyMs = nowMs() - t0;
    await sleep(2000); // let boot-time garbage settle
    const cpu0 = { guests: creates.map((c) => domainCpuNs(inst.cgroup, c.domid)), dom0: procCpuNs(d0Pid), hv: procCpuNs(hvPid) };
    const tc = nowMs();
    await sleep(CFG.idleCpuWindowMs);
    const windowNs = (nowMs() - tc) * 1e6;
    const cpuPct = (a: number, b: number) => ((b - a) / windowNs) * 100;
    const guestCpu = creates.map((c, i) => cpuPct(cpu0.guests[i]!, domainCpuNs(inst.cgroup, c.domid)));
    const dom0Cpu = cpuPct(cpu0.dom0, procCpuNs(d0Pid));
    const hvCpu = cpuPct(cpu0.hv, procCpuNs(hvPid));

    const memfds = memfdAllocated(hvPid, /^xenode-d\d+-/);
    const perGuest = creates.map((c) => {
      const pids = domainPids(inst.cgroup, c.domid);
      const m = sumMem(pids);
      const ram = memfds.get(`xenode-d${c.domid}-ram`) ?? 0;
      const gnttab = memfds.get(`xenode-d${c.domid}-gnttab`) ?? 0;
      return { domid: c.domid, processes: pids.length, ...m, cgroupUsage: domainCgroupUsage(inst.cgroup, c.domid), memfdBytes: ram + gnttab };
    });
    const after = { dom0: procMem(d0Pid), hv: procMem(hvPid) };
    const avg = (k: 'rss' | 'pss' | 'uss' | 'anon' | 'pssShmem' | 'cgroupUsage' | 'memfdBytes' | 'processes') => meanOf(perGuest.map((g) => g[k]));
    const dom0ShareMiB = (after.dom0.uss - before.dom0.uss) / n / MiB;
    const hvShareMiB = (after.hv.uss - before.hv.uss) / n / MiB;
    const guestPssMiB = (avg('pss') - avg('pssShmem')) / MiB;
    const memfdMiB = avg('memfdBytes') / MiB;
    const totals = {
      // Guest processes' proportional share (node's shared text split among its mappers),
      // their shared-memory pages counted once through the memfds, plus dom0's and the
      // hypervisor's growth per guest.
      pssBasedMiB: guestPssMiB + memfdMiB + Math.max(0, dom0ShareMiB) + Math.max(0, hvShareMiB),
      // What the domain's memory cgroup is charged, plus the same dom0/hypervisor share.
      cgroupBasedMiB: avg('cgroupUsage') / MiB + Math.max(0, dom0ShareMiB) + Math.max(0, hvShareMiB),
      // Worst case: every resident page of the guest's processes, shared text included.
      rssBasedMiB: avg('rss') / MiB + memfdMiB + Math.max(0, dom0ShareMiB) + Math.max(0, hvShareMiB),
    };
    return {
      guests: n,
      allReadyMs,
      createReady: summarise(creates.map((c) => c.readyMs)),
      perGuest: {
        processes: avg('processes'),
        rssMiB: avg('rss') / MiB,
        pssMiB: avg('pss') / MiB,
        pssExclShmemMiB: guestPssMiB,
        ussMiB: avg('uss') / MiB,
        anonMiB: avg('anon') / MiB,
        cgroupUsageMiB: avg('cgroupUsage') / MiB,
        memfdAllocatedMiB: memfdMiB,
        dom0ShareMiB,
        hypervisorShareMiB: hvShareMiB,
        ...totals,
      },
      dom0: { before: memSummary(before.dom0), after: memSummary(after.dom0) },
      hypervisor: { before: memSummary(before.hv), after: memSummary(after.hv) },
      idleCpuPct: { perGuestMean: meanOf(guestCpu), perGuestMax: Math.max(...guestCpu), dom0: dom0Cpu, hypervisor: hvCpu },
      kernelRssEach: perGuest.map((g) => g.rss / MiB),
    };
  } finally {
    for (const c of creates) await inst.rpc('destroy', { dom: c.name }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------- main

function preflight(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, cgroups)';
  if (!existsSync('/sys/fs/cgroup/freezer/tasks')) return 'needs cgroup v1 (freezer, memory, ...)';
  if (!existsSync(join(ROOT, 'build', 'Release', 'xenode.node'))) return 'native addon not built (npm install)';
  if (!existsSync(join(ROOT, 'dist', 'boot', 'kernel.mjs'))) return 'not built (npm run build)';
  return null;
}

function machine() {
  const c = cpus();
  return {
    hostname: hostname(),
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    /** Other work on the host: these figures move with it. */
    loadavgAtEnd: readFileSync('/proc/loadavg', 'utf8').trim(),
  };
}

async function main(): Promise<number> {
  const why = preflight();
  if (why) {
    process.stderr.write(`bench:platform cannot run: ${why}\n`);
    return 1;
  }
  const started = new Date();
  const loadAtStart = readFileSync('/proc/loadavg', 'utf8').trim();
  const inst = new BenchInstance('platform');
  let cleaned: Promise<void> | null = null;
  const cleanup = () => (cleaned ??= (killAll(), inst.stop()));
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const hard = setTimeout(() => {
    log(`hard time limit (${CFG.hardLimitMs / 1000} s) reached: cleaning up`);
    void cleanup().finally(() => process.exit(1));
  }, CFG.hardLimitMs);
  hard.unref();

  const results: Record<string, unknown> = {};
  const tStart = nowMs();
  try {
    await inst.start();
    // One untimed create first: page cache, JIT in dom0, the boot dir staged.
    const warm = await createToConsoleReady(inst, 'warmup');
    await inst.rpc('destroy', { dom: warm.name });
    if (want('latency')) results.latency = await phaseLatency(inst);
    if (want('pingpong')) results.pingpong = await phasePingPong(inst);
    if (want('xenstore')) results.xenstore = await phaseXenstore(inst);
    if (want('idle')) results.idle = await phaseIdleGuests(inst);
  } catch (e) {
    log(`failed: ${(e as Error).stack ?? e}`);
    log(`xenode log tail:\n${inst.log().split('\n').slice(-30).join('\n')}`);
    await cleanup();
    return 1;
  } finally {
    await cleanup();
    clearTimeout(hard);
  }
  const runMs = nowMs() - tStart;
  if (ONLY) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    return 0;
  }

  const lat = results.latency as Awaited<ReturnType<typeof phaseLatency>>;
  const pp = results.pingpong as Awaited<ReturnType<typeof phasePingPong>>;
  const xs = results.xenstore as Awaited<ReturnType<typeof phaseXenstore>>;
  const idle = results.idle as Awaited<ReturnType<typeof phaseIdleGuests>>;
  const memHeadline = idle.perGuest.pssBasedMiB;
  const xsHeadline = xs.readSeq.opsPerSec;
  const xsWriteSeq = xs.writeSeq.opsPerSec;
  const verdict = {
    consoleReady: lat.ready.median < TARGETS.consoleReadyMedianMs,
    memoryPerGuest: memHeadline < TARGETS.memoryPerGuestMiB,
    evtchnRatio: pp.placements.unpinned!.evtchnOverFutex <= TARGETS.evtchnOverFutex,
    /** One request in flight at a time (latency-bound: a socket round trip per operation). */
    xenstoreOpsSequential: Math.min(xsHeadline, xsWriteSeq) >= TARGETS.xenstoreOpsPerSec,
    /** Requests pipelined on the connection (what xenstored can serve). */
    xenstoreOpsPipelined: Math.min(xs.readPipelined.opsPerSec, xs.writePipelined.opsPerSec) >= TARGETS.xenstoreOpsPerSec,
  };
  const ok = (b: boolean) => (b ? 'yes' : 'NO');

  const rows: string[][] = [
    ['measure', 'xenode', 'baseline (same run)', 'ratio', 'target', 'met'],
    ['xl create -> console ready, median (ms)', fmt(lat.ready.median), `node start ${fmt(lat.nodeStart.median)}`, `${fmt(lat.ready.median / lat.nodeStart.median, 2)}x`, `< ${TARGETS.consoleReadyMedianMs}`, ok(verdict.consoleReady)],
    ['  p90 / init-line median / xl exit median (ms)', `${fmt(lat.ready.p90)} / ${fmt(lat.init.median)} / ${fmt(lat.xl.median)}`, '-', '-', '', ''],
    [`memory per idle guest, ${idle.guests} at once (MiB, PSS basis)`, fmt(memHeadline), '-', '-', `< ${TARGETS.memoryPerGuestMiB}`, ok(verdict.memoryPerGuest)],
    ['  cgroup basis / RSS basis (MiB)', `${fmt(idle.perGuest.cgroupBasedMiB)} / ${fmt(idle.perGuest.rssBasedMiB)}`, '-', '-', '', ''],
    ['  of which dom0 + hypervisor share (MiB)', `${fmt(idle.perGuest.dom0ShareMiB, 2)} + ${fmt(idle.perGuest.hypervisorShareMiB, 2)}`, '-', '-', '', ''],
    ['  idle CPU per guest, mean (% of a CPU)', fmt(idle.idleCpuPct.perGuestMean, 3), '-', '-', '', ''],
    ...Object.entries(pp.placements).flatMap(([name, p]) => [
      [`event-channel round trip dom0<->guest, ${name} (us)`, fmt(p.evtchnUs), `futex ${fmt(p.futexUs)}`, `${fmt(p.evtchnOverFutex, 2)}x`, name === 'unpinned' ? `<= ${TARGETS.evtchnOverFutex}x` : '', name === 'unpinned' ? ok(verdict.evtchnRatio) : ''],
      ['  vs eventfd + uv_poll ping-pong (us)', '', `eventfd ${fmt(p.eventfdUs)}`, `${fmt(p.evtchnOverEventfd, 2)}x`, '', ''],
    ]),
    ['xenstore read, sequential (ops/s)', fmt(xs.readSeq.opsPerSec, 0), `socket echo ${fmt(xs.echoSeq.opsPerSec, 0)}`, `${fmt(xs.readSeq.opsPerSec / xs.echoSeq.opsPerSec, 2)}x`, `>= ${TARGETS.xenstoreOpsPerSec}`, ok(xsHeadline >= TARGETS.xenstoreOpsPerSec)],
    ['xenstore write, sequential (ops/s)', fmt(xs.writeSeq.opsPerSec, 0), `socket echo ${fmt(xs.echoSeq.opsPerSec, 0)}`, `${fmt(xs.writeSeq.opsPerSec / xs.echoSeq.opsPerSec, 2)}x`, `>= ${TARGETS.xenstoreOpsPerSec}`, ok(xsWriteSeq >= TARGETS.xenstoreOpsPerSec)],
    [`xenstore read, ${xs.depth} in flight (ops/s)`, fmt(xs.readPipelined.opsPerSec, 0), `socket echo ${fmt(xs.echoPipelined.opsPerSec, 0)}`, `${fmt(xs.readPipelined.opsPerSec / xs.echoPipelined.opsPerSec, 2)}x`, `>= ${TARGETS.xenstoreOpsPerSec}`, ok(xs.readPipelined.opsPerSec >= TARGETS.xenstoreOpsPerSec)],
    [`xenstore write, ${xs.depth} in flight (ops/s)`, fmt(xs.writePipelined.opsPerSec, 0), `socket echo ${fmt(xs.echoPipelined.opsPerSec, 0)}`, `${fmt(xs.writePipelined.opsPerSec / xs.echoPipelined.opsPerSec, 2)}x`, `>= ${TARGETS.xenstoreOpsPerSec}`, ok(xs.writePipelined.opsPerSec >= TARGETS.xenstoreOpsPerSec)],
    [
      'server CPU per op, read / write seq (us)',
      `${fmt(xs.readSeq.serverCpuUsPerOp!)} / ${fmt(xs.writeSeq.serverCpuUsPerOp!)}`,
      `echo ${fmt(xs.echoSeq.serverCpuUsPerOp!)}`,
      `${fmt(xs.readSeq.serverCpuUsPerOp! / xs.echoSeq.serverCpuUsPerOp!, 2)}x`,
      '',
      '',
    ],
    [
      `server CPU per op, read / write ${xs.depth} in flight (us)`,
      `${fmt(xs.readPipelined.serverCpuUsPerOp!)} / ${fmt(xs.writePipelined.serverCpuUsPerOp!)}`,
      `echo ${fmt(xs.echoPipelined.serverCpuUsPerOp!)}`,
      `${fmt(xs.readPipelined.serverCpuUsPerOp! / xs.echoPipelined.serverCpuUsPerOp!, 2)}x`,
      '',
      '',
    ],
    ['xenstore read, stock C client (ops/s)', xs.cToolRead ? fmt(xs.cToolRead.opsPerSec, 0) : '-', '', '', '', ''],
  ];
  const m = { ...machine(), loadavgAtStart: loadAtStart };
  process.stdout.write(`\nxenode platform benchmarks, ${started.toISOString()}, ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}${QUICK ? ' (QUICK)' : ''}\nload average at start ${m.loadavgAtStart}, at end ${m.loadavgAtEnd}\n\n`);
  process.stdout.write(table(rows) + '\n\n');
  process.stdout.write(`run took ${fmt(runMs / 1000)} s\n`);

  const outDir = join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const json = { benchmark: 'platform', date: started.toISOString(), quick: QUICK, machine: m, config: CFG, targets: TARGETS, verdict, runSeconds: runMs / 1000, results };
  const file = join(outDir, `platform-${stamp}.json`);
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(join(outDir, 'platform-latest.json'), JSON.stringify(json, null, 2) + '\n');
  process.stdout.write(`results: ${file}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench:platform: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
