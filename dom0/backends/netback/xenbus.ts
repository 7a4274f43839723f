// netback's xenbus side (Linux xen-netback xenbus.c): one of these per vif the toolstack
// writes under /local/domain/0/backend/vif/<domid>/<devid>.
//
//   probe      create the TAP vif<domid>.<devid> (or vifname=), advertise features, run the
//              hotplug script (`script`, default vif-bridge) with Xen's environment, InitWait
//   frontend Initialised/Connected
//              read tx-ring-ref, rx-ring-ref, event-channel and the frontend's features;
//              refuse without request-rx-copy or feature-rx-notify (as Linux); map the rings
//              and bind the channel; Connected once the hotplug script has written
//              hotplug-status = connected
//   frontend Closing/Closed, or a fatal protocol error
//              disconnect (only this vif), say why in the log and in
//              /local/domain/0/error/backend/vif/<domid>/<devid>/error, Closing/Closed
//   removed    close the TAP, run the script's offline
import type { BackendDriver, BackendFactory, Dom0Services } from '../backend-bus.js';
import { XenbusState, type XenbusDevice } from '../../../drivers/xenbus/xenbus-device.js';
import { NETIF_BACKEND_KEYS as BK, NETIF_FRONTEND_KEYS as FK } from '../../../drivers/wire/netif.js';
import { runHotplugScript } from '../../../net/hotplug.js';
import { validIfname } from '../../../net/ip.js';
import type { FramePort } from '../../../net/frame-port.js';
import { ConnectedVif } from './interface.js';
import { VifMetrics } from './metrics.js';
import { parseRateKey } from './rate-limit.js';
import { defaultVifName, openVifTap } from './tap.js';

const DEFAULT_SCRIPT = 'vif-bridge';
const DEFAULT_MTU = 1500;

/** What netback needs from the host, apart from dom0's services: the vif's backend interface
 * and the hotplug script's run. Tests without root give a socketpair (net/frame-port.ts) and
 * answer for the script themselves. */
export interface NetbackHost {
  openPort(name: string, warn: (msg: string) => void): Promise<FramePort>;
  hotplug: typeof runHotplugScript;
}

export const tapHost: NetbackHost = { openPort: openVifTap, hotplug: runHotplugScript };

export function makeNetback(host: NetbackHost = tapHost): BackendFactory {
  return async (dev, domid, devid, s) => {
    const d = new NetbackDevice(dev, domid, devid, s, host);
    await d.probe();
    return d;
  };
}

export const netbackBackend: BackendFactory = makeNetback();

class NetbackDevice implements BackendDriver {
  private tap: FramePort | null = null;
  private vif: ConnectedVif | null = null;
  private readonly metrics: VifMetrics;
  private script = DEFAULT_SCRIPT;
  /** bridge= and ip= as the toolstack wrote them, for the offline run after the directory is gone. */
  private hotplugEnv: { bridge?: string; ip?: string } = {};
  private hotplugOk = false;
  private state = XenbusState.Initialising;
  private failed: string | null = null;
  /** Taking over from a dom0 that died (probe found us Connected). */
  private resuming = false;
  private removed = false;
  /** The interface's name once it is gone (for log lines). */
  private unplugged: string | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly errorPath: string;

  constructor(
    private readonly dev: XenbusDevice,
    private readonly domid: number,
    private readonly devid: number,
    private readonly s: Dom0Services,
    private readonly host: NetbackHost,
  ) {
    this.errorPath = `/local/domain/0/error/backend/vif/${domid}/${devid}`;
    this.metrics = new VifMetrics((line) => this.s.log.warn(`${this.name}: ${line}`));
  }

  private get name(): string {
    return this.tap?.name ?? this.unplugged ?? defaultVifName(this.domid, this.devid);
  }

  async probe(): Promise<void> {
    const own = this.dev.path;
    // Connected already: a dom0 that died served this vif. Its TAP went with it; make it again
    // under the same name, plug it into the same bridge (the hotplug script), and reattach to
    // the rings where the frontend left them, without moving the xenbus state it watches.
    const resuming = (await this.dev.readKey('state', own))?.trim() === String(XenbusState.Connected);
    this.resuming = resuming;
    this.script = (await this.dev.readKey('script', own))?.trim() || DEFAULT_SCRIPT;
    const vifname = (await this.dev.readKey('vifname', own))?.trim();
    this.hotplugEnv = { bridge: (await this.dev.readKey('bridge', own))?.trim(), ip: (await this.dev.readKey('ip', own))?.trim() };
    const name = vifname && validIfname(vifname) ? vifname : defaultVifName(this.domid, this.devid);
    try {
      this.tap = await this.host.openPort(name, (m) => this.s.log.warn(m));
    } catch (e) {
      const why = `cannot create ${name}: ${(e as Error).message}`;
      await this.error(why);
      // As a failed hotplug: xl network-attach reports it instead of waiting.
      await this.s.xs.write(`${own}/hotplug-error`, why).catch(() => {});
      await this.s.xs.write(`${own}/${BK.hotplugStatus}`, 'error').catch(() => {});
      await this.switchState(XenbusState.Closed);
      throw e;
    }
    await this.dev.writeKeys({
      [BK.featureSg]: 1,
      [BK.featureGsoTcpv4]: 1,
      [BK.featureGsoTcpv6]: 1,
      [BK.featureIpv6CsumOffload]: 1,
      [BK.featureRxCopy]: 1,
      [BK.featureRxFlip]: 0,
      [BK.featureSplitEventChannels]: 0,
    });
    await this.dev.watchPath(`${own}/${BK.hotplugStatus}`, () => this.enqueue(() => this.onHotplugStatus()));
    // As Xen's udev rule does when the backend interface appears: run the script, which
    // answers through hotplug-status.
    void this.host.hotplug(this.script, 'online', { XENBUS_PATH: own, vif: this.name }).then((r) => {
      if (r.code !== 0) this.s.log.error(`${this.name}: hotplug script ${this.script} online failed (${r.code}): ${r.output}`);
      else if (r.output) this.s.log.info(`${this.name}: ${r.output}`);
    });
    if (resuming) this.state = XenbusState.Connected;
    else await this.switchState(XenbusState.InitWait);
    await this.dev.watchOtherEnd((st) => this.enqueue(() => this.onFrontendState(st)));
    this.s.log.info(`${this.name}: backend for domain ${this.domid} vif ${this.devid} ${resuming ? 'reconnecting to its running frontend' : 'waiting for its frontend'}`);
  }

  /** State changes are handled one at a time, in order. */
  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((e) => this.s.log.error(`${this.name}: ${(e as Error).message}`));
  }

  private async switchState(st: XenbusState): Promise<void> {
    if (this.removed) return;
    this.state = st;
    await this.dev.switchState(st).catch(() => {});
  }

  private async onHotplugStatus(): Promise<void> {
    const v = (await this.dev.readKey(BK.hotplugStatus, this.dev.path))?.trim();
    if (v === 'connected' && !this.hotplugOk) {
      this.hotplugOk = true;
      await this.maybeConnected();
    } else if (v === 'error') {
      const why = (await this.dev.readKey('hotplug-error', this.dev.path)) ?? 'no reason given';
      this.disconnect();
      await this.error(`hotplug script ${this.script} failed: ${why}`);
      await this.switchState(XenbusState.Closing);
    }
  }

  private async onFrontendState(st: XenbusState): Promise<void> {
    if (this.removed) return;
    switch (st) {
      case XenbusState.Initialising:
        // A frontend starting (again): forget an earlier failure, offer ourselves anew.
        this.disconnect();
        this.failed = null;
        if (this.state === XenbusState.Closed || this.state === XenbusState.Closing || this.state === XenbusState.Connected) {
          await this.switchState(XenbusState.InitWait);
        }
        break;
      case XenbusState.Initialised:
      case XenbusState.Connected:
        if (this.vif || this.failed || this.state === XenbusState.Closing) break;
        try {
          await this.connect();
          if (this.resuming) this.s.log.info(`${this.name}: reconnected to domain ${this.domid}`);
          this.resuming = false;
        } catch (e) {
          this.disconnect();
          this.failed = (e as Error).message;
          await this.error(this.failed);
          if (this.resuming) {
            // Taking over from a dom0 that died and failing: crash the guest (its on_crash
            // applies) rather than leave it with a network that never comes back.
            this.resuming = false;
            this.s.log.error(`${this.name}: cannot take the vif over after dom0 restarted; crashing domain ${this.domid}`);
            await this.s.hc.invoke('domctl.shutdown', { domid: this.domid, reason: 'crash' }).catch(() => {});
          }
          await this.switchState(XenbusState.Closing);
          break;
        }
        await this.maybeConnected();
        break;
      case XenbusState.Closing:
        this.disconnect();
        await this.switchState(XenbusState.Closing);
        break;
      case XenbusState.Closed:
      case XenbusState.Unknown:
        this.disconnect();
        // Being unplugged (online = 0): the interface goes before we say Closed, so the
        // toolstack (xl network-detach) returns with the vif gone, as with Xen's hotplug.
        if ((await this.dev.readKey('online', this.dev.path))?.trim() !== '1') await this.unplug();
        await this.switchState(XenbusState.Closed);
        break;
      default:
        break;
    }
  }

  private async maybeConnected(): Promise<void> {
    if (this.vif && this.hotplugOk && this.state !== XenbusState.Connected) {
      await this.switchState(XenbusState.Connected);
      this.s.log.info(`${this.name}: connected to domain ${this.domid}`);
    }
  }

  private async connect(): Promise<void> {
    const d = this.dev;
    if ((await d.readKey(FK.eventChannelTx)) !== undefined) throw new Error('frontend asks for split event channels, which this backend does not offer');
    const queues = await d.readInt(FK.multiQueueNumQueues, 0, 0xffff);
    if (queues !== undefined && queues > 1) throw new Error(`frontend asks for ${queues} queues; this backend offers 1`);
    const txRingRef = await d.readInt(FK.txRingRef, 0, 0xffffffff);
    const rxRingRef = await d.readInt(FK.rxRingRef, 0, 0xffffffff);
    if (txRingRef === undefined || rxRingRef === undefined) throw new Error('reading tx-ring-ref / rx-ring-ref: missing or not a number');
    const eventChannel = await d.readInt(FK.eventChannel, 1, 4095);
    if (eventChannel === undefined) throw new Error('reading event-channel: missing or not a port number');
    if (!(await d.readFlag(FK.requestRxCopy))) throw new Error('frontend does not support rx-copy');
    if (!(await d.readFlag(FK.featureRxNotify))) throw new Error('feature-rx-notify is mandatory');
    const mtu = (await d.readInt('mtu', 68, 65535, d.path)) ?? DEFAULT_MTU;
    const rateKey = await d.readKey('rate', d.path);
    const rate = parseRateKey(rateKey);
    if (rateKey !== undefined && rateKey.trim() !== '' && !rate) this.s.log.warn(`${this.name}: ignoring unreadable rate "${rateKey}"`);
    const vif = new ConnectedVif(this.s, this.tap!, this.metrics, (reason) => this.enqueue(() => this.onFatal(reason)));
    await vif.connect({
      domid: this.domid,
      txRingRef,
      rxRingRef,
      eventChannel,
      sg: await d.readFlag(FK.featureSg),
      gsoTcpv4: await d.readFlag(FK.featureGsoTcpv4),
      gsoTcpv6: await d.readFlag(FK.featureGsoTcpv6),
      rxCsum: !(await d.readFlag(FK.featureNoCsumOffload)),
      mtu,
      rate,
    });
    if (this.removed) {
      vif.close();
      return;
    }
    this.vif = vif;
    this.s.log.info(`${this.name}: rings tx ${txRingRef} rx ${rxRingRef}, event channel ${eventChannel}${rate ? `, rate ${rate.bytesPerInterval} bytes per ${rate.intervalUsecs} us` : ''}`);
  }

  private async onFatal(reason: string): Promise<void> {
    if (this.removed) return;
    this.vif = null;
    this.failed = reason;
    await this.error(`fatal error, disconnecting: ${reason}`);
    await this.switchState(XenbusState.Closing);
  }

  /** Log line and xenbus error node (Linux's xenbus_dev_fatal). */
  private async error(msg: string): Promise<void> {
    this.s.log.error(`${this.name}: ${msg}`);
    await this.s.xs.write(`${this.errorPath}/error`, msg).catch(() => {});
  }

  private disconnect(): void {
    this.vif?.close();
    this.vif = null;
  }

  /** The backend interface goes: close the TAP (the kernel removes it, and so unplugs it
   * from its bridge), then the script's offline. */
  private async unplug(): Promise<void> {
    const tap = this.tap;
    if (!tap) return;
    this.tap = null;
    this.unplugged = tap.name;
    tap.close();
    const r = await this.host.hotplug(this.script, 'offline', { XENBUS_PATH: this.dev.path, vif: tap.name, ...this.hotplugEnv });
    if (r.code !== 0) this.s.log.warn(`${tap.name}: hotplug script ${this.script} offline: ${r.output}`);
  }

  async remove(): Promise<void> {
    this.removed = true;
    await this.dev.close();
    await this.queue;
    this.disconnect();
    await this.unplug();
    await this.s.xs.rm(this.errorPath).catch(() => {});
    this.s.log.info(`${this.name}: removed`);
    // Our views were the last of a destroyed guest's memory, perhaps: let them go now rather
    // than at some later collection (dom0 runs with --expose-gc for this; see ForeignMemory).
    if (!this.s.foreign.get(this.domid)) setTimeout(() => (globalThis as { gc?: () => void }).gc?.(), 0).unref();
  }

  stats(): Record<string, number> {
    return { ...this.metrics.snapshot(), connected: this.vif ? 1 : 0, rx_held: this.vif?.rxHeld ?? 0, ...(this.vif?.rings() ?? {}) };
  }
}
