// The web console's cost and speed (npm run bench:web; needs root and Debian's chromium):
//   1. dom0's CPU with N idle guests, first with no web service, then with `xenode web` and
//      its page open in a headless Chromium (a guest's console shown, the list live): dom0's
//      process and the web service's, each as % of one CPU over the same window;
//   2. the delay from a byte written on a guest's console to the page receiving it: the
//      guest prints its wall clock (`date +%s%N`, the same clock as the browser's Date.now())
//      every 100 ms and the page records when each chunk arrived.
// BENCH_GUESTS (default 20), BENCH_WINDOW_MS (default 10000). Bounded: at most 40 console
// samples, the whole run killed after 5 minutes; everything is torn down on exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { BenchInstance, ROOT, XENODE } from './lib/instance.js';
import { procCpuNs } from './lib/procmem.js';
import { median, quantile, fmt, table } from './lib/stats.js';
import { kill, killAll, track } from './lib/children.js';

const GUESTS = Number(process.env.BENCH_GUESTS ?? 20);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 10_000);
const LATENCY_SAMPLES = 40;
const HARD_LIMIT_MS = 5 * 60_000;
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const log = (s: string) => process.stderr.write(`[bench:web] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** % of one CPU each pid used over `ms` (threads' schedstat run time). */
async function cpuOver(pids: Record<string, number>, ms: number): Promise<Record<string, number>> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, procCpuNs(p)]));
  const t0 = process.hrtime.bigint();
  await sleep(ms);
  const wall = Number(process.hrtime.bigint() - t0);
  return Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, ((procCpuNs(p) - before[k]!) / wall) * 100]));
}

function startWeb(inst: BenchInstance): Promise<{ child: ChildProcess; url: string }> {
  const child = track(spawn(process.execPath, [XENODE, 'web', '--port', '0'], { env: inst.env, stdio: ['ignore', 'pipe', 'inherit'] }));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /(http:\/\/\S+)/.exec(out);
      if (m) resolve({ child, url: m[1]! });
    });
    child.on('exit', (c) => reject(new Error(`xenode web exited (${c}): ${out}`)));
  });
}

async function main(): Promise<void> {
  const inst = new BenchInstance('web');
  let browser: Browser | null = null;
  let web: ChildProcess | null = null;
  const limit = setTimeout(() => {
    log('hard time limit reached: stopping');
    void cleanup().then(() => process.exit(2));
  }, HARD_LIMIT_MS);
  const cleanup = async () => {
    clearTimeout(limit);
    await browser?.close().catch(() => {});
    if (web) kill(web);
    killAll();
    await inst.stop();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    await inst.start();
    log(`creating ${GUESTS} idle guests`);
    const t0 = Date.now();
    for (let i = 0; i < GUESTS; i++) await inst.xl('create', inst.guestConfig(`idle${i}`));
    log(`created in ${((Date.now() - t0) / 1000).toFixed(1)} s; settling`);
    await sleep(3000);
    const dom0 = await inst.dom0Pid();
    const hv = inst.hypervisorPid();

    log(`dom0 CPU, no web service (${WINDOW_MS} ms)`);
    const quiet = await cpuOver({ dom0, hypervisor: hv }, WINDOW_MS);

    const started = await startWeb(inst);
    web = started.child;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`${started.url}&probe=1`);
    await page.waitForFunction((n) => document.querySelectorAll('#domains tbody tr').length >= n, GUESTS + 1, { timeout: 20_000 });
    await page.click('#domains tr[data-name="idle0"]');
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('idle0:/#'), null, { timeout: 10_000 });
    await sleep(2000);
    log(`dom0 CPU with the page open (${WINDOW_MS} ms)`);
    const open = await cpuOver({ dom0, web: web.pid!, hypervisor: hv }, WINDOW_MS);

    log('console latency');
    await page.evaluate(() => ((window as unknown as { xenodeArrivals: unknown[] }).xenodeArrivals = []));
    await page.click('#term');
    await page.keyboard.type(`for i in $(seq 1 ${LATENCY_SAMPLES}); do date +%s%N; sleep 0.1; done\n`);
    await page.waitForFunction((n) => {
      const a = (window as unknown as { xenodeArrivals: [number, string][] }).xenodeArrivals;
      return a.map((x) => x[1]).join('').match(/\b\d{19}\b/g)?.length === n;
    }, LATENCY_SAMPLES, { timeout: 30_000 });
    const arrivals = await page.evaluate(() => (window as unknown as { xenodeArrivals: [number, string][] }).xenodeArrivals);
    // A stamp split across two chunks counts at the chunk that completed it.
    const delays: number[] = [];
    let carry = '';
    for (const [at, text] of arrivals) {
      const all = carry + text;
      const stamps = all.match(/\b\d{19}\b/g) ?? [];
      for (const s of stamps) delays.push(at - Number(BigInt(s) / 1_000_000n));
      carry = all.slice(all.lastIndexOf('\n') + 1);
    }
    delays.sort((a, b) => a - b);

    const result = {
      when: new Date().toISOString(),
      machine: `${hostname()}, ${cpus().length} CPUs`,
      guests: GUESTS,
      windowMs: WINDOW_MS,
      cpuPctNoWeb: quiet,
      cpuPctPageOpen: open,
      dom0PlusWebPageOpen: open.dom0! + open.web!,
      consoleLatencyMs: { samples: delays.length, median: median(delays), p90: quantile(delays, 0.9), max: delays[delays.length - 1]! },
    };
    process.stdout.write(
      table([
        ['measure', 'value'],
        [`dom0 CPU, ${GUESTS} idle guests, no web (% of a CPU)`, fmt(quiet.dom0!, 2)],
        [`dom0 CPU, page open (% of a CPU)`, fmt(open.dom0!, 2)],
        [`web service CPU, page open (% of a CPU)`, fmt(open.web!, 2)],
        [`dom0 + web service, page open (target < 2)`, fmt(result.dom0PlusWebPageOpen, 2)],
        [`hypervisor CPU, no web / page open`, `${fmt(quiet.hypervisor!, 2)} / ${fmt(open.hypervisor!, 2)}`],
        [`console byte -> browser, median / p90 / max (ms; target median < 50)`, `${fmt(result.consoleLatencyMs.median, 1)} / ${fmt(result.consoleLatencyMs.p90, 1)} / ${fmt(result.consoleLatencyMs.max, 1)} (${delays.length} samples)`],
      ]) + '\n',
    );
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `web-${result.when.replace(/[:.]/g, '-')}.json`), JSON.stringify(result, null, 2));
  } finally {
    await cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:web failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
