// netfront: the guest's PV network driver (Linux xen-netfront), one per vif the toolstack gave
// this domain under device/vif/<devid>.
//
//   probe          read the MAC the toolstack chose and the backend's features; create the
//                  guest's eth TAP (ethN, lowest free) with that MAC, the vif's MTU and the
//                  offloads the backend takes; bring it up
//   backend InitWait
//                  two ring pages and 512 buffer pages granted to the backend, an unbound
//                  event channel; publish tx-ring-ref, rx-ring-ref, event-channel,
//                  request-rx-copy, feature-rx-notify, feature-sg, feature-gso-tcpv4/6;
//                  Connected
//   backend Connected
//                  carrier: fill the RX ring, read frames from the TAP
//   backend Closing/Closed, or removal
//                  stop, close the TAP (ethN disappears), revoke the grants (retrying while
//                  the backend still holds one: XSA-396), free the pages
//
// Kernel parameter xen_netfront.offload=0 turns checksum and segmentation offload off in
// both directions (the frontend then advertises no feature-sg/gso and asks for full
// checksums with feature-no-csum-offload): every frame is at most the MTU on the rings.
// xen_netfront.busy_poll=US (default 150, 0 = off): after delivering a small batch to the
// guest's stack, spin that long for its reply rather than sleeping until the TAP wakes us
// (drivers/ring/busy-poll.ts).
import type { FrontendDriver, FrontendFactory, KernelServices } from '../../xenbus-frontends.js';
import { XenbusState, type XenbusDevice } from '../../../../drivers/xenbus/xenbus-device.js';
import { FrontRing, SharedRing, XEN_PAGE_SIZE } from '../../../../drivers/ring/shared-ring.js';
import { NETIF_FRONTEND_KEYS as FK, NETIF_BACKEND_KEYS as BK, NETIF_RX_SLOT_SIZE, NETIF_TX_SLOT_SIZE, NET_RX_RING_SIZE, NET_TX_RING_SIZE } from '../../../../drivers/wire/netif.js';
import { native } from '../../../../native/index.js';
import type { FramePort } from '../../../../net/frame-port.js';
import { netdevs, type NetDevice } from '../../net/netdev.js';
import { parseCmdline } from '../../cmdline.js';
import { jailerTapProvider, providerPort, providerSetLink, type NetTapProvider } from './tap-provider.js';
import { NetfrontRx } from './rx.js';
import { NetfrontTx } from './tx.js';
import { BusyPoller } from '../../../../drivers/ring/busy-poll.js';
import { EventStormGuard } from '../../../../drivers/evtchn/event-storm-guard.js';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** How long removal keeps retrying to revoke grants the backend still holds. */
const REVOKE_RETRY_MS = 10_000;
const DEFAULT_BUSY_POLL_US = 150;
/** RX slots in one event that still count as a request worth polling for the reply to. */
const BUSY_POLL_MAX_SLOTS = 2;

export interface NetfrontOptions {
  /** Where the eth TAPs come from (default: the jailer's pre-opened fds). */
  provider?: () => NetTapProvider;
}

let sharedProvider: NetTapProvider | null = null;
function defaultProvider(): NetTapProvider {
  return (sharedProvider ??= jailerTapProvider());
}

export function netfrontFactory(opts: NetfrontOptions = {}): FrontendFactory {
  return async (dev, devid, k) => {
    const nf = new Netfront(dev, devid, k, (opts.provider ?? defaultProvider)());
    try {
      await nf.probe();
    } catch (e) {
      await nf.remove();
      throw e;
    }
    return nf;
  };
}

/** The driver the guest kernel registers for "vif". */
export const netfrontFrontend = netfrontFactory();

class Netfront implements FrontendDriver, NetDevice {
  name = '';
  mac = '';
  mtu = 1500;
  backendIp: string | undefined;
  routed = false;
  sniffer: ((frame: Uint8Array) => boolean) | null = null;
  private tap: FramePort | null = null;
  private backendId = 0;
  private offload = true;
  private busy = new BusyPoller(DEFAULT_BUSY_POLL_US);
  /** The RX ring's shared page (busy polls watch its rsp_prod). */
  private rxShared: SharedRing | null = null;
  private backendSg = false;
  private state = XenbusState.Initialising;
  private connected = false;
  private removed = false;
  private queue: Promise<void> = Promise.resolve();
  // ring and buffers
  private port = -1;
  private refs: number[] = [];
  private pfns: number[] = [];
  private tx: NetfrontTx | null = null;
  private rx: NetfrontRx | null = null;
  /** Events from a backend ringing for nothing are held off (XSA-391, as netback does). */
  private storm: EventStormGuard | null = null;
  /** Set when the backend answered what was never asked: the device is dead (Linux's
   * info->broken). */
  private broken = false;

  constructor(
    private readonly dev: XenbusDevice,
    readonly devid: number,
    private readonly k: KernelServices,
    private readonly provider: NetTapProvider,
  ) {}

  get ipNetns(): string[] {
    return this.provider.ipNetns;
  }

  carrier(): boolean {
    return this.connected;
  }

  private log(msg: string): void {
    this.k.printk(`${this.name || `vif/${this.devid}`}: ${msg}`);
  }

  async probe(): Promise<void> {
    const d = this.dev;
    const mac = (await d.readKey('mac', d.path))?.trim().toLowerCase();
    if (!mac || !MAC_RE.test(mac)) throw new Error(`parsing ${d.path}/mac: "${mac ?? ''}" is not a MAC address`);
    this.mac = mac;
    const beId = await d.readInt('backend-id', 0, 0x7fef, d.path);
    if (beId === undefined) throw new Error('no backend-id');
    this.backendId = beId;
    const params = parseCmdline(this.k.cmdline ?? '').params;
    this.offload = params['xen_netfront.offload'] !== '0';
    const us = Number(params['xen_netfront.busy_poll'] ?? DEFAULT_BUSY_POLL_US);
    this.busy = new BusyPoller(Number.isFinite(us) && us >= 0 ? Math.min(us, 10_000) : DEFAULT_BUSY_POLL_US);
    // The guest's NIC appears now; its offloads and MTU follow the backend's features, which
    // the backend publishes before InitWait (talkToBackend).
    this.name = netdevs.freeName();
    this.tap = providerPort(this.provider, this.name);
    this.name = this.tap.name;
    netdevs.add(this);
    await providerSetLink(this.provider, this.name, { mac: this.mac, up: true });
    await d.watchOtherEnd((st) => this.enqueue(() => this.onBackendState(st)));
  }

  /** The backend's features, read once it is in InitWait (xennet_connect). */
  private async readBackendFeatures(): Promise<void> {
    const d = this.dev;
    if (!(await d.readFlag(BK.featureRxCopy))) throw new Error('backend does not support copying receive path');
    this.backendSg = this.offload && (await d.readFlag(BK.featureSg));
    const gso4 = this.backendSg && (await d.readFlag(BK.featureGsoTcpv4));
    const gso6 = this.backendSg && (await d.readFlag(BK.featureGsoTcpv6));
    this.mtu = (await d.readInt('mtu', 68, 65535)) ?? (await d.readInt('mtu', 68, 65535, d.path)) ?? 1500;
    if (!this.backendSg && this.mtu > XEN_PAGE_SIZE - 18) this.mtu = XEN_PAGE_SIZE - 18;
    this.backendIp = (await d.readKey('ip'))?.trim() || undefined;
    this.routed = /(^|\/)vif-route$/.test((await d.readKey('script'))?.trim() ?? '');
    // What the guest's stack may hand us is what the backend takes.
    const n = native();
    this.tap!.setOffload(this.offload ? n.TUN_F_CSUM | (gso4 ? n.TUN_F_TSO4 : 0) | (gso6 ? n.TUN_F_TSO6 : 0) : 0);
    await providerSetLink(this.provider, this.name, { mtu: this.mtu });
    this.log(`Xen virtual network device, MAC ${this.mac}, MTU ${this.mtu}, offloads ${this.offload ? (gso4 || gso6 ? 'csum+tso' : 'csum') : 'off'}`);
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((e) => this.log(`${(e as Error).message}`));
  }

  private async switchState(st: XenbusState): Promise<void> {
    this.state = st;
    await this.dev.switchState(st).catch(() => {});
  }

  private async onBackendState(st: XenbusState): Promise<void> {
    if (this.removed) return;
    switch (st) {
      case XenbusState.InitWait:
        if (this.state !== XenbusState.Initialising) break;
        try {
          await this.readBackendFeatures();
        } catch (e) {
          this.log(`${(e as Error).message}: not connecting`);
          await this.switchState(XenbusState.Closing);
          break;
        }
        await this.talkToBackend();
        await this.switchState(XenbusState.Connected);
        break;
      case XenbusState.Connected:
        this.startIo();
        break;
      case XenbusState.Closing:
      case XenbusState.Closed:
        if (this.state === XenbusState.Closed) break;
        this.stopIo();
        await this.switchState(XenbusState.Closing);
        await this.switchState(XenbusState.Closed);
        break;
      default:
        break;
    }
  }

  /** Rings, buffers and the event channel, published to the backend (talk_to_netback). */
  private async talkToBackend(): Promise<void> {
    const { pages, grants, evtchn, memory } = this.k;
    const grantPage = (readonly: boolean): { pfn: number; ref: number } => {
      const pfn = pages.alloc();
      this.pfns.push(pfn);
      const ref = grants.grantAccess(this.backendId, pfn, readonly);
      if (ref < 0) throw new Error('out of grant references');
      this.refs.push(ref);
      return { pfn, ref };
    };
    const txr = grantPage(false);
    const rxr = grantPage(false);
    const txRing = new FrontRing(new SharedRing(memory, txr.pfn * XEN_PAGE_SIZE, NETIF_TX_SLOT_SIZE));
    this.rxShared = new SharedRing(memory, rxr.pfn * XEN_PAGE_SIZE, NETIF_RX_SLOT_SIZE);
    const rxRing = new FrontRing(this.rxShared);
    const pool = (count: number, readonly: boolean) => {
      const views: Uint8Array[] = [];
      const refs: number[] = [];
      const offs = new Float64Array(count);
      for (let i = 0; i < count; i++) {
        const g = grantPage(readonly);
        views.push(pages.page(g.pfn));
        refs.push(g.ref);
        offs[i] = g.pfn * XEN_PAGE_SIZE;
      }
      return { views, refs, offs };
    };
    // The backend only reads what we send: TX buffers are granted read-only.
    const mem = new Uint8Array(memory);
    const txPool = pool(NET_TX_RING_SIZE, true);
    const rxPool = pool(NET_RX_RING_SIZE, false);
    this.port = await evtchn.allocUnbound(this.backendId);
    // At once: the backend's event index asks for one event per sleep of the backend.
    const notify = () => {
      if (this.port >= 0) evtchn.notify(this.port);
    };
    const log = (m: string) => this.log(m);
    const broken = (why: string) => this.onBroken(why);
    this.tx = new NetfrontTx({
      ring: txRing,
      pages: txPool.views,
      mem,
      offs: txPool.offs,
      grefs: txPool.refs,
      tapFd: this.tap!.fd,
      sg: this.backendSg,
      notify,
      log,
      broken,
      afterSend: (frames) => this.busyPoll('next', frames),
    });
    this.rx = new NetfrontRx({ ring: rxRing, pages: rxPool.views, mem, offs: rxPool.offs, grefs: rxPool.refs, tapFd: this.tap!.fd, notify, log, broken, sniffer: () => this.sniffer });
    const port = this.port;
    const storm = (this.storm = new EventStormGuard((ms) => evtchn.holdOff(port, ms)));
    const tx = this.tx;
    const rx = this.rx;
    // Responses taken since the last event, here or elsewhere (a busy poll, TX completions
    // collected while reading the TAP), are what the backend rang for: only an event that
    // comes with none at all is spurious.
    let seen = 0;
    evtchn.on(port, () => {
      const slots = this.connected ? rx.poll() : 0;
      if (this.connected) tx.poll();
      const taken = rx.responses + tx.responses;
      storm.handled(taken - seen);
      seen = taken;
      if (slots > 0) this.busyPoll('reply', slots);
    });
    const sg = this.backendSg ? 1 : 0;
    await this.dev.writeKeys({
      [FK.txRingRef]: txr.ref,
      [FK.rxRingRef]: rxr.ref,
      [FK.eventChannel]: this.port,
      [FK.requestRxCopy]: 1,
      [FK.featureRxNotify]: 1,
      [FK.featureSg]: sg,
      [FK.featureGsoTcpv4]: sg,
      [FK.featureGsoTcpv6]: sg,
      [FK.featureIpv6CsumOffload]: this.offload ? 1 : 0,
      [FK.featureNoCsumOffload]: this.offload ? 0 : 1,
    });
  }

  /**
   * Request/response traffic, polled instead of slept on (drivers/ring/busy-poll.ts): after
   * handing a small batch to the guest's stack (a request, most likely), spin briefly for its
   * answer on the TAP; after sending a small answer, spin briefly for the next request on the
   * RX ring. At most 1 ms in all.
   */
  private busyPoll(want: 'reply' | 'next', batch: number): void {
    const { tap, rxShared, rx, tx } = this;
    if (!this.connected || !tap || !rxShared || !rx || !tx) return;
    this.busy.chain(
      {
        ring: rxShared,
        which: 'responses',
        fd: tap.fd,
        small: (n) => n <= BUSY_POLL_MAX_SLOTS,
        onRing: () => rx.poll(),
        onFd: () => tx.readTap(),
        alive: () => this.connected && this.rx === rx,
        maxMs: 1,
      },
      // 'reply': we just handed RX ring slots to the guest's stack; 'next': sent its answer
      // from the TAP onto the TX ring.
      want === 'reply' ? 'ring' : 'fd',
      batch,
    );
  }

  private startIo(): void {
    if (this.connected || this.broken || !this.tx || !this.rx) return;
    this.connected = true;
    this.rx.fill();
    this.tx.start();
    this.rx.poll();
    this.tx.poll();
    this.log('link becomes ready');
  }

  /** The backend broke the protocol (XSA-391): as Linux's netfront, the device is disabled
   * for further use; the guest sees its carrier go. Said once. */
  private onBroken(why: string): void {
    if (this.broken) return;
    this.broken = true;
    this.log(`backend misbehaved: ${why}; disabled for further use`);
    this.stopIo();
  }

  private stopIo(): void {
    this.connected = false;
    this.tx?.stop();
    this.rx?.stop();
  }

  xmit(frame: Uint8Array): boolean {
    return this.connected && !!this.tx && this.tx.xmit(frame);
  }

  counters(): Record<string, number> {
    return {
      tx_packets: this.tx?.packets ?? 0,
      tx_bytes: this.tx?.bytes ?? 0,
      tx_errors: this.tx?.errors ?? 0,
      tx_drops: this.tx?.drops ?? 0,
      rx_packets: this.rx?.packets ?? 0,
      rx_bytes: this.rx?.bytes ?? 0,
      rx_errors: this.rx?.errors ?? 0,
      rx_drops: this.rx?.drops ?? 0,
      busy_polls: this.busy.polls,
      busy_poll_hits: this.busy.hits,
      events_spurious: this.storm?.spurious ?? 0,
      event_throttles: this.storm?.throttles ?? 0,
      broken: this.broken ? 1 : 0,
    };
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.stopIo();
    netdevs.remove(this);
    await this.dev.close();
    this.tap?.close();
    this.tap = null;
    if (this.port >= 0) {
      const port = this.port;
      this.port = -1;
      await this.k.evtchn.close(port).catch(() => {});
    }
    this.releaseGrants(Date.now() + REVOKE_RETRY_MS);
  }

  /** Revoke every grant; a page goes back to the allocator only once its grant is revoked. */
  private releaseGrants(deadline: number): void {
    const keepRefs: number[] = [];
    const keepPfns: number[] = [];
    for (let i = 0; i < this.refs.length; i++) {
      if (this.k.grants.endAccess(this.refs[i]!)) this.k.pages.release(this.pfns[i]!);
      else {
        keepRefs.push(this.refs[i]!);
        keepPfns.push(this.pfns[i]!);
      }
    }
    this.refs = keepRefs;
    this.pfns = keepPfns;
    if (keepRefs.length === 0) return;
    if (Date.now() < deadline) setTimeout(() => this.releaseGrants(deadline), 50).unref?.();
    else this.log(`${keepRefs.length} pages still granted to the backend: leaking them rather than reusing them`);
  }
}
