// The guest's OOM killer. The guest's userland runs in a memory cgroup of its own ("user",
// limited to the domain's RAM: hypervisor/cgroups.ts) where the host kernel's OOM killer is
// off: a userland that runs out of memory is stopped there, and the guest kernel chooses and
// kills a victim as Linux's mm/oom_kill.c does, and says so on the console with Linux's line:
//
//   Memory cgroup out of memory: Killed process 123 (hog) total-vm:..kB, anon-rss:..kB, ...
//
// So the kernel is never the victim (it is not in that cgroup), and while the userland is
// stopped nothing exits under our feet: the victim we name is the one we killed.
import { readFileSync } from 'node:fs';

/** Where the jailer mounts the domain's memory cgroup hierarchy (native/jailer.c). */
export const MEMCG_DIR = '/run/xenode/memcg';
const USERLAND_MEMCG = `${MEMCG_DIR}/user`;
const POLL_MS = 100;
/** A victim that has not gone after this long is passed over (Linux's oom_reaper gives up too). */
const VICTIM_GRACE_MS = 2000;
const OOM_SCORE_ADJ_MIN = -1000;

export interface OomTask {
  pid: number;
  /** The pid as the guest's userland sees it (its own pid namespace when it has one). */
  guestPid: number;
  comm: string;
  uid: number;
  totalVmKb: number;
  anonRssKb: number;
  fileRssKb: number;
  shmemRssKb: number;
  swapKb: number;
  pgtablesKb: number;
  oomScoreAdj: number;
}

/** One /proc/PID/status (plus its oom_score_adj) as the OOM killer needs it; null if unreadable
 * or a kernel thread. `pidLevel`: which NSpid entry is the guest's view. */
export function parseTaskStatus(pid: number, status: string, oomScoreAdj: number, pidLevel: number): OomTask | null {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim();
  const kb = (name: string) => Number(/^(\d+)/.exec(field(name) ?? '')?.[1] ?? 0);
  if (field('VmSize') === undefined) return null; // no mm: nothing to free
  const nspids = (field('NSpid') ?? String(pid)).split(/\s+/).map(Number);
  return {
    pid,
    guestPid: nspids[Math.min(pidLevel, nspids.length - 1)] ?? pid,
    comm: field('Name') ?? '?',
    uid: Number((field('Uid') ?? '0').split(/\s+/)[0]),
    totalVmKb: kb('VmSize'),
    anonRssKb: kb('RssAnon'),
    fileRssKb: kb('RssFile'),
    shmemRssKb: kb('RssShmem'),
    swapKb: kb('VmSwap'),
    pgtablesKb: kb('VmPTE'),
    oomScoreAdj: oomScoreAdj,
  };
}

/** Linux's oom_badness(): resident pages, swap entries and page-table pages, moved by
 * oom_score_adj in thousandths of the memory the cgroup may use; null: never a victim. */
export function oomBadness(t: OomTask, totalPages: number): number | null {
  if (t.oomScoreAdj <= OOM_SCORE_ADJ_MIN) return null;
  const pages = (t.anonRssKb + t.fileRssKb + t.shmemRssKb + t.swapKb + t.pgtablesKb) / 4;
  return pages + (t.oomScoreAdj * totalPages) / 1000;
}

/** The victim: the highest badness, as select_bad_process() picks. */
export function chooseVictim(tasks: OomTask[], totalPages: number): OomTask | null {
  let best: OomTask | null = null;
  let bestPoints = -Infinity;
  for (const t of tasks) {
    const points = oomBadness(t, totalPages);
    if (points !== null && points > bestPoints) {
      best = t;
      bestPoints = points;
    }
  }
  return best;
}

/** Linux's lines for a memory cgroup OOM kill (mm/oom_kill.c, dump_header and
 * __oom_kill_process). */
export function oomKillLines(v: OomTask, usageKb: number, limitKb: number, failcnt: number): string[] {
  return [
    `memory: usage ${usageKb}kB, limit ${limitKb}kB, failcnt ${failcnt}`,
    `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/,task_memcg=/,task=${v.comm},pid=${v.guestPid},uid=${v.uid}`,
    `Memory cgroup out of memory: Killed process ${v.guestPid} (${v.comm}) total-vm:${v.totalVmKb}kB, anon-rss:${v.anonRssKb}kB, ` +
      `file-rss:${v.fileRssKb}kB, shmem-rss:${v.shmemRssKb}kB, UID:${v.uid} pgtables:${v.pgtablesKb}kB oom_score_adj:${v.oomScoreAdj}`,
  ];
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}

function numberIn(text: string, key: string): number {
  return Number(new RegExp(`^${key}\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

function userlandTasks(pidLevel: number): OomTask[] {
  const tasks: OomTask[] = [];
  for (const line of readOr(`${USERLAND_MEMCG}/cgroup.procs`).split('\n')) {
    const pid = Number(line);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const status = readOr(`/proc/${pid}/status`);
    if (!status) continue;
    const adj = Number(readOr(`/proc/${pid}/oom_score_adj`).trim() || 0);
    const t = parseTaskStatus(pid, status, adj, pidLevel);
    if (t) tasks.push(t);
  }
  return tasks;
}

/** Watch the userland's memory cgroup; when it is out of memory, kill the worst task. Returns
 * null where there is no such cgroup (the host's OOM killer then acts, unnamed). */
export function startOomKiller(opts: { log: (msg: string) => void; pidLevel: number }): { stop(): void } | null {
  if (!readOr(`${USERLAND_MEMCG}/memory.oom_control`)) {
    opts.log('oom: no userland memory cgroup: the host chooses the victims');
    return null;
  }
  let victim: { pid: number; since: number } | null = null;
  let saidNoVictim = false;
  const timer = setInterval(() => {
    const control = readOr(`${USERLAND_MEMCG}/memory.oom_control`);
    if (numberIn(control, 'under_oom') !== 1) {
      victim = null;
      saidNoVictim = false;
      return;
    }
    if (victim && Date.now() - victim.since < VICTIM_GRACE_MS && readOr(`/proc/${victim.pid}/stat`)) return; // still dying
    const limitBytes = Number(readOr(`${USERLAND_MEMCG}/memory.limit_in_bytes`).trim() || 0);
    const tasks = userlandTasks(opts.pidLevel).filter((t) => t.pid !== victim?.pid);
    const v = chooseVictim(tasks, Math.floor(limitBytes / 4096));
    if (!v) {
      if (!saidNoVictim) opts.log('Out of memory and no killable processes...');
      saidNoVictim = true;
      return;
    }
    const usage = Number(readOr(`${USERLAND_MEMCG}/memory.usage_in_bytes`).trim() || 0);
    const failcnt = Number(readOr(`${USERLAND_MEMCG}/memory.failcnt`).trim() || 0);
    for (const l of oomKillLines(v, Math.floor(usage / 1024), Math.floor(limitBytes / 1024), failcnt)) opts.log(l);
    try {
      process.kill(v.pid, 'SIGKILL');
    } catch {
      /* gone already: the next poll looks again */
    }
    victim = { pid: v.pid, since: Date.now() };
  }, POLL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
