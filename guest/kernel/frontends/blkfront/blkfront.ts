// blkfront: the guest's PV block frontend (Linux's drivers/block/xen-blkfront.c, in
// miniature), for xenstore device type "vbd".
//
// Handshake, as Xen's blkif.h describes it:
//   backend InitWait  -> we allocate and grant a ring page, allocate an event channel, write
//                        ring-ref, event-channel, protocol ("x86_64-abi"), feature-persistent,
//                        and go Initialised;
//   backend Connected -> we read sectors, info, sector-size, feature-flush-cache,
//                        feature-barrier, feature-persistent, feature-max-indirect-segments,
//                        expose the disk as /dev/<vdev> and go Connected;
//   backend Closing/Closed -> the disk goes (unmounted, I/O in flight fails with EIO), grants
//                        are revoked, the port closed, and we go Closed. A backend that comes
//                        back to InitWait gets a fresh handshake.
//
// Kernel command-line parameters (Linux's names): xen_blkfront.max_indirect_segments=N
// (default 256, 0 = never use indirect descriptors), xen_blkfront.feature_persistent=0|1
// (default 1), and xenode's xen_blkfront.busy_poll=US (default 150, 0 = off): at queue depth
// 1, spin that long for the response, and for the program's next request, instead of
// sleeping (drivers/ring/busy-poll.ts); xen_blkfront.eager=0|1 (default 1): send big requests
// to the backend before copying other requests' data (fuse-disk.ts, docs/block.md);
// xen_blkfront.readahead=0|1 (default 1): widen small buffered reads to windows of the disk
// and answer the reads that follow from them (read-ahead.ts).
import { BusyPoller } from '../../../../drivers/ring/busy-poll.js';
import { XenbusState } from '../../../../drivers/xenbus/xenbus-device.js';
import type { XenbusDevice } from '../../../../drivers/xenbus/xenbus-device.js';
import {
  BLKIF_FRONTEND_KEYS as FK,
  BLKIF_BACKEND_KEYS as BK,
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKBACK_MAX_INDIRECT_SEGMENTS,
  VDISK_CDROM,
  VDISK_READONLY,
  XEN_IO_PROTO_ABI_X86_64,
} from '../../../../drivers/wire/blkif.js';
import type { FrontRing } from '../../../../drivers/ring/shared-ring.js';
import { devidToVdev } from '../../../../common/vdev-number.js';
import type { FrontendDriver, FrontendFactory, KernelServices } from '../../xenbus-frontends.js';
import { parseCmdline } from '../../cmdline.js';
import { DiskFiles } from '../../block/disk-files.js';
import { PagePool } from './page-pool.js';
import { BlkfrontRing, initBlkifRing } from './ring-io.js';
import { BlkDisk } from './fuse-disk.js';

/** Frames one disk may use for data in flight (6 MiB): the receive window for writes (1 MiB)
 * plus several 1 MiB requests. */
const POOL_PAGES = 1536;

export interface BlkfrontParams {
  maxIndirectSegments: number;
  persistent: boolean;
  busyPollUs: number;
  eager: boolean;
  readAhead: boolean;
  /** Linux's `gpt`: use a GPT without a protective MBR, or its backup when the primary is bad. */
  forceGpt: boolean;
}

const DEFAULT_BUSY_POLL_US = 150;

function busyPollUs(v: string | undefined): number {
  const us = Number(v ?? DEFAULT_BUSY_POLL_US);
  return Number.isFinite(us) && us >= 0 ? Math.min(us, 10_000) : DEFAULT_BUSY_POLL_US;
}

export function blkfrontParams(cmdline: string | undefined): BlkfrontParams {
  const p = parseCmdline(cmdline ?? '').params;
  const ind = Number(p['xen_blkfront.max_indirect_segments'] ?? BLKBACK_MAX_INDIRECT_SEGMENTS);
  const pers = p['xen_blkfront.feature_persistent'];
  return {
    maxIndirectSegments: Number.isInteger(ind) && ind >= 0 ? Math.min(ind, 4096) : BLKBACK_MAX_INDIRECT_SEGMENTS,
    persistent: pers === undefined ? true : pers !== '0' && pers !== 'n' && pers !== 'N',
    busyPollUs: busyPollUs(p['xen_blkfront.busy_poll']),
    eager: p['xen_blkfront.eager'] !== '0',
    readAhead: p['xen_blkfront.readahead'] !== '0',
    forceGpt: p.gpt !== undefined,
  };
}

/** A partition-table read the backend does not answer in this time counts as an I/O error. */
const SCAN_READ_TIMEOUT_MS = 10_000;

/** `p`, or an error after `ms`; `onLate` says what it can about why before the error goes
 * (the partition scan turns errors into "unable to read partition table"). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string, onLate: (why: string) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => {
    const why = `${what}: no answer in ${ms} ms`;
    onLate(why);
    reject(new Error(why));
  }, ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

type Phase = 'idle' | 'initialised' | 'connected' | 'closed';

class Blkfront implements FrontendDriver {
  private phase: Phase = 'idle';
  private chain: Promise<void> = Promise.resolve();
  private ringPfn = -1;
  private ringRef = -1;
  private port = -1;
  private front: FrontRing | null = null;
  private ring: BlkfrontRing | null = null;
  private pool: PagePool | null = null;
  private disk: BlkDisk | null = null;
  /** /dev/<vdev> and its partitions. */
  private files: DiskFiles | null = null;
  private removed = false;
  readonly vdev: string;
  private readonly params: BlkfrontParams;
  private settled: () => void = () => {};
  /** Resolves once the first handshake ended (connected, or given up). */
  readonly ready = new Promise<void>((r) => (this.settled = r));

  constructor(
    private readonly dev: XenbusDevice,
    private readonly devid: number,
    private readonly backendId: number,
    private readonly k: KernelServices,
  ) {
    this.vdev = devidToVdev(devid) ?? `xvd${devid}`;
    this.params = blkfrontParams(k.cmdline);
  }

  private log(msg: string): void {
    this.k.printk(`blkfront: ${this.vdev}: ${msg}`);
  }

  async start(): Promise<void> {
    await this.dev.watchOtherEnd((state) => {
      this.chain = this.chain.then(() => this.backendChanged(state)).catch((e) => {
        this.log(`${(e as Error).message}`);
        this.settled();
      });
    });
  }

  /** Move our state, unless our directory is already gone (a write would re-create it). */
  private async setState(state: XenbusState): Promise<void> {
    if (this.removed || (await this.dev.readKey('backend', this.dev.path)) === undefined) return;
    await this.dev.switchState(state);
  }

  private async backendChanged(state: XenbusState): Promise<void> {
    if (this.removed) return;
    switch (state) {
      case XenbusState.InitWait:
        if (this.phase === 'idle' || this.phase === 'closed') await this.talkToBackend();
        break;
      case XenbusState.Connected:
        if (this.phase === 'idle' || this.phase === 'closed') await this.talkToBackend();
        if (this.phase === 'initialised') await this.connect();
        break;
      case XenbusState.Closing:
      case XenbusState.Closed:
        // A backend that gave up before we met (its target would not open): nothing to wait for.
        if (this.phase === 'idle') this.settled();
        if (this.phase === 'initialised' || this.phase === 'connected') {
          this.teardown();
          this.phase = 'closed';
          await this.setState(XenbusState.Closed);
        }
        break;
      default:
        break;
    }
  }

  /** Ring page, grant, event channel, keys -> Initialised. */
  private async talkToBackend(): Promise<void> {
    const k = this.k;
    this.ringPfn = k.pages.alloc();
    this.front = initBlkifRing(k.memory, this.ringPfn * 4096);
    this.ringRef = k.grants.grantAccess(this.backendId, this.ringPfn, false);
    if (this.ringRef < 0) throw new Error('no free grant reference for the ring');
    this.port = await k.evtchn.allocUnbound(this.backendId);
    k.evtchn.on(this.port, () => this.ring?.onBackendEvent());
    await this.dev.writeKeys({
      [FK.ringRef]: this.ringRef,
      [FK.eventChannel]: this.port,
      [FK.protocol]: XEN_IO_PROTO_ABI_X86_64,
      [FK.featurePersistent]: this.params.persistent ? 1 : 0,
    });
    this.phase = 'initialised';
    await this.setState(XenbusState.Initialised);
  }

  /** Backend Connected: learn the disk, make /dev/<vdev>, go Connected. */
  private async connect(): Promise<void> {
    const d = this.dev;
    // The backend's keys in one round of requests (xenstore pipelines them): at boot, each
    // sequential read was a trip to dom0 before init could start.
    const [sectors, infoKey, sectorSizeKey, flushCache, barrier, bePersistent, beIndirectKey, deviceType] = await Promise.all([
      d.readInt(BK.sectors, 0, Number.MAX_SAFE_INTEGER),
      d.readInt(BK.info, 0, 0xffff),
      d.readInt(BK.sectorSize, 512, 65536),
      d.readFlag(BK.featureFlushCache),
      d.readFlag(BK.featureBarrier),
      d.readFlag(BK.featurePersistent),
      d.readInt(BK.featureMaxIndirectSegments, 0, 1 << 16),
      d.readKey(FK.deviceType, d.path),
    ]);
    if (sectors === undefined) throw new Error('backend gave no valid "sectors"');
    const info = infoKey ?? 0;
    const sectorSize = sectorSizeKey ?? 512;
    const flush = flushCache ? 'flush' : barrier ? 'barrier' : 'none';
    const beIndirect = beIndirectKey ?? 0;
    const persistent = this.params.persistent && bePersistent;
    const indirect = Math.min(beIndirect, this.params.maxIndirectSegments);
    const maxSegments = indirect > BLKIF_MAX_SEGMENTS_PER_REQUEST ? indirect : BLKIF_MAX_SEGMENTS_PER_REQUEST;

    // At least the receive window plus two 1 MiB requests, or a big read could wait forever.
    const cap = Math.max(768, Math.min(POOL_PAGES, Math.floor(this.k.pages.available / 8)));
    this.pool = new PagePool(this.k.pages, this.k.grants, this.backendId, persistent, cap);
    const port = this.port;
    this.ring = new BlkfrontRing(
      this.front!,
      this.pool,
      maxSegments,
      this.devid & 0xffff,
      () => this.k.evtchn.notify(port),
      (why) => {
        this.log(`backend misbehaved: ${why}; disconnecting`);
        this.chain = this.chain.then(async () => {
          this.teardown();
          this.phase = 'closed';
          await this.setState(XenbusState.Closed);
        });
      },
      (ms) => this.k.evtchn.holdOff(port, ms),
    );
    const readonly = (info & VDISK_READONLY) !== 0;
    const cdrom = (info & VDISK_CDROM) !== 0 || deviceType === 'cdrom';
    const disk = new BlkDisk(this.ring, this.pool, { sectors, readonly: readonly || cdrom, cdrom, flush }, (m) => this.log(m), { readAhead: this.params.readAhead });
    this.disk = disk;
    disk.eager = this.params.eager;
    this.phase = 'connected';
    this.resumeOnFree();
    this.log(
      `flush diskcache: ${flush === 'flush' ? 'enabled' : flush === 'barrier' ? 'barrier' : 'disabled'}; ` +
        `persistent grants: ${persistent ? 'enabled' : 'disabled'}; ` +
        `indirect descriptors: ${maxSegments > BLKIF_MAX_SEGMENTS_PER_REQUEST ? `enabled (${maxSegments} segments)` : 'disabled'};`,
    );
    this.log(`${sectors} sectors (${Math.round((sectors * 512) / 1048576)} MiB, sector size ${sectorSize})${readonly || cdrom ? ', read-only' : ''}${cdrom ? ', cdrom' : ''} at /dev/${this.vdev}`);
    // /dev/<vdev>, then the partitions of its table (read through the ring), before we say
    // Connected: at boot, init and root= find them all.
    const files = await DiskFiles.expose({
      name: this.vdev,
      ops: disk,
      sectors,
      readonly: readonly || cdrom,
      subtype: 'blkfront',
      read: cdrom ? undefined : (lba, n) => withTimeout(disk.readSectors(lba, n), SCAN_READ_TIMEOUT_MS, `reading sector ${lba}`, (why) => this.unanswered(why)),
      forceGpt: this.params.forceGpt,
      printk: (m) => this.k.printk(m),
    });
    this.files = files;
    disk.pollRequests = () => files.pollRequests();
    disk.reclaim = () => files.reclaim();
    if (this.params.busyPollUs > 0) this.ring.busy = { poller: new BusyPoller(this.params.busyPollUs), fuseFd: () => files.activeFd };
    await this.setState(XenbusState.Connected);
    this.settled();
  }

  /** A request the backend left unanswered: say where it stands, on both ends. */
  private unanswered(why: string): void {
    this.log(`${why}; ${this.ring?.describe() ?? 'no ring'}; ${this.port >= 0 ? this.k.evtchn.describe(this.port) : 'no event channel'}`);
  }

  /** Whenever pages come back to the pool, let a paused FUSE reader go on. */
  private resumeOnFree(): void {
    const pool = this.pool;
    if (!pool || this.removed) return;
    pool.onFree(() => {
      this.files?.resume();
      if (this.pool === pool) this.resumeOnFree();
    });
  }

  /** Drop the disk and everything shared with the backend. Synchronous: safe to call twice. */
  private teardown(): void {
    this.settled();
    this.files?.close();
    this.files = null;
    this.disk?.detach();
    this.disk = null;
    this.ring?.shutdown();
    this.ring = null;
    const pool = this.pool;
    this.pool = null;
    const leaked = pool?.destroy() ?? 0;
    if (leaked) this.log(`${leaked} pages still held by the backend: not reused`);
    if (this.ringRef >= 0) {
      if (this.k.grants.endAccess(this.ringRef)) this.k.pages.release(this.ringPfn);
      else this.log('ring page still mapped by the backend: not reused');
      this.ringRef = -1;
      this.ringPfn = -1;
    }
    this.front = null;
    if (this.port >= 0) {
      void this.k.evtchn.close(this.port).catch(() => {});
      this.port = -1;
    }
  }

  async remove(): Promise<void> {
    this.removed = true;
    await this.chain.catch(() => {});
    this.teardown();
    await this.dev.close();
  }
}

export const blkfrontFactory: FrontendFactory = async (dev, devid, k) => {
  // The backend's domain, from its path (checked by the bus): backend-id may not be written yet.
  const backendId = Number(/^\/local\/domain\/(\d+)\//.exec(dev.otherEnd)?.[1] ?? NaN);
  if (!Number.isInteger(backendId) || backendId > 0x7fef) throw new Error('vbd: no valid backend domain');
  const f = new Blkfront(dev, devid, backendId, k);
  await f.start();
  // At boot the kernel waits for its disks (FrontendBus.settle); a backend that never answers
  // must not hold the probe forever.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([f.ready, new Promise<void>((r) => (timer = setTimeout(r, 10_000)))]);
  clearTimeout(timer);
  return f;
};
