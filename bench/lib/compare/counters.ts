// What the comparison reads around each workload: CPU time of dom0, the stub domain and the
// guest (or the native client), netback/blkback counters (toolstack `device-stats`) and the
// device model's counters (toolstack `dm-metrics`: ioreq exits per device, interrupts, NIC
// frames, IDE commands). A snapshot before and one after give the deltas the mechanism
// columns divide.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { BenchInstance } from '../instance.js';

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const CPUACCT = '/sys/fs/cgroup/cpuacct';

/** CPU time of a process in ns, 0 if it is gone: the sum over its threads of
 * /proc/PID/task/TID/schedstat (ns resolution; the processes measured keep their threads),
 * else utime + stime from /proc/PID/stat (clock ticks). */
export function procCpuNs(pid: number | null | undefined): number {
  if (!pid) return 0;
  try {
    let sum = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* thread gone */
      }
    }
    if (sum > 0) return sum;
  } catch {
    /* no schedstat */
  }
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5); f[0] is field 3.
    return ((Number(f[11]) + Number(f[12])) * 1e9) / CLK_TCK;
  } catch {
    return 0;
  }
}

export function cgroupCpuNs(dir: string): number {
  try {
    return Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8').trim());
  } catch {
    return 0;
  }
}

/** The guest's cgroup (the hypervisor puts every process of domain d there). */
export function guestCgroup(inst: BenchInstance, domid: number): string {
  return join(CPUACCT, inst.cgroup, `d${domid}`);
}

/** A cpuacct cgroup for the native baseline's client processes, under the instance's group so
 * the instance's teardown removes it too. */
export class NativeCgroup {
  readonly dir: string;
  constructor(inst: BenchInstance) {
    this.dir = join(CPUACCT, inst.cgroup, 'native');
  }
  create(): void {
    if (!existsSync(this.dir)) mkdirSync(this.dir, { recursive: true });
  }
  /** argv wrapped so that it runs inside this cgroup. */
  wrap(argv: string[]): string[] {
    return ['/bin/sh', '-c', `echo $$ > ${join(this.dir, 'cgroup.procs')} && exec "$@"`, 'sh', ...argv];
  }
  remove(): void {
    try {
      // Anything left in it (a client killed by a timeout) goes back to the root group.
      for (const p of readFileSync(join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(CPUACCT, 'cgroup.procs'), p);
        } catch {
          /* gone */
        }
      }
      rmdirSync(this.dir);
    } catch {
      /* gone */
    }
  }
}

export interface DmMetrics {
  dispatch?: Record<string, number>;
  ide?: Record<string, number>;
  nics?: { devid: number; metrics: Record<string, number> }[];
  serial?: Record<string, number>[];
  platform?: Record<string, number>;
  ioreq?: Record<string, number>;
}

export interface Snapshot {
  at: number;
  dom0Ns: number;
  stubdomNs: number;
  guestNs: number;
  /** netback counters of the guest's vif 0, blkback counters of its first vbd. */
  vif: Record<string, number>;
  vbd: Record<string, number>;
  dm: DmMetrics | null;
}

export interface Probe {
  /** null for the native baseline. */
  domid: number | null;
  dom0Pid: number;
  /** Where the client's (or guest's) CPU time is counted. */
  cgroupDir: string;
  hvm: boolean;
}

export async function snapshot(inst: BenchInstance, p: Probe): Promise<Snapshot> {
  let vif: Record<string, number> = {};
  let vbd: Record<string, number> = {};
  let dm: DmMetrics | null = null;
  let stubPid: number | null = null;
  if (p.domid !== null) {
    const stats = await inst.rpc<Record<string, Record<string, number>>>('device-stats');
    vif = stats[`vif/${p.domid}/0`] ?? {};
    vbd = Object.entries(stats).find(([k]) => k.startsWith(`vbd/${p.domid}/`))?.[1] ?? {};
    if (p.hvm) {
      const r = await inst.rpc<{ pid: number | null; metrics: DmMetrics | null }>('dm-metrics', { dom: String(p.domid) });
      dm = r.metrics;
      stubPid = r.pid;
    }
  }
  return { at: Date.now(), dom0Ns: procCpuNs(p.dom0Pid), stubdomNs: procCpuNs(stubPid), guestNs: cgroupCpuNs(p.cgroupDir), vif, vbd, dm };
}

function sub(a: Record<string, number> | undefined, b: Record<string, number> | undefined, k: string): number {
  return (b?.[k] ?? 0) - (a?.[k] ?? 0);
}

/** The mechanism behind one workload's number, from two snapshots. NaN where it does not apply. */
export interface Mechanism {
  /** Frames (network) or requests (disk) the device handled. */
  units: number;
  /** ioreq exits (console UART excluded) and interrupts/notifications, in total. */
  exits: number;
  notifies: number;
  /** ioreq exits to the device model per frame / per I/O (emulated devices; ~0 with PV). */
  exitsPerUnit: number;
  /** Interrupts (emulated) or event-channel notifications, both ways (PV), per frame / I/O. */
  notifyPerUnit: number;
  /** Ring batch: PV net: frames per backend wake-up (TX) and per RX push; PV disk: requests
   * per frontend notification; emulated: frames or commands per interrupt. */
  batch: number;
  /** Average bytes per device frame (shows GSO: PV frames carry up to 64 KiB). */
  bytesPerFrame: number;
  cpuS: { dom0: number; stubdom: number; guest: number };
  /** The raw counter deltas the figures came from (for the JSON). */
  deltas: Record<string, Record<string, number>>;
}

function delta(a: Record<string, number> | undefined, b: Record<string, number> | undefined): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of Object.entries(b ?? {})) if (typeof v === 'number' && !k.startsWith('avg') && !k.endsWith('_avg_batch') && k !== 'notify_per_packet') d[k] = v - (a?.[k] ?? 0);
  return d;
}

export function mechanism(kind: 'net' | 'disk', a: Snapshot, b: Snapshot, hvm: boolean, pv: boolean): Mechanism {
  const cpuS = { dom0: (b.dom0Ns - a.dom0Ns) / 1e9, stubdom: (b.stubdomNs - a.stubdomNs) / 1e9, guest: (b.guestNs - a.guestNs) / 1e9 };
  const deltas: Record<string, Record<string, number>> = {};
  if (pv) deltas[kind === 'net' ? 'netback' : 'blkback'] = delta(kind === 'net' ? a.vif : a.vbd, kind === 'net' ? b.vif : b.vbd);
  if (hvm && a.dm && b.dm) {
    deltas.ioreq = delta(a.dm.ioreq, b.dm.ioreq);
    deltas.dispatch = delta(a.dm.dispatch, b.dm.dispatch);
    deltas.nic = delta(a.dm.nics?.[0]?.metrics, b.dm.nics?.[0]?.metrics);
    deltas.ide = delta(a.dm.ide, b.dm.ide);
    deltas.serial = delta(a.dm.serial?.[0], b.dm.serial?.[0]);
    if (b.dm.platform) deltas.platform = delta(a.dm.platform, b.dm.platform);
  }
  const m: Mechanism = { units: NaN, exits: NaN, notifies: NaN, exitsPerUnit: NaN, notifyPerUnit: NaN, batch: NaN, bytesPerFrame: NaN, cpuS, deltas };
  // All synchronous ioreqs except the console UART's (typing the command, printing the result).
  const exits = () => {
    if (!hvm || !a.dm || !b.dm) return NaN;
    const served = sub(a.dm.ioreq, b.dm.ioreq, 'served') + sub(a.dm.ioreq, b.dm.ioreq, 'buffered');
    const serial = (b.dm.serial ?? []).reduce((s, x, i) => s + (x.exits ?? 0) - (a.dm!.serial?.[i]?.exits ?? 0), 0);
    return served - serial;
  };
  if (pv) {
    if (kind === 'net') {
      const tx = sub(a.vif, b.vif, 'tx_packets');
      const rx = sub(a.vif, b.vif, 'rx_packets');
      m.units = tx + rx;
      m.notifyPerUnit = (sub(a.vif, b.vif, 'notify_sent') + sub(a.vif, b.vif, 'events_received')) / m.units;
      const batches = sub(a.vif, b.vif, 'tx_batches') + sub(a.vif, b.vif, 'rx_batches');
      m.batch = m.units / batches;
      m.bytesPerFrame = (sub(a.vif, b.vif, 'tx_bytes') + sub(a.vif, b.vif, 'rx_bytes')) / m.units;
    } else {
      m.units = sub(a.vbd, b.vbd, 'rd_req') + sub(a.vbd, b.vbd, 'wr_req') + sub(a.vbd, b.vbd, 'f_req');
      m.notifyPerUnit = (sub(a.vbd, b.vbd, 'notify_in') + sub(a.vbd, b.vbd, 'notify_out')) / m.units;
      m.batch = m.units / Math.max(1, sub(a.vbd, b.vbd, 'notify_in'));
      m.bytesPerFrame = ((sub(a.vbd, b.vbd, 'rd_sect') + sub(a.vbd, b.vbd, 'wr_sect')) * 512) / m.units;
    }
    m.exitsPerUnit = hvm ? exits() / m.units : 0;
  } else if (hvm && a.dm && b.dm) {
    if (kind === 'net') {
      const n0 = a.dm.nics?.[0]?.metrics;
      const n1 = b.dm.nics?.[0]?.metrics;
      m.units = sub(n0, n1, 'tx_packets') + sub(n0, n1, 'rx_packets');
      const irqs = sub(n0, n1, 'interrupts');
      m.notifyPerUnit = irqs / m.units;
      m.batch = m.units / Math.max(1, irqs);
      m.bytesPerFrame = (sub(n0, n1, 'tx_bytes') + sub(n0, n1, 'rx_bytes')) / m.units;
    } else {
      m.units = sub(a.dm.ide, b.dm.ide, 'commands');
      const irqs = sub(a.dm.ide, b.dm.ide, 'interrupts');
      m.notifyPerUnit = irqs / m.units;
      m.batch = m.units / Math.max(1, irqs);
      m.bytesPerFrame = ((sub(a.dm.ide, b.dm.ide, 'sectorsRead') + sub(a.dm.ide, b.dm.ide, 'sectorsWritten')) * 512) / m.units;
    }
    m.exitsPerUnit = exits() / m.units;
  }
  m.exits = m.exitsPerUnit * m.units;
  m.notifies = m.notifyPerUnit * m.units;
  return m;
}
