// The guest's xenbus: finds the devices the toolstack gave this domain under device/<type>/
// and starts the frontend driver registered for each type (Linux's xenbus_probe_frontend).
// A device whose directory disappears is removed. Drivers run their own state machines on
// XenbusDevice (drivers/xenbus/xenbus-device.ts).
import type { HypercallClient } from '../../drivers/hypercall/channel.js';
import type { EventChannels } from '../../drivers/evtchn/event-channels.js';
import type { GrantTable } from '../../drivers/grant/grant-table.js';
import { XenbusDevice, type XenbusStore } from '../../drivers/xenbus/xenbus-device.js';
import type { PageAllocator } from './page-allocator.js';

export interface KernelServices {
  domid: number;
  xs: XenbusStore;
  evtchn: EventChannels;
  hc: HypercallClient;
  grants: GrantTable;
  pages: PageAllocator;
  memory: SharedArrayBuffer;
  printk: (msg: string) => void;
  /** The kernel command line (drivers read their `driver.param=value` words from it). */
  cmdline?: string;
}

export interface FrontendDriver {
  /** The device was unplugged (its directory is gone) or the kernel is stopping. */
  remove(): Promise<void>;
}

export type FrontendFactory = (dev: XenbusDevice, devid: number, k: KernelServices) => Promise<FrontendDriver>;

export class FrontendBus {
  private readonly factories = new Map<string, FrontendFactory>();
  private readonly live = new Map<string, Promise<FrontendDriver | null>>();
  private scanning: Promise<void> = Promise.resolve();

  constructor(private readonly k: KernelServices) {}

  register(type: string, factory: FrontendFactory): void {
    this.factories.set(type, factory);
  }

  private get home(): string {
    return `/local/domain/${this.k.domid}/device`;
  }

  async start(): Promise<void> {
    await this.k.xs.watch(this.home, 'xenbus-frontends', () => {
      this.scanning = this.scanning.then(() => this.scan()).catch((e) => this.k.printk(`xenbus: scan failed: ${(e as Error).message}`));
    });
  }

  /** Wait (at most timeoutMs) for the devices present at boot to finish probing, as Linux's
   * xenbus waits for its devices to connect before it runs init. */
  async settle(timeoutMs: number): Promise<void> {
    this.scanning = this.scanning.then(() => this.scan()).catch(() => {});
    const all = (async () => {
      await this.scanning;
      await Promise.all([...this.live.values()].map((p) => p.catch(() => null)));
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  private async list(path: string): Promise<string[]> {
    try {
      return await this.k.xs.directory(path);
    } catch {
      return [];
    }
  }

  private async scan(): Promise<void> {
    const present = new Set<string>();
    for (const type of this.factories.keys()) {
      for (const id of await this.list(`${this.home}/${type}`)) {
        if (!/^\d+$/.test(id)) continue;
        const key = `${type}/${id}`;
        present.add(key);
        if (!this.live.has(key)) this.probe(type, Number(id));
      }
    }
    for (const [key, drv] of this.live) {
      if (present.has(key)) continue;
      this.live.delete(key);
      void drv.then((d) => d?.remove()).catch(() => {});
    }
  }

  private probe(type: string, devid: number): void {
    const key = `${type}/${devid}`;
    const path = `${this.home}/${type}/${devid}`;
    const self: { p?: Promise<FrontendDriver | null> } = {};
    const p = (async () => {
      const backend = await this.k.xs.read(`${path}/backend`).catch(() => '');
      // The backend path comes from the toolstack, but check its shape before trusting it.
      if (!/^\/local\/domain\/\d+\/backend\/[a-z0-9]+\/\d+\/\d+$/.test(backend)) {
        // Not written yet (the toolstack is still filling the directory in): forget this
        // probe so the next watch event tries again.
        if (backend === '') {
          if (this.live.get(key) === self.p) this.live.delete(key);
          return null;
        }
        this.k.printk(`xenbus: ${key}: no valid backend path ("${backend}"), ignoring`);
        return null;
      }
      const dev = new XenbusDevice(this.k.xs, path, backend);
      try {
        return await this.factories.get(type)!(dev, devid, this.k);
      } catch (e) {
        this.k.printk(`xenbus: ${key}: probe failed: ${(e as Error).message}`);
        await dev.close();
        return null;
      }
    })();
    self.p = p;
    this.live.set(key, p);
  }

  async removeAll(): Promise<void> {
    const all = [...this.live.values()];
    this.live.clear();
    for (const d of all) await (await d)?.remove().catch(() => {});
  }
}
