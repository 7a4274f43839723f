// An HVM domain as a real KVM virtual machine: guest RAM is the domain's memfd (so dom0 and
// the device model see the same frames), one worker thread per vCPU runs KVM_RUN, and port
// I/O / MMIO exits become ioreqs in the shared ioreq page the device model serves.
// See docs/kvm.md for the whole picture; vcpu-worker.ts for the exit path.
//
//   const vm = KvmVm.create({ memfd, memoryBytes, vcpus: 2, ioreq: {...} });
//   bootLinux(vm, { kernel, initrd, cmdline });        // hypervisor/kvm/boot-linux.ts
//   await vm.start();
//   vm.on('event', (e) => ...);                       // crash | reboot | poweroff | debug
//   await vm.pause(); vm.unpause(); vm.vcpuInfo(); await vm.destroy();
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { IOREQ_SIZE } from '../../drivers/wire/ioreq.js';
import { native, nativeBuildDir } from '../../native/index.js';
import {
  CMD_PAUSE,
  CMD_RUN,
  CMD_STOP,
  CTL_CMD,
  CTL_INTERNAL,
  CTL_IOREQS,
  CTL_STATE,
  CTL_WORDS,
  ST_IOREQ,
  ST_PAUSED,
  ST_STOPPED,
} from './kvm-abi.js';
import { defaultCpuidClear, kvmAvailable } from './kvm.js';
import { workerEntry } from './worker-entry.js';
import { MIRROR_WORDS, syncIrqLines } from './irq-mirror.js';
import type { VcpuMessage, VcpuWorkerData } from './vcpu-worker.js';
import type { KvmMachineState } from '../../common/kvm-state-codec.js';

// ---- guest-physical memory layout ----

/** RAM stops here below 4 GiB; [3 GiB, 4 GiB) is the PCI/IOAPIC/LAPIC hole. */
export const LOW_MEM_TOP = 0xc000_0000;
export const HIGH_MEM_BASE = 0x1_0000_0000;
/** A reserved guest page the engine uses to carry string I/O (rep ins/outs) to the device
 * model in one ioreq (data_is_ptr). Inside the e820 hole below 1 MiB. */
export const BOUNCE_GPA = 0x9e000;

export interface RamRegion {
  /** Guest-physical start. */
  gpa: number;
  size: number;
  /** Offset in the domain's memfd. */
  memOffset: number;
}

/** RAM below 3 GiB, the rest above 4 GiB. Frame n of the memfd is guest frame n below 3 GiB. */
export function guestRamRegions(memoryBytes: number): RamRegion[] {
  if (memoryBytes <= LOW_MEM_TOP) return [{ gpa: 0, size: memoryBytes, memOffset: 0 }];
  return [
    { gpa: 0, size: LOW_MEM_TOP, memOffset: 0 },
    { gpa: HIGH_MEM_BASE, size: memoryBytes - LOW_MEM_TOP, memOffset: LOW_MEM_TOP },
  ];
}

// ---- configuration ----

export interface IoreqServerPort {
  /** The shared ioreq page (struct shared_iopage: one 32-byte ioreq_t per vCPU). Map it from a
   * memfd the device model maps too when the device model lives in another process. */
  page: SharedArrayBuffer;
  pageOffset?: number;
  /** How a vCPU rings the device model after publishing IOREQ_READY: an eventfd per vCPU
   * (its event channel doorbell; Xen's vp_eport), or one futex word every vCPU bumps. */
  notify: { eventfds: number[]; ports?: number[] } | { futex: SharedArrayBuffer; index: number } | null;
  /** Does the device model accept data_is_ptr string PIO (one ioreq per rep ins/outs)? */
  stringIo?: 'split' | 'bounce';
  /** Ports the device model serves, [first, last] inclusive; others get the null handler
   * (reads all ones, writes dropped) without leaving the vCPU thread. Omit = all ports. */
  pio?: Array<[number, number]>;
  /** MMIO ranges the device model serves, [start, end). Omit = all MMIO. */
  mmio?: Array<[number, number]>;
}

export interface KvmVmConfig {
  name?: string;
  memfd: number;
  memoryBytes: number;
  vcpus: number;
  ioreq: IoreqServerPort;
  /** Emulate in the engine what Xen emulates in the hypervisor: CMOS RTC (0x70/0x71), POST
   * port 0x80, reset via 0x92 / keyboard controller 0xFE, 0xE9 debug console. Default true. */
  internalDevices?: boolean;
  /** CPUID feature bits to hide, (leaf, index, reg 0-3 = eax..edx, bits); default: what this
   * host's KVM needs hidden (defaultCpuidClear()). */
  cpuidClear?: Array<[number, number, number, number]>;
  /** A device model in another process drives the interrupt lines through the platform page
   * (the ioreq memfd's IRQ_LEVEL / IRQ_EDGES words): mirror them into KVM after every ioreq and
   * whenever `syncIrqLines()` is called (irq-mirror.ts). */
  irqMirror?: { platform: SharedArrayBuffer };
}

export type KvmVmEvent =
  | { type: 'crash'; vcpu: number; detail: string }
  | { type: 'reboot'; vcpu: number; detail: string }
  | { type: 'poweroff'; vcpu: number; detail: string }
  | { type: 'debug'; vcpu: number; text: string };

export type KvmVmState = 'created' | 'running' | 'paused' | 'crashed' | 'shutdown' | 'destroyed';

export interface VcpuInfo {
  id: number;
  /** `xl vcpu-list` letters: r running, b blocked (halted in the guest, or waiting for the
   * device model), p paused, - stopped. */
  state: 'r' | 'b' | 'p' | '-';
  /** Host CPU it last ran on (-1 unknown). */
  cpu: number;
  cpuTimeSec: number;
  tid: number;
}

export interface KvmExitStats {
  /** Exits handed to user space: port I/O, MMIO. */
  io: number;
  mmio: number;
  /** Exits answered in C++ (unclaimed ports / MMIO). */
  nullIo: number;
  nullMmio: number;
  /** Requests sent to the device model. */
  ioreqs: number;
  /** Exits answered by the engine's internal devices (RTC, 0x80, 0xE9, ...). */
  internal: number;
  interrupted: number;
  runs: number;
}

const INTERNAL_PORTS = [0x60, 0x64, 0x70, 0x71, 0x80, 0x92, 0xe9];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class KvmVm extends EventEmitter {
  readonly name: string;
  readonly vm: number;
  readonly vcpuHandles: number[] = [];
  readonly memoryBytes: number;
  readonly ram: RamRegion[];
  /** Guest RAM as this process sees it (the memfd mapped MAP_SHARED). Frame n below 3 GiB is
   * bytes n*4096.. of this buffer. */
  readonly memory: SharedArrayBuffer;
  private readonly ctl: Int32Array;
  private readonly workers: Array<Worker | null> = [];
  private readonly exited: Array<Promise<void>> = [];
  private stateValue: KvmVmState = 'created';
  private finalStats: KvmExitStats | null = null;
  private finalInfo: VcpuInfo[] | null = null;
  private stoppedCpuNs: number[] = [];
  private readonly mirrorState = new Int32Array(new SharedArrayBuffer(MIRROR_WORDS * 4));
  private readonly mirrorPlatform: Int32Array | null;

  private constructor(private readonly cfg: KvmVmConfig) {
    super();
    const avail = kvmAvailable();
    if (!avail.ok) throw new Error(`HVM on KVM is not possible here: ${avail.reason}`);
    if (!Number.isInteger(cfg.vcpus) || cfg.vcpus < 1) throw new RangeError('vcpus must be a positive integer');
    if (avail.maxVcpus && cfg.vcpus > avail.maxVcpus) throw new RangeError(`vcpus=${cfg.vcpus} exceeds KVM's limit of ${avail.maxVcpus}`);
    const pageOff = cfg.ioreq.pageOffset ?? 0;
    if (pageOff % 4 !== 0 || pageOff + cfg.vcpus * IOREQ_SIZE > cfg.ioreq.page.byteLength)
      throw new RangeError('the ioreq page cannot hold one slot per vCPU');
    if (cfg.memoryBytes % 4096 !== 0 || cfg.memoryBytes < 16 << 20) throw new RangeError('memory must be page-aligned and at least 16 MiB');
    this.name = cfg.name ?? 'hvm';
    this.memoryBytes = cfg.memoryBytes;
    const k = native().kvm;
    this.vm = k.createVm(cfg.memfd, cfg.memoryBytes);
    try {
      this.ram = guestRamRegions(cfg.memoryBytes);
      this.ram.forEach((r, slot) => k.mapMemory(this.vm, slot, r.gpa, r.memOffset, r.size));
      this.memory = native().mapShared(cfg.memfd, Math.min(cfg.memoryBytes, LOW_MEM_TOP));
      this.applyFilters();
      const clear = Uint32Array.from((cfg.cpuidClear ?? defaultCpuidClear()).flat());
      for (let i = 0; i < cfg.vcpus; i++) this.vcpuHandles.push(k.createVcpu(this.vm, i, cfg.vcpus, clear));
    } catch (e) {
      for (const h of this.vcpuHandles) k.destroyVcpu(h);
      k.destroyVm(this.vm);
      throw e;
    }
    this.ctl = new Int32Array(new SharedArrayBuffer(cfg.vcpus * CTL_WORDS * 4));
    this.mirrorPlatform = cfg.irqMirror ? new Int32Array(cfg.irqMirror.platform) : null;
    this.stoppedCpuNs = new Array(cfg.vcpus).fill(-1);
  }

  static create(cfg: KvmVmConfig): KvmVm {
    return new KvmVm(cfg);
  }

  get state(): KvmVmState {
    return this.stateValue;
  }

  get vcpus(): number {
    return this.cfg.vcpus;
  }

  private applyFilters(): void {
    const k = native().kvm;
    const internal = this.cfg.internalDevices ?? true;
    if (this.cfg.ioreq.pio) {
      const bits = new Uint8Array(8192);
      const set = (p: number) => (bits[p >> 3]! |= 1 << (p & 7));
      for (const [a, b] of this.cfg.ioreq.pio) for (let p = a; p <= b && p < 65536; p++) set(p);
      if (internal) INTERNAL_PORTS.forEach(set);
      k.setPioForward(this.vm, bits);
    }
    if (this.cfg.ioreq.mmio) k.setMmioForward(this.vm, Float64Array.from(this.cfg.ioreq.mmio.flat()));
  }

  /** Spawn the vCPU threads. vCPU 0's registers must already hold the boot state
   * (bootLinux()); the others wait in the kernel for INIT/SIPI from the guest. */
  async start(): Promise<void> {
    if (this.stateValue !== 'created') throw new Error(`cannot start a VM that is ${this.stateValue}`);
    const entry = await workerEntry(import.meta.url, 'vcpu-worker');
    const addonPath = join(nativeBuildDir(), 'xenode.node');
    const io = this.cfg.ioreq;
    const bounce = io.stringIo === 'bounce';
    for (let i = 0; i < this.cfg.vcpus; i++) {
      let notify: VcpuWorkerData['notify'] = null;
      let vpEport = 0;
      if (io.notify && 'eventfds' in io.notify) {
        notify = { eventfd: io.notify.eventfds[i] ?? io.notify.eventfds[0]! };
        vpEport = io.notify.ports?.[i] ?? 0;
      } else if (io.notify) notify = { futex: io.notify.futex, index: io.notify.index };
      const data: VcpuWorkerData = {
        addonPath,
        vcpu: this.vcpuHandles[i]!,
        id: i,
        ctl: this.ctl.buffer as SharedArrayBuffer,
        ctlBase: i * CTL_WORDS,
        ioreqPage: io.page,
        ioreqPageOffset: io.pageOffset ?? 0,
        notify,
        vpEport,
        stringIo: bounce ? 'bounce' : 'split',
        bounce: bounce ? { page: native().mapShared(this.cfg.memfd, 4096, BOUNCE_GPA), gpa: BOUNCE_GPA } : null,
        internalDevices: this.cfg.internalDevices ?? true,
        irqMirror: this.cfg.irqMirror
          ? { vm: this.vm, platform: this.cfg.irqMirror.platform, state: this.mirrorState.buffer as SharedArrayBuffer }
          : null,
      };
      const w = 'url' in entry ? new Worker(entry.url, { workerData: data }) : new Worker(entry.code, { eval: true, workerData: data });
      this.workers.push(w);
      this.exited.push(
        new Promise<void>((resolve) => {
          w.on('message', (m: VcpuMessage) => this.onWorkerMessage(m));
          w.on('error', (e) => this.onVcpuExit(i, 'crash', `vCPU thread failed: ${e.message}`));
          w.on('exit', () => {
            this.workers[i] = null;
            resolve();
          });
        }),
      );
    }
    this.stateValue = 'running';
  }

  private onWorkerMessage(m: VcpuMessage): void {
    if (m.type === 'debug') this.emit('event', { type: 'debug', vcpu: m.id, text: m.text } satisfies KvmVmEvent);
    else if (m.type === 'exit') this.onVcpuExit(m.id, m.why, m.detail);
  }

  private onVcpuExit(id: number, why: 'stopped' | 'crash' | 'reset' | 'poweroff', detail: string): void {
    try {
      this.stoppedCpuNs[id] = native().kvm.vcpuStats(this.vcpuHandles[id]!).cpuNs;
    } catch {
      /* destroyed already */
    }
    if (why === 'stopped') return;
    if (this.stateValue === 'crashed' || this.stateValue === 'shutdown' || this.stateValue === 'destroyed') return;
    // One vCPU's fate is the domain's: stop the others where they are (they stay inspectable
    // until destroy, like a crashed Xen domain kept for on_crash=preserve).
    this.stateValue = why === 'crash' ? 'crashed' : 'shutdown';
    this.stopVcpus();
    const type = why === 'crash' ? 'crash' : why === 'reset' ? 'reboot' : 'poweroff';
    this.emit('event', { type, vcpu: id, detail } satisfies KvmVmEvent);
  }

  /** The domain failed outside the vCPUs (its device model died, say): stop the vCPUs and
   * report a crash, as a vCPU fault would. */
  crash(detail: string): void {
    if (this.stateValue !== 'running' && this.stateValue !== 'paused') return;
    this.stateValue = 'crashed';
    this.stopVcpus();
    this.emit('event', { type: 'crash', vcpu: -1, detail } satisfies KvmVmEvent);
  }

  private stopVcpus(): void {
    const k = native().kvm;
    const io = this.cfg.ioreq;
    const page32 = new Int32Array(io.page);
    for (let i = 0; i < this.cfg.vcpus; i++) {
      Atomics.store(this.ctl, i * CTL_WORDS + CTL_CMD, CMD_STOP);
      Atomics.notify(this.ctl, i * CTL_WORDS + CTL_CMD);
      native().futexWake(page32, ((io.pageOffset ?? 0) + i * IOREQ_SIZE + 28) >> 2, 8);
      k.kick(this.vcpuHandles[i]!);
    }
  }

  /** Stop every vCPU at a safe point: between two KVM_RUNs, or blocked on an ioreq (it will
   * not enter the guest again until unpaused). Resolves when all are there. */
  async pause(timeoutMs = 5000): Promise<void> {
    if (this.stateValue !== 'running') {
      if (this.stateValue === 'paused') return;
      throw new Error(`cannot pause a VM that is ${this.stateValue}`);
    }
    const k = native().kvm;
    for (let i = 0; i < this.cfg.vcpus; i++) {
      Atomics.store(this.ctl, i * CTL_WORDS + CTL_CMD, CMD_PAUSE);
      k.kick(this.vcpuHandles[i]!);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let all = true;
      for (let i = 0; i < this.cfg.vcpus; i++) {
        const s = Atomics.load(this.ctl, i * CTL_WORDS + CTL_STATE);
        if (s !== ST_PAUSED && s !== ST_IOREQ && s !== ST_STOPPED) all = false;
      }
      if (all) break;
      if (Date.now() > deadline) throw new Error(`pause: vCPUs did not stop within ${timeoutMs} ms`);
      await sleep(1);
    }
    this.stateValue = 'paused';
  }

  unpause(): void {
    if (this.stateValue !== 'paused') throw new Error(`cannot unpause a VM that is ${this.stateValue}`);
    for (let i = 0; i < this.cfg.vcpus; i++) {
      Atomics.store(this.ctl, i * CTL_WORDS + CTL_CMD, CMD_RUN);
      Atomics.notify(this.ctl, i * CTL_WORDS + CTL_CMD);
    }
    this.stateValue = 'running';
  }

  /** Stop the vCPU threads (wherever they are: in the guest, halted, waiting for the device
   * model), then release the vCPUs and the VM. The memfd stays the caller's. Idempotent. */
  async destroy(timeoutMs = 10_000): Promise<void> {
    if (this.stateValue === 'destroyed') return;
    if (this.stateValue !== 'created') {
      this.finalStats = this.exitStats();
      this.finalInfo = this.vcpuInfo();
    }
    this.stopVcpus();
    const all = Promise.all(this.exited);
    const deadline = Date.now() + timeoutMs;
    let done = false;
    void all.then(() => (done = true));
    while (!done) {
      if (Date.now() > deadline) {
        // A worker that ignores its kicks (should not happen): terminate what can be.
        for (const w of this.workers) void w?.terminate();
        break;
      }
      // Kicks are latched, but re-kick in case a worker raced its way back into KVM_RUN.
      for (let i = 0; i < this.cfg.vcpus; i++) native().kvm.kick(this.vcpuHandles[i]!);
      await Promise.race([all, sleep(50)]);
    }
    const k = native().kvm;
    for (const h of this.vcpuHandles) {
      try {
        k.destroyVcpu(h);
      } catch {
        /* still in run() after a failed terminate: leaked rather than freed under it */
      }
    }
    k.destroyVm(this.vm);
    this.stateValue = 'destroyed';
  }

  /** Everything the kernel holds for this VM (irqchip, PIT, clock, each vCPU's registers,
   * FPU, MSRs, LAPIC, events), read while it is paused or not yet started. Each vCPU has
   * finished its last exit first (vcpu-worker.ts, owesCompletion), so the registers are the
   * guest's and no I/O instruction is half done. */
  async saveState(timeoutMs = 5000): Promise<KvmMachineState> {
    if (this.stateValue !== 'paused' && this.stateValue !== 'created') throw new Error(`cannot save a VM that is ${this.stateValue}`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let settled = true;
      for (let i = 0; i < this.cfg.vcpus && this.stateValue === 'paused'; i++) {
        const s = Atomics.load(this.ctl, i * CTL_WORDS + CTL_STATE);
        if (s !== ST_PAUSED && s !== ST_STOPPED) settled = false;
      }
      if (settled) break;
      // A vCPU still waits for the device model's answer (it keeps serving) or is finishing
      // its last instruction.
      if (Date.now() > deadline) throw new Error(`save: vCPUs did not come to rest within ${timeoutMs} ms (the device model does not answer?)`);
      await sleep(1);
    }
    const k = native().kvm;
    return { vm: k.saveVm(this.vm), vcpus: this.vcpuHandles.map((h) => k.saveVcpu(h)) };
  }

  /** A saved state onto a VM that has not started (restore): the vCPUs then start where the
   * saved ones stopped. `state` must have been checked (decodeKvmState). Returns the number of
   * MSRs this host's KVM would not take back (reported, not fatal; the TSC is never skipped). */
  loadState(state: KvmMachineState): number {
    if (this.stateValue !== 'created') throw new Error(`cannot load state into a VM that is ${this.stateValue}`);
    if (state.vcpus.length !== this.cfg.vcpus) throw new Error(`state for ${state.vcpus.length} vCPUs, this VM has ${this.cfg.vcpus}`);
    const k = native().kvm;
    let skipped = 0;
    this.vcpuHandles.forEach((h, i) => (skipped += k.loadVcpu(h, state.vcpus[i]!).msrsSkipped));
    // The VM-wide chips after the LAPICs (an IOAPIC route names LAPIC ids), as QEMU orders it.
    k.loadVm(this.vm, state.vm);
    return skipped;
  }

  /** Dirty logging on (or off) for every RAM slot: KVM records each page the guest writes. */
  setDirtyLogging(on: boolean): void {
    const k = native().kvm;
    this.ram.forEach((r, slot) => k.setDirtyLogging(this.vm, slot, r.gpa, r.memOffset, r.size, on));
  }

  /** The pages the guest wrote since the last call (or since logging started), as memfd page
   * numbers, set bits of `into` (one bit per page of the domain's memory). */
  collectDirtyPages(into: Uint8Array): void {
    const k = native().kvm;
    this.ram.forEach((r, slot) => {
      const pages = r.size / 4096;
      const bm = new Uint8Array(Math.ceil(pages / 64) * 8);
      k.getDirtyLog(this.vm, slot, bm);
      const base = r.memOffset / 4096;
      if (base % 8 === 0) {
        // Slot starts on a byte of `into`: OR whole bytes.
        const b0 = base / 8;
        const n = Math.ceil(pages / 8);
        for (let i = 0; i < n; i++) into[b0 + i]! |= bm[i]!;
      } else {
        for (let p = 0; p < pages; p++) if (bm[p >> 3]! & (1 << (p & 7))) into[(base + p) >> 3]! |= 1 << ((base + p) & 7);
      }
    });
  }

  /** Mirror the device model's interrupt words into KVM now (its irq event channel fired).
   * Returns the number of line changes made. */
  syncIrqLines(): number {
    if (!this.mirrorPlatform || this.stateValue === 'destroyed') return 0;
    return syncIrqLines(this.mirrorPlatform, this.mirrorState, (gsi, level) => {
      try {
        native().kvm.irqLine(this.vm, gsi, level);
      } catch {
        /* being destroyed */
      }
    });
  }

  irqLine(irq: number, level: 0 | 1): void {
    native().kvm.irqLine(this.vm, irq, level);
  }

  /** A device model in another process raises `gsi` by writing `eventfd` (KVM_IRQFD). */
  irqfd(eventfd: number, gsi: number, resampleFd?: number): void {
    native().kvm.irqfd(this.vm, eventfd, gsi, resampleFd);
  }

  /** For `xl vcpu-list`. */
  vcpuInfo(): VcpuInfo[] {
    if (this.stateValue === 'destroyed' && this.finalInfo) return this.finalInfo;
    const k = native().kvm;
    return this.vcpuHandles.map((h, id) => {
      const s = k.vcpuStats(h);
      const st = Atomics.load(this.ctl, id * CTL_WORDS + CTL_STATE);
      let cpu = -1;
      let letter: VcpuInfo['state'] = '-';
      if (s.tid > 0) {
        try {
          const stat = readFileSync(`/proc/self/task/${s.tid}/stat`, 'utf8');
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          cpu = Number(f[36]);
          const running = f[0] === 'R';
          letter = st === ST_PAUSED ? 'p' : st === ST_STOPPED ? '-' : st === ST_IOREQ || !running ? 'b' : 'r';
        } catch {
          letter = '-';
        }
      } else if (this.stateValue === 'running') letter = 'b';
      const cpuNs = s.cpuNs >= 0 ? s.cpuNs : Math.max(0, this.stoppedCpuNs[id] ?? 0);
      return { id, state: letter, cpu, cpuTimeSec: cpuNs / 1e9, tid: s.tid };
    });
  }

  /** Exit counters summed over the vCPUs (the comparison command's "exit counts"). */
  exitStats(): KvmExitStats {
    if (this.stateValue === 'destroyed' && this.finalStats) return this.finalStats;
    const t: KvmExitStats = { io: 0, mmio: 0, nullIo: 0, nullMmio: 0, ioreqs: 0, internal: 0, interrupted: 0, runs: 0 };
    const k = native().kvm;
    this.vcpuHandles.forEach((h, id) => {
      const s = k.vcpuStats(h);
      t.io += s.io;
      t.mmio += s.mmio;
      t.nullIo += s.nullIo;
      t.nullMmio += s.nullMmio;
      t.interrupted += s.interrupted;
      t.runs += s.runs;
      t.ioreqs += Atomics.load(this.ctl, id * CTL_WORDS + CTL_IOREQS) >>> 0;
      t.internal += Atomics.load(this.ctl, id * CTL_WORDS + CTL_INTERNAL) >>> 0;
    });
    return t;
  }
}
