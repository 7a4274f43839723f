// A stand-alone HVM-on-KVM machine: a Linux bzImage booted directly (boot-linux.ts) on the
// KVM engine (vm.ts), its serial port the stub domain's 16550A in a device-model thread
// (dm-worker.ts) whose far side is a pty. The toolstack's `type='hvm'` path does the same
// with the stub domain's full device set; this runner is what the engine's tests and
// benchmarks use, and a tool:
//
//   node dist/hypervisor/kvm/run-vm.js --kernel vmlinuz --initrd initrd.img \
//        --cmdline 'console=ttyS0' [--memory 256] [--vcpus 1]
//
// The console is this terminal (raw); Ctrl-] ends the VM. Exit counts are printed at the end.
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { native, nativeBuildDir, type FdWatcher } from '../../native/index.js';
import { bootLinux, type LinuxBootInfo, type LinuxBootSpec } from './boot-linux.js';
import type { DmWorkerData } from './dm-worker.js';
import { DM_DOORBELL, DM_STOP } from './kvm-abi.js';
import { KvmVm, type KvmExitStats, type KvmVmEvent } from './vm.js';
import { workerEntry } from './worker-entry.js';

export interface LinuxVmOptions extends LinuxBootSpec {
  name?: string;
  memoryMiB?: number;
  vcpus?: number;
  /** Forward every port / MMIO exit to the device model, not just the UART's ports (to
   * measure the full path, or to let a flooding guest reach it). */
  forwardAll?: boolean;
  /** Bytes of console output kept in `output` (the oldest are dropped). Default 4 MiB. */
  keepOutput?: number;
  /** Runs after the kernel is loaded and vCPU 0 set up, before any vCPU runs (tests adjust
   * registers or memory here). */
  beforeStart?: (vm: KvmVm) => void;
}

export interface DmMetrics {
  server: { served: number; wakes: number; sleeps: number; faults: number };
  dispatch: { pio: number; mmio: number; rep: number; refused: number };
  uart: { exits: number; txBytes: number; rxBytes: number; overruns: number; interrupts: number };
  serial: { bytesOut: number; bytesIn: number; outDropped: number };
}

const UART_BASE = 0x3f8;
const UART_IRQ = 4;

export class LinuxVm extends EventEmitter {
  /** All console output so far (bounded by keepOutput). */
  output = '';
  /** First time the console printed anything, and when each waitFor() pattern first matched. */
  readonly startedAt = performance.now();
  firstOutputAt = 0;
  dmMetrics: DmMetrics | null = null;
  private readonly keep: number;
  private readonly decoder = new TextDecoder();
  private watcher: FdWatcher | null = null;
  private dmExited: Promise<void> = Promise.resolve();
  private destroyed = false;
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly vm: KvmVm,
    readonly boot: LinuxBootInfo,
    private readonly memfd: number,
    private readonly pageFd: number,
    private readonly pty: { master: number; slave: number; path: string },
    private readonly words: Int32Array,
    private dm: Worker | null,
    keep: number,
  ) {
    super();
    this.keep = keep;
  }

  /** Create, load and start. Throws (with everything released) if any step fails. */
  static async start(opts: LinuxVmOptions): Promise<LinuxVm> {
    const n = native();
    const memoryBytes = (opts.memoryMiB ?? 256) * 2 ** 20;
    const vcpus = opts.vcpus ?? 1;
    const memfd = n.memfdCreate(`hvm-${opts.name ?? 'guest'}`, memoryBytes);
    const pageFd = n.memfdCreate(`hvm-${opts.name ?? 'guest'}-ioreq`, 4096);
    const page = n.mapShared(pageFd, 4096);
    const words = new Int32Array(new SharedArrayBuffer(8));
    let vm: KvmVm | undefined;
    let pty: { master: number; slave: number; path: string } | undefined;
    let dm: Worker | null = null;
    try {
      vm = KvmVm.create({
        name: opts.name,
        memfd,
        memoryBytes,
        vcpus,
        ioreq: {
          page,
          notify: { futex: words.buffer as SharedArrayBuffer, index: DM_DOORBELL },
          stringIo: 'bounce',
          pio: opts.forwardAll ? undefined : [[UART_BASE, UART_BASE + 7]],
          mmio: opts.forwardAll ? undefined : [],
        },
      });
      const boot = bootLinux(vm, opts);
      opts.beforeStart?.(vm);
      pty = n.openpty(true);
      const data: DmWorkerData = {
        addonPath: join(nativeBuildDir(), 'xenode.node'),
        vm: vm.vm,
        memory: vm.memory,
        ram: vm.ram.filter((r) => r.gpa < vm!.memory.byteLength).map((r) => ({ gpa: r.gpa, size: r.size, offset: r.memOffset })),
        ioreqPage: page,
        vcpus,
        words: words.buffer as SharedArrayBuffer,
        consoleFd: pty.master,
        uartBase: UART_BASE,
        uartIrq: UART_IRQ,
      };
      const entry = await workerEntry(import.meta.url, 'dm-worker');
      dm = 'url' in entry ? new Worker(entry.url, { workerData: data }) : new Worker(entry.code, { eval: true, workerData: data });
      const self = new LinuxVm(vm, boot, memfd, pageFd, pty, words, dm, opts.keepOutput ?? 4 << 20);
      self.attach();
      await vm.start();
      return self;
    } catch (e) {
      if (dm) {
        Atomics.store(words, DM_STOP, 1);
        Atomics.add(words, DM_DOORBELL, 1);
        n.futexWake(words, DM_DOORBELL, 1);
        await dm.terminate();
      }
      if (vm) await vm.destroy();
      if (pty) {
        n.close(pty.master);
        n.close(pty.slave);
      }
      n.close(pageFd);
      n.close(memfd);
      throw e;
    }
  }

  private attach(): void {
    const n = native();
    const buf = new Uint8Array(65536);
    n.setNonblocking(this.pty.slave, true);
    this.watcher = n.watchFd(this.pty.slave, () => {
      for (;;) {
        let got: number | null;
        try {
          got = n.read(this.pty.slave, buf, 0, buf.length);
        } catch {
          got = null; // EIO once the slave side is gone
        }
        if (!got) break;
        const text = this.decoder.decode(buf.subarray(0, got), { stream: true });
        if (!this.firstOutputAt) this.firstOutputAt = performance.now();
        this.output += text;
        if (this.output.length > this.keep) this.output = this.output.slice(this.output.length - this.keep);
        this.emit('output', text, buf.subarray(0, got));
        for (const w of [...this.waiters]) w();
      }
    });
    this.watcher.start(n.READABLE);
    this.dmExited = new Promise<void>((resolve) => {
      this.dm!.on('message', (m: { type: string } & DmMetrics) => {
        if (m.type === 'metrics') this.dmMetrics = { server: m.server, dispatch: m.dispatch, uart: m.uart, serial: m.serial };
      });
      // A device model that dies takes its guest with it (as the stub domain reports it).
      this.dm!.on('error', (e) => this.vm.crash(`device model failed: ${e.message}`));
      this.dm!.on('exit', () => {
        this.dm = null;
        resolve();
      });
    });
    this.vm.on('event', (e: KvmVmEvent) => {
      this.emit('event', e);
      for (const w of [...this.waiters]) w();
    });
  }

  /** The pty the serial console is on (what `xl console` would attach to; the device model
   * holds the master, as the stub domain does). */
  get consolePath(): string {
    return this.pty.path;
  }

  /** Type at the console. */
  write(text: string | Uint8Array): void {
    const b = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    let off = 0;
    while (off < b.length) {
      const w = native().write(this.pty.slave, b, off, b.length - off);
      if (w === null) break; // the guest is not reading: drop, as a real terminal would block
      off += w;
    }
  }

  /** Resolves with the output once `pattern` matches it (searching from `from`); rejects on
   * timeout, or when the VM crashes / stops first. */
  waitFor(pattern: RegExp | string, timeoutMs: number, from = 0): Promise<string> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.output.slice(from));
        if (m) {
          done();
          resolve(this.output);
          return;
        }
        if (this.vm.state === 'crashed' || this.vm.state === 'shutdown' || this.vm.state === 'destroyed') {
          done();
          reject(new Error(`VM ${this.vm.state} while waiting for ${re}; console tail:\n${this.output.slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; console tail:\n${this.output.slice(-2000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  exitStats(): KvmExitStats {
    return this.vm.exitStats();
  }

  /** Stop everything and release every fd, thread and mapping. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const n = native();
    await this.vm.destroy();
    Atomics.store(this.words, DM_STOP, 1);
    Atomics.add(this.words, DM_DOORBELL, 1);
    n.futexWake(this.words, DM_DOORBELL, 1);
    const t = setTimeout(() => void this.dm?.terminate(), 5000);
    await this.dmExited;
    clearTimeout(t);
    this.watcher?.close();
    this.watcher = null;
    n.close(this.pty.master);
    n.close(this.pty.slave);
    n.close(this.pageFd);
    n.close(this.memfd);
    for (const w of [...this.waiters]) w();
  }
}

// ---- command line ----

function parseArgs(argv: string[]): LinuxVmOptions {
  const o: Partial<LinuxVmOptions> & { cmdline: string } = { cmdline: 'console=ttyS0' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--kernel') o.kernel = v();
    else if (a === '--initrd' || a === '--ramdisk') o.initrd = v();
    else if (a === '--cmdline' || a === '--extra') o.cmdline = v();
    else if (a === '--memory') o.memoryMiB = Number(v());
    else if (a === '--vcpus') o.vcpus = Number(v());
    else if (a === '--forward-all') o.forwardAll = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.kernel) throw new Error('--kernel is required');
  return o as LinuxVmOptions;
}

async function main(): Promise<void> {
  let opts: LinuxVmOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`run-vm: ${(e as Error).message}\nusage: run-vm --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] [--memory MiB] [--vcpus N]\n`);
    process.exit(2);
  }
  const vm = await LinuxVm.start(opts);
  const n = native();
  vm.on('output', (_t: string, bytes: Uint8Array) => process.stdout.write(bytes));
  const isTty = process.stdin.isTTY;
  const saved = isTty ? n.makeRaw(0) : null;
  let ending = false;
  const end = async (why: string) => {
    if (ending) return;
    ending = true;
    const s = vm.exitStats();
    await vm.destroy();
    if (saved) n.restoreTermios(0, saved);
    process.stderr.write(`\r\nrun-vm: ${why}; exits: io ${s.io} mmio ${s.mmio} null-io ${s.nullIo} ioreqs ${s.ioreqs} internal ${s.internal}\n`);
    process.exit(0);
  };
  vm.on('event', (e: KvmVmEvent) => {
    if (e.type === 'debug') process.stderr.write(`[debug] ${e.text}\r\n`);
    else void end(`guest ${e.type}: ${'detail' in e ? e.detail : ''}`);
  });
  process.stdin.on('data', (d: Buffer) => {
    if (d.includes(0x1d)) return void end('Ctrl-]');
    vm.write(d);
  });
  process.on('SIGTERM', () => void end('SIGTERM'));
}

// Run as a command only when this very file is the entry point (not when bundled into another).
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && /run-vm\.[jt]s$/.test(self) && self === process.argv[1]) void main();
