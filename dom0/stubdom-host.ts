// dom0's handle on the stub domain (stubdom/main.ts): started on the first HVM guest, it hosts
// one device model per HVM guest. Requests carry the guest's fds (RAM, ioreq pages, irq
// doorbell, TAPs, serial pty) as SCM_RIGHTS; the stub domain tells us when a device model ends
// by itself, and that guest alone is shut down as crashed.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../native/index.js';
import { HypercallClient } from '../drivers/hypercall/channel.js';
import type { DmControl, DmControlResult, DmDisk, DmDisplay, DmExit, DmStarted } from '../stubdom/protocol.js';
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

  async start(spec: { domid: number; name: string; vcpus: number; memoryBytes: number; disks: DmDisk[]; firmware?: boolean; display?: DmDisplay }, f: DeviceModelFds): Promise<DmStarted> {
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

  /** xl trigger / cd-insert / cd-eject: a control for a guest's running device model (`fd`:
   * the new disc's image, sent as SCM_RIGHTS). */
  async control(domid: number, control: DmControl, fd?: number): Promise<DmControlResult> {
    if (!this.client) throw Object.assign(new Error('the stub domain is not running'), { code: 'ESRCH' });
    return (await this.client.call('control', { domid, control }, fd === undefined ? [] : [fd])).result as DmControlResult;
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
