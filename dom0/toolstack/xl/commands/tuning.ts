// xl's resource commands (tools/xl/xl_mem.c, xl_vcpu.c, xl_sched.c): mem-set, mem-max,
// vcpu-pin, vcpu-set, sched-credit. Sizes are parsed as xl parses them and refusals repeat the
// size as it was typed, in MiB, not in the KiB the toolstack counts in.
import type { HostInfo } from '../../../../drivers/hypercall/ops.js';
import { parseCpuList } from '../../../../common/cpu-list.js';
import { formatCpuMap, formatSchedCredit, type NamedInfo } from '../format.js';
import { switchForeachOpt } from '../getopt.js';
import { domidOf, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';

/** The least memory a domain may have here (the toolstack and hypervisor check it again). */
const MIN_MEMORY_KIB = 16 * 1024;
const MAX_MEMORY_KIB = 1 << 30;

/** parse_mem_size_kb (xl_parse.c): a number with an optional b/k/m/g/t suffix, MiB without one. -1 if not. */
export function parseMemSizeKb(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([bBkKmMgGtT]?)$/.exec(s);
  if (!m) return -1;
  const n = Number(m[1]);
  const mult: Record<string, number> = { b: 1 / 1024, k: 1, m: 1024, g: 1024 * 1024, t: 1024 * 1024 * 1024, '': 1024 };
  return Math.floor(n * mult[m[2]!.toLowerCase()]!);
}

const mib = (kib: number) => `${Number.isInteger(kib / 1024) ? kib / 1024 : (kib / 1024).toFixed(1)} MiB`;

function memCommand(cmd: 'mem-set' | 'mem-max') {
  return async (argv: string[], ctx: XlCommandContext): Promise<number> => {
    const p = switchForeachOpt(argv, '', null, cmd, 2);
    const domid = await domidOf(ctx, p.args[0]!);
    const mem = p.args[1]!;
    const kib = parseMemSizeKb(mem);
    if (kib === -1) throw new XlExit(1, `invalid memory size: ${mem}`);
    const fail = cmd === 'mem-set' ? `cannot set domid ${domid} dynamic max memory to : ${mem}` : `cannot set domid ${domid} static max memory to : ${mem}`;
    if (kib < MIN_MEMORY_KIB) throw new XlExit(1, `${fail}\n${mem} is ${mib(kib)}: a domain needs at least ${mib(MIN_MEMORY_KIB)} here`);
    if (kib > MAX_MEMORY_KIB) throw new XlExit(1, `${fail}\n${mem} is ${mib(kib)}: more than the 1 TiB a domain may have here`);
    const info = (await ctx.call<NamedInfo[]>('list')).find((i) => i.domid === domid);
    try {
      await ctx.call(cmd, { dom: String(domid), kib });
    } catch (e) {
      // libxl's line, xl's line, then what it means in the units the user typed.
      let why = '';
      if (info && cmd === 'mem-max' && kib < info.targetKiB) why = `\n${mem} (${mib(kib)}) is below the domain's current target of ${mib(info.targetKiB)}: lower the target first (xl mem-set ${p.args[0]} ${mem})`;
      if (info && cmd === 'mem-set' && kib > info.maxMemKiB) why = `\n${mem} (${mib(kib)}) is above the domain's maximum of ${mib(info.maxMemKiB)}: raise it first (xl mem-max ${p.args[0]} ${mem})`;
      throw new XlExit(1, `${(e as Error).message}\n${fail}${why}`);
    }
    return 0;
  };
}

/** parse_cpurange: "all", "0-3,5", "^1" exclusions; nodes are not known here. */
export function parseCpuRange(s: string, nrCpus: number): number[] {
  if (s === 'all') return [...Array(nrCpus).keys()];
  const include: number[] = [];
  const exclude: number[] = [];
  for (const part of s.split(',')) {
    if (part.startsWith('^')) exclude.push(...parseCpuList(part.slice(1)));
    else include.push(...parseCpuList(part));
  }
  return include.filter((c) => !exclude.includes(c));
}

function cpuRangeOrExit(s: string, nrCpus: number): number[] {
  let cpus: number[];
  try {
    cpus = parseCpuRange(s, nrCpus);
  } catch {
    throw new XlExit(1, `Invalid argument ${s} as CPU range (cpus: "0-3,5", "^1", "all")`);
  }
  const missing = cpus.filter((c) => c >= nrCpus);
  if (missing.length) throw new XlExit(1, `Invalid argument ${s} as CPU range: this host has CPUs 0-${nrCpus - 1}, not CPU ${missing[0]}`);
  return cpus;
}

async function vcpuPin(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'fi', [{ name: 'force', hasArg: 0, val: 'f' }, { name: 'ignore-global-affinity-masks', hasArg: 0, val: 'i' }], 'vcpu-pin', 3);
  const [dom, vcpu, hardStr, softStr] = p.args as [string, string, string, string | undefined];
  const domid = await domidOf(ctx, dom);
  const vcpuid = /^\d+/.test(vcpu) ? parseInt(vcpu, 10) : -1;
  if (vcpuid < 0) {
    if (vcpu !== 'all') throw new XlExit(1, `Error: Invalid argument ${vcpu} as VCPU.`);
    if (p.has('f')) throw new XlExit(1, "Error: --force and 'all' as VCPU not allowed.");
  }
  const host = await ctx.call<HostInfo>('info');
  const hard = hardStr === '-' ? null : cpuRangeOrExit(hardStr, host.nrCpus);
  const soft = softStr === undefined || softStr === '-' ? null : cpuRangeOrExit(softStr, host.nrCpus);
  if (ctx.dryRun) {
    ctx.out(`cpumap: ${hard ? formatCpuMap(hard, host.nrCpus) : '-'}${soft ? ` ${formatCpuMap(soft, host.nrCpus)}` : ''}\n`);
    return 0;
  }
  // The hypervisor places a domain's vCPUs with cgroup cpusets: a hard set, nothing softer.
  if (soft) throw new XlExit(1, `Could not set affinity for vcpu \`${vcpuid}'.\nxenode schedules vCPUs with hard affinity only (cpusets): soft affinity "${softStr}" cannot be set; give "-" or leave it out`);
  if (hard === null) return 0; // "-": hard affinity left as it is, and no soft one given
  if (hard.length === 0) throw new XlExit(1, `Could not set affinity for vcpu \`${vcpuid}'.\nthe CPU range ${hardStr} leaves no CPU`);
  try {
    await ctx.call('vcpu-pin', { dom: String(domid), vcpu: vcpuid < 0 ? 'all' : vcpuid, cpus: hard });
  } catch (e) {
    throw new XlExit(1, `${(e as Error).message}\n${vcpuid < 0 ? 'libxl_set_vcpuaffinity_all failed.' : `Could not set affinity for vcpu \`${vcpuid}'.`}`);
  }
  return 0;
}

async function vcpuSet(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'i', [{ name: 'ignore-host', hasArg: 0, val: 'i' }], 'vcpu-set', 2);
  const domid = await domidOf(ctx, p.args[0]!);
  const nr = p.args[1]!;
  const m = /^\s*\d+/.exec(nr);
  const count = m ? parseInt(m[0], 10) : NaN;
  if (!m || count > 0x7fffffff) throw new XlExit(1, 'Error: Invalid argument.');
  const [infos, host] = await Promise.all([ctx.call<NamedInfo[]>('list'), ctx.call<HostInfo>('info')]);
  const info = infos.find((i) => i.domid === domid);
  if (!p.has('i') && info && count > info.onlineVcpus && count > host.nrCpus) {
    throw new XlExit(1, `You are overcommmitting! You have ${host.nrCpus} physical CPUs and want ${count} vCPUs! Aborting, use --ignore-host to continue`);
  }
  if (info && (count < 1 || count > info.vcpus)) {
    throw new XlExit(1, `libxl_set_vcpuonline failed domid=${domid} max_vcpus=${count}, rc: -6\n${p.args[0]} has ${info.vcpus} vCPU${info.vcpus > 1 ? 's' : ''} (maxvcpus): between 1 and ${info.vcpus} can be online`);
  }
  await ctx.call('vcpu-set', { dom: String(domid), count });
  return 0;
}

/** The credit scheduler's global parameters: fixed in xenode (cgroup cpu shares and quotas). */
const CREDIT_PARAMS = { tslice: 30, ratelimit: 1000, migrationDelay: 0 };

async function schedCredit(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(
    argv,
    'd:w:c:p:t:r:m:s',
    [
      { name: 'domain', hasArg: 1, val: 'd' },
      { name: 'weight', hasArg: 1, val: 'w' },
      { name: 'cap', hasArg: 1, val: 'c' },
      { name: 'schedparam', hasArg: 0, val: 's' },
      { name: 'tslice_ms', hasArg: 1, val: 't' },
      { name: 'ratelimit_us', hasArg: 1, val: 'r' },
      { name: 'migration_delay_us', hasArg: 1, val: 'm' },
      { name: 'cpupool', hasArg: 1, val: 'p' },
    ],
    'sched-credit',
    0,
  );
  const dom = p.val('d');
  const pool = p.val('p');
  const setsDomain = p.has('w') || p.has('c');
  if ((pool !== undefined || p.has('s')) && (dom !== undefined || setsDomain)) throw new XlExit(1, 'Specifying a cpupool or schedparam is not allowed with domain options.');
  if (dom === undefined && setsDomain) throw new XlExit(1, 'Must specify a domain.');
  if (!p.has('s') && (p.has('t') || p.has('r') || p.has('m'))) throw new XlExit(1, 'Must specify schedparam to set schedule parameter values.');
  if (pool !== undefined && pool !== 'Pool-0' && pool !== '0') throw new XlExit(1, `unknown cpupool '${pool}'`);
  const poolLine = `Cpupool Pool-0: tslice=${CREDIT_PARAMS.tslice}ms ratelimit=${CREDIT_PARAMS.ratelimit}us migration-delay=${CREDIT_PARAMS.migrationDelay}us\n`;
  if (p.has('s')) {
    if (p.has('t') || p.has('r') || p.has('m')) {
      throw new XlExit(1, 'xenode\'s credit scheduler is Linux\'s (cgroup cpu shares and quotas): its time slice, rate limit and migration delay cannot be set');
    }
    ctx.out(poolLine);
    return 0;
  }
  const num = (k: 'w' | 'c') => {
    const v = p.val(k);
    if (v === undefined) return undefined;
    // xl takes strtol's reading of the value; a word is an error here rather than 0.
    if (!/^-?\d+$/.test(v)) throw new XlExit(1, `${k === 'w' ? 'weight' : 'cap'} must be a number, got "${v}"`);
    return Number(v);
  };
  if (dom !== undefined && setsDomain) {
    const domid = await domidOf(ctx, dom);
    const weight = num('w');
    const cap = num('c');
    if (weight !== undefined && (weight < 1 || weight > 65535)) throw new XlExit(1, `libxl: error: libxl_sched.c: Domain ${domid}:Cpu weight out of range, valid values are within range from 1 to 65535\nweight must be an integer in 1..65535, got ${weight}`);
    if (cap !== undefined && (cap < 0 || cap > 12800)) throw new XlExit(1, `libxl: error: libxl_sched.c: Domain ${domid}:Cpu cap out of range, valid range is from 0 to 12800 for specified number of vcpus`);
    await ctx.call('sched-credit', { dom: String(domid), weight, cap });
    return 0;
  }
  let rows = await ctx.call<NamedInfo[]>('list');
  if (dom !== undefined) {
    const domid = await domidOf(ctx, dom);
    rows = rows.filter((i) => i.domid === domid);
    // sched_credit_domain_output(-1) prints the header without the pool line.
    ctx.out(formatSchedCredit(rows.map((i) => ({ name: i.name, domid: i.domid, weight: i.weight, cap: i.cap }))).split('\n').slice(1).join('\n'));
    return 0;
  }
  ctx.out(formatSchedCredit(rows.map((i) => ({ name: i.name, domid: i.domid, weight: i.weight, cap: i.cap }))));
  return 0;
}

extraCommands['mem-set'] = memCommand('mem-set');
extraCommands['mem-max'] = memCommand('mem-max');
extraCommands['vcpu-pin'] = vcpuPin;
extraCommands['vcpu-set'] = vcpuSet;
extraCommands['sched-credit'] = schedCredit;
