// National Semiconductor 16550A UART, the PC's COM port (COM1 0x3F8 IRQ 4, COM2 0x2F8 IRQ 3),
// for `serial = 'pty'`. Registers (offset, DLAB):
//   0 r RBR / w THR (DLAB=0), DLL (DLAB=1)     4 MCR: DTR RTS OUT1 OUT2 LOOP
//   1 IER (DLAB=0): RDA THRE RLS MSI, DLM (1)  5 LSR: DR OE PE FE BI THRE TEMT (RO)
//   2 r IIR / w FCR                            6 MSR: deltas (clear on read) CTS DSR RI DCD
//   3 LCR (bit 7 = DLAB)                       7 SCR scratch
// IIR priorities: line status (0x6) > received data (0x4) / character timeout (0xC) > THR
// empty (0x2) > modem status (0x0); 0x1 = none; bits 7:6 = 11 with FIFOs enabled. Reading IIR
// while it shows THRE acknowledges it; so does writing THR. Enabling ETBEI while THR is empty
// raises THRE at once (Linux's 8250 probes for exactly that). LSR errors clear on read.
// Loopback (MCR.LOOP): THR goes to the receiver, MSR mirrors MCR (CTS=RTS, DSR=DTR, RI=OUT1,
// DCD=OUT2). The IRQ line is gated by OUT2 as on every PC board (and forced off in loopback,
// where the OUT2 pin is held inactive).
//
// Timing is not modelled: a byte written to THR goes to the backend at once (THR and TSR are
// empty again immediately), the divisor latch is stored but sets no speed, and the receive
// "character timeout" fires as soon as data sits below the FIFO trigger level rather than
// after four character times. Receive FIFO: 16 bytes (1 with FIFOs off); further bytes are
// refused to the backend (receive() returns how many it took) so a pty is flow-controlled
// rather than overrun; loopback can overrun (LSR.OE), as on the chip.
import type { IoHandler } from '../../device-model/address-bus.js';
import type { IrqSource } from '../../device-model/interrupts.js';
import type { FieldReader, FieldWriter } from '../../device-model/device-state.js';

export interface SerialBackend {
  /** Bytes the guest transmitted (the buffer is the backend's). */
  write(data: Uint8Array): void;
  /** The receive FIFO has room again: a paused pty reader may resume. */
  rxSpaceAvailable?(): void;
}

export class CollectingSerialBackend implements SerialBackend {
  readonly chunks: Uint8Array[] = [];
  spaceNotifications = 0;

  write(data: Uint8Array): void {
    if (this.chunks.length < 100_000) this.chunks.push(data);
  }

  rxSpaceAvailable(): void {
    this.spaceNotifications++;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

export interface UartMetrics {
  exits: number;
  txBytes: number;
  rxBytes: number;
  overruns: number;
  interrupts: number;
}

export const UART_FIFO_SIZE = 16;

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;
const IIR_NO_INT = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_CTI = 0x0c;
const IIR_FIFO = 0xc0;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_CLEAR_TX = 0x04;
const LCR_DLAB = 0x80;
const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const LSR_ERRORS = 0x1e;
const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
const TRIGGER = [1, 4, 8, 14] as const;

export interface Uart16550Options {
  irq: IrqSource;
  backend?: SerialBackend;
  /** Gate the IRQ with MCR.OUT2 as PC boards do (default true). */
  out2GatesIrq?: boolean;
}

export class Uart16550 implements IoHandler {
  readonly metrics: UartMetrics = { exits: 0, txBytes: 0, rxBytes: 0, overruns: 0, interrupts: 0 };
  backend: SerialBackend | undefined;
  private readonly irq: IrqSource;
  private readonly gate: boolean;
  private readonly rx = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private lsr = LSR_THRE | LSR_TEMT;
  private msr = MSR_DCD | MSR_DSR | MSR_CTS;
  private scr = 0;
  private fcr = 0;
  private dll = 0x0c; // 9600 baud until the driver says otherwise
  private dlm = 0;
  private thrIpending = false;

  constructor(opts: Uart16550Options) {
    this.irq = opts.irq;
    this.backend = opts.backend;
    this.gate = opts.out2GatesIrq ?? true;
  }

  reset(): void {
    this.rxHead = this.rxCount = 0;
    this.ier = this.lcr = this.mcr = this.scr = this.fcr = 0;
    this.lsr = LSR_THRE | LSR_TEMT;
    this.msr = MSR_DCD | MSR_DSR | MSR_CTS;
    this.dll = 0x0c;
    this.dlm = 0;
    this.thrIpending = false;
    this.update();
  }

  /** Registers and the receive FIFO (docs/kvm.md, "Save, restore, migration"). */
  saveState(f: FieldWriter): void {
    f.bytes('rx', this.rx).u8('rxHead', this.rxHead).u8('rxCount', this.rxCount);
    f.u8('ier', this.ier).u8('lcr', this.lcr).u8('mcr', this.mcr).u8('lsr', this.lsr).u8('msr', this.msr);
    f.u8('scr', this.scr).u8('fcr', this.fcr).u8('dll', this.dll).u8('dlm', this.dlm).bool('thrIpending', this.thrIpending);
  }

  /** Checks every field, then takes them; the interrupt output follows the registers. */
  loadState(r: FieldReader): void {
    const rx = r.bytes('rx', UART_FIFO_SIZE);
    const rxHead = r.u8('rxHead', UART_FIFO_SIZE - 1);
    const rxCount = r.u8('rxCount', UART_FIFO_SIZE);
    const regs = { ier: r.u8('ier', 0x0f), lcr: r.u8('lcr'), mcr: r.u8('mcr', 0x1f), lsr: r.u8('lsr'), msr: r.u8('msr') };
    const more = { scr: r.u8('scr'), fcr: r.u8('fcr'), dll: r.u8('dll'), dlm: r.u8('dlm'), thrIpending: r.bool('thrIpending') };
    r.end();
    this.rx.set(rx);
    this.rxHead = rxHead;
    this.rxCount = rxCount;
    Object.assign(this, regs, more);
    this.update();
  }

  get fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE) !== 0;
  }

  /** Divisor latch (baud = 115200 / divisor). */
  get divisor(): number {
    return this.dll | (this.dlm << 8);
  }

  private get capacity(): number {
    return this.fifoEnabled ? UART_FIFO_SIZE : 1;
  }

  /** How many bytes receive() would take now. */
  rxSpace(): number {
    return this.capacity - this.rxCount;
  }

  /** Host -> guest bytes (from the pty). Takes what fits and returns the count. Ignored (0)
   * in loopback mode, where the receiver is disconnected from the line. */
  receive(data: Uint8Array): number {
    if (this.mcr & MCR_LOOP) return 0;
    const n = Math.min(data.length, this.rxSpace());
    for (let i = 0; i < n; i++) this.push(data[i]!);
    this.metrics.rxBytes += n;
    if (n) this.update();
    return n;
  }

  private push(b: number): boolean {
    if (this.rxCount >= this.capacity) {
      this.lsr |= LSR_OE;
      this.metrics.overruns++;
      return false;
    }
    this.rx[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = b;
    this.rxCount++;
    this.lsr |= LSR_DR;
    return true;
  }

  private pop(): number {
    if (this.rxCount === 0) return 0;
    const b = this.rx[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % UART_FIFO_SIZE;
    this.rxCount--;
    if (this.rxCount === 0) this.lsr &= ~LSR_DR;
    return b;
  }

  private iir(): number {
    let id = IIR_NO_INT;
    if (this.ier & IER_RLSI && this.lsr & LSR_ERRORS) id = IIR_RLSI;
    else if (this.ier & IER_RDI && this.rxCount > 0) {
      id = this.fifoEnabled && this.rxCount < TRIGGER[this.fcr >> 6]! ? IIR_CTI : IIR_RDI;
    } else if (this.ier & IER_THRI && this.thrIpending) id = IIR_THRI;
    else if (this.ier & IER_MSI && this.msr & 0x0f) id = IIR_MSI;
    return id | (this.fifoEnabled ? IIR_FIFO : 0);
  }

  private update(): void {
    const pending = (this.iir() & IIR_NO_INT) === 0;
    const gated = this.gate && (!(this.mcr & MCR_OUT2) || (this.mcr & MCR_LOOP) !== 0);
    const before = this.irq.edges;
    this.irq.set(pending && !gated);
    this.metrics.interrupts += this.irq.edges - before;
  }

  private loopbackMsr(): void {
    const m = this.mcr;
    const next =
      (m & MCR_RTS ? MSR_CTS : 0) | (m & MCR_DTR ? MSR_DSR : 0) | (m & MCR_OUT1 ? MSR_RI : 0) | (m & MCR_OUT2 ? MSR_DCD : 0);
    this.setMsrLines(next);
  }

  private setMsrLines(next: number): void {
    const old = this.msr & 0xf0;
    let d = this.msr & 0x0f;
    if ((old ^ next) & MSR_CTS) d |= MSR_DCTS;
    if ((old ^ next) & MSR_DSR) d |= MSR_DDSR;
    if ((old ^ next) & MSR_DCD) d |= MSR_DDCD;
    if (old & MSR_RI && !(next & MSR_RI)) d |= MSR_TERI;
    this.msr = next | d;
  }

  read(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readByte((offset + i) & 7) << (8 * i);
    return v >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.writeByte((offset + i) & 7, (value >>> (8 * i)) & 0xff);
  }

  private readByte(reg: number): number {
    switch (reg) {
      case 0: {
        if (this.lcr & LCR_DLAB) return this.dll;
        const wasFull = this.rxSpace() === 0;
        const b = this.pop();
        this.update();
        if (wasFull || this.rxCount === 0) this.backend?.rxSpaceAvailable?.();
        return b;
      }
      case 1:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case 2: {
        const v = this.iir();
        if ((v & 0x0f) === IIR_THRI) {
          this.thrIpending = false;
          this.update();
        }
        return v;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const v = this.lsr;
        if (v & LSR_ERRORS) {
          this.lsr &= ~LSR_ERRORS;
          this.update();
        }
        return v;
      }
      case 6: {
        const v = this.msr;
        if (v & 0x0f) {
          this.msr &= 0xf0;
          this.update();
        }
        return v;
      }
      default:
        return this.scr;
    }
  }

  private writeByte(reg: number, v: number): void {
    switch (reg) {
      case 0:
        if (this.lcr & LCR_DLAB) {
          this.dll = v;
          return;
        }
        this.thrIpending = false;
        this.transmit(v);
        return;
      case 1: {
        if (this.lcr & LCR_DLAB) {
          this.dlm = v;
          return;
        }
        const changed = (this.ier ^ v) & 0x0f;
        this.ier = v & 0x0f;
        if (changed & IER_THRI) this.thrIpending = (this.ier & IER_THRI) !== 0 && (this.lsr & LSR_THRE) !== 0;
        this.update();
        return;
      }
      case 2: {
        const enable = (v & FCR_ENABLE) !== 0;
        if (enable !== this.fifoEnabled || v & FCR_CLEAR_RX) {
          this.rxHead = this.rxCount = 0;
          this.lsr &= ~LSR_DR;
        }
        void FCR_CLEAR_TX; // THR/TSR are always empty: nothing to clear
        this.fcr = enable ? v & 0xc9 : 0;
        this.update();
        this.backend?.rxSpaceAvailable?.();
        return;
      }
      case 3:
        this.lcr = v;
        return;
      case 4: {
        const wasLoop = (this.mcr & MCR_LOOP) !== 0;
        this.mcr = v & 0x1f;
        if (this.mcr & MCR_LOOP) this.loopbackMsr();
        else if (wasLoop) this.setMsrLines(MSR_DCD | MSR_DSR | MSR_CTS);
        this.update();
        return;
      }
      case 5:
      case 6:
        return; // LSR/MSR are read-only (factory test writes ignored)
      default:
        this.scr = v;
    }
  }

  private transmit(b: number): void {
    if (this.mcr & MCR_LOOP) {
      this.push(b);
    } else {
      this.backend?.write(Uint8Array.of(b));
      this.metrics.txBytes++;
    }
    // The byte left at once: THR and the shift register are empty again.
    this.lsr |= LSR_THRE | LSR_TEMT;
    this.thrIpending = true;
    this.update();
  }
}
