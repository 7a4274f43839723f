// One connected vif (Linux xen-netback interface.c): the frontend's two ring pages, mapped
// from its grants, the interdomain event channel, the TX and RX paths, the rate limiter, and
// the guard against event storms. Created when the frontend has published its rings; torn
// down on disconnect, on a fatal protocol error (only this vif goes), or when the device is
// removed.
import { acquire, release, MappedGrantTable } from '../../../drivers/grant/grant-table.js';
import { BackRing, SharedRing, XEN_PAGE_SIZE } from '../../../drivers/ring/shared-ring.js';
import { NETIF_RX_SLOT_SIZE, NETIF_TX_SLOT_SIZE } from '../../../drivers/wire/netif.js';
import { native } from '../../../native/index.js';
import type { Dom0Services } from '../backend-bus.js';
import type { VifMetrics } from './metrics.js';
import { RxPath } from './rx.js';
import { TokenBucket, type VifRateConfig } from './rate-limit.js';
import { TxPath } from './tx.js';
import { BusyPoller } from '../../../drivers/ring/busy-poll.js';
import { EventStormGuard } from '../../../drivers/evtchn/event-storm-guard.js';
import type { FramePort } from '../../../net/frame-port.js';

export interface VifConnectParams {
  domid: number;
  txRingRef: number;
  rxRingRef: number;
  /** The frontend's event channel port (unbound, waiting for us). */
  eventChannel: number;
  /** The frontend takes multi-slot RX frames. */
  sg: boolean;
  /** GSO the frontend can receive. */
  gsoTcpv4: boolean;
  gsoTcpv6: boolean;
  /** The frontend takes RX frames with checksum still blank (not feature-no-csum-offload). */
  rxCsum: boolean;
  mtu: number;
  rate: VifRateConfig | undefined;
}

/** Busy polling around lone requests (drivers/ring/busy-poll.ts, `busyPoll` below): how long
 * one spin may last (XENODE_NET_BUSY_POLL_US, 0 = off), up to how many ring slots a batch
 * counts as small (a 64-byte datagram takes one; a TCP segment train ten or more), and how
 * long one chain of spins may hold dom0's event loop. */
export const NET_BUSY_POLL_US = Number(process.env.XENODE_NET_BUSY_POLL_US ?? 200);
const BUSY_POLL_MAX_BATCH = 2;
const BUSY_LOOP_MS = 1;

export class ConnectedVif {
  private readonly pins: number[] = [];
  private evtPort = -1;
  private tx: TxPath | null = null;
  private rx: RxPath | null = null;
  private grants!: MappedGrantTable;
  private txRing: BackRing | null = null;
  private rxRing: BackRing | null = null;
  private closed = false;
  private storm: EventStormGuard | null = null;
  private txTimer: NodeJS.Timeout | null = null;
  private txImmediate: NodeJS.Immediate | null = null;
  private readonly busy = new BusyPoller(NET_BUSY_POLL_US);
  /** A poll took work the frontend also rang for: that event will find nothing, and is not
   * a sign of a storm. */
  private staleEvents = 0;

  constructor(
    private readonly s: Dom0Services,
    private readonly port: FramePort,
    private readonly metrics: VifMetrics,
    private readonly onFatal: (reason: string) => void,
  ) {}

  private get tapFd(): number {
    return this.port.fd;
  }

  /** Maps the rings, binds the event channel and starts both paths. Throws on a bad grant
   * or port (the caller reports it and stays disconnected). */
  async connect(p: VifConnectParams): Promise<void> {
    const guest = await this.s.foreign.map(p.domid);
    const memFrames = Math.floor(guest.memory.byteLength / XEN_PAGE_SIZE);
    this.grants = new MappedGrantTable(guest.grantTable, { memFrames });
    let txRing: BackRing;
    let rxRing: BackRing;
    try {
      const txFrame = this.pin(p.txRingRef, 'tx-ring-ref');
      const rxFrame = this.pin(p.rxRingRef, 'rx-ring-ref');
      // The frontend initialised both rings; we attach without touching their headers.
      this.txRing = txRing = new BackRing(new SharedRing(guest.memory, txFrame * XEN_PAGE_SIZE, NETIF_TX_SLOT_SIZE));
      this.rxRing = rxRing = new BackRing(new SharedRing(guest.memory, rxFrame * XEN_PAGE_SIZE, NETIF_RX_SLOT_SIZE));
      // bindOrReattach: after a dom0 restart the channel is still bound to our old port.
      this.evtPort = await this.s.evtchn.bindOrReattach(p.domid, p.eventChannel);
    } catch (e) {
      this.teardown();
      throw e;
    }
    if (this.closed) return this.teardown();

    // Sent as soon as a push says the frontend wants it: its event index asks for one event
    // per sleep, so this costs one event per frontend wake-up however much we push, and it
    // starts the frontend working while we carry on with the batch.
    const notify = () => {
      if (this.closed) return;
      this.metrics.notify_sent++;
      this.s.evtchn.notify(this.evtPort);
    };
    const fatal = (reason: string) => this.fatal(reason);
    this.tx = new TxPath({
      ring: txRing,
      memory: guest.memory,
      grants: this.grants,
      tapFd: this.tapFd,
      metrics: this.metrics,
      limiter: p.rate ? new TokenBucket(p.rate) : null,
      fatal,
      notify,
      schedule: (ms) => this.scheduleTx(ms),
    });
    const gso = p.sg && p.rxCsum && (p.gsoTcpv4 || p.gsoTcpv6);
    this.rx = new RxPath({
      ring: rxRing,
      memory: guest.memory,
      grants: this.grants,
      tapFd: this.tapFd,
      metrics: this.metrics,
      gso,
      sg: p.sg,
      mtu: p.mtu,
      fatal,
      notify,
      afterDelivery: (frames) => this.busyPoll('reply', frames),
    });
    // What the bridge may hand us for this guest: only what its netfront said it takes.
    const n = native();
    const offloads = (p.rxCsum ? n.TUN_F_CSUM : 0) | (gso && p.gsoTcpv4 ? n.TUN_F_TSO4 : 0) | (gso && p.gsoTcpv6 ? n.TUN_F_TSO6 : 0);
    this.port.setOffload(offloads);
    const evtPort = this.evtPort;
    this.storm = new EventStormGuard((ms) => this.s.evtchn.holdOff(evtPort, ms));
    this.s.evtchn.on(evtPort, () => this.onEvent());
    // Xen sets a freshly bound port pending: look at both rings now.
    this.rx.start();
    this.tx.run();
  }

  private pin(ref: number, what: string): number {
    const frame = acquire(this.grants, ref, 0, true);
    if (frame < 0) throw new Error(`${what} ${ref}: grant refused (${frame})`);
    this.pins.push(ref);
    return frame;
  }

  private onEvent(): void {
    if (this.closed || !this.storm) return;
    this.metrics.events_received++;
    const rxWork = this.rx?.onEvent() ?? 0;
    const txWork = this.tx?.run() ?? 0;
    const work = rxWork + txWork;
    if (txWork > 0) this.busyPoll('next', txWork);
    if (work === 0 && this.staleEvents > 0) {
      this.staleEvents--;
      return;
    }
    // Events that find nothing to do: a few are normal (races with our own polling); a
    // stream of them is a storm: stop listening for a while, longer each time (XSA-332).
    // The vif's counters outlive this connection: they grow by what this event added.
    const { spurious, throttles } = this.storm;
    this.storm.handled(work);
    this.metrics.events_spurious += this.storm.spurious - spurious;
    this.metrics.event_throttles += this.storm.throttles - throttles;
  }

  /**
   * Request/response traffic, polled instead of slept on (drivers/ring/busy-poll.ts). After a
   * small delivery to the guest (a request, most likely) spin briefly for its answer on the
   * TX ring; after forwarding a small answer from the guest, spin briefly for the client's
   * next request on the TAP. At most BUSY_LOOP_MS in all: this is dom0's one event loop, and
   * other vifs wait while it spins.
   */
  private busyPoll(want: 'reply' | 'next', slots: number): void {
    const txRing = this.txRing;
    if (this.closed || !txRing) return;
    this.busy.chain(
      {
        ring: txRing.ring,
        which: 'requests',
        fd: this.tapFd,
        small: (n) => n <= BUSY_POLL_MAX_BATCH,
        onRing: () => {
          // The frontend rang for this too: that event will find nothing (not a storm).
          this.staleEvents = Math.min(this.staleEvents + 1, 4);
          return this.tx?.run() ?? 0;
        },
        onFd: () => this.rx?.run() ?? 0,
        alive: () => !this.closed && this.txRing === txRing,
        maxMs: BUSY_LOOP_MS,
      },
      // 'reply': we just moved a request from the TAP to the guest; 'next': an answer from
      // the TX ring to the TAP.
      want === 'reply' ? 'fd' : 'ring',
      slots,
    );
    this.metrics.busy_polls = this.busy.polls;
    this.metrics.busy_poll_hits = this.busy.hits;
  }

  private scheduleTx(ms: number): void {
    if (this.closed) return;
    const go = () => {
      this.txTimer = null;
      this.txImmediate = null;
      if (this.closed) return;
      this.tx?.run();
    };
    if (ms <= 0) {
      if (!this.txImmediate && !this.txTimer) this.txImmediate = setImmediate(go);
    } else if (!this.txTimer) {
      if (this.txImmediate) clearImmediate(this.txImmediate);
      this.txImmediate = null;
      this.txTimer = setTimeout(go, ms);
    }
  }

  private fatal(reason: string): void {
    if (this.closed) return;
    this.metrics.fatal = 1;
    this.close();
    this.onFatal(reason);
  }

  /** Stop both paths, unpin the rings and close our end of the event channel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.teardown();
  }

  private teardown(): void {
    this.tx?.stop();
    this.rx?.stop();
    if (this.txTimer) clearTimeout(this.txTimer);
    if (this.txImmediate) clearImmediate(this.txImmediate);
    for (const ref of this.pins.splice(0)) release(this.grants, ref, true);
    if (this.evtPort >= 0) void this.s.evtchn.close(this.evtPort).catch(() => {});
    this.evtPort = -1;
    // Nothing of the guest's memory stays reachable from here: a destroyed guest's pages are
    // unmapped when the last view goes.
    this.tx = this.rx = null;
    this.txRing = this.rxRing = null;
  }

  /** RX buffers held right now (diagnostics). */
  get rxHeld(): number {
    return this.rx?.held ?? 0;
  }

  /** Ring indices as we see them (diagnostics: a stuck ring shows here), and GRO's merges. */
  rings(): Record<string, number> {
    const r: Record<string, number> = { tx_gro_merged: this.tx?.groMerged ?? 0 };
    for (const [name, ring] of [['tx', this.txRing], ['rx', this.rxRing]] as const) {
      if (!ring) continue;
      r[`${name}_req_prod`] = ring.ring.reqProd;
      r[`${name}_req_cons`] = ring.reqCons;
      r[`${name}_rsp_prod`] = ring.rspProdPvt;
      r[`${name}_req_event`] = ring.ring.reqEvent;
      r[`${name}_rsp_event`] = ring.ring.rspEvent;
    }
    return r;
  }
}
