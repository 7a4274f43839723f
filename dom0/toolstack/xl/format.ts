// xl's output formats, column for column as tools/xl prints them (xl_info.c list_domains,
// xl_vcpu.c print_vcpuinfo, xl_sched.c, xl_misc.c uptime). Pure functions: tested directly.
import type { DomainInfo, HostInfo } from '../../../drivers/hypercall/ops.js';
import type { HostCpuFacts } from './host-facts.js';

export type NamedInfo = DomainInfo & { name: string };

const pad = (s: string | number, n: number) => String(s).padStart(n, ' ');
const padEnd = (s: string | number, n: number) => String(s).padEnd(n, ' ');

/** libxl's shutdown_reason letters, indexed by SHUTDOWN_* code. */
const SHUTDOWN_LETTERS = '-rscwS';
const REASON_CODE: Record<string, number> = { poweroff: 0, reboot: 1, suspend: 2, crash: 3, watchdog: 4, soft_reset: 5 };

export function stateLetters(i: DomainInfo): string {
  const isShutdown = i.shutdown || i.crashed;
  const code = isShutdown && i.shutdownReason ? REASON_CODE[i.shutdownReason] ?? 0 : 0;
  return [
    i.running ? 'r' : '-',
    i.blocked ? 'b' : '-',
    i.paused ? 'p' : '-',
    isShutdown ? 's' : '-',
    SHUTDOWN_LETTERS[code] ?? '?',
    i.dying ? 'd' : '-',
  ].join('');
}

export interface ListColumns {
  /** -v: UUID, reason code and security label. */
  verbose?: boolean;
  /** -Z: security label (no XSM here: "-"). */
  context?: boolean;
  /** -c: the cpupool (all domains are in Pool-0). */
  cpupool?: boolean;
  /** -n: NUMA node affinity (one node: "all"). */
  numa?: boolean;
}

export function formatList(infos: NamedInfo[], cols: ListColumns = {}): string {
  let out = 'Name                                        ID   Mem VCPUs\tState\tTime(s)';
  if (cols.verbose) out += '   UUID                            Reason-Code\tSecurity Label';
  if (cols.context && !cols.verbose) out += '   Security Label';
  if (cols.cpupool) out += '         Cpupool';
  if (cols.numa) out += ' NODE Affinity';
  out += '\n';
  for (const i of infos) {
    out += `${padEnd(i.name, 40)} ${pad(i.domid, 5)} ${pad(Math.floor(i.memKiB / 1024), 5)} ${pad(i.onlineVcpus, 5)}     ${stateLetters(i)}  ${pad((i.cpuTimeNs / 1e9).toFixed(1), 8)}`;
    const isShutdown = i.shutdown || i.crashed;
    if (cols.verbose) out += ` ${i.uuid} ${isShutdown ? pad((REASON_CODE[i.shutdownReason ?? 'poweroff'] ?? 0).toString(16), 8) : pad('-', 8)}`;
    if (cols.verbose || cols.context) out += ` ${pad('-', 16)}`;
    if (cols.cpupool) out += pad('Pool-0', 16);
    if (cols.numa) out += ' all';
    out += '\n';
  }
  return out;
}

/** libxl's print_bitmap: "all", or ranges such as "0-2,5". */
export function formatCpuMap(cpus: number[], nrCpus: number): string {
  const set = [...new Set(cpus)].filter((c) => c < nrCpus).sort((a, b) => a - b);
  if (set.length === nrCpus) return 'all';
  if (set.length === 0) return 'none';
  const parts: string[] = [];
  for (let i = 0; i < set.length; ) {
    let j = i;
    while (j + 1 < set.length && set[j + 1] === set[j]! + 1) j++;
    parts.push(i === j ? `${set[i]}` : `${set[i]}-${set[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export function formatVcpuList(infos: NamedInfo[], nrCpus: number): string {
  let out = `${padEnd('Name', 32)} ${pad('ID', 5)} ${pad('VCPU', 5)} ${pad('CPU', 5)} ${pad('State', 5)} ${pad('Time(s)', 9)} Affinity (Hard / Soft)\n`;
  for (const i of infos) {
    for (let v = 0; v < i.vcpus; v++) {
      const online = v < i.onlineVcpus;
      const affinity = i.vcpuAffinity[v] ?? [];
      let line = `${padEnd(i.name, 32)} ${pad(i.domid, 5)} ${pad(v, 5)}`;
      // Real vCPU threads (HVM on KVM) report their own state, CPU and time; otherwise the
      // domain's are shared out over its online vCPUs.
      const real = i.vcpuInfo?.[v];
      if (!online) line += `${pad('-', 5)} ${pad('-', 3)}-p `;
      else if (real) {
        const state = i.paused ? '--p' : real.state === 'r' ? 'r--' : real.state === 'b' ? '-b-' : real.state === 'p' ? '--p' : '---';
        line += `${pad(real.cpu >= 0 ? real.cpu : '-', 5)} ${pad(state, 5)} `;
      } else line += `${pad(affinity[v % Math.max(affinity.length, 1)] ?? 0, 5)} ${pad(i.running ? 'r' : '-', 3)}${i.blocked ? 'b' : '-'}- `;
      const seconds = real ? real.timeSec : online ? i.cpuTimeNs / Math.max(i.onlineVcpus, 1) / 1e9 : 0;
      line += `${pad(seconds.toFixed(1), 9)}  ${formatCpuMap(affinity, nrCpus)} / all\n`;
      out += line;
    }
  }
  return out;
}

export function formatSchedCredit(rows: { name: string; domid: number; weight: number; cap: number }[]): string {
  let out = 'Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us\n';
  out += `${padEnd('Name', 33)} ${pad('ID', 4)} ${pad('Weight', 6)} ${pad('Cap', 4)}\n`;
  for (const r of rows) out += `${padEnd(r.name, 33)} ${pad(r.domid, 4)} ${pad(r.weight, 6)} ${pad(r.cap, 4)}\n`;
  return out;
}

/** uptime_to_string: "[N day(s), ]%2d:%02d:%02d", or without the seconds in short mode. */
export function formatUptimeValue(seconds: number, short = false): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${pad(h, 2)}:${String(m).padStart(2, '0')}${short ? '' : `:${String(sec).padStart(2, '0')}`}`;
  return days > 0 ? `${days} day${days > 1 ? 's' : ''}, ${hms}` : hms;
}

/** xl uptime ("%-33s %4d %s"), or with -s one " HH:MM:SS up T, name (id)" line per domain. */
export function formatUptime(infos: NamedInfo[], hostUptimeSec: number, now = Date.now(), short = false): string {
  let out = short ? '' : `${padEnd('Name', 33)} ${pad('ID', 4)} Uptime\n`;
  const clock = new Date(now).toTimeString().slice(0, 8);
  for (const i of infos) {
    const up = i.domid === 0 ? hostUptimeSec : (now - i.startTimeMs) / 1000;
    out += short ? ` ${clock} up ${formatUptimeValue(up, true)}, ${i.name} (${i.domid})\n` : `${padEnd(i.name, 33)} ${pad(i.domid, 4)} ${formatUptimeValue(up)}\n`;
  }
  return out;
}

export function formatInfo(h: HostInfo, cpu?: HostCpuFacts): string {
  const kv = (k: string, v: string | number) => `${padEnd(k, 23)}: ${v}\n`;
  return (
    kv('host', h.hostname) +
    kv('release', h.release) +
    kv('version', h.version) +
    kv('machine', h.machine) +
    kv('nr_cpus', h.nrCpus) +
    kv('max_cpu_id', h.nrCpus - 1) +
    kv('nr_nodes', 1) +
    kv('cores_per_socket', h.nrCpus) +
    kv('threads_per_core', 1) +
    (cpu?.cpuKhz != null ? kv('cpu_mhz', `${Math.floor(cpu.cpuKhz / 1000)}.${String(cpu.cpuKhz % 1000).padStart(3, '0')}`) : '') +
    (cpu?.hwCaps ? kv('hw_caps', cpu.hwCaps.map((w) => (w >>> 0).toString(16).padStart(8, '0')).join(':')) : '') +
    `${padEnd('virt_caps', 23)}:${cpu?.virtCaps ?? ' pv hvm'}\n` +
    kv('total_memory', h.totalMemoryMiB) +
    kv('free_memory', h.freeMemoryMiB) +
    kv('sharing_freed_memory', 0) +
    kv('sharing_used_memory', 0) +
    kv('outstanding_claims', 0) +
    kv('free_cpus', 0) +
    kv('xen_major', h.xenMajor) +
    kv('xen_minor', h.xenMinor) +
    kv('xen_extra', h.xenExtra) +
    kv('xen_version', `${h.xenMajor}.${h.xenMinor}${h.xenExtra}`) +
    kv('xen_caps', h.xenCaps) +
    kv('xen_scheduler', h.scheduler) +
    kv('xen_pagesize', 4096) +
    kv('platform_params', 'virt_start=0xffff800000000000') +
    kv('xen_changeset', 'xenode') +
    kv('xen_commandline', h.commandLine) +
    kv('cc_compiler', `node ${process.version}`) +
    kv('cc_compile_by', 'xenode') +
    kv('cc_compile_domain', 'xenode') +
    kv('cc_compile_date', '') +
    kv('build_id', '') +
    kv('xend_config_format', 4)
  );
}
