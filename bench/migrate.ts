// Live migration benchmark (npm run bench:migrate; root, /dev/kvm). Two xenode instances on
// this machine; a tiny HVM guest on the KVM engine (hypervisor/kvm/tiny-guest.ts, counterKernel)
// counting on its serial line about a hundred times a second, idle (it touches three pages) or
// dirtying memory at a fixed rate (each count written into 2048 pages = 8 MiB); guests of 64,
// 256 and 1024 MiB. Each is moved with `xl migrate -s '' DOM "<destination's xl
// migrate-receive>"` (an empty -s runs the host argument itself: a local pipe, no network), and
// measured:
//   downtime   last line the source's console log got -> first line in the destination's
//              (polled every 2 ms; the guest prints every ~10 ms, so +-10 ms)
//   pause      what xl reports: the source paused -> the destination confirmed running
//   total      xl migrate's wall time
//   sent       bytes in the stream vs the guest's RAM; pre-copy rounds and pages per round
// Bounded: one migration per case, each with a 120 s limit. Prints a table, writes JSON to
// bench/results/migrate-<time>.json.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kvmAvailable, kvmHostInfo } from '../hypervisor/kvm/kvm.js';
import { counterKernel } from '../hypervisor/kvm/tiny-guest.js';
import { BenchInstance, ROOT, XL } from './lib/instance.js';

const log = (m: string) => process.stderr.write(`[bench:migrate] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Case {
  memoryMiB: number;
  dirtyPages: number;
}

interface Result extends Case {
  downtimeMs: number;
  reportedDowntimeMs: number;
  totalMs: number;
  sentMiB: number;
  rounds: string;
  live: boolean;
}

function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function migrateOnce(src: BenchInstance, dst: BenchInstance, c: Case): Promise<Result> {
  const name = `m${c.memoryMiB}${c.dirtyPages ? 'd' : 'i'}`;
  const kernel = join(src.env.XENODE_LIB_DIR!, `${name}.bzImage`);
  mkdirSync(src.env.XENODE_LIB_DIR!, { recursive: true });
  writeFileSync(kernel, counterKernel(5_000, 0x3f8, c.dirtyPages));
  const cfg = join(src.env.XENODE_LIB_DIR!, `${name}.cfg`);
  writeFileSync(cfg, [`name = '${name}'`, `builder = 'hvm'`, `kernel = '${kernel}'`, `memory = ${c.memoryMiB}`, `vcpus = 1`, `serial = 'pty'`, `vga = 'none'`, ''].join('\n'));
  await src.xl('create', cfg);
  const srcLog = src.consoleLogPath(name);
  const dstLog = dst.consoleLogPath(name);
  for (let i = 0; size(srcLog) < 200 && i < 1500; i++) await sleep(20);
  await sleep(500);
  // The destination's xl, run by the source's xl as "the host" (empty -s).
  const envs = ['XENODE_RUN_DIR', 'XENODE_LOG_DIR', 'XENODE_LIB_DIR', 'XENSTORED_PATH', 'XENODE_CGROUP'].map((k) => `${k}=${dst.env[k]}`).join(' ');
  const receiver = `env ${envs} ${process.execPath} ${XL} migrate-receive -e`;
  let srcLast = Date.now();
  let srcSize = size(srcLog);
  let dstFirst = 0;
  let done = false;
  const t0 = Date.now();
  const run = new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, [XL, 'migrate', '-s', '', name, receiver], { env: src.env, timeout: 120_000, maxBuffer: 1 << 20 }, (err, _out, stderr) => {
      done = true;
      resolve({ code: err ? 1 : 0, stderr: String(stderr) });
    });
  });
  while (!done || !dstFirst) {
    const now = Date.now();
    const s = size(srcLog);
    if (s !== srcSize) {
      srcSize = s;
      srcLast = now;
    }
    if (!dstFirst && size(dstLog) > 0) dstFirst = now;
    if (done && now - t0 > 130_000) break;
    await sleep(2);
  }
  const r = await run;
  const totalMs = Date.now() - t0;
  if (r.code !== 0) throw new Error(`migrating ${name} failed: ${r.stderr}`);
  const m = /(\d+) pre-copy round\(s\), pages per round ([\d ]+); ([\d.]+) MiB sent .* downtime (\d+) ms, total (\d+) ms/.exec(r.stderr);
  const stop = /stop-and-copy; ([\d.]+) MiB sent .* downtime (\d+) ms, total (\d+) ms/.exec(r.stderr);
  await dst.xl('destroy', name);
  return {
    ...c,
    downtimeMs: dstFirst ? dstFirst - srcLast : NaN,
    reportedDowntimeMs: Number(m?.[4] ?? stop?.[2] ?? NaN),
    totalMs: Number(m?.[5] ?? stop?.[3] ?? totalMs),
    sentMiB: Number(m?.[3] ?? stop?.[1] ?? NaN),
    rounds: m ? m[2]!.trim() : 'stop-and-copy',
    live: !!m,
  };
}

async function main(): Promise<void> {
  const avail = kvmAvailable();
  if (!avail.ok) throw new Error(`no KVM here: ${avail.reason}`);
  const src = new BenchInstance('migsrc');
  const dst = new BenchInstance('migdst');
  const results: Result[] = [];
  try {
    await src.start();
    await dst.start();
    for (const memoryMiB of [64, 256, 1024]) {
      for (const dirtyPages of [0, 2048]) {
        const c = { memoryMiB, dirtyPages };
        log(`${memoryMiB} MiB, ${dirtyPages ? `dirtying ${dirtyPages} pages per count` : 'idle'} ...`);
        const r = await migrateOnce(src, dst, c);
        log(`  downtime ${r.downtimeMs} ms (xl: ${r.reportedDowntimeMs} ms), total ${r.totalMs} ms, ${r.sentMiB} MiB sent, rounds ${r.rounds}`);
        results.push(r);
      }
    }
  } finally {
    await src.stop().catch(() => {});
    await dst.stop().catch(() => {});
  }
  const host = kvmHostInfo();
  console.log(`\nLive migration, ${host.flavor} host, ${new Date().toISOString()}`);
  console.log('| guest RAM | load | downtime (console) | paused -> running (xl) | total | sent | pre-copy pages per round |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.memoryMiB} MiB | ${r.dirtyPages ? `${r.dirtyPages} pages/count` : 'idle'} | ${r.downtimeMs} ms | ${r.reportedDowntimeMs} ms | ${r.totalMs} ms | ${r.sentMiB} MiB | ${r.rounds} |`);
  }
  const dir = join(ROOT, 'bench', 'results');
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const file = join(dir, `migrate-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify({ host, results }, null, 2));
  log(`wrote ${file}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
