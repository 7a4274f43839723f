// What a process or a domain costs in memory, from /proc and the memory cgroup (v1).
//   rss     every resident page mapped, shared ones included (node's text counts in full)
//   pss     resident pages, each shared page divided among the processes mapping it
//   uss     private pages only (Private_Clean + Private_Dirty): what the process alone holds
//   shmem   the part of pss that is shared memory (memfd guest RAM, grant tables)
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcMem {
  rss: number;
  pss: number;
  uss: number;
  anon: number;
  pssShmem: number;
}

const ZERO: ProcMem = { rss: 0, pss: 0, uss: 0, anon: 0, pssShmem: 0 };

/** Bytes, from /proc/PID/smaps_rollup; zeros if the process is gone. */
export function procMem(pid: number): ProcMem {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return { ...ZERO };
  }
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return {
    rss: kb('Rss'),
    pss: kb('Pss'),
    uss: kb('Private_Clean') + kb('Private_Dirty'),
    anon: kb('Anonymous'),
    pssShmem: kb('Pss_Shmem'),
  };
}

export function addMem(a: ProcMem, b: ProcMem): ProcMem {
  return { rss: a.rss + b.rss, pss: a.pss + b.pss, uss: a.uss + b.uss, anon: a.anon + b.anon, pssShmem: a.pssShmem + b.pssShmem };
}

export function sumMem(pids: number[]): ProcMem {
  return pids.map(procMem).reduce(addMem, { ...ZERO });
}

const CG = '/sys/fs/cgroup';

export function readCg(ctrl: string, group: string, file: string): string | null {
  try {
    return readFileSync(join(CG, ctrl, group, file), 'utf8').trim();
  } catch {
    return null;
  }
}

/** The processes of a domain (its pids cgroup). */
export function domainPids(cgroup: string, domid: number): number[] {
  return (readCg('pids', `${cgroup}/d${domid}`, 'cgroup.procs') ?? '').split('\n').filter(Boolean).map(Number);
}

/** memory.usage_in_bytes of a domain's memory cgroup (what the host charges to the domain). */
export function domainCgroupUsage(cgroup: string, domid: number): number {
  return Number(readCg('memory', `${cgroup}/d${domid}`, 'memory.usage_in_bytes') ?? NaN);
}

/** cpuacct.usage (ns) of a domain. */
export function domainCpuNs(cgroup: string, domid: number): number {
  return Number(readCg('cpuacct', `${cgroup}/d${domid}`, 'cpuacct.usage') ?? NaN);
}

/** CPU time (ns) a process has used, all its threads, from /proc/PID/task/TID/schedstat
 * (nanosecond resolution, unlike the clock ticks of /proc/PID/stat). NaN if it is gone. */
export function procCpuNs(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  let sum = 0;
  for (const tid of tids) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* thread exited */
    }
  }
  return sum;
}

/** Bytes actually allocated in the memfds a process holds whose name matches, by name. */
export function memfdAllocated(pid: number, match: RegExp): Map<string, number> {
  const out = new Map<string, number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const m = /^\/memfd:(\S+)/.exec(link);
      if (!m || !match.test(m[1]!)) continue;
      out.set(m[1]!, statSync(`/proc/${pid}/fd/${fd}`).blocks * 512);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

export const MiB = 1024 * 1024;
