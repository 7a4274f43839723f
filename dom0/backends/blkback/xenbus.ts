// blkback's xenbus side (Linux's xen-blkback/xenbus.c): one instance per vbd the toolstack
// creates under /local/domain/0/backend/vbd/<domid>/<devid>.
//
//  probe:   read params/mode/type/device-type, open the backing file or device (the job of
//           Xen's `block` hotplug script: `hotplug-status` = connected, or error with
//           `hotplug-error`), publish feature-flush-cache, feature-persistent,
//           feature-max-indirect-segments (and physical-device for a block device) -> InitWait.
//  frontend Initialised (or Connected): read ring-ref, event-channel, protocol,
//           feature-persistent; map the ring, bind the channel; publish sectors, info,
//           sector-size, physical-sector-size -> Connected.
//  frontend Closing/Closed, or the ring halted on a protocol violation: wait for I/O in
//           flight, unpin everything, unbind -> Closing/Closed.
//
// Module parameters, as Linux's xen_blkback.* (environment of dom0):
//   XENODE_BLKBACK_MAX_INDIRECT_SEGMENTS (256; 0 = do not offer indirect descriptors),
//   XENODE_BLKBACK_PERSISTENT (1; 0 = do not offer persistent grants),
//   XENODE_BLKBACK_MAX_PERSISTENT_GRANTS (2048 per ring), XENODE_BLKBACK_DIRECT_IO (1),
//   XENODE_BLKBACK_URING (1; 0 = big disk I/O on the thread pool too, not io_uring).
import { XenbusState, type XenbusDevice } from '../../../drivers/xenbus/xenbus-device.js';
import {
  BLKIF_BACKEND_KEYS as BK,
  BLKIF_FRONTEND_KEYS as FK,
  BLKBACK_MAX_INDIRECT_SEGMENTS,
  BLKIF_MAX_INDIRECT_SEGMENTS,
  VDISK_CDROM,
  VDISK_READONLY,
  VDISK_REMOVABLE,
  XEN_IO_PROTO_ABI_X86_64,
} from '../../../drivers/wire/blkif.js';
import { MappedGrantTable } from '../../../drivers/grant/grant-mapper.js';
import type { BackendDriver, BackendFactory, Dom0Services } from '../backend-bus.js';
import { openBacking, type BackingStore } from './backing-file.js';
import { BlkifInterface } from './interface.js';
import { journalPath } from './inflight-journal.js';
import { BlkbackCounters } from './metrics.js';
import { EventStormGuard } from '../../../drivers/evtchn/event-storm-guard.js';

export interface BlkbackOptions {
  maxIndirectSegments: number;
  persistent: boolean;
  maxPersistentGrants: number;
  directIo: boolean;
}

function envInt(name: string, dflt: number, min: number, max: number): number {
  const v = process.env[name];
  if (v === undefined || !/^\d+$/.test(v)) return dflt;
  return Math.max(min, Math.min(max, Number(v)));
}

export function blkbackOptionsFromEnv(): BlkbackOptions {
  return {
    maxIndirectSegments: envInt('XENODE_BLKBACK_MAX_INDIRECT_SEGMENTS', BLKBACK_MAX_INDIRECT_SEGMENTS, 0, BLKIF_MAX_INDIRECT_SEGMENTS),
    persistent: envInt('XENODE_BLKBACK_PERSISTENT', 1, 0, 1) === 1,
    maxPersistentGrants: envInt('XENODE_BLKBACK_MAX_PERSISTENT_GRANTS', 2048, 0, 1 << 16),
    directIo: envInt('XENODE_BLKBACK_DIRECT_IO', 1, 0, 1) === 1,
  };
}

/** `params` as libxl writes it: the path for phy, `<format>:<path>` for qdisk. */
export function parseParams(type: string, params: string): { format: string; path: string } {
  const m = /^(raw|qcow2?|vhd|qed|aio|empty):(.*)$/.exec(params);
  if (m && type !== 'phy') return { format: m[1] === 'aio' ? 'raw' : m[1]!, path: m[2]! };
  return { format: 'raw', path: params };
}

class Blkback implements BackendDriver {
  readonly counters = new BlkbackCounters((m) => this.log(m));
  private iface: BlkifInterface | null = null;
  private port = -1;
  private chain: Promise<void> = Promise.resolve();
  private store: BackingStore | null = null;
  private readonly: boolean = true;
  private info = 0;
  private removed = false;
  private connected = false;
  /** Taking over from a dom0 that died (probe found us Connected). */
  private resuming = false;

  constructor(
    private readonly dev: XenbusDevice,
    private readonly domid: number,
    private readonly devid: number,
    private readonly s: Dom0Services,
    private readonly opts: BlkbackOptions,
  ) {}

  private log(msg: string): void {
    this.s.log.info(`blkback ${this.domid}/${this.devid}: ${msg}`);
  }

  async probe(): Promise<void> {
    const d = this.dev;
    // Connected already: a dom0 that died served this disk. Reopen the image and reattach to
    // the ring where the frontend left it, without moving the xenbus state it watches.
    this.resuming = (await d.readKey('state', d.path))?.trim() === String(XenbusState.Connected);
    const mode = (await d.readKey(BK.mode, d.path)) ?? 'r';
    const type = (await d.readKey(BK.type, d.path)) ?? 'phy';
    const params = (await d.readKey(BK.params, d.path)) ?? '';
    const cdrom = (await d.readKey(FK.deviceType, d.path)) === 'cdrom';
    const removable = (await d.readKey('removable', d.path)) === '1';
    this.readonly = !/^w/.test(mode) || cdrom;
    this.info = (this.readonly ? VDISK_READONLY : 0) | (cdrom ? VDISK_CDROM : 0) | (removable || cdrom ? VDISK_REMOVABLE : 0);
    const parsed = parseParams(type, params);
    const format = parsed.format;
    // Xen's block hotplug script (expand_dev): a target that is not a path names /dev/<target>.
    const path = parsed.path === '' || parsed.path.startsWith('/') ? parsed.path : `/dev/${parsed.path}`;
    if (path === '' && (cdrom || format === 'empty')) {
      this.log('empty drive (no medium)');
    } else {
      try {
        this.store = openBacking(path, { readonly: this.readonly, format, direct: this.opts.directIo });
      } catch (e) {
        const msg = `${path}: ${(e as Error).message}`;
        this.s.log.error(`blkback ${this.domid}/${this.devid}: ${msg}`);
        await d.writeKeys({ 'hotplug-error': msg, 'hotplug-status': 'error' });
        await this.setState(XenbusState.Closed);
        return;
      }
      this.log(`${path}: ${this.store.sectors} sectors, ${this.readonly ? 'read-only' : 'read-write'}, ${this.store.direct ? 'O_DIRECT' : 'buffered'}`);
    }
    const keys: Record<string, string | number> = {
      [BK.featureFlushCache]: 1,
      [BK.featureDiscard]: 0,
      [BK.featurePersistent]: this.opts.persistent ? 1 : 0,
    };
    if (this.opts.maxIndirectSegments > 0) keys[BK.featureMaxIndirectSegments] = this.opts.maxIndirectSegments;
    if (this.store?.physicalDevice) keys[BK.physicalDevice] = this.store.physicalDevice;
    keys['hotplug-status'] = 'connected';
    await d.writeKeys(keys);
    if (!this.resuming) await this.setState(XenbusState.InitWait);
    await d.watchOtherEnd((state) => {
      this.chain = this.chain.then(() => this.frontendChanged(state)).catch((e) => this.s.log.error(`blkback ${this.domid}/${this.devid}: ${(e as Error).message}`));
    });
  }

  /** Move our state, unless our directory is already gone (a write would re-create it). */
  private async setState(state: XenbusState): Promise<void> {
    if (this.removed || (await this.dev.readKey('frontend', this.dev.path)) === undefined) return;
    await this.dev.switchState(state);
  }

  private async frontendChanged(state: XenbusState): Promise<void> {
    if (this.removed) return;
    switch (state) {
      case XenbusState.Initialised:
      case XenbusState.Connected:
        if (!this.connected && (await this.dev.state()) !== XenbusState.Closing) await this.connect();
        break;
      case XenbusState.Closing:
        await this.disconnect();
        await this.setState(XenbusState.Closing);
        break;
      case XenbusState.Closed:
      case XenbusState.Unknown:
        await this.disconnect();
        await this.setState(XenbusState.Closed);
        break;
      case XenbusState.Initialising:
        // A frontend starting over after Closed (a guest kernel reloading its driver).
        if ((await this.dev.state()) === XenbusState.Closed && (await this.dev.readKey('online', this.dev.path)) === '1') {
          this.log('prepare for reconnect');
          await this.setState(XenbusState.InitWait);
        }
        break;
      default:
        break;
    }
  }

  private async connect(): Promise<void> {
    const d = this.dev;
    const fatal = async (why: string) => {
      this.s.log.error(`blkback ${this.domid}/${this.devid}: ${why}`);
      if (this.resuming) {
        // Taking over from a dom0 that died and failing: the guest's disk would hang; crash it
        // so that its on_crash applies.
        this.resuming = false;
        this.s.log.error(`blkback ${this.domid}/${this.devid}: cannot take the disk over after dom0 restarted; crashing domain ${this.domid}`);
        await this.s.hc.invoke('domctl.shutdown', { domid: this.domid, reason: 'crash' }).catch(() => {});
      }
      await d.writeKeys({ error: why });
      await this.disconnect();
      await this.setState(XenbusState.Closing);
    };
    const order = await d.readInt(FK.ringPageOrder, 0, 16);
    if (order !== undefined && order > 0) return fatal('multi-page rings (ring-page-order) are not supported');
    const ringRef = await d.readInt(FK.ringRef, 0, 0xffffffff);
    const remotePort = await d.readInt(FK.eventChannel, 0, 0xffff);
    if (ringRef === undefined || remotePort === undefined) return fatal('frontend gave no valid ring-ref/event-channel');
    const protocol = await d.readKey(FK.protocol);
    if (protocol !== undefined && protocol !== XEN_IO_PROTO_ABI_X86_64) return fatal(`unsupported protocol "${protocol}"`);
    const fePersistent = await d.readFlag(FK.featurePersistent);
    const persistent = this.opts.persistent && fePersistent;

    const fm = await this.s.foreign.map(this.domid);
    const table = new MappedGrantTable(fm.grantTable, { memFrames: Math.floor(fm.memory.byteLength / 4096) });
    const iface = new BlkifInterface({
      frontDomid: this.domid,
      memory: fm.memory,
      table,
      store: this.store,
      readonly: this.readonly,
      maxIndirect: this.opts.maxIndirectSegments,
      maxPersistent: persistent ? this.opts.maxPersistentGrants : 0,
      counters: this.counters,
      notify: () => this.s.evtchn.notify(this.port),
      onFatal: (why) => {
        this.chain = this.chain.then(() => fatal(`ring halted: ${why}`)).catch(() => {});
      },
      log: (m) => this.log(m),
      journalPath: journalPath(this.domid, this.devid),
      resume: this.resuming,
    });
    try {
      iface.mapRing(ringRef);
    } catch (e) {
      return fatal((e as Error).message);
    }
    this.iface = iface;
    // bindOrReattach: after a dom0 restart the channel is still bound to our old port.
    this.port = await this.s.evtchn.bindOrReattach(this.domid, remotePort);
    // A frontend ringing for nothing is held off, as netback does (XSA-332).
    const port = this.port;
    const storm = new EventStormGuard((ms) => this.s.evtchn.holdOff(port, ms));
    this.s.evtchn.on(port, () => {
      // The vbd's counters outlive this connection: they grow by what this event added.
      const { spurious, throttles } = storm;
      storm.handled(iface.onEvent());
      this.counters.events_spurious += storm.spurious - spurious;
      this.counters.event_throttles += storm.throttles - throttles;
    });
    this.connected = true;
    await d.writeKeys({
      [BK.sectors]: this.store?.sectors ?? 0,
      [BK.info]: this.info,
      [BK.sectorSize]: 512,
      [BK.physicalSectorSize]: 512,
      [BK.featurePersistent]: persistent ? 1 : 0,
    });
    const resumed = this.resuming;
    this.resuming = false;
    if (!resumed) await this.setState(XenbusState.Connected);
    this.log(`${resumed ? 're' : ''}connected: ring-ref ${ringRef}, event channel ${remotePort} -> ${this.port}, persistent grants ${persistent ? 'on' : 'off'}, indirect ${this.opts.maxIndirectSegments || 'off'}`);
    iface.process(); // requests published before we bound the channel
  }

  private async disconnect(): Promise<void> {
    const iface = this.iface;
    this.iface = null;
    this.connected = false;
    if (this.port >= 0) {
      const port = this.port;
      this.port = -1;
      await this.s.evtchn.close(port).catch(() => {});
    }
    if (iface) await iface.disconnect();
  }

  async remove(): Promise<void> {
    this.removed = true;
    await this.chain.catch(() => {});
    await this.disconnect();
    this.store?.close();
    this.store = null;
    await this.dev.close();
  }

  stats(): Record<string, number> {
    return this.counters.snapshot();
  }
}

/** A blkback factory with the given parameters (tests pass their own). */
export function makeBlkback(opts: BlkbackOptions = blkbackOptionsFromEnv()): BackendFactory {
  return async (dev, domid, devid, s) => {
    const b = new Blkback(dev, domid, devid, s, opts);
    await b.probe();
    return b;
  };
}

export const blkbackBackend: BackendFactory = (dev, domid, devid, s) => makeBlkback()(dev, domid, devid, s);
