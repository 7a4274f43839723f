// An HVM guest's platform in one process: the device model (a PcMachine, firmware: false) runs
// in a worker thread serving the ioreq page for real (futexes, run loop), and the guest OS
// under test runs here on the test's thread with the real vCPU runtime pieces: a Cpu over an
// IoreqVcpuPort, the InterruptController fed by an eventfd the device model writes, and guest
// RAM in a SharedArrayBuffer standing in for the domain's memfd.
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { native, nativeBuildDir, type FdWatcher } from '../../native/index.js';
import { HVM_IOREQ_PAGES, IOREQ_PAGE_OFFSET, PlatformWord } from '../../drivers/hypercall/hvm-platform-page.js';
import { IoreqServer } from '../../stubdom/device-model/ioreq-server.js';
import { IoreqVcpuPort } from '../../drivers/ioreq/ioreq-vcpu.js';
import { nativeFutex } from '../../drivers/ioreq/native-futex.js';
import type { MachineDiskConfig } from '../../stubdom/machine.js';
import { Cpu } from '../../guest/hvm/cpu/io.js';
import { InterruptController } from '../../guest/hvm/cpu/interrupts.js';
import { PhysicalMemory } from '../../guest/hvm/cpu/ram.js';

let bundled: string | null = null;
function workerCode(): string {
  if (bundled) return bundled;
  const entry = fileURLToPath(new URL('./fixtures/machine-worker.ts', import.meta.url));
  const out = buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', write: false, target: 'node20', logLevel: 'silent' });
  bundled = out.outputFiles[0]!.text;
  return bundled;
}

export interface PlatformConfig {
  ramMiB?: number;
  nics?: { devid: number; mac: string }[];
  disks?: MachineDiskConfig[];
  serial?: boolean;
}

type Msg = { type: string; [k: string]: any };

export class TestPlatform {
  readonly ramBuf: SharedArrayBuffer;
  readonly pages: SharedArrayBuffer;
  readonly words: Int32Array;
  readonly cpu: Cpu;
  readonly intc: InterruptController;
  readonly ram: PhysicalMemory;
  readonly messages: Msg[] = [];
  readonly log: string[] = [];
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly irqFd: number;
  private readonly watcher: FdWatcher;
  private readonly listeners = new Set<(m: Msg) => void>();
  private nextId = 1;
  private stopped = false;
  workerError: string | null = null;

  private constructor(cfg: PlatformConfig) {
    this.ramBuf = new SharedArrayBuffer((cfg.ramMiB ?? 64) * 1024 * 1024);
    this.pages = new SharedArrayBuffer(HVM_IOREQ_PAGES * 4096);
    this.words = new Int32Array(this.pages);
    this.irqFd = native().eventfdCreate(0);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.port.on('message', (m: Msg) => {
      this.messages.push(m);
      for (const l of [...this.listeners]) l(m);
    });
    this.worker = new Worker(workerCode(), {
      eval: true,
      workerData: { addon: join(nativeBuildDir(), 'xenode.node'), ram: this.ramBuf, pages: this.pages, irqFd: this.irqFd, port: port2, nics: cfg.nics ?? [], disks: cfg.disks ?? [], serial: cfg.serial ?? true },
      transferList: [port2],
    });
    this.worker.on('error', (e) => (this.workerError = String(e.stack ?? e)));
    const port = new IoreqVcpuPort(this.pages, IOREQ_PAGE_OFFSET, 0, { view: this.words, index: PlatformWord.DOORBELL }, nativeFutex());
    this.cpu = new Cpu(port, { timeoutMs: 5000 });
    this.intc = new InterruptController(this.words, PlatformWord.IRQ_LEVEL, PlatformWord.IRQ_RAISES, (m) => this.log.push(m));
    this.ram = new PhysicalMemory(this.ramBuf);
    this.watcher = native().watchFd(this.irqFd, () => {
      if (native().eventfdRead(this.irqFd) > 0) this.intc.onEvent();
    });
    this.watcher.start(native().READABLE);
  }

  static async start(cfg: PlatformConfig = {}): Promise<TestPlatform> {
    const p = new TestPlatform(cfg);
    await p.waitFor((m) => m.type === 'ready', 20_000);
    return p;
  }

  /** Resolves with the first message (already received or future) matching `pred`. */
  waitFor(pred: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
    const have = this.messages.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timed out waiting for a device-model message${this.workerError ? ` (worker: ${this.workerError})` : ''}`));
      }, timeoutMs);
      const l = (m: Msg) => {
        if (!pred(m)) return;
        clearTimeout(timer);
        this.listeners.delete(l);
        resolve(m);
      };
      this.listeners.add(l);
    });
  }

  /** Waits until `cond()` holds, letting the event loop (interrupts) run. */
  async until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  async request(type: string, extra: Record<string, unknown> = {}): Promise<Msg> {
    const id = this.nextId++;
    this.port.postMessage({ type, id, ...extra });
    return this.waitFor((m) => m.type === (type === 'rx' ? 'rx-done' : type) && m.id === id);
  }

  post(msg: Record<string, unknown>): void {
    this.port.postMessage(msg);
  }

  metrics(): Promise<Msg> {
    return this.request('metrics');
  }

  pci(): Promise<Msg> {
    return this.request('pci');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watcher.close();
    IoreqServer.requestStop({ view: this.words, index: PlatformWord.STOP }, { view: this.words, index: PlatformWord.DOORBELL }, nativeFutex());
    await Promise.race([this.waitFor((m) => m.type === 'stopped' || m.type === 'error', 5000).catch(() => null)]);
    await this.worker.terminate();
    this.port.close();
    native().close(this.irqFd);
  }
}
