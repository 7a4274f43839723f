// Writing a KVM-engine HVM guest out (docs/kvm.md, "Save, restore, migration"): the save image
// of `xl save`, and the sending side of `xl migrate`.
//
// Save (stop-and-copy): pause; the CPU state (hypervisor); freeze the device models and take
// their state (stub domain); then every page of RAM; END.
//
// Live (pre-copy, as Xen's xc_domain_save): KVM's dirty log and the device models' DMA dirty
// bitmap on; round 0 sends every page while the guest runs; each next round sends the pages
// written meanwhile (by the guest: KVM_GET_DIRTY_LOG; by a device model's DMA: its bitmap),
// until few enough are left, the rounds stop shrinking, or the round limit is reached; then
// pause, the last dirty pages, CPU and device state, END.
import { native } from '../../../native/index.js';
import type { HypercallClient } from '../../../drivers/hypercall/channel.js';
import type { BuildSpec } from '../build-spec.js';
import { ToolstackError } from '../rpc.js';
import type { ByteSink } from './byte-channel.js';
import { MAX_BATCH_PAGES, PAGE_SIZE, REC, encodeDomain, encodeHeader, encodePages, encodeRecord } from './save-stream.js';

/** What the writer needs from dom0. */
export interface SaveHost {
  hc: HypercallClient;
  /** The domain's RAM as dom0 maps it (ForeignMemory). */
  memory(domid: number): Promise<Uint8Array>;
  dm: {
    save(domid: number): Promise<{ fd: number; bytes: number }>;
    thaw(domid: number): Promise<void>;
    dmaDirty(domid: number, action: 'start' | 'collect' | 'stop', memoryBytes?: number): Promise<{ fd: number; bytes: number } | null>;
  };
}

export interface SaveStats {
  ramBytes: number;
  bytesSent: number;
  pagesSent: number;
  rounds: number;
  /** Pages sent in each pre-copy round (the last entry: after the pause). */
  roundPages: number[];
  /** From the pause to END written. */
  stopCopyMs: number;
  totalMs: number;
  /** Was the dirty log used (false: the host's KVM could not log, stop-and-copy instead). */
  live: boolean;
  note?: string;
}

export interface LiveOptions {
  /** Stop pre-copying once a round has fewer dirty pages than this. */
  stopBelowPages?: number;
  maxRounds?: number;
  debug?: (line: string) => void;
}

/** Only a guest whose whole state is guest RAM, vCPUs and device models can be written out:
 * a process guest's userland lives outside guest RAM (and CRIU does not work on this kind of
 * host), so it is refused up front, naming why. */
export function checkSaveable(spec: BuildSpec, what: string): void {
  const why =
    spec.type !== 'hvm'
      ? "a PV guest's kernel here is a Node program in its own process: its kernel and userland state live outside guest RAM and cannot be written out (only HVM guests on the KVM engine can be)"
      : !spec.kernel
        ? "an HVM guest running xenode's own HVM OS (no Linux kernel= for the KVM engine) is a Node program in its own process: its state lives outside guest RAM and cannot be written out (only HVM guests on the KVM engine can be)"
        : null;
  if (why) throw new ToolstackError('EOPNOTSUPP', `xenode cannot ${what} ${spec.name}: ${why}`);
}

function readMemfd(fd: number, bytes: number): Uint8Array {
  const n = native();
  try {
    return Uint8Array.from(new Uint8Array(n.mapShared(fd, bytes)));
  } finally {
    n.close(fd);
  }
}

export class ImageWriter {
  private pagesSent = 0;

  constructor(
    private readonly host: SaveHost,
    private readonly domid: number,
    private readonly spec: BuildSpec,
    private readonly sink: ByteSink,
  ) {}

  private async record(type: Parameters<typeof encodeRecord>[0], body: Uint8Array): Promise<void> {
    await this.sink.write(encodeRecord(type, body));
  }

  private async start(): Promise<void> {
    await this.sink.write(encodeHeader());
    await this.record(REC.CONFIG, Buffer.from(JSON.stringify(this.spec), 'utf8'));
    await this.record(REC.DOMAIN, encodeDomain({ memoryBytes: this.spec.memoryMiB * 1048576, vcpus: this.spec.maxVcpus }));
  }

  private async pages(mem: Uint8Array, list: Iterable<number>): Promise<number> {
    let batch: number[] = [];
    let n = 0;
    for (const p of list) {
      batch.push(p);
      if (batch.length === MAX_BATCH_PAGES) {
        await this.record(REC.PAGES, encodePages(mem, batch));
        n += batch.length;
        batch = [];
      }
    }
    if (batch.length) {
      await this.record(REC.PAGES, encodePages(mem, batch));
      n += batch.length;
    }
    this.pagesSent += n;
    return n;
  }

  /** CPU and device state of the paused domain (device models frozen). */
  private async state(): Promise<void> {
    const cpu = await this.host.hc.call<{ bytes: number }>('domctl.kvm_save_state', { domid: this.domid });
    await this.record(REC.CPU, readMemfd(cpu.fds[0]!, cpu.result.bytes));
    const dm = await this.host.dm.save(this.domid);
    await this.record(REC.DEVICES, readMemfd(dm.fd, dm.bytes));
  }

  /** xl save: the domain is paused here and stays paused (the caller resumes or destroys). */
  async save(): Promise<SaveStats> {
    const t0 = Date.now();
    await this.start();
    await this.host.hc.invoke('domctl.pausedomain', { domid: this.domid });
    await this.state();
    const mem = await this.host.memory(this.domid);
    const total = mem.length / PAGE_SIZE;
    await this.pages(mem, range(0, total));
    await this.record(REC.END, new Uint8Array(0));
    const ms = Date.now() - t0;
    return { ramBytes: mem.length, bytesSent: this.sink.written, pagesSent: this.pagesSent, rounds: 0, roundPages: [total], stopCopyMs: ms, totalMs: ms, live: false };
  }

  /** xl migrate's sending side, up to END; the domain is paused at the end. */
  async live(opts: LiveOptions = {}): Promise<SaveStats> {
    const t0 = Date.now();
    const debug = opts.debug ?? (() => {});
    await this.start();
    const mem = await this.host.memory(this.domid);
    const total = mem.length / PAGE_SIZE;
    const roundPages: number[] = [];
    let live = true;
    let note: string | undefined;
    try {
      await this.host.hc.invoke('domctl.kvm_dirty_log', { domid: this.domid, op: 'start' });
    } catch (e) {
      live = false;
      note = `this host's KVM cannot log dirty pages (${(e as Error).message}): stop-and-copy instead`;
      debug(note);
    }
    let stopMs = 0;
    try {
      if (live) {
        await this.host.dm.dmaDirty(this.domid, 'start');
        roundPages.push(await this.pages(mem, range(0, total)));
        debug(`round 0: ${total} pages`);
        const stopBelow = opts.stopBelowPages ?? 256;
        const maxRounds = opts.maxRounds ?? 10;
        for (let round = 1; round <= maxRounds; round++) {
          const dirty = await this.dirty(total);
          roundPages.push(await this.pages(mem, dirty));
          debug(`round ${round}: ${dirty.length} dirty pages`);
          const prev = roundPages[roundPages.length - 2]!;
          if (dirty.length < stopBelow || (round > 2 && dirty.length >= prev)) break;
        }
      }
      const tStop = Date.now();
      await this.host.hc.invoke('domctl.pausedomain', { domid: this.domid });
      // The last pages written before the vCPUs stopped and the device models froze.
      await this.state();
      const last = live ? await this.dirty(total) : range(0, total);
      roundPages.push(await this.pages(mem, last));
      debug(`stop-and-copy: ${roundPages[roundPages.length - 1]} pages`);
      await this.record(REC.END, new Uint8Array(0));
      stopMs = Date.now() - tStop;
    } finally {
      if (live) {
        await this.host.hc.invoke('domctl.kvm_dirty_log', { domid: this.domid, op: 'stop' }).catch(() => {});
        await this.host.dm.dmaDirty(this.domid, 'stop').catch(() => {});
      }
    }
    return { ramBytes: mem.length, bytesSent: this.sink.written, pagesSent: this.pagesSent, rounds: roundPages.length - 1, roundPages, stopCopyMs: stopMs, totalMs: Date.now() - t0, live, note };
  }

  /** Pages written since the last look, by the guest (KVM) or a device model (DMA). */
  private async dirty(total: number): Promise<number[]> {
    const kvm = await this.host.hc.call<{ bytes: number }>('domctl.kvm_dirty_log', { domid: this.domid, op: 'collect' });
    const bits = readMemfd(kvm.fds[0]!, kvm.result.bytes);
    const dma = await this.host.dm.dmaDirty(this.domid, 'collect', total * PAGE_SIZE);
    const dbits = dma ? readMemfd(dma.fd, dma.bytes) : new Uint8Array(0);
    const out: number[] = [];
    for (let byte = 0; byte * 8 < total; byte++) {
      const b = (bits[byte] ?? 0) | (dbits[byte] ?? 0);
      if (b === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (b & (1 << bit) && byte * 8 + bit < total) out.push(byte * 8 + bit);
    }
    return out;
  }
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i < to; i++) yield i;
}
