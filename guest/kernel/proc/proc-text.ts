// The text of the /proc files the guest kernel serves, in Linux's exact formats (fs/proc/*.c,
// block/genhd.c), from the domain's own numbers. Pure functions: no I/O, unit-tested.
import type { BlockDevice } from '../block/block-devices.js';

const KiB = 1024;

/** Linux's USER_HZ: the unit of /proc/stat's times. */
export const USER_HZ = 100;

// ---------------------------------------------------------------- /proc/meminfo

export interface MemInfoInput {
  /** The domain's memory now: its balloon target, at most what it booted with (KiB). */
  totalKiB: number;
  /** The domain's memory cgroup's memory.stat (bytes). */
  stat: Record<string, number>;
  /** The part of the cgroup's shmem/cache/mapped_file that is guest RAM (a file on the
   * host), not the guest's own tmpfs or page cache. */
  ramChargedBytes: number;
  /** Guest RAM frames the kernel has given to drivers (rings, grant pages, buffers): its
   * own use of the domain's memory, counted as used as Linux counts driver memory. */
  kernelFramesBytes: number;
  /** The guest kernel's own anonymous memory (its Node heap): accounted beyond the domain's
   * memory, as Xen's per-domain overhead is, so not shown as the guest's. */
  kernelAnonBytes: number;
}

export interface MemInfo {
  total: number;
  free: number;
  available: number;
  cached: number;
  shmem: number;
  anon: number;
  mapped: number;
}

/** The domain's memory, in KiB: what the guest's processes hold (anonymous memory, page
 * cache, tmpfs; from its cgroup) plus the kernel's frames, out of its `memory`. */
export function domainMemInfo(m: MemInfoInput): MemInfo {
  const s = (k: string) => m.stat[k] ?? 0;
  const kib = (bytes: number) => Math.max(0, Math.floor(bytes / KiB));
  const total = Math.max(0, Math.floor(m.totalKiB));
  // Guest RAM is a file on the host: the pages of it the cgroup pays for are shmem, cache
  // and mapped_file there, but the kernel's frames here.
  const anon = kib(s('rss') - m.kernelAnonBytes); // rss includes rss_huge
  const cached = kib(s('cache') - m.ramChargedBytes);
  const shmem = Math.min(cached, kib(s('shmem') - m.ramChargedBytes));
  const mapped = kib(s('mapped_file') - m.ramChargedBytes);
  const used = anon + cached + kib(m.kernelFramesBytes);
  const free = Math.max(0, total - used);
  // Page cache other than tmpfs can be dropped: that is what a new program could still get.
  const available = Math.min(total, free + (cached - shmem));
  return { total, free, available, cached, shmem, anon, mapped };
}

/** /proc/meminfo (fs/proc/meminfo.c): every field Linux 6.1 prints, in its order; what a
 * domain does not have (swap, huge pages, highmem) is 0 as on a Linux guest without it. */
export function meminfoText(m: MemInfoInput): string {
  const i = domainMemInfo(m);
  const s = (k: string) => Math.max(0, Math.floor((m.stat[k] ?? 0) / KiB));
  const activeFile = Math.min(s('active_file'), i.cached);
  const inactiveFile = Math.min(s('inactive_file'), i.cached - activeFile);
  const activeAnon = Math.min(s('active_anon'), i.anon + i.shmem);
  const inactiveAnon = Math.max(0, i.anon + i.shmem - activeAnon);
  const rows: [string, number][] = [
    ['MemTotal', i.total],
    ['MemFree', i.free],
    ['MemAvailable', i.available],
    ['Buffers', 0],
    ['Cached', i.cached],
    ['SwapCached', 0],
    ['Active', activeAnon + activeFile],
    ['Inactive', inactiveAnon + inactiveFile],
    ['Active(anon)', activeAnon],
    ['Inactive(anon)', inactiveAnon],
    ['Active(file)', activeFile],
    ['Inactive(file)', inactiveFile],
    ['Unevictable', 0],
    ['Mlocked', 0],
    ['SwapTotal', 0],
    ['SwapFree', 0],
    ['Zswap', 0],
    ['Zswapped', 0],
    ['Dirty', s('dirty')],
    ['Writeback', s('writeback')],
    ['AnonPages', i.anon],
    ['Mapped', i.mapped],
    ['Shmem', i.shmem],
    ['KReclaimable', 0],
    ['Slab', 0],
    ['SReclaimable', 0],
    ['SUnreclaim', 0],
    ['KernelStack', 0],
    ['PageTables', 0],
    ['SecPageTables', 0],
    ['NFS_Unstable', 0],
    ['Bounce', 0],
    ['WritebackTmp', 0],
    ['CommitLimit', i.total],
    ['Committed_AS', i.anon + i.shmem],
    ['VmallocTotal', 34359738367],
    ['VmallocUsed', 0],
    ['VmallocChunk', 0],
    ['Percpu', 0],
    ['HardwareCorrupted', 0],
    ['AnonHugePages', Math.min(s('rss_huge'), i.anon)],
    ['ShmemHugePages', 0],
    ['ShmemPmdMapped', 0],
    ['FileHugePages', 0],
    ['FilePmdMapped', 0],
  ];
  let out = rows.map(([k, v]) => meminfoLine(k, v, true)).join('');
  for (const k of ['HugePages_Total', 'HugePages_Free', 'HugePages_Rsvd', 'HugePages_Surp']) out += meminfoLine(k, 0, false);
  out += meminfoLine('Hugepagesize', 2048, true);
  out += meminfoLine('Hugetlb', 0, true);
  out += meminfoLine('DirectMap4k', i.total, true);
  out += meminfoLine('DirectMap2M', 0, true);
  out += meminfoLine('DirectMap1G', 0, true);
  return out;
}

/** "Name:" padded to 16 columns, the number right-aligned in 8 (show_val_kb). */
function meminfoLine(name: string, value: number, kb: boolean): string {
  return `${`${name}:`.padEnd(16)}${String(value).padStart(8)}${kb ? ' kB' : ''}\n`;
}

// ---------------------------------------------------------------- /proc/cpuinfo

/** The first "processor : 0" block of the host's /proc/cpuinfo: the model every vCPU shows
 * (a domain runs on the host's CPUs, so programs that parse flags or the model get truth). */
export function firstCpuBlock(hostCpuinfo: string): string {
  const block = hostCpuinfo.split(/\n\s*\n/).find((b) => /^processor\s*:/m.test(b));
  if (!block) throw new Error('the host /proc/cpuinfo has no "processor" block');
  return block.trimEnd();
}

/** /proc/cpuinfo with one block per vCPU: the host's model, the domain's topology (one socket,
 * one core per vCPU, as a Xen PV guest sees it). */
export function cpuinfoText(template: string, vcpus: number): string {
  const set = (block: string, key: string, value: number) => block.replace(new RegExp(`^(${key}\\s*:).*$`, 'm'), `$1 ${value}`);
  let out = '';
  for (let i = 0; i < vcpus; i++) {
    let b = template;
    b = set(b, 'processor', i);
    b = set(b, 'physical id', 0);
    b = set(b, 'siblings', vcpus);
    b = set(b, 'core id', i);
    b = set(b, 'cpu cores', vcpus);
    b = set(b, 'apicid', i);
    b = set(b, 'initial apicid', i);
    out += `${b}\n\n`;
  }
  return out;
}

// ---------------------------------------------------------------- /proc/uptime, /proc/stat

/** "%lu.%02lu" of seconds, truncated as Linux does. */
function secs(x: number): string {
  const cs = Math.max(0, Math.floor(x * 100));
  return `${Math.floor(cs / 100)}.${String(cs % 100).padStart(2, '0')}`;
}

/** /proc/uptime: seconds since the domain booted, and the idle time of all its vCPUs. */
export function uptimeText(uptimeSec: number, idleSec: number): string {
  return `${secs(uptimeSec)} ${secs(idleSec)}\n`;
}

export interface CpuTimes {
  user: number;
  system: number;
  idle: number;
}

/** Each vCPU's user/system/idle ticks: its running time split as the domain's user/system
 * ratio, the rest of the uptime idle. */
export function vcpuTimes(runningNs: number[], userTicks: number, systemTicks: number, uptimeSec: number): CpuTimes[] {
  const userShare = userTicks + systemTicks > 0 ? userTicks / (userTicks + systemTicks) : 1;
  const upTicks = Math.floor(uptimeSec * USER_HZ);
  return runningNs.map((ns) => {
    const busy = Math.min(upTicks, Math.floor((ns / 1e9) * USER_HZ));
    const user = Math.round(busy * userShare);
    return { user, system: busy - user, idle: upTicks - busy };
  });
}

export interface StatInput {
  perCpu: CpuTimes[];
  /** The domain's boot, seconds since the epoch. */
  btime: number;
  /** Processes made since boot (the pid namespace's last pid). */
  processes: number;
  running: number;
  blocked: number;
}

/** /proc/stat (fs/proc/stat.c): the cpu lines (user nice system idle iowait irq softirq steal
 * guest guest_nice), then the counters a domain knows; interrupts are not counted here. */
export function statText(s: StatInput): string {
  const line = (name: string, t: CpuTimes) => `${name} ${t.user} 0 ${t.system} ${t.idle} 0 0 0 0 0 0\n`;
  const sum = s.perCpu.reduce((a, t) => ({ user: a.user + t.user, system: a.system + t.system, idle: a.idle + t.idle }), { user: 0, system: 0, idle: 0 });
  let out = line('cpu ', sum);
  s.perCpu.forEach((t, i) => (out += line(`cpu${i}`, t)));
  out += 'intr 0\nctxt 0\n';
  out += `btime ${Math.floor(s.btime)}\n`;
  out += `processes ${s.processes}\n`;
  out += `procs_running ${s.running}\n`;
  out += `procs_blocked ${s.blocked}\n`;
  out += 'softirq 0 0 0 0 0 0 0 0 0 0 0\n';
  return out;
}

// ---------------------------------------------------------------- /proc/loadavg

/** /proc/loadavg: the three averages (Linux's fixed point, FSHIFT 11), running/total tasks
 * and the last pid. */
export function loadavgText(avenrun: [number, number, number], running: number, total: number, lastPid: number): string {
  const FIXED_1 = 1 << 11;
  const fmt = (x: number) => {
    const a = x + FIXED_1 / 200;
    return `${a >> 11}.${String(((a & (FIXED_1 - 1)) * 100) >> 11).padStart(2, '0')}`;
  };
  return `${avenrun.map(fmt).join(' ')} ${running}/${total} ${lastPid}\n`;
}

// ---------------------------------------------------------------- /proc/partitions

/** /proc/partitions (block/genhd.c show_partition): whole disks and partitions, sizes in KiB. */
export function partitionsText(devices: BlockDevice[]): string {
  let out = 'major minor  #blocks  name\n\n';
  for (const d of devices) {
    if (!d.parent && d.sectors === 0) continue; // an empty drive (no medium) is not listed
    out += `${String(d.major).padStart(4)}  ${String(d.minor).padStart(7)} ${String(Math.floor(d.sectors / 2)).padStart(10)} ${d.name}\n`;
  }
  return out;
}

// ---------------------------------------------------------------- /proc/cmdline

/** /proc/cmdline: the command line the domain was started with (start_info's cmd_line). */
export function cmdlineText(cmdline: string): string {
  return `${cmdline}\n`;
}
