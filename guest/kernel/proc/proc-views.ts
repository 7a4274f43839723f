// What the guest's /proc says about the machine: the domain, not the host. A Linux guest's
// procfs describes its own kernel's view (its memory, its vCPUs, its uptime, its disks);
// the procfs of a domain's pid namespace is the host kernel's and would show the host's.
// So the guest kernel serves these files itself (a FUSE directory, fuse/fuse-text-dir.ts)
// and binds each over the procfs file of the same name, as LXCFS does for containers
// (docs/architecture.md, "What a guest's /proc shows", says why not LXCFS itself):
//   cmdline     start_info's command line
//   meminfo     the balloon target as MemTotal; used/free/cached from the domain's memory
//               cgroup (hypercall memory.stat), less the kernel's own runtime
//   cpuinfo     one block per online vCPU (xenstore cpu/N/availability; an HVM guest's
//               firmware count), the host's model
//   stat        per-vCPU times (hypercall vcpu.runstate), boot time, process counts
//   uptime      since the domain's kernel started; idle = vCPU time not spent running
//   loadavg     Linux's averages over the domain's own runnable tasks
//   partitions  the kernel's block-device table (block/block-devices.ts)
// and keeps the guest's programs on its vCPUs' CPUs, so `nproc` counts them too.
//
// The kernel must never read these files itself with a blocking call (it would wait on its
// own event loop): nothing here does after the mount, and the binds go through O_PATH
// descriptors opened on the thread pool, so mount(2) never looks a name up in our FUSE
// filesystem while the event loop is inside it.
import { readFileSync, readdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { native } from '../../../native/index.js';
import type { HypercallClient } from '../../../drivers/hypercall/channel.js';
import type { DomainCpuStat, DomainMemoryStat } from '../../../drivers/hypercall/ops.js';
import type { XsClient } from '../../../drivers/xenstore/client.js';
import { blockDevices } from '../block/block-devices.js';
import { parseCmdline } from '../cmdline.js';
import { FuseTextDir, type GeneratedFile } from '../fuse/fuse-text-dir.js';
import { LOAD_FREQ_MS, LoadAverage } from './load-average.js';
import { UserlandAffinity } from './userland-affinity.js';
import {
  cmdlineText,
  cpuinfoText,
  firstCpuBlock,
  loadavgText,
  meminfoText,
  partitionsText,
  statText,
  uptimeText,
  vcpuTimes,
} from './proc-text.js';

export interface ProcViewsOptions {
  hc: HypercallClient;
  /** The domain's xenstore connection and home (/local/domain/<domid>), where its online
   * vCPUs are listed. An HVM guest without PV drivers has no xenstore: it gives `vcpus`. */
  xenstore?: { xs: XsClient; home: string };
  /** The vCPUs the firmware reported, for a guest without xenstore. */
  vcpus?: number;
  /** start_info's command line and page count. */
  cmdline: string;
  nrPages: number;
  /** The kernel's frame allocator: frames it has not given out are the guest's free RAM. */
  pages: { readonly available: number };
  /** Where the files are served in the kernel's mount namespace (default /run/xenode/proc). */
  dir?: string;
  log?: (msg: string) => void;
}

export interface ProcViews {
  files: { name: string; source: string }[];
  /** Bind each file over procDir/<name>. */
  overmount(procDir: string): void;
  close(): void;
}

export const DEFAULT_PROC_VIEWS_DIR = '/run/xenode/proc';
/** open(2)'s O_PATH: a descriptor naming the file without opening it (no FUSE OPEN). */
const O_PATH = 0o10000000;
/** A domain has at most this many vCPUs (as domctl.createdomain allows). */
const MAX_VCPUS = 128;

/** One call in flight at a time; callers that come meanwhile share its answer. */
function coalesced<T>(fn: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | null = null;
  return () => (inflight ??= fn().finally(() => (inflight = null)));
}

/** The domain's tasks by state, from its pid namespace's procfs (the kernel itself, PID 1,
 * is left out: it is the one looking). */
function scanTasks(): { running: number; blocked: number; total: number } {
  let running = 0;
  let blocked = 0;
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || name === '1') continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    const state = stat[stat.lastIndexOf(')') + 2];
    total++;
    if (state === 'R') running++;
    else if (state === 'D') blocked++;
  }
  return { running, blocked, total };
}

function lastPid(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'latin1').trim()) || 0;
  } catch {
    return 0;
  }
}

/** The kernel's own anonymous memory (its Node heap): resident less file-backed and shared
 * pages, from its procfs statm (cheaper than status). */
function kernelAnonBytes(): number {
  const [, resident, shared] = readFileSync('/proc/self/statm', 'latin1').split(' ').map(Number);
  return Math.max(0, (resident! - shared!) * 4096);
}

/** Online vCPUs, as Linux's Xen CPU hotplug driver reads them: cpu/<n>/availability. */
async function onlineVcpus(xs: XsClient, home: string): Promise<number> {
  const ids = (await xs.directory(`${home}/cpu`).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d) && Number(d) < MAX_VCPUS);
  const states = await Promise.all(ids.map((id) => xs.read(`${home}/cpu/${id}/availability`).catch(() => '')));
  return Math.max(1, states.filter((s) => s === 'online').length);
}

/** Seconds since the domain booted. The jailer gives the domain a time namespace whose boot
 * clock starts with it, so the guest's process start times (/proc/PID/stat) count from
 * there: read that clock once, before anything is bound over /proc, and run on from it with
 * the kernel's own monotonic clock. Without a time namespace, the kernel's own start. */
function bootClock(): () => number {
  let base = 0;
  try {
    if (/^boottime\s+-\d+/m.test(readFileSync('/proc/self/timens_offsets', 'latin1'))) {
      // /proc/uptime truncates to 1/100 s: add it back, or a program started in the last
      // hundredth would seem to start after "now" (ps's ELAPSED would wrap).
      base = Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]) + 0.01 - process.uptime();
    }
  } catch {
    /* no time namespaces on this host */
  }
  return () => process.uptime() + base;
}

export async function startProcViews(opts: ProcViewsOptions): Promise<ProcViews> {
  const log = opts.log ?? (() => {});
  const dir = opts.dir ?? DEFAULT_PROC_VIEWS_DIR;
  // Read before anything is bound over /proc: the host's CPU model, once.
  const cpuTemplate = firstCpuBlock(readFileSync('/proc/cpuinfo', 'latin1'));
  const uptime = bootClock();

  const memoryStat = coalesced(() => opts.hc.invoke<DomainMemoryStat>('memory.stat'));
  const runstate = coalesced(() => opts.hc.invoke<DomainCpuStat>('vcpu.runstate'));

  // The guest's programs on its vCPUs' CPUs (userland-affinity.ts): init, spawned right after
  // this resolves, starts there; tasks that escaped are set within a second.
  // xenode.vcpu_affinity=0 on the command line leaves them the whole cpuset (docs say what
  // confining costs a latency-bound program on a busy host).
  const confine = parseCmdline(opts.cmdline).params['xenode.vcpu_affinity'] !== '0';
  const affinity = new UserlandAffinity(log);
  if (confine) affinity.setCpus(
    await runstate().then(
      (r) => r.cpus,
      (e) => (log(`proc: the vCPUs' CPUs are not known, programs keep the whole cpuset: ${(e as Error).message}`), []),
    ),
  );
  affinity.start();

  const xenstore = opts.xenstore;
  let vcpus = xenstore ? await onlineVcpus(xenstore.xs, xenstore.home) : Math.max(1, Math.min(MAX_VCPUS, opts.vcpus ?? 1));
  const watchToken = 'procviews-cpu';
  if (xenstore) {
    await xenstore.xs.watch(`${xenstore.home}/cpu`, watchToken, () => {
      void onlineVcpus(xenstore.xs, xenstore.home).then((n) => (vcpus = n));
      // xl vcpu-set: the hypervisor placed the vCPUs anew before the toolstack wrote xenstore.
      if (confine) void opts.hc.invoke<DomainCpuStat>('vcpu.runstate').then((r) => affinity.setCpus(r.cpus), () => {});
    });
  }

  const load = new LoadAverage();
  const sampler = setInterval(() => {
    const t = scanTasks();
    load.sample(t.running + t.blocked);
  }, LOAD_FREQ_MS);
  sampler.unref();

  const files: GeneratedFile[] = [
    { name: 'cmdline', generate: () => cmdlineText(opts.cmdline) },
    {
      name: 'meminfo',
      generate: async () => {
        const m = await memoryStat();
        const totalKiB = Math.min(m.reservationKiB, opts.nrPages * 4);
        const kernelFramesBytes = (opts.nrPages - opts.pages.available) * 4096;
        return meminfoText({ totalKiB, stat: m.stat, ramChargedBytes: m.ramChargedBytes, kernelFramesBytes, kernelAnonBytes: kernelAnonBytes() });
      },
    },
    { name: 'cpuinfo', generate: () => cpuinfoText(cpuTemplate, vcpus) },
    {
      name: 'stat',
      generate: async () => {
        const r = await runstate();
        const tasks = scanTasks();
        const perCpu = vcpuTimes(r.runningNs, r.userTicks, r.systemTicks, uptime());
        return statText({ perCpu, btime: Date.now() / 1000 - uptime(), processes: lastPid(), running: tasks.running, blocked: tasks.blocked });
      },
    },
    {
      name: 'uptime',
      generate: async () => {
        const r = await runstate();
        const up = uptime();
        const idle = vcpuTimes(r.runningNs, r.userTicks, r.systemTicks, up).reduce((t, c) => t + c.idle, 0) / 100;
        return uptimeText(up, idle);
      },
    },
    {
      name: 'loadavg',
      generate: () => {
        const t = scanTasks();
        return loadavgText(load.avenrun, t.running, t.total, lastPid());
      },
    },
    { name: 'partitions', generate: () => partitionsText(blockDevices()) },
  ];

  const fs = new FuseTextDir(dir, files, { name: 'proc', subtype: 'xenode-proc', log });
  fs.mount();
  const handles: { name: string; handle: FileHandle }[] = [];
  const bound: string[] = [];
  try {
    for (const f of files) handles.push({ name: f.name, handle: await open(fs.path(f.name), O_PATH) });
  } catch (e) {
    for (const h of handles) await h.handle.close().catch(() => {});
    fs.close();
    clearInterval(sampler);
    affinity.stop();
    throw e;
  }
  affinity.confineNextSpawns();

  return {
    files: files.map((f) => ({ name: f.name, source: fs.path(f.name) })),
    overmount(procDir: string) {
      for (const { name, handle } of handles) {
        const target = `${procDir}/${name}`;
        try {
          native().mount(`/proc/self/fd/${handle.fd}`, target, '', native().MS_BIND);
        } catch (e) {
          throw new Error(`cannot bind the domain's ${name} over ${target}: ${(e as Error).message}`);
        }
        bound.push(target);
      }
    },
    close() {
      clearInterval(sampler);
      affinity.stop();
      if (xenstore) void xenstore.xs.unwatch(`${xenstore.home}/cpu`, watchToken).catch(() => {});
      fs.close(); // aborts the connection first: nothing below can wait on us
      for (const target of bound.splice(0)) {
        try {
          native().umount2(target, native().MNT_DETACH);
        } catch (e) {
          log(`${target}: umount: ${(e as Error).message}`);
        }
      }
      for (const h of handles.splice(0)) void h.handle.close().catch(() => {});
    },
  };
}
