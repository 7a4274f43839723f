// Every domain's counters in one reading: what `xl list` shows (state, memory, vCPUs, CPU
// time: the toolstack's `list`), netback's and blkback's per-device counters (`device-stats`,
// what `xl network-stats` prints) and the host (`info`). `xl top` and the web console both
// read through here, so the page and the terminal can never disagree; rates come from two
// readings, as xentop computes them (libxenstat's node snapshots).
import type { DomainInfo, HostInfo } from '../../drivers/hypercall/ops.js';

export type ToolstackCall = <T>(cmd: string, args?: Record<string, unknown>) => Promise<T>;

export interface VifCounters {
  devid: number;
  /** Guest -> world (netif TX ring), as xentop's NETTX; bytes and packets. */
  txBytes: number;
  txPackets: number;
  txDrops: number;
  /** World -> guest (netif RX ring), as xentop's NETRX. */
  rxBytes: number;
  rxPackets: number;
  rxDrops: number;
}

export interface VbdCounters {
  devid: number;
  /** blkback's statistics/ names, as xentop's VBD_* columns read them. */
  ooReq: number;
  rdReq: number;
  wrReq: number;
  rdSect: number;
  wrSect: number;
  /** Requests answered with an error. */
  errors: number;
}

export type DomainCounters = DomainInfo & { name: string; vifs: VifCounters[]; vbds: VbdCounters[] };

export interface CounterReading {
  /** When the reading was taken (ms since the epoch). */
  at: number;
  host: HostInfo;
  domains: DomainCounters[];
}

/** Per-second rates between two readings of one domain. */
export interface DomainRates {
  cpuPct: number;
  netTxBps: number;
  netRxBps: number;
  /** Disk throughput in bytes/s (512-byte sectors, as blkback counts them). */
  diskRdBps: number;
  diskWrBps: number;
}

const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Split device-stats' `type/domid/devid` keys into per-domain vif and vbd counters. */
export function devicesByDomain(stats: Record<string, Record<string, number>>): Map<number, { vifs: VifCounters[]; vbds: VbdCounters[] }> {
  const out = new Map<number, { vifs: VifCounters[]; vbds: VbdCounters[] }>();
  for (const [key, s] of Object.entries(stats)) {
    const m = /^(vif|vbd)\/(\d+)\/(\d+)$/.exec(key);
    if (!m) continue;
    const domid = Number(m[2]);
    const devid = Number(m[3]);
    const d = out.get(domid) ?? { vifs: [], vbds: [] };
    out.set(domid, d);
    if (m[1] === 'vif') {
      d.vifs.push({ devid, txBytes: n(s.tx_bytes), txPackets: n(s.tx_packets), txDrops: n(s.tx_drops), rxBytes: n(s.rx_bytes), rxPackets: n(s.rx_packets), rxDrops: n(s.rx_drops) });
    } else {
      d.vbds.push({ devid, ooReq: n(s.oo_req), rdReq: n(s.rd_req), wrReq: n(s.wr_req), rdSect: n(s.rd_sect), wrSect: n(s.wr_sect), errors: n(s.errors) });
    }
  }
  for (const d of out.values()) {
    d.vifs.sort((a, b) => a.devid - b.devid);
    d.vbds.sort((a, b) => a.devid - b.devid);
  }
  return out;
}

/** One reading: three toolstack requests, in parallel. */
export async function readCounters(call: ToolstackCall): Promise<CounterReading> {
  const [infos, stats, host] = await Promise.all([
    call<(DomainInfo & { name: string })[]>('list'),
    call<Record<string, Record<string, number>>>('device-stats'),
    call<HostInfo>('info'),
  ]);
  const devs = devicesByDomain(stats ?? {});
  return {
    at: Date.now(),
    host,
    domains: infos.map((i) => ({ ...i, vifs: devs.get(i.domid)?.vifs ?? [], vbds: devs.get(i.domid)?.vbds ?? [] })),
  };
}

const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0);

export const netTxBytes = (d: DomainCounters) => sum(d.vifs, (v) => v.txBytes);
export const netRxBytes = (d: DomainCounters) => sum(d.vifs, (v) => v.rxBytes);

/** xentop's rates: CPU% is CPU time over wall time (100 = one CPU busy). A domain absent
 * from the earlier reading (just created), or one whose counters went backwards (rebooted
 * under the same id, a device re-plugged), has rate 0 rather than a nonsense spike. */
export function rates(prev: CounterReading | null, cur: CounterReading, domid: number): DomainRates {
  const zero = { cpuPct: 0, netTxBps: 0, netRxBps: 0, diskRdBps: 0, diskWrBps: 0 };
  const a = prev?.domains.find((d) => d.domid === domid);
  const b = cur.domains.find((d) => d.domid === domid);
  if (!prev || !a || !b || a.startTimeMs !== b.startTimeMs) return zero;
  const secs = (cur.at - prev.at) / 1000;
  if (secs <= 0) return zero;
  const per = (x: number, y: number) => Math.max(0, y - x) / secs;
  return {
    cpuPct: (per(a.cpuTimeNs, b.cpuTimeNs) / 1e9) * 100,
    netTxBps: per(netTxBytes(a), netTxBytes(b)),
    netRxBps: per(netRxBytes(a), netRxBytes(b)),
    diskRdBps: per(sum(a.vbds, (v) => v.rdSect), sum(b.vbds, (v) => v.rdSect)) * 512,
    diskWrBps: per(sum(a.vbds, (v) => v.wrSect), sum(b.vbds, (v) => v.wrSect)) * 512,
  };
}
