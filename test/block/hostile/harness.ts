// A hostile blkfront, in-process: the real blkback (dom0/backends/blkback) on a real xenstored
// with the toolstack's real device entries, facing a "guest" whose memory and grant table are
// SharedArrayBuffers this test owns. The test writes raw ring slots, moves req_prod wherever
// it likes, grants and revokes pages, and rings the backend's event channel by hand.
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Xenstored } from '../../../dom0/xenstored/index.js';
import { XsClient } from '../../../drivers/xenstore/client.js';
import { XenbusDevice } from '../../../drivers/xenbus/xenbus-device.js';
import { GrantTable } from '../../../drivers/grant/grant-table.js';
import { FrontRing, SharedRing } from '../../../drivers/ring/shared-ring.js';
import { BLKIF_SLOT_SIZE, blkifResponse, type BlkifResponse } from '../../../drivers/wire/blkif.js';
import { addDevice, removeDevice } from '../../../dom0/toolstack/devices/device-store.js';
import { diskDeviceEntries } from '../../../dom0/toolstack/devices/vbd.js';
import { parseDiskSpec } from '../../../dom0/toolstack/config/disk-spec.js';
import { vdevToDevid } from '../../../common/vdev-number.js';
import { makeBlkback, type BlkbackOptions } from '../../../dom0/backends/blkback/xenbus.js';
import type { BackendDriver, Dom0Services } from '../../../dom0/backends/backend-bus.js';

export const PAGE = 4096;
const GUEST_PAGES = 2048; // 8 MiB of "guest memory"

export const DEFAULT_OPTS: BlkbackOptions = { maxIndirectSegments: 256, persistent: false, maxPersistentGrants: 2048, directIo: true };

/** What a fake dom0 gives blkback: a real xenstore client, a fake event-channel layer that
 * records notifications and lets the test ring the backend, and the guests' memory maps. */
export class Dom0 {
  readonly dir = mkdtempSync(join(tmpdir(), 'xenode-blk-hostile-'));
  readonly xenstored = new Xenstored({ log: () => {} });
  readonly xs = new XsClient(this.xenstored.connectLocal(0));
  readonly logs: string[] = [];
  private nextPort = 100;
  /** local port -> handler */
  readonly handlers = new Map<number, () => void>();
  /** remote (guest) port -> local port */
  readonly bound = new Map<number, number>();
  readonly notifies = new Map<number, number>();
  /** Hold-offs blkback asked for (XSA-332), and the ports not listened to right now: an event
   * rung on one is delivered once when the hold-off ends, as an eventfd's count would be. */
  readonly holdOffs: { port: number; ms: number }[] = [];
  private readonly held = new Map<number, { rung: boolean }>();
  readonly guests = new Map<number, { memory: SharedArrayBuffer; grantTable: SharedArrayBuffer; gt: GrantTable; nextPfn: number }>();
  readonly services: Dom0Services;

  constructor() {
    // blkback journals the requests it owes in the run dir (inflight-journal.ts): this dom0's
    // own, not the machine's /run/xenode (which needs root, and may belong to a running xenode).
    process.env.XENODE_RUN_DIR = this.dir;
    const log = (level: string) => (m: string) => this.logs.push(`${level}: ${m}`);
    const evtchn = {
      bindInterdomain: async (_dom: number, remotePort: number) => {
        const local = this.nextPort++;
        this.bound.set(remotePort, local);
        return local;
      },
      // A dom0 taking over after one died finds the channel bound already (dom0 restarts).
      bindOrReattach: async (_dom: number, remotePort: number) => {
        const have = this.bound.get(remotePort);
        if (have !== undefined && !this.handlers.has(have)) return have;
        const local = this.nextPort++;
        this.bound.set(remotePort, local);
        return local;
      },
      on: (port: number, h: () => void) => void this.handlers.set(port, h),
      notify: (port: number) => void this.notifies.set(port, (this.notifies.get(port) ?? 0) + 1),
      close: async (port: number) => void this.handlers.delete(port),
      holdOff: (port: number, ms: number) => {
        if (this.held.has(port)) return;
        this.holdOffs.push({ port, ms });
        this.held.set(port, { rung: false });
        setTimeout(() => {
          const h = this.held.get(port);
          this.held.delete(port);
          if (h?.rung) this.handlers.get(port)?.();
        }, ms);
      },
    };
    const foreign = {
      map: async (domid: number) => {
        const g = this.guests.get(domid);
        if (!g) throw new Error(`no guest ${domid}`);
        return { domid, memory: g.memory, grantTable: g.grantTable, page: (pfn: number) => new Uint8Array(g.memory, pfn * PAGE, PAGE) };
      },
      get: () => undefined,
      unmap: () => {},
    };
    this.services = {
      xs: this.xs,
      evtchn: evtchn as unknown as Dom0Services['evtchn'],
      hc: {} as Dom0Services['hc'],
      foreign: foreign as unknown as Dom0Services['foreign'],
      log: { info: log('info'), warn: log('warn'), error: log('error') },
    };
  }

  /** An event on local port `port`, as the event-channel layer would deliver it. */
  deliver(port: number): void {
    const h = this.held.get(port);
    if (h) h.rung = true;
    else this.handlers.get(port)?.();
  }

  image(name: string, bytes: number, fill?: (b: Buffer) => void): string {
    const p = join(this.dir, name);
    const b = Buffer.alloc(bytes);
    fill?.(b);
    writeFileSync(p, b);
    return p;
  }

  async close(): Promise<void> {
    this.xs.close();
    await this.xenstored.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface DeviceOptions {
  domid: number;
  vdev?: string;
  sectors?: number;
  readonly?: boolean;
  opts?: Partial<BlkbackOptions>;
  /** Frontend's feature-persistent. */
  persistent?: boolean;
  /** Event channel port the "guest" publishes (distinct per device). */
  port: number;
}

/** One vbd with blkback behind it and the test as its frontend. */
export class HostileDevice {
  readonly memory: SharedArrayBuffer;
  readonly gt: GrantTable;
  ring!: FrontRing;
  readonly ringPfn: number;
  backend!: BackendDriver;
  readonly image: string;
  readonly devid: number;
  readonly fe: string;
  readonly be: string;
  private readonly entries: ReturnType<typeof diskDeviceEntries>;
  private readonly guest: { memory: SharedArrayBuffer; grantTable: SharedArrayBuffer; gt: GrantTable; nextPfn: number };

  private constructor(
    readonly dom0: Dom0,
    readonly o: DeviceOptions,
  ) {
    let g = dom0.guests.get(o.domid);
    if (!g) {
      const grantTable = new SharedArrayBuffer(4 * PAGE);
      g = { memory: new SharedArrayBuffer(GUEST_PAGES * PAGE), grantTable, gt: new GrantTable(grantTable), nextPfn: 1 };
      dom0.guests.set(o.domid, g);
    }
    this.guest = g;
    this.memory = g.memory;
    this.gt = g.gt;
    this.ringPfn = this.allocPage();
    const sectors = o.sectors ?? 2048;
    const vdev = o.vdev ?? 'xvda';
    this.image = dom0.image(`d${o.domid}-${vdev}.img`, sectors * 512, (b) => {
      for (let i = 0; i < b.length; i += 512) b.writeUInt32LE(i / 512, i); // each sector starts with its number
    });
    const disk = parseDiskSpec(`${this.image},raw,${vdev},${o.readonly ? 'r' : 'w'}`);
    this.devid = vdevToDevid(vdev);
    this.entries = diskDeviceEntries(disk, this.devid);
    this.fe = `/local/domain/${o.domid}/device/vbd/${this.devid}`;
    this.be = `/local/domain/0/backend/vbd/${o.domid}/${this.devid}`;
  }

  static async create(dom0: Dom0, o: DeviceOptions): Promise<HostileDevice> {
    const d = new HostileDevice(dom0, o);
    await addDevice(dom0.xs, o.domid, d.entries);
    const dev = new XenbusDevice(dom0.xs, d.be, d.fe);
    d.backend = await makeBlkback({ ...DEFAULT_OPTS, ...o.opts })(dev, o.domid, d.devid, dom0.services);
    return d;
  }

  /** What a dom0 killed with SIGKILL leaves: a backend that never runs again (its event
   * handler gone, nothing released). */
  killBackend(): void {
    const local = this.dom0.bound.get(this.o.port);
    if (local !== undefined) this.dom0.handlers.delete(local);
  }

  /** A new dom0's backend probing the same device (dom0 restarts). */
  async restartBackend(): Promise<void> {
    const dev = new XenbusDevice(this.dom0.xs, this.be, this.fe);
    this.backend = await makeBlkback({ ...DEFAULT_OPTS, ...this.o.opts })(dev, this.o.domid, this.devid, this.dom0.services);
  }

  async read(path: string): Promise<string> {
    return this.dom0.xs.read(path).catch(() => '');
  }

  async waitFor(what: string, pred: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await pred()) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`timed out waiting for ${what}\n${this.dom0.logs.join('\n')}`);
  }

  async backendState(): Promise<number> {
    return Number(await this.read(`${this.be}/state`));
  }

  /** Play the frontend's part of the handshake, up to backend Connected. */
  async connect(): Promise<void> {
    await this.waitFor('backend InitWait', async () => (await this.backendState()) === 2);
    this.ring = new FrontRing(new SharedRing(this.memory, this.ringPfn * PAGE, BLKIF_SLOT_SIZE));
    const ref = this.gt.grantAccess(0, this.ringPfn, false);
    const xs = this.dom0.xs;
    await xs.write(`${this.fe}/ring-ref`, String(ref));
    await xs.write(`${this.fe}/event-channel`, String(this.o.port));
    await xs.write(`${this.fe}/protocol`, 'x86_64-abi');
    await xs.write(`${this.fe}/feature-persistent`, this.o.persistent ? '1' : '0');
    await xs.write(`${this.fe}/state`, '3');
    await this.waitFor('backend Connected', async () => (await this.backendState()) === 4);
  }

  /** A fresh zeroed page of the guest's memory. */
  allocPage(): number {
    const pfn = this.guest.nextPfn++;
    if (pfn >= GUEST_PAGES) throw new Error('guest out of pages');
    this.page(pfn).fill(0);
    return pfn;
  }

  page(pfn: number): Uint8Array {
    return new Uint8Array(this.memory, pfn * PAGE, PAGE);
  }

  /** Grant `pfn` to dom0 (read-only if `ro`). */
  grant(pfn: number, ro = false): number {
    const ref = this.gt.grantAccess(0, pfn, ro);
    if (ref < 0) throw new Error('grant table full');
    return ref;
  }

  /** Raw request bytes into the next slot (the test fills every byte it wants). */
  put(fill: (v: DataView, off: number) => void): void {
    const off = this.ring.nextRequestSlot();
    fill(this.ring.ring.view, off);
  }

  /** Publish and ring the backend, as a frontend's notify would. */
  kick(): void {
    this.ring.pushRequests();
    this.ringBackend();
  }

  ringBackend(): void {
    const local = this.dom0.bound.get(this.o.port);
    if (local !== undefined) this.dom0.deliver(local);
  }

  /** blkback's counters for this device. */
  stats(): Record<string, number> {
    return this.backend.stats!();
  }

  /** Wait for `n` more responses and return them (decoded, with their slot offsets). */
  async responses(n: number, ms = 3000): Promise<(BlkifResponse & { off: number })[]> {
    await this.waitFor(`${n} responses`, () => this.ring.unconsumedResponses() >= n, ms);
    const out: (BlkifResponse & { off: number })[] = [];
    for (let i = 0; i < n; i++) {
      const off = this.ring.ring.slotOffset(this.ring.rspCons);
      const v = this.ring.takeResponse();
      out.push({ ...blkifResponse.decode(v, 0), off });
    }
    return out;
  }

  imageBytes(): Buffer {
    return readFileSync(this.image);
  }

  async detach(): Promise<void> {
    await removeDevice(this.dom0.xs, this.o.domid, 'vbd', this.devid, { force: true });
    await this.backend.remove();
  }
}

/** Encode a direct request by hand (fields as a hostile frontend may set them). */
export function rawRequest(
  v: DataView,
  off: number,
  r: { op: number; nseg: number; id: bigint; sector: number | bigint; segs?: { gref: number; first: number; last: number }[] },
): void {
  v.setUint8(off, r.op);
  v.setUint8(off + 1, r.nseg);
  v.setUint16(off + 2, 0, true);
  v.setBigUint64(off + 8, r.id, true);
  v.setBigUint64(off + 16, BigInt(r.sector), true);
  (r.segs ?? []).forEach((s, i) => {
    if (i >= 11) return;
    v.setUint32(off + 24 + i * 8, s.gref, true);
    v.setUint8(off + 28 + i * 8, s.first);
    v.setUint8(off + 29 + i * 8, s.last);
  });
}

/** An indirect request: descriptors go into the given pages (already granted as `grefs`). */
export function rawIndirect(
  v: DataView,
  off: number,
  r: { op: number; nseg: number; id: bigint; sector: number; indirectGrefs: number[] },
): void {
  v.setUint8(off, 6);
  v.setUint8(off + 1, r.op);
  v.setUint16(off + 2, r.nseg, true);
  v.setBigUint64(off + 8, r.id, true);
  v.setBigUint64(off + 16, BigInt(r.sector), true);
  r.indirectGrefs.forEach((g, i) => v.setUint32(off + 28 + 4 * i, g, true));
}
