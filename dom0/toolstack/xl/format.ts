// xl's output formats, column for column as tools/xl prints them (xl_info.c list_domains,
// xl_vcpu.c print_vcpuinfo, xl_sched.c, xl_misc.c uptime). Pure functions: tested directly.
import type { DomainInfo, HostInfo } from '../../../drivers/hypercall/ops.js';

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

export function formatList(infos: NamedInfo[]): string {
  let out = 'Name                                        ID   Mem VCPUs\tState\tTime(s)\n';
  for (const i of infos) {
    out += `${padEnd(i.name, 40)} ${pad(i.domid, 5)} ${pad(Math.floor(i.memKiB / 1024), 5)} ${pad(i.onlineVcpus, 5)}     ${stateLetters(i)}  ${pad((i.cpuTimeNs / 1e9).toFixed(1), 8)}\n`;
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

/** xl uptime's "[N day(s), ]H:MM:SS". */
export function formatUptimeValue(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return days > 0 ? `${days} day${days > 1 ? 's' : ''}, ${hms}` : hms;
}

export function formatUptime(infos: NamedInfo[], hostUptimeSec: number, now = Date.now()): string {
  let out = `${padEnd('Name', 30)} ${pad('ID', 5)} Uptime\n`;
  for (const i of infos) {
    const up = i.domid === 0 ? hostUptimeSec : (now - i.startTimeMs) / 1000;
    out += `${padEnd(i.name, 30)} ${pad(i.domid, 5)} ${formatUptimeValue(up)}\n`;
  }
  return out;
}

export function formatInfo(h: HostInfo): string {
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
    kv('virt_caps', ' hvm') +
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
