// One vCPU: a worker thread that sits in KVM_RUN (native kvm.run) and turns the exits it gets
// back into synchronous ioreqs to the domain's device model, exactly as Xen's hypervisor does
// for an HVM vCPU (docs/kvm.md, "The exit path"):
//
//   kvm.run() -> EXIT_IO / EXIT_MMIO in the exit record
//     -> internal device?  (RTC, port 0x80, reset ports, 0xE9 debug console: Xen's own intercepts)
//     -> else: fill our ioreq_t slot in the shared ioreq page, state IOREQ_READY, ring the
//        device model (eventfd = the vCPU's event channel doorbell, or a futex word),
//        futex-wait on the slot until IORESP_READY, take the data, state NONE
//     -> data for IN / MMIO reads goes back into the exit record; kvm.run() completes the
//        exit at its next call.
//
// The owner (hypervisor/kvm/vm.ts) steers us through a control block (CTL_*): it sets the
// command, then kicks the vCPU out of KVM_RUN; we look at the command after every
// interrupted exit and between ioreqs. The control plane back to the owner (guest crashed,
// guest asked for reset/poweroff, debug-console lines) is postMessage: rare events only.
//
// This file imports nothing but node builtins, the ioreq wire constants and the irq mirror
// (constants and one function): it runs either
// compiled (dist/) or bundled on the fly from source (vitest).
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { syncIrqLines } from './irq-mirror.js';
import {
  IOREQ_READ,
  IOREQ_SIZE,
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_PIO,
  STATE_IOREQ_NONE,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
} from '../../drivers/wire/ioreq.js';
import type { NativeAddon } from '../../native/index.js';
import {
  CMD_PAUSE,
  CMD_STOP,
  CTL_ASSISTS,
  CTL_CMD,
  CTL_INTERNAL,
  CTL_IOREQS,
  CTL_RESET,
  CTL_STATE,
  EXIT_FAIL_ENTRY,
  EXIT_HLT,
  EXIT_INTERNAL_ERROR,
  EXIT_INTERRUPTED,
  EXIT_IO,
  EXIT_MMIO,
  EXIT_NAMES,
  EXIT_SHUTDOWN,
  EXIT_SYSTEM_EVENT,
  EMULATION_FLAG_INSN_BYTES,
  INTERNAL_ERROR_EMULATION,
  REC_ADDR,
  REC_BYTES,
  REC_COUNT,
  REC_DIR,
  REC_EXTRA,
  REC_EXTRA2,
  REC_EXTRA3,
  REC_REASON,
  REC_SIZE,
  REC_SUB,
  REC_TOTAL,
  ST_IOREQ,
  ST_PAUSED,
  ST_RUNNING,
  ST_STOPPED,
} from './kvm-abi.js';

export interface VcpuWorkerData {
  addonPath: string;
  vcpu: number;
  id: number;
  ctl: SharedArrayBuffer;
  ctlBase: number;
  ioreqPage: SharedArrayBuffer;
  ioreqPageOffset: number;
  /** How to ring the device model after IOREQ_READY. */
  notify: { eventfd: number } | { futex: SharedArrayBuffer; index: number } | null;
  vpEport: number;
  /** 'bounce': string I/O goes out as one ioreq with data_is_ptr=1 pointing at a reserved
   * guest page (the device model reads/writes guest memory there, as with Xen);
   * 'split': one ioreq per element. */
  stringIo: 'split' | 'bounce';
  bounce: { page: SharedArrayBuffer; gpa: number } | null;
  internalDevices: boolean;
  /** Interrupt lines driven by a device model in another process (irq-mirror.ts): after each
   * ioreq this vCPU completes, bring KVM's lines in step with the platform page. */
  irqMirror: { vm: number; platform: SharedArrayBuffer; state: SharedArrayBuffer } | null;
}

export type VcpuMessage =
  | { type: 'exit'; id: number; why: 'stopped' | 'crash' | 'reset' | 'poweroff'; detail: string; rip?: string }
  | { type: 'debug'; id: number; text: string }
  | { type: 'ready'; id: number };

const wd = workerData as VcpuWorkerData;
const addon = createRequire(wd.addonPath)(wd.addonPath) as NativeAddon;
const k = addon.kvm;
const port = parentPort!;

const ctl = new Int32Array(wd.ctl);
const C = wd.ctlBase;
const rec = new Uint8Array(REC_TOTAL);
const rv = new DataView(rec.buffer);

// our ioreq slot
const SLOT = wd.ioreqPageOffset + wd.id * IOREQ_SIZE;
const page8 = new Uint8Array(wd.ioreqPage);
const pageDv = new DataView(wd.ioreqPage);
const page32 = new Int32Array(wd.ioreqPage);
const WORD = (SLOT + 28) >> 2; // the aligned word holding pad0, state/flags byte (bits 16-23), type
const bounce = wd.bounce ? new Uint8Array(wd.bounce.page) : null;

let ring: () => void = () => {};
if (wd.notify && 'eventfd' in wd.notify) {
  const fd = wd.notify.eventfd;
  ring = () => addon.eventfdWrite(fd, 1);
} else if (wd.notify && 'futex' in wd.notify) {
  const w = new Int32Array(wd.notify.futex);
  const i = wd.notify.index;
  ring = () => {
    Atomics.add(w, i, 1);
    addon.futexWake(w, i, 1);
  };
}

const mirror = wd.irqMirror
  ? { platform: new Int32Array(wd.irqMirror.platform), state: new Int32Array(wd.irqMirror.state), vm: wd.irqMirror.vm }
  : null;
const setLine = (gsi: number, level: 0 | 1) => {
  try {
    k.irqLine(mirror!.vm, gsi, level);
  } catch {
    /* the VM is being destroyed */
  }
};

let stopRequested = false;
/** The last exit was port I/O or MMIO we answered: KVM finishes that instruction (stores the
 * IN value, moves RIP past it) only at the next KVM_RUN. Until then the vCPU's registers are
 * not the guest's whole truth, so a pause for a save enters once more first (below). */
let owesCompletion = false;
let respLo = 0;
let respHi = 0;

/** One synchronous ioreq. Fills respLo/respHi with the answer's data. False if the owner
 * stopped the vCPU while we waited (the request is abandoned with the domain). */
function ioreqRoundTrip(type: number, addr: number, size: number, count: number, dir: number, dataLo: number, dataHi: number, dataIsPtr: boolean): boolean {
  // ioreq_t (drivers/wire/ioreq.ts): addr u64 @0, data u64 @8, count u32 @16, size u32 @20,
  // vp_eport u32 @24, pad u16 @28, state:4|data_is_ptr:1|dir:1|df:1 @30, type u8 @31.
  pageDv.setUint32(SLOT, addr >>> 0, true);
  pageDv.setUint32(SLOT + 4, Math.floor(addr / 0x1_0000_0000) >>> 0, true);
  pageDv.setUint32(SLOT + 8, dataLo >>> 0, true);
  pageDv.setUint32(SLOT + 12, dataHi >>> 0, true);
  pageDv.setUint32(SLOT + 16, count, true);
  pageDv.setUint32(SLOT + 20, size, true);
  pageDv.setUint32(SLOT + 24, wd.vpEport, true);
  pageDv.setUint16(SLOT + 28, 0, true);
  pageDv.setUint8(SLOT + 31, type);
  // Publishing the state last (and atomically) hands the slot to the device model.
  Atomics.store(page8, SLOT + 30, STATE_IOREQ_READY | (dataIsPtr ? 0x10 : 0) | ((dir & 1) << 5));
  Atomics.add(ctl, C + CTL_IOREQS, 1);
  Atomics.store(ctl, C + CTL_STATE, ST_IOREQ);
  ring();
  for (;;) {
    const w = Atomics.load(page32, WORD);
    if (((w >>> 16) & 0xf) === STATE_IORESP_READY) break;
    if (Atomics.load(ctl, C + CTL_CMD) === CMD_STOP) {
      stopRequested = true;
      return false;
    }
    // Woken by the device model's futexWake on this word, or by the owner's (stop).
    addon.futexWait(page32, WORD, w, 1000);
  }
  respLo = pageDv.getUint32(SLOT + 8, true);
  respHi = pageDv.getUint32(SLOT + 12, true);
  Atomics.store(page8, SLOT + 30, STATE_IOREQ_NONE);
  Atomics.store(ctl, C + CTL_STATE, ST_RUNNING);
  if (mirror) syncIrqLines(mirror.platform, mirror.state, setLine);
  return true;
}

// ---- internal devices: what Xen itself emulates for an HVM guest rather than qemu ----

const cmos = new Uint8Array(128);
let cmosIndex = 0;
let debugLine = '';

const bcd = (v: number) => ((Math.floor(v / 10) << 4) | v % 10) & 0xff;

function rtcRead(reg: number): number {
  const d = new Date();
  switch (reg) {
    case 0x00: return bcd(d.getUTCSeconds());
    case 0x02: return bcd(d.getUTCMinutes());
    case 0x04: return bcd(d.getUTCHours());
    case 0x06: return bcd(d.getUTCDay() + 1);
    case 0x07: return bcd(d.getUTCDate());
    case 0x08: return bcd(d.getUTCMonth() + 1);
    case 0x09: return bcd(d.getUTCFullYear() % 100);
    case 0x32: return bcd(Math.floor(d.getUTCFullYear() / 100));
    case 0x0a: return 0x26; // 32.768 kHz time base, 1024 Hz rate, never "update in progress"
    case 0x0b: return 0x02; // 24-hour, BCD, no interrupts
    case 0x0c: return 0x00;
    case 0x0d: return 0x80; // battery good
    default: return cmos[reg & 0x7f]!;
  }
}

const INTERNAL_PORTS = new Set([0x60, 0x64, 0x70, 0x71, 0x80, 0x92, 0xe9]);

/** Returns the value read (for IN), or -1 when the guest asked for a reset. */
function internalIo(p: number, isRead: boolean, value: number): number {
  switch (p) {
    case 0x70:
      if (isRead) return cmosIndex;
      cmosIndex = value & 0x7f;
      return 0;
    case 0x71:
      if (isRead) return rtcRead(cmosIndex);
      if (cmosIndex > 0x0d) cmos[cmosIndex] = value & 0xff;
      return 0;
    case 0x92: // System Control Port A: bit 1 A20 (always on), bit 0 = fast reset
      if (isRead) return 0x02;
      return value & 1 ? -1 : 0;
    case 0x64: // keyboard controller: only its "pulse reset line" command (0xFE)
      if (isRead) return 0xff;
      return (value & 0xff) === 0xfe ? -1 : 0;
    case 0x60:
      return 0xff;
    case 0xe9: // Bochs/Xen debug console: reading it returns 0xE9 (present)
      if (isRead) return 0xe9;
      if (value === 10) {
        port.postMessage({ type: 'debug', id: wd.id, text: debugLine } satisfies VcpuMessage);
        debugLine = '';
      } else if (debugLine.length < 4096) {
        debugLine += String.fromCharCode(value & 0xff);
      }
      return 0;
    case 0x80:
    default:
      return isRead ? 0xff : 0;
  }
}

function getVal(off: number, size: number): number {
  switch (size) {
    case 1: return rec[off]!;
    case 2: return rv.getUint16(off, true);
    default: return rv.getUint32(off, true);
  }
}

function putVal(off: number, size: number, lo: number, hi: number): void {
  switch (size) {
    case 1: rec[off] = lo & 0xff; break;
    case 2: rv.setUint16(off, lo & 0xffff, true); break;
    case 4: rv.setUint32(off, lo >>> 0, true); break;
    default:
      rv.setUint32(off, lo >>> 0, true);
      rv.setUint32(off + 4, hi >>> 0, true);
  }
}

type Outcome = 'ok' | 'stop' | 'reset';

function handleIo(): Outcome {
  const p = rv.getUint32(REC_ADDR, true) & 0xffff;
  const size = rv.getUint32(REC_SIZE, true);
  const count = rv.getUint32(REC_COUNT, true);
  const isRead = rv.getUint32(REC_DIR, true) === 1;
  if (wd.internalDevices && INTERNAL_PORTS.has(p)) {
    Atomics.add(ctl, C + CTL_INTERNAL, 1);
    for (let i = 0; i < count; i++) {
      const off = REC_BYTES + i * size;
      const r = internalIo(p, isRead, isRead ? 0 : getVal(off, size));
      if (r < 0) return 'reset';
      if (isRead) putVal(off, size, size === 1 ? r : r | (r << 8) | (size === 4 ? (r << 16) | (r << 24) : 0), 0);
    }
    return 'ok';
  }
  const dir = isRead ? IOREQ_READ : 0;
  if (count === 1) {
    const v = isRead ? 0 : getVal(REC_BYTES, size);
    if (!ioreqRoundTrip(IOREQ_TYPE_PIO, p, size, 1, dir, v, 0, false)) return 'stop';
    if (isRead) putVal(REC_BYTES, size, respLo, respHi);
    return 'ok';
  }
  const bytes = size * count;
  if (wd.stringIo === 'bounce' && bounce && wd.bounce && bytes <= bounce.length) {
    if (!isRead) bounce.set(rec.subarray(REC_BYTES, REC_BYTES + bytes));
    if (!ioreqRoundTrip(IOREQ_TYPE_PIO, p, size, count, dir, wd.bounce.gpa, 0, true)) return 'stop';
    if (isRead) rec.set(bounce.subarray(0, bytes), REC_BYTES);
    return 'ok';
  }
  for (let i = 0; i < count; i++) {
    const off = REC_BYTES + i * size;
    const v = isRead ? 0 : getVal(off, size);
    if (!ioreqRoundTrip(IOREQ_TYPE_PIO, p, size, 1, dir, v, 0, false)) return 'stop';
    if (isRead) putVal(off, size, respLo, respHi);
  }
  return 'ok';
}

function handleMmio(): Outcome {
  const addr = Number(rv.getBigUint64(REC_ADDR, true));
  const size = rv.getUint32(REC_SIZE, true);
  const isRead = rv.getUint32(REC_DIR, true) === 1;
  const lo = isRead ? 0 : rv.getUint32(REC_BYTES, true);
  const hi = isRead || size < 8 ? 0 : rv.getUint32(REC_BYTES + 4, true);
  if (!ioreqRoundTrip(IOREQ_TYPE_COPY, addr, size, 1, isRead ? IOREQ_READ : 0, size === 1 ? lo & 0xff : size === 2 ? lo & 0xffff : lo, hi, false)) return 'stop';
  if (isRead) putVal(REC_BYTES, size, respLo, respHi);
  return 'ok';
}

/** The instruction KVM's emulator gave up on (KVM_INTERNAL_ERROR_EMULATION with its bytes). */
function failedInstruction(): Uint8Array | null {
  if (rv.getUint32(REC_SUB, true) !== INTERNAL_ERROR_EMULATION) return null;
  if (!(Number(rv.getBigUint64(REC_EXTRA, true)) & EMULATION_FLAG_INSN_BYTES)) return null;
  const size = rec[REC_EXTRA2]!;
  if (size === 0 || size > 15) return null;
  const b = new Uint8Array(15);
  b.set(rec.subarray(REC_EXTRA2 + 1, REC_EXTRA2 + 8), 0);
  b.set(rec.subarray(REC_EXTRA3, REC_EXTRA3 + 8), 7);
  return b.subarray(0, size);
}

/** Finish what the emulator could not, where the CPU's behaviour is simple: INT3 raises #BP
 * after the instruction (Linux executes one in its alternatives self-test, and for
 * kprobes/jump labels). Returns false when the exit is a real failure. */
function assistEmulation(): boolean {
  const insn = failedInstruction();
  if (!insn || insn[0] !== 0xcc) return false;
  const r = k.getRegs(wd.vcpu);
  k.setRegs(wd.vcpu, { rip: r.rip + 1n });
  k.injectException(wd.vcpu, 3);
  Atomics.add(ctl, C + CTL_ASSISTS, 1);
  return true;
}

function finish(why: 'stopped' | 'crash' | 'reset' | 'poweroff', detail: string): void {
  let rip: string | undefined;
  if (why === 'crash') {
    try {
      const r = k.getRegs(wd.vcpu);
      rip = `0x${r.rip.toString(16)}`;
      detail += ` at rip=${rip} rsp=0x${r.rsp.toString(16)}`;
    } catch {
      /* registers are a courtesy */
    }
  }
  if (why === 'reset') Atomics.store(ctl, C + CTL_RESET, 1);
  Atomics.store(ctl, C + CTL_STATE, ST_STOPPED);
  Atomics.notify(ctl, C + CTL_STATE);
  port.postMessage({ type: 'exit', id: wd.id, why, detail, rip } satisfies VcpuMessage);
}

function main(): void {
  Atomics.store(ctl, C + CTL_STATE, ST_RUNNING);
  port.postMessage({ type: 'ready', id: wd.id } satisfies VcpuMessage);
  for (;;) {
    const cmd = Atomics.load(ctl, C + CTL_CMD);
    if (cmd === CMD_STOP || stopRequested) return finish('stopped', 'stopped by its owner');
    if (cmd === CMD_PAUSE && owesCompletion) {
      // KVM's documented way to complete a pending exit before its state is read: KVM_RUN with
      // immediate_exit set (a kick latches it) finishes the instruction and returns at once.
      k.kick(wd.vcpu);
    } else if (cmd === CMD_PAUSE) {
      Atomics.store(ctl, C + CTL_STATE, ST_PAUSED);
      Atomics.notify(ctl, C + CTL_STATE);
      Atomics.wait(ctl, C + CTL_CMD, CMD_PAUSE, 1000);
      if (Atomics.load(ctl, C + CTL_CMD) !== CMD_PAUSE) Atomics.store(ctl, C + CTL_STATE, ST_RUNNING);
      continue;
    }
    let t: number;
    try {
      t = k.run(wd.vcpu, rec);
    } catch (e) {
      return finish('crash', `KVM_RUN failed: ${(e as Error).message}`);
    }
    let o: Outcome = 'ok';
    switch (t) {
      case EXIT_IO:
        o = handleIo();
        break;
      case EXIT_MMIO:
        o = handleMmio();
        break;
      case EXIT_INTERRUPTED:
        break;
      case EXIT_SHUTDOWN:
        // A triple fault. A guest that first asked for a reset (0x64 <- 0xFE, 0x92 bit 0) is
        // rebooting; that path returned 'reset' already, so this one is a crash.
        return finish('crash', 'triple fault (KVM_EXIT_SHUTDOWN)');
      case EXIT_SYSTEM_EVENT: {
        const ty = rv.getUint32(REC_SUB, true);
        if (ty === 1) return finish('poweroff', 'system event: shutdown');
        if (ty === 2) return finish('reset', 'system event: reset');
        return finish('crash', `system event ${ty}`);
      }
      case EXIT_INTERNAL_ERROR: {
        if (assistEmulation()) break;
        const insn = failedInstruction();
        const what = insn
          ? `KVM could not emulate the instruction ${Array.from(insn, (x) => x.toString(16).padStart(2, '0')).join(' ')}`
          : `KVM internal error, suberror ${rv.getUint32(REC_SUB, true)} (data 0x${rv.getBigUint64(REC_EXTRA, true).toString(16)} 0x${rv.getBigUint64(REC_EXTRA2, true).toString(16)})`;
        return finish('crash', what);
      }
      case EXIT_FAIL_ENTRY:
        return finish('crash', `VM entry failed, hardware reason 0x${rv.getBigUint64(REC_EXTRA, true).toString(16)}`);
      case EXIT_HLT:
        return finish('crash', 'hlt exit (no in-kernel irqchip?)');
      default:
        return finish('crash', `${EXIT_NAMES[t] ?? 'exit'} (kvm exit_reason ${rv.getUint32(REC_REASON, true)})`);
    }
    owesCompletion = (t === EXIT_IO || t === EXIT_MMIO) && o === 'ok';
    if (o === 'stop') return finish('stopped', 'stopped by its owner while waiting for the device model');
    if (o === 'reset') return finish('reset', 'guest pulsed the reset line');
  }
}

main();
