// The page's live numbers: a reading of the toolstack's counters (domain-counters.ts, the one
// `xl top` and `xl list` print) every second, at once when xenstored announces a domain
// (@introduceDomain / @releaseDomain) or after an action, and a bounded history per domain
// (the last 10 minutes) for the throughput charts. Subscribers get each sample; none of this
// waits on a subscriber.
import { EventEmitter } from 'node:events';
import type { XenstoreLink } from './xenstore-link.js';
import { readCounters, rates, type CounterReading, type DomainCounters, type DomainRates, type ToolstackCall } from '../toolstack/domain-counters.js';
import { stateLetters } from '../toolstack/xl/format.js';
import { xentopState } from '../toolstack/xl/commands/top.js';

export const SAMPLE_MS = 1000;
export const HISTORY_POINTS = 600;

export interface DomainView extends DomainRates {
  domid: number;
  name: string;
  /** xl list's six letters, and xentop's. */
  state: string;
  xentopState: string;
  paused: boolean;
  vcpus: number;
  onlineVcpus: number;
  memKiB: number;
  maxMemKiB: number;
  cpuSec: number;
  vifs: DomainCounters['vifs'];
  vbds: DomainCounters['vbds'];
  /** host:port of its VGA display's VNC server (console/vnc-port in xenstore), if it has one. */
  vnc: string | null;
}

export interface Sample {
  at: number;
  host: CounterReading['host'] & { xenodeVersion: string };
  domains: DomainView[];
}

/** Columns of a domain's history, one entry per sample. */
export interface History {
  t: number[];
  netTx: number[];
  netRx: number[];
  diskRd: number[];
  diskWr: number[];
  cpu: number[];
}

export class StatsSampler extends EventEmitter {
  private prev: CounterReading | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pending: NodeJS.Timeout | null = null;
  private busy = false;
  private again = false;
  private readonly vnc = new Map<number, string | null>();
  private vncCheckedAt = 0;
  readonly history = new Map<number, History>();
  last: Sample | null = null;
  /** The last reading that failed, for the page to show (dom0 gone, ...). */
  error: string | null = null;

  constructor(
    private readonly call: ToolstackCall,
    private readonly xs: XenstoreLink,
    private readonly version: string,
  ) {
    super();
  }

  async start(): Promise<void> {
    // (Again on each new connection, should xenstored restart.)
    await this.xs.onConnect(async (xs) => {
      for (const special of ['@introduceDomain', '@releaseDomain']) await xs.watch(special, `web${special}`, () => this.soon());
    });
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
    await this.sample();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
  }

  /** Sample again shortly (coalescing bursts of events). */
  soon(delayMs = 30): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      void this.sample();
    }, delayMs);
  }

  async sample(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      const cur = await readCounters(this.call);
      await this.refreshVnc(cur);
      const s = this.view(cur);
      this.prev = cur;
      this.last = s;
      this.error = null;
      this.record(s);
      this.emit('sample', s);
    } catch (e) {
      this.error = (e as Error).message;
      this.emit('error-state', this.error);
    } finally {
      this.busy = false;
      if (this.again) {
        this.again = false;
        this.soon(0);
      }
    }
  }

  /** vnc-port/vnc-listen of each domain: read when a domain first appears and every 5 s after
   * (the display's server may come up after the domain). */
  private async refreshVnc(cur: CounterReading): Promise<void> {
    const now = Date.now();
    const all = now - this.vncCheckedAt > 5000;
    if (all) this.vncCheckedAt = now;
    const ids = new Set(cur.domains.map((d) => d.domid));
    for (const id of this.vnc.keys()) if (!ids.has(id)) this.vnc.delete(id);
    for (const d of cur.domains) {
      if (d.domid === 0 || (!all && this.vnc.has(d.domid))) continue;
      const port = await this.xs.read(`/local/domain/${d.domid}/console/vnc-port`).catch(() => null);
      const listen = port ? await this.xs.read(`/local/domain/${d.domid}/console/vnc-listen`).catch(() => '127.0.0.1') : null;
      this.vnc.set(d.domid, port && /^\d{1,5}$/.test(port.trim()) ? `${listen}:${port.trim()}` : null);
    }
  }

  private view(cur: CounterReading): Sample {
    return {
      at: cur.at,
      host: { ...cur.host, xenodeVersion: this.version },
      domains: cur.domains.map((d) => ({
        domid: d.domid,
        name: d.name,
        state: stateLetters(d),
        xentopState: xentopState(d),
        paused: d.paused,
        vcpus: d.vcpus,
        onlineVcpus: d.onlineVcpus,
        memKiB: d.memKiB,
        maxMemKiB: d.maxMemKiB,
        cpuSec: d.cpuTimeNs / 1e9,
        vifs: d.vifs,
        vbds: d.vbds,
        vnc: this.vnc.get(d.domid) ?? null,
        ...rates(this.prev, cur, d.domid),
      })),
    };
  }

  private record(s: Sample): void {
    const live = new Set(s.domains.map((d) => d.domid));
    for (const id of this.history.keys()) if (!live.has(id)) this.history.delete(id);
    for (const d of s.domains) {
      let h = this.history.get(d.domid);
      if (!h) this.history.set(d.domid, (h = { t: [], netTx: [], netRx: [], diskRd: [], diskWr: [], cpu: [] }));
      h.t.push(s.at / 1000);
      h.netTx.push(d.netTxBps);
      h.netRx.push(d.netRxBps);
      h.diskRd.push(d.diskRdBps);
      h.diskWr.push(d.diskWrBps);
      h.cpu.push(d.cpuPct);
      if (h.t.length > HISTORY_POINTS) for (const col of Object.values(h) as number[][]) col.shift();
    }
  }
}
