// The 8250/16550A driver for the PC's COM ports (Linux drivers/tty/serial/8250), which carries
// the guest's console: bytes written to the console go out through THR, bytes the UART
// receives come back through RBR.
//
//   probe     scratch register test, then FCR: IIR bits 7:6 = 11 means a 16550A with working
//             FIFOs (8250_port.c autoconfig); no answer at all = no UART at that port
//   init      8N1 at 115200 (DLAB, divisor 1), FIFOs on with the receive trigger at 8 bytes,
//             MCR = DTR | RTS | OUT2 (OUT2 gates the IRQ on PC boards)
//   polled    before interrupts are wired (firmware, early printk): wait for LSR.THRE, then put
//             up to 16 bytes (the transmit FIFO) with one `rep outsb`
//   irq mode  IER = RDI | RLSI, and THRI while there is output queued: each THRE interrupt
//             refills the FIFO with up to 16 bytes; receive interrupts (data or character
//             timeout) drain RBR while LSR.DR. The handler loops on IIR until "no interrupt".
import type { Cpu } from '../cpu/io.js';
import type { DmaBuffer } from '../cpu/ram.js';

const UART_RX = 0;
const UART_TX = 0;
const UART_DLL = 0;
const UART_IER = 1;
const UART_DLM = 1;
const UART_IIR = 2;
const UART_FCR = 2;
const UART_LCR = 3;
const UART_MCR = 4;
const UART_LSR = 5;
const UART_SCR = 7;

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IIR_NO_INT = 0x01;
const IIR_ID = 0x0e;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_CTI = 0x0c;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_CLEAR_TX = 0x04;
const FCR_TRIGGER_8 = 0x80;
const LCR_DLAB = 0x80;
const LCR_8N1 = 0x03;
const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT2 = 0x08;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_BI = 0x10;
const LSR_THRE = 0x20;
const TX_FIFO = 16;
/** Bytes kept queued for transmission before the oldest are dropped (a console nobody reads). */
const TX_QUEUE_MAX = 1 << 20;
const HANDLER_BOUND = 256;

export interface SerialCounters {
  txBytes: number;
  rxBytes: number;
  txDropped: number;
  overruns: number;
  interrupts: number;
  thre: number;
}

export class Serial8250 {
  readonly counters: SerialCounters = { txBytes: 0, rxBytes: 0, txDropped: 0, overruns: 0, interrupts: 0, thre: 0 };
  /** Where received bytes go (the console's tty). */
  onInput: ((bytes: Uint8Array) => void) | null = null;
  private ier = 0;
  private irqMode = false;
  private txBusy = false;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private readonly rx = new Uint8Array(256);

  private constructor(
    private readonly cpu: Cpu,
    readonly base: number,
    readonly irq: number,
    /** A page of guest RAM the driver stages output in for rep outsb. */
    private readonly txBuf: DmaBuffer,
    readonly name: string,
  ) {}

  /** Probes a 16550A at `base`; null when there is no UART there. */
  static probe(cpu: Cpu, base: number, irq: number, txBuf: DmaBuffer, name: string): Serial8250 | null {
    cpu.claimPorts(name, base, 8);
    // Scratch register: a UART keeps what we write; an empty bus reads all ones.
    cpu.outb(base + UART_SCR, 0xa5);
    if (cpu.inb(base + UART_SCR) !== 0xa5) {
      cpu.releasePorts(base, 8);
      return null;
    }
    cpu.outb(base + UART_FCR, FCR_ENABLE);
    const iir = cpu.inb(base + UART_IIR);
    if ((iir & 0xc0) !== 0xc0) {
      cpu.releasePorts(base, 8);
      return null; // an 8250/16450 without FIFOs: not what this driver handles
    }
    const s = new Serial8250(cpu, base, irq, txBuf, name);
    s.init();
    return s;
  }

  private out(reg: number, v: number): void {
    this.cpu.outb(this.base + reg, v);
  }

  private in(reg: number): number {
    return this.cpu.inb(this.base + reg);
  }

  private init(): void {
    this.out(UART_IER, 0);
    this.out(UART_LCR, LCR_DLAB);
    this.out(UART_DLL, 1); // 115200 baud
    this.out(UART_DLM, 0);
    this.out(UART_LCR, LCR_8N1);
    this.out(UART_FCR, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX | FCR_TRIGGER_8);
    this.out(UART_MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
    // Clear anything pending: LSR errors, received bytes, IIR.
    this.in(UART_LSR);
    this.in(UART_RX);
    this.in(UART_IIR);
  }

  describe(): string {
    return `${this.name}: ttyS${this.base === 0x3f8 ? 0 : 1} at I/O 0x${this.base.toString(16)} (irq = ${this.irq}, base_baud = 115200) is a 16550A`;
  }

  /** Switches to interrupt-driven operation; the caller routes `irq` to handleIrq(). */
  enableInterrupts(): void {
    this.irqMode = true;
    this.setIer(IER_RDI | IER_RLSI);
    if (this.queued > 0) this.startTx();
  }

  private setIer(v: number): void {
    if (v === this.ier) return;
    this.ier = v;
    this.out(UART_IER, v);
  }

  /** Queues bytes for the line. Polled mode sends them before returning. */
  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (!this.irqMode) {
      this.writePolled(bytes);
      return;
    }
    this.queue.push(bytes);
    this.queued += bytes.length;
    while (this.queued > TX_QUEUE_MAX && this.queue.length > 1) {
      const dropped = this.queue.shift()!;
      this.queued -= dropped.length;
      this.counters.txDropped += dropped.length;
    }
    if (!this.txBusy) this.startTx();
  }

  private writePolled(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length; ) {
      let spins = 0;
      while (!(this.in(UART_LSR) & LSR_THRE)) {
        if (++spins > 100_000) return; // a wedged UART: drop the rest, as a console does
      }
      const n = Math.min(TX_FIFO, bytes.length - at);
      this.putFifo(bytes.subarray(at, at + n));
      at += n;
    }
  }

  /** One FIFO load: a single `rep outsb` of at most 16 bytes (THR is empty). */
  private putFifo(chunk: Uint8Array): void {
    this.txBuf.view.set(chunk);
    if (chunk.length === 1) this.out(UART_TX, chunk[0]!);
    else this.cpu.outs(this.base + UART_TX, 1, this.txBuf.gpa, chunk.length);
    this.counters.txBytes += chunk.length;
  }

  /** Takes up to 16 queued bytes. */
  private takeChunk(): Uint8Array | null {
    if (this.queued === 0) return null;
    const out = new Uint8Array(Math.min(TX_FIFO, this.queued));
    let n = 0;
    while (n < out.length) {
      const head = this.queue[0]!;
      const k = Math.min(head.length, out.length - n);
      out.set(head.subarray(0, k), n);
      n += k;
      if (k === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(k);
    }
    this.queued -= n;
    return out;
  }

  /** Start transmission: enabling THRI with THR empty raises THRE at once (the 16550's rule),
   * and the interrupt handler feeds the FIFO from there. */
  private startTx(): void {
    this.txBusy = true;
    this.setIer(this.ier | IER_THRI);
  }

  private txInterrupt(): void {
    this.counters.thre++;
    const chunk = this.takeChunk();
    if (!chunk) {
      this.txBusy = false;
      this.setIer(this.ier & ~IER_THRI);
      return;
    }
    this.putFifo(chunk);
  }

  private rxInterrupt(): void {
    let n = 0;
    for (let i = 0; i < this.rx.length; i++) {
      const lsr = this.in(UART_LSR);
      if (lsr & LSR_OE) this.counters.overruns++;
      if (!(lsr & (LSR_DR | LSR_BI))) break;
      this.rx[n++] = this.in(UART_RX);
    }
    if (n > 0) {
      this.counters.rxBytes += n;
      this.onInput?.(this.rx.slice(0, n));
    }
  }

  /** The IRQ handler (serial8250_handle_irq). True when the UART had an interrupt pending. */
  handleIrq(): boolean {
    let handled = false;
    for (let i = 0; i < HANDLER_BOUND; i++) {
      const iir = this.in(UART_IIR);
      if (iir & IIR_NO_INT) break;
      handled = true;
      switch (iir & IIR_ID) {
        case IIR_RLSI:
          this.in(UART_LSR);
          break;
        case IIR_RDI:
        case IIR_CTI:
          this.rxInterrupt();
          break;
        case IIR_THRI:
          this.txInterrupt();
          break;
        default:
          this.in(6); // modem status: reading MSR clears it
      }
    }
    if (handled) this.counters.interrupts++;
    return handled;
  }

  /** Waits (polling) until everything queued has left (shutdown, panic). */
  flush(): void {
    if (!this.irqMode) return;
    this.irqMode = false;
    this.setIer(0);
    this.txBusy = false;
    const rest: Uint8Array[] = this.queue.splice(0);
    this.queued = 0;
    for (const b of rest) this.writePolled(b);
  }
}
