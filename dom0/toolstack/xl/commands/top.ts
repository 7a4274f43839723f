// xl top: Xen's xentop (tools/xentop/xentop.c) over the toolstack's counters, the same reading
// the web console shows (domain-counters.ts).
//
//   xl top [-b] [-i ITERATIONS] [-d SECONDS] [-n] [-x] [-v] [-r] [-f] [-z]
//
// -b prints xentop's batch output (header and one row per domain each refresh, no summary);
// without it the terminal is redrawn every -d seconds (default 3) with xentop's summary above
// the table, until q or -i refreshes. Columns, widths, state letters (d s b c p r), the
// default sort (by name) and the -n/-x/-v detail lines are xentop's.
import { readCounters, netRxBytes, netTxBytes, rates, type CounterReading, type DomainCounters } from '../../domain-counters.js';
import { readFileSync } from 'node:fs';
import { wrap, XlExit, sleep } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';

export interface TopOptions {
  batch: boolean;
  iterations: number; // 0: until interrupted
  delaySec: number;
  networks: boolean;
  vbds: boolean;
  vcpus: boolean;
  repeatHeader: boolean;
  fullName: boolean;
  dom0First: boolean;
}

interface Field {
  header: string;
  width: number;
  cell: (d: DomainCounters, r: Row) => string;
}

interface Row {
  d: DomainCounters;
  cpuPct: number;
  totMemKiB: number;
}

const right = (s: string | number, w: number) => String(s).padStart(w);
/** INT_FIELD_WIDTH(n): the digits of n. */
const digits = (v: number) => Math.floor(Math.log10(Math.max(1, v))) + 1;

const vbdSum = (d: DomainCounters, f: (v: DomainCounters['vbds'][number]) => number) => d.vbds.reduce((a, v) => a + f(v), 0);

/** xentop's state letters: dying, shutdown, blocked, crashed, paused, running. */
export function xentopState(d: DomainCounters): string {
  const shut = d.shutdown || d.crashed;
  const crashed = d.crashed || (shut && d.shutdownReason === 'crash');
  return [d.dying && 'd', shut && 's', d.blocked && 'b', crashed && 'c', d.paused && 'p', d.running && 'r'].map((c) => c || '-').join('');
}

function fields(rows: Row[], fullName: boolean): Field[] {
  // reset_field_widths + adjust_field_widths: counters widen their columns as they grow.
  const widen = (base: number, f: (d: DomainCounters) => number) => Math.max(base, ...rows.map((r) => digits(f(r.d) + 1)));
  const nameW = fullName ? Math.max(10, ...rows.map((r) => r.d.name.length)) : 10;
  const txW = widen(8, (d) => Math.floor(netTxBytes(d) / 1024));
  const rxW = widen(8, (d) => Math.floor(netRxBytes(d) / 1024));
  const rdW = widen(8, (d) => vbdSum(d, (v) => v.rdReq));
  const wrW = widen(8, (d) => vbdSum(d, (v) => v.wrReq));
  const rsW = widen(10, (d) => vbdSum(d, (v) => v.rdSect));
  const wsW = widen(10, (d) => vbdSum(d, (v) => v.wrSect));
  const maxKnown = (d: DomainCounters) => Number.isFinite(d.maxMemKiB) && d.maxMemKiB > 0;
  return [
    { header: 'NAME', width: nameW, cell: (d) => (fullName ? right(d.name, nameW) : right(d.name.slice(0, 10), 10)) },
    { header: 'STATE', width: 6, cell: (d) => xentopState(d) },
    { header: 'CPU(sec)', width: 10, cell: (d) => right(Math.floor(d.cpuTimeNs / 1e9), 10) },
    { header: 'CPU(%)', width: 6, cell: (_d, r) => right(r.cpuPct.toFixed(1), 6) },
    { header: 'MEM(k)', width: 10, cell: (d) => right(d.memKiB, 10) },
    { header: 'MEM(%)', width: 6, cell: (d, r) => right(((d.memKiB / r.totMemKiB) * 100).toFixed(1), 6) },
    { header: 'MAXMEM(k)', width: 10, cell: (d) => right(maxKnown(d) ? d.maxMemKiB : 'no limit', 10) },
    { header: 'MAXMEM(%)', width: 9, cell: (d, r) => right(maxKnown(d) ? ((d.maxMemKiB / r.totMemKiB) * 100).toFixed(1) : 'n/a', 9) },
    { header: 'VCPUS', width: 5, cell: (d) => right(d.vcpus, 5) },
    { header: 'NETS', width: 4, cell: (d) => right(d.vifs.length, 4) },
    { header: 'NETTX(k)', width: txW, cell: (d) => right(Math.floor(netTxBytes(d) / 1024), txW) },
    { header: 'NETRX(k)', width: rxW, cell: (d) => right(Math.floor(netRxBytes(d) / 1024), rxW) },
    { header: 'VBDS', width: 4, cell: (d) => right(d.vbds.length, 4) },
    { header: 'VBD_OO', width: 8, cell: (d) => right(vbdSum(d, (v) => v.ooReq), 8) },
    { header: 'VBD_RD', width: rdW, cell: (d) => right(vbdSum(d, (v) => v.rdReq), rdW) },
    { header: 'VBD_WR', width: wrW, cell: (d) => right(vbdSum(d, (v) => v.wrReq), wrW) },
    { header: 'VBD_RSECT', width: rsW, cell: (d) => right(vbdSum(d, (v) => v.rdSect), rsW) },
    { header: 'VBD_WSECT', width: wsW, cell: (d) => right(vbdSum(d, (v) => v.wrSect), wsW) },
    { header: 'SSID', width: 4, cell: () => right(0, 4) },
  ];
}

/** xentop's do_summary: the two lines above the table (interactive mode only). */
export function formatSummary(cur: CounterReading, cpuMHz: number, now = new Date(cur.at)): string {
  const t = now.toTimeString().slice(0, 8);
  const count = { run: 0, block: 0, pause: 0, crash: 0, dying: 0, shutdown: 0 };
  for (const d of cur.domains) {
    if (d.running) count.run++;
    else if (d.blocked) count.block++;
    else if (d.paused) count.pause++;
    else if (d.shutdown) count.shutdown++;
    else if (d.crashed) count.crash++;
    else if (d.dying) count.dying++;
  }
  const h = cur.host;
  const totK = h.totalMemoryMiB * 1024;
  const freeK = h.freeMemoryMiB * 1024;
  return (
    `xentop - ${t}   Xen ${h.xenMajor}.${h.xenMinor}${h.xenExtra}\n` +
    `${cur.domains.length} domains: ${count.run} running, ${count.block} blocked, ${count.pause} paused, ${count.crash} crashed, ${count.dying} dying, ${count.shutdown} shutdown \n` +
    `Mem: ${totK}k total, ${totK - freeK}k used, ${freeK}k free    CPUs: ${h.nrCpus} @ ${cpuMHz}MHz\n`
  );
}

/** One refresh of xentop's table (top()), from this reading and the one before it. */
export function formatTop(prev: CounterReading | null, cur: CounterReading, o: Pick<TopOptions, 'networks' | 'vbds' | 'vcpus' | 'repeatHeader' | 'fullName' | 'dom0First'>): string {
  const totMemKiB = Math.max(1, cur.host.totalMemoryMiB * 1024);
  let doms = [...cur.domains].sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
  if (o.dom0First) doms = [...doms.filter((d) => d.domid === 0), ...doms.filter((d) => d.domid !== 0)];
  const rows: Row[] = doms.map((d) => ({ d, cpuPct: rates(prev, cur, d.domid).cpuPct, totMemKiB }));
  const fs = fields(rows, o.fullName);
  const header = fs.map((f) => right(f.header, f.width)).join(' ') + '\n';
  let out = '';
  rows.forEach((r, idx) => {
    if (idx === 0 || o.repeatHeader) out += header;
    out += fs.map((f) => f.cell(r.d, r)).join(' ') + '\n';
    if (o.vcpus) {
      // do_vcpu: each online vCPU's time (the domain's shared out where the hypervisor has no
      // per-vCPU figure, as `xl vcpu-list` does).
      let line = 'VCPUs(sec): ';
      for (let v = 0; v < r.d.onlineVcpus; v++) {
        if (v !== 0 && v % 5 === 0) line += '\n        ';
        const secs = r.d.vcpuInfo?.[v]?.timeSec ?? r.d.cpuTimeNs / Math.max(1, r.d.onlineVcpus) / 1e9;
        line += ` ${right(v, 2)}: ${right(Math.floor(secs), 10)}s`;
      }
      out += line + '\n';
    }
    if (o.networks) {
      r.d.vifs.forEach((v, i) => {
        out += `Net${i} RX: ${right(v.rxBytes, 8)}bytes ${right(v.rxPackets, 8)}pkts ${right(0, 8)}err ${right(v.rxDrops, 8)}drop  `;
        out += `TX: ${right(v.txBytes, 8)}bytes ${right(v.txPackets, 8)}pkts ${right(0, 8)}err ${right(v.txDrops, 8)}drop\n`;
      });
    }
    if (o.vbds) {
      for (const v of r.d.vbds) {
        const dev = `[${right((v.devid >> 8).toString(16), 2)}:${right((v.devid & 0xff).toString(16), 2)}] `;
        out += `VBD BlkBack ${right(v.devid, 4)} ${dev} OO: ${right(v.ooReq, 8)}   RD: ${right(v.rdReq, 8)}   WR: ${right(v.wrReq, 8)}   RSECT: ${right(v.rdSect, 10)}   WSECT: ${right(v.wrSect, 10)}\n`;
      }
    }
  });
  return out;
}

const USAGE = `Usage: xl top [OPTION]
Displays ongoing information about xen vm resources

-d, --delay=SECONDS  seconds between updates (default 3)
-n, --networks       output vif network data
-x, --vbds           output vbd block device data
-r, --repeat-header  repeat table header before each domain
-v, --vcpus          output vcpu data
-b, --batch          output in batch mode, no user input accepted
-i, --iterations     number of iterations before exiting
-f, --full-name      output the full domain name (not truncated)
-z, --dom0-first     display dom0 first (ignore sorting)
`;

export function parseTopArgs(argv: string[]): TopOptions {
  const o: TopOptions = { batch: false, iterations: 0, delaySec: 3, networks: false, vbds: false, vcpus: false, repeatHeader: false, fullName: false, dom0First: false };
  const longs: Record<string, string> = { networks: 'n', vbds: 'x', 'repeat-header': 'r', vcpus: 'v', batch: 'b', 'full-name': 'f', 'dom0-first': 'z', delay: 'd', iterations: 'i', help: 'h' };
  const count = (what: string, v: string | undefined, min: number) => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < min) throw new XlExit(1, `xl top: ${what} must be a whole number of at least ${min}, got ${JSON.stringify(v ?? '')}\n${USAGE}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let flags: string;
    let inline: string | undefined;
    const long = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (long) {
      if (!longs[long[1]!]) throw new XlExit(1, `xl top: unknown option ${a}\n${USAGE}`);
      flags = longs[long[1]!]!;
      inline = long[2];
    } else if (/^-[A-Za-z][A-Za-z0-9]*$/.test(a)) flags = a.slice(1);
    else throw new XlExit(1, `xl top: unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
    for (let j = 0; j < flags.length; j++) {
      const c = flags[j]!;
      if (c === 'd' || c === 'i') {
        const v = inline ?? (flags.slice(j + 1) || argv[++i]);
        if (c === 'd') o.delaySec = count('the delay (-d)', v, 1);
        else o.iterations = count('the iterations (-i)', v, 1);
        break;
      }
      if (c === 'h') throw new XlExit(0, USAGE.trimEnd());
      const map: Record<string, keyof TopOptions> = { b: 'batch', n: 'networks', x: 'vbds', v: 'vcpus', r: 'repeatHeader', f: 'fullName', z: 'dom0First' };
      if (!map[c]) throw new XlExit(1, `xl top: unknown option -${c}\n${USAGE}`);
      (o as unknown as Record<string, boolean>)[map[c]!] = true;
    }
  }
  return o;
}

async function top(argv: string[], ctx: XlCommandContext): Promise<number> {
  const o = parseTopArgs(argv);
  const interactive = !o.batch && process.stdout.isTTY === true;
  let quit = false;
  let wake: (() => void) | null = null;
  const stop = () => {
    quit = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // xentop's keys: N(etworks), B (vbds), V(CPUs), R(epeat header) toggle; Q or Esc quits.
  const toggles: Record<string, 'networks' | 'vbds' | 'vcpus' | 'repeatHeader'> = { n: 'networks', b: 'vbds', v: 'vcpus', r: 'repeatHeader' };
  const onKey = (b: Buffer) => {
    for (const ch of b.toString('latin1').toLowerCase()) {
      if (ch === 'q' || ch === '\x1b' || ch === '\x03') stop();
      else if (toggles[ch]) {
        o[toggles[ch]!] = !o[toggles[ch]!];
        redraw?.();
      }
    }
  };
  let redraw: (() => void) | null = null;
  const mhz = cpuMHz();
  if (interactive && process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.on('data', onKey);
    process.stdout.write('\x1b[?25l');
  }
  let prev: CounterReading | null = null;
  try {
    for (let n = 0; !quit; n++) {
      const cur = await readCounters(ctx.call);
      const before = prev;
      const draw = () => process.stdout.write(`\x1b[H\x1b[2J${formatSummary(cur, mhz)}${formatTop(before, cur, o)}\n  Networks(n)  vBds(b)  VCPUs(v)  Repeat header(r)  Quit(q)`);
      if (interactive) (redraw = draw)();
      else ctx.out(formatTop(prev, cur, o));
      prev = cur;
      if (o.iterations && n + 1 >= o.iterations) break;
      await Promise.race([sleep(o.delaySec * 1000), new Promise<void>((r) => (wake = r))]);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (interactive && process.stdin.isTTY) {
      process.stdin.off('data', onKey);
      process.stdin.setRawMode(false);
      process.stdin.pause();
      process.stdout.write('\x1b[?25h\n');
    }
  }
  return 0;
}

/** The host CPU's clock, as xentop's summary shows it (0 where /proc/cpuinfo has none). */
function cpuMHz(): number {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1])) : 0;
  } catch {
    return 0;
  }
}

extraCommands['top'] = wrap(top);
