// A 16550A UART, the minimum Linux's 8250 driver needs to find "ttyS0 ... is a 16550A", print
// its console and run a shell: registers at base+0..7, 16-byte FIFOs, THRE and RX-data
// interrupts gated by MCR.OUT2 (as on a PC), loopback for the driver's probe.
//
// Stand-in for the KVM runner until the stub domain's own 16550 model is wired in (the lead
// integrates stubdom/'s devices; this one has the same IoHandler shape: read(offset, size),
// write(offset, size, value) relative to the base port).

const IER_RDI = 0x01; // received data available
const IER_THRI = 0x02; // transmitter holding register empty
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const LCR_DLAB = 0x80;

const RX_FIFO = 16;
const TX_QUEUE_MAX = 1 << 20;

export interface UartIo {
  /** Bytes the guest transmitted. Return false when the sink cannot take them now; the UART
   * then keeps them queued (bounded) and retries from flush(). */
  output(bytes: Uint8Array): boolean;
  /** The interrupt line's level changed. */
  irq(level: boolean): void;
}

export class Uart16550 {
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private scr = 0;
  private dll = 0x0c;
  private dlm = 0;
  private fcr = 0;
  private threPending = false;
  private readonly rx: number[] = [];
  private txq: Uint8Array[] = [];
  private txqBytes = 0;
  private irqLevel = false;
  readonly metrics = { exits: 0, txBytes: 0, rxBytes: 0, dropped: 0 };

  constructor(private readonly io: UartIo) {}

  /** Room in the receive FIFO (feed at most this much). */
  rxRoom(): number {
    return RX_FIFO - this.rx.length;
  }

  /** Bytes typed at the console. Returns how many were taken. */
  input(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.rxRoom());
    for (let i = 0; i < n; i++) this.rx.push(bytes[i]!);
    this.metrics.rxBytes += n;
    if (n > 0) this.update();
    return n;
  }

  /** Retry queued output. */
  flush(): void {
    while (this.txq.length > 0) {
      const b = this.txq[0]!;
      if (!this.io.output(b)) return;
      this.txq.shift();
      this.txqBytes -= b.length;
    }
  }

  private transmit(byte: number): void {
    this.metrics.txBytes++;
    if (this.mcr & MCR_LOOP) {
      if (this.rx.length < RX_FIFO) this.rx.push(byte);
      return;
    }
    const b = Uint8Array.of(byte);
    if (this.txq.length === 0 && this.io.output(b)) return;
    if (this.txqBytes >= TX_QUEUE_MAX) {
      this.metrics.dropped++;
      return;
    }
    this.txq.push(b);
    this.txqBytes++;
  }

  private iir(): number {
    const fifo = this.fcr & 1 ? 0xc0 : 0;
    if (this.ier & IER_RDI && this.rx.length > 0) return fifo | 0x04;
    if (this.ier & IER_THRI && this.threPending) return fifo | 0x02;
    return fifo | 0x01;
  }

  private update(): void {
    const pending = (this.iir() & 1) === 0;
    const level = pending && (this.mcr & MCR_OUT2) !== 0 && (this.mcr & MCR_LOOP) === 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.io.irq(level);
    }
  }

  read(offset: number, size: number): number {
    this.metrics.exits++;
    let v = 0xff;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) v = this.dll;
        else {
          v = this.rx.length > 0 ? this.rx.shift()! : 0;
        }
        break;
      case 1:
        v = this.lcr & LCR_DLAB ? this.dlm : this.ier;
        break;
      case 2: {
        v = this.iir();
        if ((v & 0x0f) === 0x02) this.threPending = false; // reading IIR acknowledges THRE
        break;
      }
      case 3:
        v = this.lcr;
        break;
      case 4:
        v = this.mcr;
        break;
      case 5:
        v = LSR_THRE | LSR_TEMT | (this.rx.length > 0 ? LSR_DR : 0);
        break;
      case 6:
        if (this.mcr & MCR_LOOP) {
          // CTS = RTS, DSR = DTR, RI = OUT1, DCD = OUT2
          const m = this.mcr;
          v = ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
        } else v = 0xb0; // DCD, DSR, CTS: a terminal is there
        break;
      case 7:
        v = this.scr;
        break;
    }
    this.update();
    return size === 1 ? v : v | (0xff << 8) | (size === 4 ? 0xffff0000 : 0);
  }

  write(offset: number, _size: number, value: number): void {
    this.metrics.exits++;
    const v = value & 0xff;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) this.dll = v;
        else {
          this.transmit(v);
          this.threPending = true; // transmitted at once: THR is empty again
        }
        break;
      case 1:
        if (this.lcr & LCR_DLAB) this.dlm = v;
        else {
          const was = this.ier;
          this.ier = v & 0x0f;
          // Enabling THRI while THR is empty raises the interrupt (the 8250 driver relies on it).
          if (this.ier & IER_THRI && !(was & IER_THRI)) this.threPending = true;
        }
        break;
      case 2:
        this.fcr = v & 0xc9;
        if (v & 0x02) this.rx.length = 0;
        break;
      case 3:
        this.lcr = v;
        break;
      case 4:
        this.mcr = v & 0x1f;
        break;
      case 7:
        this.scr = v;
        break;
    }
    this.update();
  }
}
