// xl: the command-line toolstack client. Parses arguments and config files here (so errors
// name the file, line and key before anything happens), asks dom0's toolstack over its
// control socket, and prints Xen's formats.
import { toolstackSocket } from '../../../common/paths.js';
import { rpcCall, ToolstackError } from '../rpc.js';
import { attachConsole } from './console-client.js';
import { formatInfo, formatList, formatSchedCredit, formatUptime, formatVcpuList, type NamedInfo } from './format.js';
import { loadBuildSpec } from './config-to-spec.js';
import type { HostInfo } from '../../../drivers/hypercall/ops.js';
import { parseCpuList } from '../../../hypervisor/cgroups.js';
import { extraCommands } from './commands/index.js';

export class UsageError extends Error {}

const USAGE = `Usage: xl [-v] [-N] <subcommand> [args]

 create        Create a domain from config file <filename>
 list          List information about all/some domains
 destroy       Terminate a domain immediately
 shutdown      Issue a shutdown signal to a domain
 reboot        Issue a reboot signal to a domain
 pause         Pause execution of a domain
 unpause       Unpause a paused domain
 console       Attach to domain's console
 info          Get information about Xen host
 dmesg         Read and/or clear dmesg buffer
 uptime        Print uptime for all/some domains
 domid         Convert a domain name to domain id
 domname       Convert a domain id to domain name
 mem-set       Set the current memory usage for a domain
 mem-max       Set the maximum amount reservation for a domain
 vcpu-list     List the VCPUs for all/some domains
 vcpu-pin      Set which CPUs a VCPU can use
 vcpu-set      Set the number of active VCPUs allowed for the domain
 sched-credit  Get/set credit scheduler parameters
 block-attach  Create a new virtual block device
 block-list    List virtual block devices for a domain
 block-detach  Destroy a domain's virtual block device
`;

function call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
  return rpcCall<T>(toolstackSocket(), cmd, args).catch((e: ToolstackError) => {
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
      throw new ToolstackError(e.code, `xenode is not running (no toolstack at ${toolstackSocket()}): start it with "xenode start"`);
    }
    throw e;
  });
}

/** getopt-style split: flags (with the ones in `withValue` taking the next word) and the rest. */
function opts(argv: string[], flags: string, withValue = ''): { f: Record<string, string | true>; rest: string[] } {
  const f: Record<string, string | true> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    const long = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (long) {
      f[long[1]!] = long[2] ?? true;
      continue;
    }
    if (/^-[A-Za-z]+$/.test(a) && rest.length === 0) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        if (withValue.includes(c)) {
          const v = a.slice(j + 1) || argv[++i];
          if (v === undefined) throw new UsageError(`option -${c} needs a value`);
          f[c] = v;
          break;
        }
        if (!flags.includes(c)) throw new UsageError(`unknown option -${c}`);
        f[c] = true;
      }
      continue;
    }
    rest.push(a);
  }
  return { f, rest };
}

function need(rest: string[], n: number, usage: string): void {
  if (rest.length < n) throw new UsageError(`usage: xl ${usage}`);
}

/** "256", "256m", "1g", "262144k" -> KiB (xl's parse_mem_size_kb: default unit MiB... as in xl: no suffix = KiB? no: xl mem-set takes MiB by default). */
export function parseMemKiB(s: string): number {
  const m = /^(\d+)([bBkKmMgGtT]?)$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid memory size "${s}"`);
  const n = Number(m[1]);
  switch (m[2]!.toLowerCase()) {
    case 'b': return Math.floor(n / 1024);
    case 'k': return n;
    case 'g': return n * 1024 * 1024;
    case 't': return n * 1024 * 1024 * 1024;
    default: return n * 1024; // no suffix or m: MiB
  }
}

export async function xl(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let dryRun = false;
  while (argv[0]?.startsWith('-') && argv[0] !== '--') {
    const g = argv.shift()!;
    if (g === '-N') dryRun = true;
    else if (g === '-v' || g === '-f' || g === '-t') continue;
    else if (g === '-h' || g === '--help') {
      out(USAGE);
      return 0;
    } else throw new UsageError(`unknown global option ${g}`);
  }
  const cmd = argv.shift();
  if (!cmd || cmd === 'help') {
    out(USAGE);
    return cmd ? 0 : 1;
  }
  switch (cmd) {
    case 'create': {
      const { f, rest } = opts(argv, 'cnpqeFVd', 'f');
      const file = (typeof f.f === 'string' ? f.f : undefined) ?? rest.shift();
      if (!file) throw new UsageError('usage: xl create [-c] [-n] [-p] <ConfigFile> [options] [vars]');
      process.stderr.write(`Parsing config from ${file}\n`);
      const { spec, warnings, dryRun: dry } = loadBuildSpec(file, rest);
      for (const w of warnings) process.stderr.write(`${w}\n`);
      if (f.n || dryRun) {
        out(dry.endsWith('\n') ? dry : dry + '\n');
        return 0;
      }
      const { domid } = await call<{ domid: number }>('create', { spec, paused: f.p === true });
      if (f.c) return consoleCmd(String(domid));
      return 0;
    }
    case 'list':
    case 'li': {
      const { f, rest } = opts(argv, 'lvZcn');
      let infos = await call<NamedInfo[]>('list');
      if (rest.length) {
        const ids = await Promise.all(rest.map((d) => call<{ domid: number }>('domid', { name: d }).then((r) => r.domid)));
        infos = infos.filter((i) => ids.includes(i.domid));
      }
      if (f.l) {
        const long = await call<{ domid: number; config: unknown }[]>('list-long');
        out(JSON.stringify(long.filter((l) => infos.some((i) => i.domid === l.domid)), null, 4) + '\n');
      } else out(formatList(infos));
      return 0;
    }
    case 'destroy': {
      const { rest } = opts(argv, 'f');
      need(rest, 1, 'destroy <Domain>');
      await call('destroy', { dom: rest[0] });
      return 0;
    }
    case 'shutdown':
    case 'reboot': {
      const { f, rest } = opts(argv, 'awFRH');
      if (f.a) {
        const infos = (await call<NamedInfo[]>('list')).filter((i) => i.domid !== 0);
        await Promise.all(infos.map((i) => call('shutdown', { dom: String(i.domid), reboot: cmd === 'reboot', wait: f.w === true })));
        return 0;
      }
      need(rest, 1, `${cmd} [-w] <Domain>`);
      await call('shutdown', { dom: rest[0], reboot: cmd === 'reboot', wait: f.w === true });
      return 0;
    }
    case 'pause':
    case 'unpause': {
      need(argv, 1, `${cmd} <Domain>`);
      await call(cmd, { dom: argv[0] });
      return 0;
    }
    case 'console': {
      const { rest } = opts(argv, 'n', 't');
      need(rest, 1, 'console [-t type] [-n num] <Domain>');
      return consoleCmd(rest[0]!);
    }
    case 'info': {
      out(formatInfo(await call<HostInfo>('info')));
      return 0;
    }
    case 'dmesg': {
      const { f } = opts(argv, 'c');
      const r = await call<{ text: string }>('dmesg', { clear: f.c === true });
      out(r.text);
      return 0;
    }
    case 'uptime': {
      const { rest } = opts(argv, 's');
      let infos = await call<NamedInfo[]>('list');
      if (rest.length) infos = infos.filter((i) => rest.includes(i.name) || rest.includes(String(i.domid)));
      const host = await call<HostInfo>('info');
      out(formatUptime(infos, host.uptimeSec));
      return 0;
    }
    case 'domid': {
      need(argv, 1, 'domid <DomainName>');
      out(`${(await call<{ domid: number }>('domid', { name: argv[0] })).domid}\n`);
      return 0;
    }
    case 'domname': {
      need(argv, 1, 'domname <DomainId>');
      out(`${(await call<{ name: string }>('domname', { domid: argv[0] })).name}\n`);
      return 0;
    }
    case 'mem-set':
    case 'mem-max': {
      need(argv, 2, `${cmd} <Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>`);
      await call(cmd, { dom: argv[0], kib: parseMemKiB(argv[1]!) });
      return 0;
    }
    case 'vcpu-list': {
      const [infos, host] = await Promise.all([call<NamedInfo[]>('list'), call<HostInfo>('info')]);
      const pick = argv.length ? infos.filter((i) => argv.includes(i.name) || argv.includes(String(i.domid))) : infos;
      out(formatVcpuList(pick, host.nrCpus));
      return 0;
    }
    case 'vcpu-pin': {
      const { rest } = opts(argv, 'f');
      need(rest, 3, 'vcpu-pin [-f] <Domain> <VCPU|all> <Hard affinity|-|all> [Soft affinity]');
      const [dom, vcpu, hard] = rest as [string, string, string];
      if (vcpu !== 'all' && !/^\d+$/.test(vcpu)) throw new UsageError(`Error: Invalid argument ${vcpu} as VCPU.`);
      if (hard === '-') return 0;
      const host = await call<HostInfo>('info');
      const cpus = hard === 'all' ? [...Array(host.nrCpus).keys()] : parseCpuRange(hard);
      if (dryRun) {
        out(`cpumap: ${hard}\n`);
        return 0;
      }
      await call('vcpu-pin', { dom, vcpu: vcpu === 'all' ? 'all' : Number(vcpu), cpus });
      return 0;
    }
    case 'vcpu-set': {
      const { rest } = opts(argv, 'i');
      need(rest, 2, 'vcpu-set <Domain> <vCPUs>');
      await call('vcpu-set', { dom: rest[0], count: rest[1] });
      return 0;
    }
    case 'sched-credit': {
      const { f } = opts(argv, 's', 'dwcpte');
      const infos = await call<NamedInfo[]>('list');
      if (typeof f.d === 'string' && (f.w !== undefined || f.c !== undefined)) {
        await call('sched-credit', { dom: f.d, weight: f.w, cap: f.c });
        return 0;
      }
      let rows = infos;
      if (typeof f.d === 'string') {
        const { domid } = await call<{ domid: number }>('domid', { name: f.d });
        rows = infos.filter((i) => i.domid === domid);
      }
      out(formatSchedCredit(rows.map((i) => ({ name: i.name, domid: i.domid, weight: i.weight, cap: i.cap }))));
      return 0;
    }
    default: {
      const extra = extraCommands[cmd];
      if (extra) return extra(argv, { call, out, dryRun });
      throw new UsageError(`xl: command not implemented: ${cmd}\n${USAGE}`);
    }
  }
}

/** xl's cpu range syntax: "0-3,5", "^1" exclusions, "all". */
export function parseCpuRange(s: string): number[] {
  const include: number[] = [];
  const exclude: number[] = [];
  for (const part of s.split(',')) {
    if (part.startsWith('^')) exclude.push(...parseCpuList(part.slice(1)));
    else include.push(...parseCpuList(part));
  }
  return include.filter((c) => !exclude.includes(c));
}

async function consoleCmd(dom: string): Promise<number> {
  const { domid, tty } = await call<{ domid: number; tty: string }>('console', { dom });
  const session = attachConsole(tty, (rows, cols) => {
    void call('console-resize', { dom: String(domid), rows, cols }).catch(() => {});
  });
  await session.done;
  return 0;
}
