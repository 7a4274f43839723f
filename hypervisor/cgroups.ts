// Scheduling and containment through cgroup v1 (the hierarchies these machines mount):
//   freezer  pause/unpause: the domain's processes really stop (state 'p')
//   memory   the domain's memory limit (memory / mem-set); its "user" child holds the guest's
//            userland, limited to the domain's RAM, with the kernel's OOM killer off there: the
//            guest kernel is that child's OOM killer (guest/kernel/oom-killer.ts), so it is never
//            the victim and says who was, as Linux does
//   cpu      credit scheduler weight (cpu.shares) and cap (CFS quota)
//   cpuset   vCPU pinning (xl vcpu-pin)
//   cpuacct  CPU time for xl list / vcpu-list
//   pids     a guest that forks without end stops at pids.max
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { DelegatedCgroups } from './delegated-cgroups.js';
import { parseCpuList } from '../common/cpu-list.js';
import { sumMemoryStats } from './memcg-stat-sum.js';

const ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['freezer', 'memory', 'cpu', 'cpuset', 'cpuacct', 'pids'] as const;
type Controller = (typeof CONTROLLERS)[number];

/** Xen's default credit weight is 256; cgroup's default share is 1024. */
export const DEFAULT_WEIGHT = 256;
const SHARES_PER_WEIGHT = 4;
const CFS_PERIOD_US = 100_000;
export const DEFAULT_PIDS_MAX = 512;
/** The memory cgroup child of a domain where its userland runs (native/rootboot.c joins it). */
export const USERLAND_MEMCG = 'user';

function write(path: string, value: string): void {
  writeFileSync(path, value);
}
function read(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

export function cgroupsAvailable(): boolean {
  return CONTROLLERS.every((c) => existsSync(join(ROOT, c, 'tasks')));
}

export class DomainCgroup {
  private readonly dirs: Record<Controller, string>;
  /** The directories the guest's own init may manage (systemd's hierarchy, cgroup2). */
  readonly delegated: DelegatedCgroups;
  /** The domain's RAM as it booted (bytes): what its tmpfs mounts are sized from. */
  guestMemoryBytes = 0;

  constructor(group: string, domid: number) {
    this.delegated = new DelegatedCgroups(group, domid);
    this.dirs = Object.fromEntries(CONTROLLERS.map((c) => [c, join(ROOT, c, group, `d${domid}`)])) as Record<Controller, string>;
  }

  create(): void {
    for (const c of CONTROLLERS) {
      const dir = this.dirs[c];
      const parent = join(dir, '..');
      if (!existsSync(parent)) {
        mkdirSync(parent);
        // A v1 cpuset cannot take tasks until cpus and mems are set, and children start empty.
        if (c === 'cpuset') {
          write(join(parent, 'cpuset.cpus'), read(join(ROOT, 'cpuset', 'cpuset.cpus')));
          write(join(parent, 'cpuset.mems'), read(join(ROOT, 'cpuset', 'cpuset.mems')));
        }
      }
      if (!existsSync(dir)) mkdirSync(dir);
      if (c === 'cpuset') {
        write(join(dir, 'cpuset.cpus'), read(join(parent, 'cpuset.cpus')));
        write(join(dir, 'cpuset.mems'), read(join(parent, 'cpuset.mems')));
      }
    }
    write(join(this.dirs.pids, 'pids.max'), String(DEFAULT_PIDS_MAX));
    // Under memory pressure, kill inside the domain instead of stalling it forever.
    write(join(this.dirs.memory, 'memory.oom_control'), '0');
    // The userland's child: there the guest kernel chooses the victim (oom_kill_disable 1
    // makes the host kernel stop the charging tasks instead of killing one, and notify).
    const user = this.userlandMemoryDir;
    if (!existsSync(user)) mkdirSync(user);
    write(join(user, 'memory.oom_control'), '1');
  }

  /** The memory cgroup of the guest's userland. */
  get userlandMemoryDir(): string {
    return join(this.dirs.memory, USERLAND_MEMCG);
  }

  /** Let the domain's root move its userland into the userland's memory cgroup (and only
   * there: every other file stays host root's). */
  delegateUserland(ownerUid: number): void {
    for (const f of ['cgroup.procs', 'tasks']) chownSync(join(this.userlandMemoryDir, f), ownerUid, ownerUid);
  }

  addProcess(pid: number): void {
    for (const c of CONTROLLERS) write(join(this.dirs[c], 'cgroup.procs'), String(pid));
    this.delegated.addProcess(pid);
  }

  /** One thread of another process (an HVM-on-KVM domain's vCPU thread in the hypervisor):
   * into the scheduling hierarchies only, never the freezer (freezing a thread of a process
   * that holds shared locks would stop its siblings too), the memory cgroup (charges follow
   * the process's mm) or the pids cgroup (whose members killAll kills). */
  addThread(tid: number): void {
    for (const c of ['cpu', 'cpuset', 'cpuacct'] as const) write(join(this.dirs[c], 'tasks'), String(tid));
  }

  pids(): number[] {
    try {
      return read(join(this.dirs.pids, 'cgroup.procs'))
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  }

  freeze(): void {
    write(join(this.dirs.freezer, 'freezer.state'), 'FROZEN');
  }

  thaw(): void {
    write(join(this.dirs.freezer, 'freezer.state'), 'THAWED');
  }

  isFrozen(): boolean {
    try {
      return read(join(this.dirs.freezer, 'freezer.state')) !== 'THAWED';
    } catch {
      return false;
    }
  }

  /** The domain's limit (`bytes`: its RAM and the kernel's overhead) and its userland's
   * (`guestBytes`: its RAM), as the guest's RAM changes (boot, mem-set). */
  setMemoryLimit(bytes: number, guestBytes: number): void {
    if (this.guestMemoryBytes === 0) this.guestMemoryBytes = guestBytes;
    write(join(this.dirs.memory, 'memory.limit_in_bytes'), String(bytes));
    try {
      write(join(this.userlandMemoryDir, 'memory.limit_in_bytes'), String(guestBytes));
    } catch {
      /* EBUSY: the userland holds more than the new target; it stays at the old one until it
       * lets go, as a balloon that cannot inflate further */
    }
  }

  memoryLimit(): number {
    return Number(read(join(this.dirs.memory, 'memory.limit_in_bytes')));
  }

  memoryUsage(): number {
    try {
      return Number(read(join(this.dirs.memory, 'memory.usage_in_bytes')));
    } catch {
      return 0;
    }
  }

  /** The domain's memory cgroup directory. */
  get memoryDir(): string {
    return this.dirs.memory;
  }

  /** memory.stat as numbers (bytes and counts): what the domain's pages are (anon, page
   * cache, shmem, mapped, dirty ...), for the guest's own /proc/meminfo. Empty when gone.
   * The whole domain's, its userland's child included: each directory's own counters, added
   * up (memcg-stat-sum.ts says why not the domain's total_X). */
  memoryStat(): Record<string, number> {
    const own = parseKeyValues(readOr(join(this.dirs.memory, 'memory.stat')));
    return sumMemoryStats(own, memoryDirsBelow(this.dirs.memory).map((d) => parseKeyValues(readOr(join(d, 'memory.stat')))));
  }

  /** CPU time per host CPU (ns, indexed by host CPU) and the user/system split (USER_HZ
   * ticks) from cpuacct, for the guest's own /proc/stat. */
  cpuStat(): { perCpuNs: number[]; userTicks: number; systemTicks: number } {
    const perCpuNs = readOr(join(this.dirs.cpuacct, 'cpuacct.usage_percpu')).split(/\s+/).filter(Boolean).map(Number);
    const st = parseKeyValues(readOr(join(this.dirs.cpuacct, 'cpuacct.stat')));
    return { perCpuNs, userTicks: st.user ?? 0, systemTicks: st.system ?? 0 };
  }

  /** Credit weight (1..65535) to cpu.shares. */
  setWeight(weight: number): void {
    write(join(this.dirs.cpu, 'cpu.shares'), String(Math.max(2, weight * SHARES_PER_WEIGHT)));
  }

  /** Credit cap in percent of one CPU (0 = uncapped) to a CFS quota. */
  setCap(capPercent: number): void {
    write(join(this.dirs.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
    const quota = capPercent <= 0 ? -1 : Math.round((CFS_PERIOD_US * capPercent) / 100);
    write(join(this.dirs.cpu, 'cpu.cfs_quota_us'), String(quota));
  }

  setCpus(cpus: number[]): void {
    write(join(this.dirs.cpuset, 'cpuset.cpus'), cpus.join(','));
  }

  cpus(): number[] {
    return parseCpuList(read(join(this.dirs.cpuset, 'cpuset.cpus')));
  }

  cpuTimeNs(): number {
    try {
      return Number(read(join(this.dirs.cpuacct, 'cpuacct.usage')));
    } catch {
      return 0;
    }
  }

  /** Kill every process (but `spare`): freeze so nothing forks meanwhile, SIGKILL all, thaw so they die. */
  killAll(spare?: number): void {
    try {
      this.freeze();
    } catch {
      /* the group may be gone already */
    }
    for (const pid of this.pids()) {
      if (pid === spare) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    try {
      this.thaw();
    } catch {
      /* gone */
    }
  }

  /** Remove the directories; fails (EBUSY) while processes remain, so retry briefly. */
  async destroy(): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      if (this.pids().length > 0) this.killAll();
      this.delegated.destroy();
      let busy = false;
      try {
        if (existsSync(this.userlandMemoryDir)) rmdirSync(this.userlandMemoryDir);
      } catch {
        busy = true;
      }
      for (const c of CONTROLLERS) {
        const dir = this.dirs[c];
        if (!existsSync(dir)) continue;
        try {
          rmdirSync(dir);
        } catch {
          busy = true;
        }
      }
      if (!busy) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`cgroup ${this.dirs.pids} still busy after destroy`);
  }
}

/** Remove the xenode parent groups once no domain is left (leak check friendliness). */
export function removeParentGroups(group: string): void {
  for (const c of [...CONTROLLERS, 'systemd', 'unified']) {
    try {
      rmdirSync(join(ROOT, c, group));
    } catch {
      /* still in use or absent */
    }
  }
}

export function hostCpus(): number[] {
  return parseCpuList(read(join(ROOT, 'cpuset', 'cpuset.cpus')));
}

/** The cgroup directories below `dir` (the userland's "user"; the guest cannot make more:
 * the domain's directory is host root's), each before those below it. */
function memoryDirsBelow(dir: string, depth = 0): string[] {
  if (depth >= 4) return [];
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.isDirectory()).flatMap((e) => [join(dir, e.name), ...memoryDirsBelow(join(dir, e.name), depth + 1)]);
}

function readOr(path: string): string {
  try {
    return read(path);
  } catch {
    return '';
  }
}

/** "key value" lines (memory.stat, cpuacct.stat) to a record; lines that are not are skipped. */
export function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+)\s+(\d+)$/.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}
