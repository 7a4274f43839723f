// xl's query commands (tools/xl/xl_info.c, xl_vcpu.c, xl_misc.c): list, vm-list, info, dmesg,
// uptime, domid, domname, vcpu-list. They change nothing, so none takes -N (Xen refuses it).
import type { HostInfo } from '../../../../drivers/hypercall/ops.js';
import { formatInfo, formatList, formatUptime, formatVcpuList, type NamedInfo } from '../format.js';
import { hostCpuFacts, formatNumaInfo } from '../host-facts.js';
import { switchForeachOpt } from '../getopt.js';
import { cmdHelp } from '../help.js';
import { domidOf, XlExit } from './common.js';
import { extraCommands, type XlCommandContext } from './registry.js';

async function list(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(
    argv,
    'lvhZcn',
    [
      { name: 'long', hasArg: 0, val: 'l' },
      { name: 'verbose', hasArg: 0, val: 'v' },
      { name: 'context', hasArg: 0, val: 'Z' },
      { name: 'cpupool', hasArg: 0, val: 'c' },
      { name: 'numa', hasArg: 0, val: 'n' },
    ],
    'list',
    0,
  );
  if (p.args.length > 1) throw new XlExit(1, '', cmdHelp('list'));
  let infos = await ctx.call<NamedInfo[]>('list');
  if (p.args.length === 1) {
    const domid = await domidOf(ctx, p.args[0]!);
    infos = infos.filter((i) => i.domid === domid);
    if (infos.length === 0) throw new XlExit(1, `Error: Domain '${p.args[0]}' does not exist.`);
  }
  if (p.has('l')) {
    const long = await ctx.call<{ domid: number; config: unknown }[]>('list-long');
    ctx.out(JSON.stringify(long.filter((l) => infos.some((i) => i.domid === l.domid)), null, 4) + '\n');
    return 0;
  }
  ctx.out(formatList(infos, { verbose: p.has('v'), context: p.has('Z'), cpupool: p.has('c'), numa: p.has('n') }));
  return 0;
}

/** vm-list: guests only (not dom0), "UUID  ID  name". */
async function vmList(argv: string[], ctx: XlCommandContext): Promise<number> {
  switchForeachOpt(argv, '', null, 'vm-list', 0);
  const infos = (await ctx.call<NamedInfo[]>('list')).filter((i) => i.domid !== 0);
  let s = 'UUID                                  ID    name\n';
  for (const i of infos) s += `${i.uuid}  ${i.domid}    ${i.name.padEnd(30)}\n`;
  ctx.out(s);
  return 0;
}

async function info(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'nx', [{ name: 'numa', hasArg: 0, val: 'n' }, { name: 'xenstore', hasArg: 0, val: 'x' }], 'info', 0);
  const host = await ctx.call<HostInfo>('info');
  let text = formatInfo(host, hostCpuFacts());
  if (p.has('x')) text = text.replace(/^(free_cpus .*\n)/m, `$1${'xenstore_features'.padEnd(23)}: 0x00000000\n`);
  if (p.has('n')) text = text.replace(/^(free_cpus .*\n)/m, `$1${formatNumaInfo(host)}`);
  // An extra word (not with -n) picks one field, as info_name does.
  const field = !p.has('n') ? p.args[0] : undefined;
  if (field !== undefined) text = text.split('\n').filter((l) => l.startsWith(`${field} `) || l.startsWith(`${field}:`)).map((l) => l.replace(/^[^:]*: /, '')).join('\n') + '\n';
  ctx.out(text);
  return 0;
}

async function dmesg(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 'c', null, 'dmesg', 0);
  const r = await ctx.call<{ text: string }>('dmesg', { clear: p.has('c') });
  ctx.out(r.text);
  return 0;
}

async function uptime(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, 's', null, 'uptime', 0);
  const ids: number[] = [];
  for (const d of p.args) ids.push(await domidOf(ctx, d));
  let infos = await ctx.call<NamedInfo[]>('list');
  if (ids.length) infos = ids.map((id) => infos.find((i) => i.domid === id)).filter((i): i is NamedInfo => !!i);
  const host = await ctx.call<HostInfo>('info');
  ctx.out(formatUptime(infos, host.uptimeSec, Date.now(), p.has('s')));
  return 0;
}

async function domid(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'domid', 1);
  const name = p.args[0]!;
  try {
    ctx.out(`${(await ctx.call<{ domid: number }>('domid', { name })).domid}\n`);
  } catch (e) {
    if ((e as { code?: string }).code === 'ESRCH') throw new XlExit(1, `Can't get domid of domain name '${name}', maybe this domain does not exist.`);
    throw e;
  }
  return 0;
}

async function domname(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'domname', 1);
  const id = p.args[0]!;
  const n = /^\d+/.exec(id) ? parseInt(id, 10) : NaN;
  if (Number.isNaN(n) || !/^\d+$/.test(id)) throw new XlExit(1, `Invalid domain id.\n`);
  try {
    ctx.out(`${(await ctx.call<{ name: string }>('domname', { domid: n })).name}\n`);
  } catch (e) {
    if ((e as { code?: string }).code === 'ESRCH') throw new XlExit(1, `Can't get domain name of domain id '${n}', maybe this domain does not exist.`);
    throw e;
  }
  return 0;
}

async function vcpuList(argv: string[], ctx: XlCommandContext): Promise<number> {
  const p = switchForeachOpt(argv, '', null, 'vcpu-list', 0);
  const [infos, host] = await Promise.all([ctx.call<NamedInfo[]>('list'), ctx.call<HostInfo>('info')]);
  let pick = infos;
  if (p.args.length) {
    const ids: number[] = [];
    for (const d of p.args) ids.push(await domidOf(ctx, d));
    pick = ids.map((id) => infos.find((i) => i.domid === id)).filter((i): i is NamedInfo => !!i);
  }
  ctx.out(formatVcpuList(pick, host.nrCpus));
  return 0;
}

extraCommands['list'] = list;
extraCommands['vm-list'] = vmList;
extraCommands['info'] = info;
extraCommands['dmesg'] = dmesg;
extraCommands['uptime'] = uptime;
extraCommands['domid'] = domid;
extraCommands['domname'] = domname;
extraCommands['vcpu-list'] = vcpuList;
