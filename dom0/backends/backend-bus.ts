// dom0's xenbus backend side: watches /local/domain/0/backend/<type>/<domid>/<devid> for the
// devices the toolstack creates and starts the backend driver registered for each type
// (Linux's xenbus_probe_backend). A device whose directory disappears is removed. A driver
// that fails takes down only its own device.
import type { HypercallClient } from '../../drivers/hypercall/channel.js';
import type { EventChannels } from '../../drivers/evtchn/event-channels.js';
import { XenbusDevice, type XenbusStore } from '../../drivers/xenbus/xenbus-device.js';
import type { ForeignMemory } from '../foreign-memory.js';
import type { Logger } from '../../common/log.js';

export interface Dom0Services {
  xs: XenbusStore;
  evtchn: EventChannels;
  hc: HypercallClient;
  foreign: ForeignMemory;
  log: Logger;
}

export interface BackendDriver {
  /** The device's directory is gone (detach or domain destroyed): release everything. */
  remove(): Promise<void>;
  /** Per-device counters for xl (packets, bytes, notifications ...). */
  stats?(): Record<string, number>;
}

export type BackendFactory = (dev: XenbusDevice, frontDomid: number, devid: number, s: Dom0Services) => Promise<BackendDriver>;

const BACKEND_ROOT = '/local/domain/0/backend';

export class BackendBus {
  private readonly factories = new Map<string, BackendFactory>();
  private readonly live = new Map<string, Promise<BackendDriver | null>>();
  private scanning: Promise<void> = Promise.resolve();
  /** A scan is queued and has not started: later events are covered by it. */
  private scanQueued = false;

  constructor(private readonly s: Dom0Services) {}

  register(type: string, factory: BackendFactory): void {
    this.factories.set(type, factory);
  }

  async start(): Promise<void> {
    await this.s.xs.write(BACKEND_ROOT, '').catch(() => {});
    await this.s.xs.watch(BACKEND_ROOT, 'backend-bus', () => this.rescan());
  }

  /** Serialised rescans: watch events may come faster than we probe, and all those that
   * arrive before a queued scan starts are answered by that one scan. */
  rescan(): Promise<void> {
    if (this.scanQueued) return this.scanning;
    this.scanQueued = true;
    this.scanning = this.scanning
      .then(() => {
        this.scanQueued = false;
        return this.scan();
      })
      .catch((e) => this.s.log.error(`backend bus: ${(e as Error).message}`));
    return this.scanning;
  }

  private async list(path: string): Promise<string[]> {
    try {
      return await this.s.xs.directory(path);
    } catch {
      return [];
    }
  }

  private async scan(): Promise<void> {
    const present = new Set<string>();
    for (const type of this.factories.keys()) {
      for (const dom of await this.list(`${BACKEND_ROOT}/${type}`)) {
        if (!/^\d+$/.test(dom)) continue;
        for (const id of await this.list(`${BACKEND_ROOT}/${type}/${dom}`)) {
          if (!/^\d+$/.test(id)) continue;
          const key = `${type}/${dom}/${id}`;
          present.add(key);
          if (!this.live.has(key)) this.probe(type, Number(dom), Number(id));
        }
      }
    }
    for (const [key, drv] of this.live) {
      if (present.has(key)) continue;
      this.live.delete(key);
      void drv.then((d) => d?.remove()).catch((e) => this.s.log.error(`${key}: remove failed: ${(e as Error).message}`));
    }
  }

  private probe(type: string, domid: number, devid: number): void {
    const key = `${type}/${domid}/${devid}`;
    const path = `${BACKEND_ROOT}/${type}/${domid}/${devid}`;
    const self: { p?: Promise<BackendDriver | null> } = {};
    const p = (async () => {
      const frontend = await this.s.xs.read(`${path}/frontend`).catch(() => '');
      if (frontend !== `/local/domain/${domid}/device/${type}/${devid}`) {
        // Not written yet (the toolstack is still filling the directory in): forget this
        // probe so the next watch event tries again.
        if (frontend === '') {
          if (this.live.get(key) === self.p) this.live.delete(key);
          return null;
        }
        this.s.log.warn(`${key}: frontend path "${frontend}" does not match the device; ignoring`);
        return null;
      }
      const dev = new XenbusDevice(this.s.xs, path, frontend);
      try {
        return await this.factories.get(type)!(dev, domid, devid, this.s);
      } catch (e) {
        this.s.log.error(`${key}: backend failed to start: ${(e as Error).message}`);
        await dev.close();
        return null;
      }
    })();
    self.p = p;
    this.live.set(key, p);
  }

  /** Counters of every live device, for xl. */
  async stats(): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [key, p] of this.live) {
      const d = await p;
      if (d?.stats) out[key] = d.stats();
    }
    return out;
  }

  async removeAll(): Promise<void> {
    const all = [...this.live.values()];
    this.live.clear();
    for (const d of all) await (await d)?.remove().catch(() => {});
  }
}
