// netback and netfront in one process, without root: the real netback (on the real backend
// bus and a real xenstored, with the toolstack's real vif entries) and either the real
// netfront or a hostile frontend that writes raw ring entries, over real shared memory (a
// memfd mapped as the guest's RAM, a grant table the guest fills) and event channels with
// eventfd doorbells (loopback-evtchn.ts). Each side's "TAP" is a seqpacket socketpair
// (net/frame-port.ts): the test holds the far ends and plays the bridge (netback's side) and
// the guest's stack (netfront's side). The hotplug script's part, writing hotplug-status, is
// played by the harness. The root suites (test/net/hostile/, pv-net) keep the real TAPs and
// bridges end to end.
import { restoreBusyPollEnv } from './no-busy-poll.js';
import { native } from '../../../native/index.js';
import { Xenstored } from '../../../dom0/xenstored/xenstored.js';
import { XsClient } from '../../../drivers/xenstore/client.js';
import { BackendBus, type Dom0Services } from '../../../dom0/backends/backend-bus.js';
import { makeNetback, type NetbackHost } from '../../../dom0/backends/netback/xenbus.js';
import { addDevice, removeDevice } from '../../../dom0/toolstack/devices/device-store.js';
import { vifDeviceEntries } from '../../../dom0/toolstack/devices/vif.js';
import { resolveNicDefaults } from '../../../dom0/toolstack/config/vif-spec.js';
import { GrantTable } from '../../../drivers/grant/grant-table.js';
import { PageAllocator } from '../../../guest/kernel/page-allocator.js';
import { FrontendBus, type KernelServices } from '../../../guest/kernel/xenbus-frontends.js';
import { netfrontFactory } from '../../../guest/kernel/frontends/netfront/netfront.js';
import { netdevs, type NetDevice } from '../../../guest/kernel/net/netdev.js';
import type { LinkSettings, NetTapProvider } from '../../../guest/kernel/frontends/netfront/tap-provider.js';
import { BackRing, SharedRing } from '../../../drivers/ring/shared-ring.js';
import { RawNetFront } from './raw-front.js';
import { acquire, MappedGrantTable } from '../../../drivers/grant/grant-table.js';
import { NETIF_RX_SLOT_SIZE, NETIF_TX_SLOT_SIZE, netifTxRequest, netifTxResponse, type NetifTxRequest } from '../../../drivers/wire/netif.js';
import { XenbusState } from '../../../drivers/xenstore/xenbus-state.js';
import { socketPairPort, type FrameWire } from '../../../net/frame-port.js';
import { EventChannelHub, type DomainEventChannels } from './loopback-evtchn.js';
import { until } from './wait.js';
import { vifBackendError, vifBackendState, vifStats } from './vif-state.js';

restoreBusyPollEnv();

export const PAGE = 4096;
const GUEST_PAGES = 4096; // 16 MiB
const GRANT_FRAMES = 4;

export { ringStorm } from './loopback-evtchn.js';
export { sleep, until } from './wait.js';

/** A domain whose "kernel" is this test: its RAM, grant table, page allocator, xenstore
 * connection and event channels. */
export interface Guest {
  domid: number;
  memory: SharedArrayBuffer;
  grantTable: SharedArrayBuffer;
  grants: GrantTable;
  pages: PageAllocator;
  xs: XsClient;
  evtchn: DomainEventChannels;
}

export class NetDom0 {
  readonly xenstored = new Xenstored({ log: () => {} });
  readonly xs = new XsClient(this.xenstored.connectLocal(0));
  readonly hub = new EventChannelHub();
  readonly evtchn = this.hub.domain(0);
  readonly logs: string[] = [];
  /** The bridge side of each vif's port, by interface name. */
  readonly wires = new Map<string, FrameWire>();
  private readonly guests = new Map<number, Guest>();
  private readonly frontBuses: FrontendBus[] = [];
  readonly bus: BackendBus;

  /** `netback: false`: no backend driver; the test plays the backend (HostileBack). */
  constructor(o: { netback?: boolean } = {}) {
    const line = (lvl: string) => (m: string) => this.logs.push(`${lvl}: ${m}`);
    const foreign = {
      map: async (domid: number) => {
        const g = this.guests.get(domid);
        if (!g) throw new Error(`no guest ${domid}`);
        return { domid, memory: g.memory, grantTable: g.grantTable, page: (pfn: number) => new Uint8Array(g.memory, pfn * PAGE, PAGE) };
      },
      get: (domid: number) => this.guests.get(domid),
      unmap: () => {},
    };
    const host: NetbackHost = {
      openPort: async (name) => {
        const { port, wire } = socketPairPort(name);
        this.wires.set(name, wire);
        return port;
      },
      // What vif-bridge would answer, once it had plugged the vif into its bridge.
      hotplug: async (_script, action, env) => {
        if (action === 'online') await this.xs.write(`${env.XENBUS_PATH}/hotplug-status`, 'connected').catch(() => {});
        return { code: 0, output: '' };
      },
    };
    const services: Dom0Services = {
      xs: this.xs,
      evtchn: this.evtchn as unknown as Dom0Services['evtchn'],
      hc: {} as Dom0Services['hc'],
      foreign: foreign as unknown as Dom0Services['foreign'],
      log: { info: line('info'), warn: line('warn'), error: line('error') },
    };
    this.bus = new BackendBus(services);
    if (o.netback !== false) this.bus.register('vif', makeNetback(host));
  }

  async start(): Promise<void> {
    await this.bus.start();
  }

  async createGuest(domid: number, name = `g${domid}`): Promise<Guest> {
    const fd = native().memfdCreate(`guest-${domid}`, GUEST_PAGES * PAGE);
    const memory = native().mapShared(fd, GUEST_PAGES * PAGE);
    native().close(fd);
    const grantTable = new SharedArrayBuffer(GRANT_FRAMES * PAGE);
    const g: Guest = {
      domid,
      memory,
      grantTable,
      grants: new GrantTable(grantTable),
      pages: new PageAllocator(memory, 1, GUEST_PAGES),
      xs: new XsClient(this.xenstored.connectLocal(domid)),
      evtchn: this.hub.domain(domid),
    };
    await this.xs.mkdir(`/local/domain/${domid}`);
    await this.xs.setPerms(`/local/domain/${domid}`, [`n${domid}`]);
    await this.xs.write(`/local/domain/${domid}/name`, name);
    this.guests.set(domid, g);
    return g;
  }

  /** What the toolstack writes for `vif = ['mac=...,rate=...']`. */
  async addVif(domid: number, devid: number, nic: Parameters<typeof resolveNicDefaults>[0] = {}): Promise<void> {
    await addDevice(this.xs, domid, vifDeviceEntries(resolveNicDefaults(nic, { guestType: 'pv', devid })));
  }

  async removeVif(domid: number, devid: number): Promise<void> {
    await removeDevice(this.xs, domid, 'vif', devid, { force: true });
  }

  /** netback's side of vif<domid>.<devid>: what it hands the bridge, and what it gets from it. */
  wire(domid: number, devid: number): FrameWire {
    const w = this.wires.get(`vif${domid}.${devid}`);
    if (!w) throw new Error(`no vif${domid}.${devid}`);
    return w;
  }

  backendState(domid: number, devid: number): Promise<number> {
    return vifBackendState(this.xs, domid, devid);
  }

  backendError(domid: number, devid: number): Promise<string> {
    return vifBackendError(this.xs, domid, devid);
  }

  stats(domid: number, devid: number): Promise<Record<string, number>> {
    return vifStats(this.bus, domid, devid);
  }

  /** A guest running the real netfront on vif `devid`; its eth is a socketpair whose far end
   * (`stack`) plays the guest's network stack. */
  async goodGuest(domid: number, cmdline = '', back?: (g: Guest) => Promise<void>): Promise<GoodGuest> {
    const g = await this.createGuest(domid);
    const links: LinkSettings[] = [];
    let stack: FrameWire | null = null;
    let eth = '';
    const provider: NetTapProvider = {
      ipNetns: [],
      create: () => {
        throw new Error('socketpair provider: no TAPs here');
      },
      destroy: () => {},
      openPort: (name) => {
        const p = socketPairPort(name);
        stack = p.wire;
        eth = name;
        return p.port;
      },
      setLink: async (_name, l) => void links.push(l),
    };
    const printk: string[] = [];
    const k: KernelServices = {
      domid,
      xs: g.xs,
      evtchn: g.evtchn as unknown as KernelServices['evtchn'],
      hc: {} as KernelServices['hc'],
      grants: g.grants,
      pages: g.pages,
      memory: g.memory,
      printk: (m) => printk.push(m),
      cmdline: `xen_netfront.busy_poll=0 ${cmdline}`,
    };
    const bus = new FrontendBus(k);
    bus.register('vif', netfrontFactory({ provider: () => provider }));
    await bus.start();
    this.frontBuses.push(bus);
    await this.addVif(domid, 0, { mac: `00:16:3e:00:00:${domid.toString(16).padStart(2, '0')}` });
    if (back) await back(g);
    await until('the vif to connect', async () => (await this.backendState(domid, 0)) === XenbusState.Connected, 5000, this.logs);
    await until('netfront to connect', async () => (await this.xs.read(`/local/domain/${domid}/device/vif/0/state`).catch(() => '')) === '4', 5000, printk);
    if (!stack) throw new Error('netfront opened no port');
    const counters = () => {
      const dev = netdevs.all().find((d) => d.name === eth) as (NetDevice & { counters?: () => Record<string, number> }) | undefined;
      if (!dev?.counters) throw new Error(`no netfront ${eth}`);
      return dev.counters();
    };
    return { guest: g, stack, links, printk, bus, eth, counters };
  }

  async close(): Promise<void> {
    for (const b of this.frontBuses.splice(0)) await b.removeAll().catch(() => {});
    await this.bus.removeAll().catch(() => {});
    for (const g of this.guests.values()) g.xs.close();
    this.guests.clear();
    for (const w of this.wires.values()) w.close();
    this.wires.clear();
    this.hub.closeAll();
    this.xs.close();
    await this.xenstored.close();
  }
}

export interface GoodGuest {
  guest: Guest;
  /** The far end of the guest's eth: what its stack sends and receives. */
  stack: FrameWire;
  /** What netfront set on its eth (MAC, MTU, up). */
  links: LinkSettings[];
  printk: string[];
  bus: FrontendBus;
  /** The eth's name in the guest kernel. */
  eth: string;
  /** netfront's own counters (tx_packets ... events_spurious, event_throttles, broken). */
  counters(): Record<string, number>;
}

/** A frontend that plays by no rules (raw-front.ts), facing the in-process netback. */
export class HostileFront extends RawNetFront {
  constructor(
    readonly dom0: NetDom0,
    override readonly g: Guest,
    devid: number,
  ) {
    super(g, devid);
  }

  /** netback's side of this vif. */
  get wire(): FrameWire {
    return this.dom0.wire(this.g.domid, this.devid);
  }

  async stats(): Promise<Record<string, number>> {
    return this.dom0.stats(this.g.domid, this.devid);
  }

  async state(): Promise<number> {
    return this.dom0.backendState(this.g.domid, this.devid);
  }

  /** Rings and channel published, state Connected; waits for the backend to connect. */
  async connect(keys: Record<string, string | number> = {}, nic: Parameters<typeof resolveNicDefaults>[0] = {}, waitConnected = true): Promise<void> {
    await this.dom0.addVif(this.g.domid, this.devid, { mac: this.mac, ...nic });
    await until('backend InitWait', async () => (await this.state()) === XenbusState.InitWait, 5000, this.dom0.logs);
    this.port = await this.g.evtchn.allocUnbound(0);
    await this.publish(keys);
    if (waitConnected) await until('backend Connected', async () => (await this.state()) === XenbusState.Connected, 5000, this.dom0.logs);
  }

  notify(): void {
    this.g.evtchn.notify(this.port);
  }

  /** Disconnected for a protocol violation: Closing, the error node and a log line say why. */
  async expectFatal(reason: RegExp): Promise<string> {
    await until('the vif to be disconnected', async () => (await this.state()) === XenbusState.Closing, 3000, this.dom0.logs);
    const err = await this.dom0.backendError(this.g.domid, this.devid);
    if (!reason.test(err)) throw new Error(`error node "${err}" does not match ${reason}`);
    const name = `vif${this.g.domid}.${this.devid}`;
    if (!this.dom0.logs.some((l) => l.startsWith('error:') && l.includes(name) && reason.test(l))) throw new Error(`no log line for ${name} matching ${reason}\n${this.dom0.logs.join('\n')}`);
    return err;
  }
}

/** A backend that plays by no rules, facing the real netfront: it speaks xenbus, maps the
 * rings the guest granted, and answers (or not) by hand. */
export class HostileBack {
  tx!: BackRing;
  rx!: BackRing;
  /** dom0's end of the event channel. */
  port = -1;
  readonly be: string;
  readonly fe: string;

  constructor(
    readonly dom0: NetDom0,
    readonly g: Guest,
    readonly devid = 0,
  ) {
    this.be = `/local/domain/0/backend/vif/${g.domid}/${devid}`;
    this.fe = `/local/domain/${g.domid}/device/vif/${devid}`;
  }

  /** Features, InitWait; once the frontend has published its rings: map them, bind the
   * channel, Connected. */
  async connect(): Promise<void> {
    const xs = this.dom0.xs;
    for (const [k, v] of Object.entries({ 'feature-rx-copy': 1, 'feature-sg': 1, 'feature-gso-tcpv4': 1, 'feature-gso-tcpv6': 1, 'hotplug-status': 'connected' })) await xs.write(`${this.be}/${k}`, String(v));
    await xs.write(`${this.be}/state`, String(XenbusState.InitWait));
    await until('netfront Connected', async () => (await xs.read(`${this.fe}/state`).catch(() => '')) === String(XenbusState.Connected));
    const key = async (k: string) => Number(await xs.read(`${this.fe}/${k}`));
    const table = new MappedGrantTable(this.g.grantTable, { memFrames: GUEST_PAGES });
    const map = (ref: number) => {
      const frame = acquire(table, ref, 0, true);
      if (frame < 0) throw new Error(`ring grant ${ref} refused`);
      return frame * PAGE;
    };
    this.tx = new BackRing(new SharedRing(this.g.memory, map(await key('tx-ring-ref')), NETIF_TX_SLOT_SIZE));
    this.rx = new BackRing(new SharedRing(this.g.memory, map(await key('rx-ring-ref')), NETIF_RX_SLOT_SIZE));
    this.port = await this.dom0.evtchn.bindInterdomain(this.g.domid, await key('event-channel'));
    await xs.write(`${this.be}/state`, String(XenbusState.Connected));
  }

  notify(): void {
    this.dom0.evtchn.notify(this.port);
  }

  /** TX requests the frontend has published, decoded (each slot copied once). */
  takeTx(): NetifTxRequest[] {
    const out: NetifTxRequest[] = [];
    for (let n = this.tx.unconsumedRequests(); n > 0; n--) out.push(netifTxRequest.decode(this.tx.takeRequest(), 0));
    return out;
  }

  /** Writes TX responses as given, publishes them and rings. */
  respondTx(rs: { id: number; status: number }[]): void {
    for (const r of rs) netifTxResponse.encode(this.tx.ring.view, this.tx.nextResponseSlot(), r);
    this.tx.pushResponses();
    this.notify();
  }

  /** Sets a ring's rsp_prod to anything at all, and rings. */
  scribbleRspProd(ring: 'tx' | 'rx', value: number): void {
    const r = ring === 'tx' ? this.tx : this.rx;
    Atomics.store(r.ring.idx, 2, value >>> 0); // rsp_prod
    this.notify();
  }
}
