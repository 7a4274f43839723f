// dom0's handle on the stub domain (stubdom/main.ts): started on the first HVM guest, it hosts
// one device model per HVM guest. Requests carry the guest's fds (RAM, ioreq pages, irq
// doorbell, TAPs, serial pty) as SCM_RIGHTS; the stub domain tells us when a device model ends
// by itself, and that guest alone is shut down as crashed.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../native/index.js';
import { HypercallClient } from '../drivers/hypercall/channel.js';
import type { DmDisk, DmDisplay, DmExit, DmStarted } from '../stubdom/protocol.js';
import type { Logger } from '../common/log.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface DeviceModelFds {
  memory: number;
  ioreq: number;
  irq: number;
  serial: number;
  log: number;
  taps: { devid: number; mac: string; fd: number }[];
}

export class StubdomHost {
  private child: ChildProcess | null = null;
  private client: HypercallClient | null = null;

  constructor(
    private readonly log: Logger,
    private readonly onDmExit: (e: DmExit) => void,
  ) {}

  private ensure(): HypercallClient {
    if (this.client) return this.client;
    const [ours, theirs] = native().seqpacketPair();
    this.child = spawn(process.execPath, [join(here, '..', 'stubdom', 'main.js')], {
      stdio: ['ignore', 'inherit', 'inherit', theirs],
    });
    native().close(theirs);
    const client = new HypercallClient(ours);
    client.onUpcall('dm.exit', (args: DmExit) => this.onDmExit(args));
    client.onClose(() => {
      this.log.error('stub domain went away');
      this.client = null;
    });
    this.child.on('exit', (code, signal) => {
      this.log.warn(`stub domain exited (${signal ?? code})`);
      this.child = null;
      this.client?.close();
      this.client = null;
    });
    this.client = client;
    this.log.info(`stub domain started (pid ${this.child.pid})`);
    return client;
  }

  async start(spec: { domid: number; name: string; vcpus: number; memoryBytes: number; disks: DmDisk[]; firmware?: boolean; display?: DmDisplay; awaitState?: boolean }, f: DeviceModelFds): Promise<DmStarted> {
    const fds: number[] = [];
    const at = (fd: number) => (fd < 0 ? -1 : fds.push(fd) - 1);
    const args = {
      ...spec,
      fds: { memory: at(f.memory), ioreq: at(f.ioreq), irq: at(f.irq), serial: at(f.serial), log: at(f.log) },
      nics: f.taps.map((t) => ({ devid: t.devid, mac: t.mac, tapFd: at(t.fd) })),
    };
    return (await this.ensure().call('start', args, fds)).result as DmStarted;
  }

  async stop(domid: number): Promise<void> {
    if (!this.client) return;
    await this.client.call('stop', { domid }).catch(() => {});
  }

  /** The stub domain's process id while it runs (benchmarks read its CPU time). */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async metrics(domid: number): Promise<unknown> {
    if (!this.client) return null;
    return (await this.client.call('metrics', { domid })).result;
  }

  // ---- save, restore, migration (stubdom/dm-save.ts) ----

  /** Freezes the guest's device models and returns their state (the fd is the caller's). */
  async save(domid: number): Promise<{ fd: number; bytes: number }> {
    if (!this.client) throw new Error('the stub domain is not running');
    const r = await this.client.call<{ bytes: number }>('save', { domid });
    return { fd: r.fds[0]!, bytes: r.result.bytes };
  }

  /** An incoming migration's device state, for a model started with awaitState. */
  async loadState(domid: number, fd: number, bytes: number): Promise<void> {
    if (!this.client) throw new Error('the stub domain is not running');
    await this.client.call('load-state', { domid, bytes }, [fd]);
  }

  /** After a checkpoint: the models take input again. */
  async thaw(domid: number): Promise<void> {
    await this.client?.call('thaw', { domid });
  }

  /** Resolves when a restored model has loaded its state; rejects with why it refused it. */
  async restored(domid: number): Promise<void> {
    if (!this.client) throw new Error('the stub domain is not running');
    await this.client.call('restored', { domid });
  }

  /** Pages the model writes by DMA during a migration: start, collect (a bitmap in a memfd
   * the caller closes), stop. */
  async dmaDirty(domid: number, action: 'start' | 'collect' | 'stop'): Promise<{ fd: number; bytes: number } | null> {
    if (!this.client) throw new Error('the stub domain is not running');
    const r = await this.client.call<{ bytes: number } | null>('dma-dirty', { domid, action });
    return r.result ? { fd: r.fds[0]!, bytes: r.result.bytes } : null;
  }

  /** Fault injection for tests: make a device model end as a crash would. */
  async injectFault(domid: number): Promise<void> {
    if (!this.client) throw new Error('the stub domain is not running');
    await this.client.call('fault', { domid });
  }

  shutdown(): void {
    this.child?.kill('SIGTERM');
  }
}
