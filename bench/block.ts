// PV block benchmark (npm run bench:block; needs root, fio): Debian's fio inside a guest on its
// PV disk (blkfront -> blkif ring -> blkback -> the image file) against the same fio on the host
// on the same image file, in one run:
//   4 KiB random read at queue depth 1 and 32, 1 MiB sequential read and write,
// all O_DIRECT on both sides (the guest's page cache would otherwise measure memory, not the
// disk path). The guest runs in four configurations, persistent grants and indirect
// descriptors each on and off (xen_blkfront.feature_persistent / max_indirect_segments on the
// guest's command line), so their effect shows in the same table. A host run comes before the
// first guest run and after every guest run; each guest figure is compared with the two host
// runs around it, since these shared machines drift (BENCH_ROUNDS repeats the whole sequence
// and averages).
// For A/B runs while tuning: BENCH_JOBS / BENCH_VARIANTS pick subsets, BENCH_GUEST_ARGS adds
// guest kernel parameters (e.g. "xen_blkfront.eager=0"), BENCH_GUEST_VCPUS the guest's vCPUs
// (default 1), BENCH_SEQ_DEPTH the sequential jobs' queue depth (default 4).
// Prints a table and writes JSON to bench/results/. Record results in docs/benchmarks.md
// ("## PV block").
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release } from 'node:os';
import { join } from 'node:path';
import { BenchInstance, ROOT } from './lib/instance.js';
import { fmt, table } from './lib/stats.js';

const QUICK = process.env.BENCH_QUICK === '1';
const CFG = {
  runtimeS: Number(process.env.BENCH_RUNTIME ?? (QUICK ? 2 : 5)),
  imageMiB: 1024,
  /** Queue depth of the sequential jobs (both sides). */
  seqDepth: Number(process.env.BENCH_SEQ_DEPTH ?? 4),
  /** Rounds of [host, then each guest followed by host again] (BENCH_ROUNDS). */
  rounds: Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1) || 1),
  /** vCPUs of the fio guest (BENCH_GUEST_VCPUS). */
  vcpus: Math.max(1, Number(process.env.BENCH_GUEST_VCPUS ?? 1) || 1),
  hardLimitMs: 10 * 60_000,
};
const TARGETS = { rr1: 0.45, rr32: 0.3, seqr: 0.7, seqw: 0.7 };

interface Job {
  key: keyof typeof TARGETS;
  label: string;
  args: string[];
  /** Which side of fio's terse line to read. */
  dir: 'read' | 'write';
  unit: 'IOPS' | 'MiB/s';
}

const ALL_JOBS: Job[] = [
  { key: 'rr1', label: '4 KiB random read, QD1', args: ['--rw=randread', '--bs=4k', '--iodepth=1'], dir: 'read', unit: 'IOPS' },
  { key: 'rr32', label: '4 KiB random read, QD32', args: ['--rw=randread', '--bs=4k', '--iodepth=32'], dir: 'read', unit: 'IOPS' },
  { key: 'seqr', label: `1 MiB sequential read, QD${CFG.seqDepth}`, args: ['--rw=read', '--bs=1M', `--iodepth=${CFG.seqDepth}`], dir: 'read', unit: 'MiB/s' },
  { key: 'seqw', label: `1 MiB sequential write, QD${CFG.seqDepth}`, args: ['--rw=write', '--bs=1M', `--iodepth=${CFG.seqDepth}`], dir: 'write', unit: 'MiB/s' },
];

/** BENCH_JOBS=rr1,rr32 / BENCH_VARIANTS=pi: a subset, for quick looks while tuning. */
const pick = <T>(all: T[], env: string | undefined, key: (t: T) => string): T[] => {
  const want = env?.split(',').filter(Boolean);
  return want?.length ? all.filter((t) => want.includes(key(t))) : all;
};
const JOBS = pick(ALL_JOBS, process.env.BENCH_JOBS, (j) => j.key);

interface GuestVariant {
  name: string;
  label: string;
  persistent: boolean;
  indirect: boolean;
}

const ALL_VARIANTS: GuestVariant[] = [
  { name: 'pi', label: 'guest: persistent + indirect (default)', persistent: true, indirect: true },
  { name: 'i', label: 'guest: persistent off', persistent: false, indirect: true },
  { name: 'p', label: 'guest: indirect off', persistent: true, indirect: false },
  { name: 'none', label: 'guest: both off', persistent: false, indirect: false },
];

const VARIANTS = pick(ALL_VARIANTS, process.env.BENCH_VARIANTS, (v) => v.name);

type Results = Record<Job['key'], number>;

function log(msg: string): void {
  process.stderr.write(`[bench:block] ${msg}\n`);
}

/** fio's command line for all four jobs, one after the other (stonewall). */
function fioArgs(filename: string): string[] {
  const g = ['--output-format=terse', '--terse-version=3', `--filename=${filename}`, '--direct=1', '--ioengine=libaio', '--time_based', `--runtime=${CFG.runtimeS}`, '--ramp_time=1', '--size=1G'];
  return [...g, ...JOBS.flatMap((j) => [`--name=${j.key}`, '--stonewall', ...j.args])];
}

/** Terse v3: field 7/8 read bandwidth (KiB/s)/IOPS, 48/49 the write side. */
function parseTerse(text: string): Results {
  const out: Partial<Results> = {};
  for (const line of text.replace(/\r/g, '').split('\n')) {
    const f = line.split(';');
    if (f[0] !== '3' || f.length < 50) continue;
    const job = JOBS.find((j) => j.key === f[2]);
    if (!job) continue;
    const [bw, iops] = job.dir === 'read' ? [Number(f[6]), Number(f[7])] : [Number(f[47]), Number(f[48])];
    out[job.key] = job.unit === 'IOPS' ? iops : bw / 1024;
  }
  for (const j of JOBS) if (out[j.key] === undefined) throw new Error(`fio printed no result for ${j.key}:\n${text.slice(-2000)}`);
  return out as Results;
}

function hostFio(image: string): Results {
  const r = spawnSync('fio', fioArgs(image), { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`host fio failed: ${r.stderr}${r.stdout}`);
  return parseTerse(r.stdout);
}

async function guestFio(inst: BenchInstance, image: string, v: GuestVariant): Promise<Results> {
  const name = `fio-${v.name}`;
  const extra = [
    'console=hvc0',
    `xen_blkfront.feature_persistent=${v.persistent ? 1 : 0}`,
    `xen_blkfront.max_indirect_segments=${v.indirect ? 256 : 0}`,
    ...(process.env.BENCH_GUEST_ARGS ?? '').split(' ').filter(Boolean),
    'init=/usr/bin/fio',
    '--',
    ...fioArgs('/dev/xvda'),
  ].join(' ');
  const cfg = join(inst.dir, `${name}.cfg`);
  writeFileSync(cfg, [`name = "${name}"`, 'type = "pv"', 'memory = 256', `vcpus = ${CFG.vcpus}`, `extra = "${extra}"`, `disk = ['file:${image},xvda,w']`, ''].join('\n'));
  await inst.xl('create', cfg);
  // fio is the guest's init: when it exits the guest powers off and is destroyed. Asked over
  // the toolstack's socket, not by `xl list`: starting a Node process four times a second took
  // ~30% of a CPU on these 2-vCPU machines, away from the guest being measured.
  const deadline = Date.now() + 180_000;
  for (;;) {
    const listed = await inst.rpc<{ name: string }[]>('list').catch(() => []);
    if (!listed.some((d) => d.name === name)) break;
    if (Date.now() > deadline) throw new Error(`${name} did not finish in time`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return parseTerse(readFileSync(inst.consoleLogPath(name), 'utf8'));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:block needs root');
  if (spawnSync('fio', ['--version']).status !== 0) throw new Error('fio is not installed (apt-get install fio)');
  const inst = new BenchInstance('block');
  const killer = setTimeout(() => {
    log('hard time limit reached: cleaning up');
    void inst.stop().then(() => process.exit(2));
  }, CFG.hardLimitMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void inst.stop().then(() => process.exit(130)));
  try {
    await inst.start();
    const image = join(inst.dir, 'bench.img');
    log(`filling ${CFG.imageMiB} MiB image ${image}`);
    const fill = spawnSync('fio', ['--name=fill', `--filename=${image}`, `--size=${CFG.imageMiB}M`, '--rw=write', '--bs=1M', '--direct=1', '--ioengine=libaio', '--iodepth=4'], { encoding: 'utf8' });
    if (fill.status !== 0) throw new Error(`fio fill failed: ${fill.stderr}`);

    // Host runs bracket every guest run, and each guest run is compared with the mean of the
    // host runs just before and after it: on these shared machines the disk's own speed drifts
    // by a third within minutes, and one host figure for the whole run made ratios swing with it.
    const host: Results[] = [];
    const guestRuns: Record<string, Results[]> = {};
    const ratioRuns: Record<string, Results[]> = {};
    const mean = (rs: Results[]) => Object.fromEntries(JOBS.map((j) => [j.key, rs.reduce((a, r) => a + r[j.key], 0) / rs.length])) as Results;
    for (let round = 0; round < CFG.rounds; round++) {
      if (host.length === 0) {
        log('host fio');
        host.push(hostFio(image)); // later rounds start from the previous round's last host run
      }
      for (const v of VARIANTS) {
        log(`${v.label} (round ${round + 1})`);
        const g = await guestFio(inst, image, v);
        log('host fio');
        const before = host[host.length - 1]!;
        const after = hostFio(image);
        host.push(after);
        const bracket = mean([before, after]);
        (guestRuns[v.name] ??= []).push(g);
        (ratioRuns[v.name] ??= []).push(Object.fromEntries(JOBS.map((j) => [j.key, g[j.key] / bracket[j.key]])) as Results);
      }
    }
    const native = mean(host);
    const guests = Object.fromEntries(VARIANTS.map((v) => [v.name, mean(guestRuns[v.name]!)])) as Record<string, Results>;
    const ratios = Object.fromEntries(VARIANTS.map((v) => [v.name, mean(ratioRuns[v.name]!)])) as Record<string, Results>;

    const rows: string[][] = [['', ...JOBS.map((j) => `${j.label} (${j.unit})`)]];
    rows.push([`host (same file, mean of ${host.length})`, ...JOBS.map((j) => fmt(native[j.key], 0))]);
    for (const v of VARIANTS) {
      const g = guests[v.name]!;
      rows.push([v.label, ...JOBS.map((j) => `${fmt(g[j.key], 0)} (${fmt(ratios[v.name]![j.key], 2)}x)`)]);
    }
    rows.push(['target (default guest / host)', ...JOBS.map((j) => `>= ${TARGETS[j.key]}x`)]);
    const def = ratios.pi;
    const verdict = def ? JOBS.map((j) => `${j.key} ${fmt(def[j.key], 2)}x ${def[j.key] >= TARGETS[j.key] ? 'meets' : 'MISSES'} ${TARGETS[j.key]}x`) : [];
    process.stdout.write(`\nPV block: fio in a guest vs fio on the host, same image file, O_DIRECT, ${CFG.runtimeS} s per job, ${CFG.rounds} round(s); ratios against the host runs just before and after each guest run\n`);
    process.stdout.write(table(rows) + '\n');
    process.stdout.write(verdict.join('; ') + '\n');

    const dir = join(ROOT, 'bench', 'results');
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
    const when = new Date().toISOString();
    const file = join(dir, `block-${when.replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify({ when, machine: { host: hostname(), cpus: cpus().length, cpu: cpus()[0]?.model, kernel: release() }, config: CFG, host, native, guestRuns, ratioRuns, guests, ratios }, null, 2),
    );
    log(`results in ${file}`);
  } finally {
    clearTimeout(killer);
    await inst.stop();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:block: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
