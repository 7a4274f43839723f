// 8139too: the RealTek RTL8139C driver (Linux drivers/net/ethernet/realtek/8139too.c), C mode.
//
//   probe     pci_set_master; registers through BAR0 (I/O ports, 8139too's default build) or
//             BAR1 (MMIO, `8139too.use_io=0`); chip reset (CR.RST, wait for it to clear); the
//             MAC from IDR0-5, which the chip loaded from its EEPROM at reset
//   open      (rtl8139_hw_start) unlock 9346CR; RBSTART = the RX ring; CR = RE|TE; RCR =
//             32 KiB ring + WRAP, accept broadcast/multicast/physical; TCR (IFG, DMA burst);
//             lock 9346CR; TSAD0-3 = the four TX buffers; MAR = all ones (every multicast: the
//             guest's stack above the TAP does its own filtering); IMR = the 8139too mask
//   xmit      copy the frame into the next TX buffer (padded to 60 bytes), write its size to
//             TSDn (clearing OWN): one exit. With all four descriptors in flight, frames wait
//             in a small software queue and the caller is told to stop (netif_stop_queue).
//   interrupt read ISR, acknowledge what was seen (write-1-to-clear), then
//             RX: read CBR once and take every frame between our read offset and it from the
//                 ring in guest RAM (header: status, length incl. CRC), then ONE CAPR write
//                 (offset - 16, the chip's quirk) for the whole batch
//             TX: one read of TSAD (the "transmit status of all descriptors" summary) retires
//                 every completed descriptor
//             PCI error or a corrupt ring: reset the chip and start again.
import type { RegisterWindow, Cpu } from '../cpu/io.js';
import { ioWindow, mmioWindow } from '../cpu/io.js';
import type { DmaBuffer, PhysicalMemory } from '../cpu/ram.js';
import type { PciConfigSpace, PciDevice } from '../firmware/pci.js';

const IDR0 = 0x00;
const MAR0 = 0x08;
const TSD0 = 0x10;
const TSAD0 = 0x20;
const RBSTART = 0x30;
const CR = 0x37;
const CAPR = 0x38;
const CBR = 0x3a;
const IMR = 0x3c;
const ISR = 0x3e;
const TCR = 0x40;
const RCR = 0x44;
const MPC = 0x4c;
const CR9346 = 0x50;
const TSAD = 0x60;
const BMSR = 0x64;

const CR_RST = 0x10;
const CR_RE = 0x08;
const CR_TE = 0x04;
const INT_PCIERR = 0x8000;
const INT_TIMEOUT = 0x4000;
const INT_FOVW = 0x40;
const INT_PUN = 0x20;
const INT_RXOVW = 0x10;
const INT_TER = 0x08;
const INT_TOK = 0x04;
const INT_RER = 0x02;
const INT_ROK = 0x01;
const INTR_MASK = INT_PCIERR | INT_TIMEOUT | INT_PUN | INT_RXOVW | INT_FOVW | INT_TER | INT_TOK | INT_RER | INT_ROK;
const RX_BITS = INT_ROK | INT_RER | INT_RXOVW | INT_FOVW;
const TX_BITS = INT_TOK | INT_TER;

const RX_BUF_IDX = 2; // 32 KiB
const RX_BUF_LEN = 8192 << RX_BUF_IDX;
const RX_BUF_PAD = 16 + 4608; // the slack a WRAP-mode frame may run into (8139too: 16 + 2048)
const RCR_AB = 0x08;
const RCR_AM = 0x04;
const RCR_APM = 0x02;
const RCR_WRAP = 0x80;
const RX_CONFIG = (7 << 13) | (RX_BUF_IDX << 11) | (7 << 8) | RCR_WRAP | RCR_AB | RCR_AM | RCR_APM;
const TX_CONFIG = (3 << 24) | (6 << 8); // IFG 96 bit times, 1024-byte DMA bursts
const NUM_TX_DESC = 4;
const TX_BUF_SIZE = 2048;
const TX_MAX_FRAME = 1792;
const ETH_ZLEN = 60;
const RXS_ROK = 0x0001;
const TX_QUEUE_MAX = 64;
const RX_BATCH_MAX = 1024;
const RX_MAX_SIZE = 4096 + 4;

export interface NicCounters {
  txFrames: number;
  txBytes: number;
  txQueued: number;
  txDropped: number;
  txErrors: number;
  rxFrames: number;
  rxBytes: number;
  rxErrors: number;
  rxMissed: number;
  interrupts: number;
  resets: number;
}

export interface Rtl8139Options {
  cpu: Cpu;
  cfg: PciConfigSpace;
  pci: PciDevice;
  ram: PhysicalMemory;
  name: string;
  /** Use BAR1 (MMIO) instead of BAR0 (I/O ports). */
  mmio?: boolean;
  log: (msg: string) => void;
}

export class Rtl8139 {
  readonly counters: NicCounters = { txFrames: 0, txBytes: 0, txQueued: 0, txDropped: 0, txErrors: 0, rxFrames: 0, rxBytes: 0, rxErrors: 0, rxMissed: 0, interrupts: 0, resets: 0 };
  readonly mac: Uint8Array;
  readonly irq: number | null;
  /** Frames received from the wire (the caller copies them if it keeps them). */
  onReceive: ((frame: Uint8Array) => void) | null = null;
  /** The transmit path has room again after xmit() returned false. */
  onTxSpace: (() => void) | null = null;
  private readonly regs: RegisterWindow;
  private readonly rxRing: DmaBuffer;
  private readonly txBufs: DmaBuffer;
  private curRx = 0;
  private curTx = 0;
  private dirtyTx = 0;
  private readonly txQueue: Uint8Array[] = [];
  private stopped = false;
  private opened = false;

  constructor(private readonly o: Rtl8139Options) {
    const bar = o.pci.bars[o.mmio ? 1 : 0];
    if (!bar || bar.base === 0) throw new Error(`${o.name}: BAR${o.mmio ? 1 : 0} is not assigned`);
    this.regs = bar.kind === 'io' ? ioWindow(o.cpu, bar.base) : mmioWindow(o.cpu, bar.base);
    if (bar.kind === 'io') o.cpu.claimPorts(o.name, bar.base, bar.size);
    else o.cpu.claimMmio(o.name, bar.base, bar.size);
    this.irq = o.pci.irq;
    o.cfg.setMaster(o.pci);
    this.rxRing = o.ram.alloc(RX_BUF_LEN + RX_BUF_PAD);
    this.txBufs = o.ram.alloc(NUM_TX_DESC * TX_BUF_SIZE);
    this.chipReset();
    const lo = this.regs.r32(IDR0);
    const hi = this.regs.r16(IDR0 + 4);
    this.mac = Uint8Array.of(lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, hi >>> 8);
  }

  get macString(): string {
    return [...this.mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
  }

  describe(): string {
    return `${this.o.name}: RealTek RTL8139 at 0x${this.regs.base.toString(16)}${this.regs.kind === 'mem' ? ' (MMIO)' : ''}, ${this.macString}, IRQ ${this.irq ?? 'none'}`;
  }

  /** PHY link (BMSR bit 2). */
  link(): boolean {
    return (this.regs.r16(BMSR) & 0x0004) !== 0;
  }

  private chipReset(): void {
    this.regs.w8(CR, CR_RST);
    for (let i = 0; i < 1000; i++) if (!(this.regs.r8(CR) & CR_RST)) return;
    this.o.log(`${this.o.name}: chip reset did not complete`);
  }

  /** rtl8139_hw_start(). */
  open(): void {
    const r = this.regs;
    this.curRx = 0;
    this.curTx = this.dirtyTx = 0;
    r.w8(CR9346, 0xc0);
    r.w32(RBSTART, this.rxRing.gpa);
    r.w8(CR, CR_RE | CR_TE);
    r.w32(RCR, RX_CONFIG);
    r.w32(TCR, TX_CONFIG);
    r.w8(CR9346, 0x00);
    for (let i = 0; i < NUM_TX_DESC; i++) r.w32(TSAD0 + 4 * i, this.txBufs.gpa + i * TX_BUF_SIZE);
    r.w32(MPC, 0);
    r.w32(MAR0, 0xffff_ffff);
    r.w32(MAR0 + 4, 0xffff_ffff);
    r.w16(IMR, INTR_MASK);
    this.opened = true;
    this.stopped = false;
  }

  /** Stops the chip (ifdown, shutdown): interrupts off, receiver and transmitter off. */
  close(): void {
    this.opened = false;
    this.regs.w16(IMR, 0);
    this.regs.w8(CR, 0);
    this.txQueue.length = 0;
  }

  private get inFlight(): number {
    return this.curTx - this.dirtyTx;
  }

  /** Room for another frame without queueing. */
  txReady(): boolean {
    return this.txQueue.length < TX_QUEUE_MAX;
  }

  /** Sends one Ethernet frame (no FCS). False when it had to be dropped (queue full). */
  xmit(frame: Uint8Array): boolean {
    if (!this.opened) return false;
    if (frame.length > TX_MAX_FRAME || frame.length < 14) {
      this.counters.txErrors++;
      return true; // the chip would abort it: drop, but the path is not blocked
    }
    if (this.inFlight < NUM_TX_DESC && this.txQueue.length === 0) {
      this.startXmit(frame);
      return true;
    }
    if (this.txQueue.length >= TX_QUEUE_MAX) {
      this.counters.txDropped++;
      this.stopped = true;
      return false;
    }
    this.txQueue.push(frame.slice());
    this.counters.txQueued++;
    if (this.txQueue.length >= TX_QUEUE_MAX) this.stopped = true;
    return true;
  }

  private startXmit(frame: Uint8Array): void {
    const entry = this.curTx % NUM_TX_DESC;
    const buf = this.txBufs.view.subarray(entry * TX_BUF_SIZE, entry * TX_BUF_SIZE + TX_BUF_SIZE);
    buf.set(frame);
    const len = Math.max(frame.length, ETH_ZLEN);
    if (frame.length < ETH_ZLEN) buf.fill(0, frame.length, ETH_ZLEN);
    this.curTx++;
    // Early TX threshold (bits 21:16) as 8139too sets it; the size clears OWN: go.
    this.regs.w32(TSD0 + 4 * entry, ((256 << 11) & 0x003f_0000) | len);
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
  }

  /** rtl8139_tx_interrupt(): retire completed descriptors, refill from the queue. */
  private txInterrupt(): void {
    if (this.inFlight > 0) {
      const sum = this.regs.r16(TSAD);
      while (this.inFlight > 0) {
        const e = this.dirtyTx % NUM_TX_DESC;
        const own = (sum >> e) & 1;
        const tok = (sum >> (12 + e)) & 1;
        const abort = ((sum >> (4 + e)) & 1) | ((sum >> (8 + e)) & 1);
        if (!own || !(tok || abort)) break;
        if (abort) this.counters.txErrors++;
        this.dirtyTx++;
      }
    }
    while (this.txQueue.length > 0 && this.inFlight < NUM_TX_DESC) this.startXmit(this.txQueue.shift()!);
    if (this.stopped && this.txQueue.length < TX_QUEUE_MAX / 2) {
      this.stopped = false;
      this.onTxSpace?.();
    }
  }

  /** rtl8139_rx(): every complete frame up to the chip's write pointer, then one CAPR. */
  private rxInterrupt(): void {
    const r = this.regs;
    const cbr = r.r16(CBR) % RX_BUF_LEN;
    const ring = this.rxRing.view;
    const dv = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
    let cur = this.curRx;
    let n = 0;
    while (cur !== cbr && n < RX_BATCH_MAX) {
      const status = dv.getUint16(cur, true);
      const size = dv.getUint16(cur + 2, true); // frame + 4-byte CRC
      if (!(status & RXS_ROK) || size < 64 || size > RX_MAX_SIZE || cur + 4 + size > ring.length) {
        this.counters.rxErrors++;
        this.o.log(`${this.o.name}: bad RX ring entry at ${cur} (status 0x${status.toString(16)}, size ${size}): resetting`);
        this.restart();
        return;
      }
      const frame = ring.subarray(cur + 4, cur + 4 + size - 4);
      this.counters.rxFrames++;
      this.counters.rxBytes += frame.length;
      this.onReceive?.(frame);
      cur = ((cur + size + 4 + 3) & ~3) % RX_BUF_LEN;
      n++;
    }
    if (n > 0) {
      this.curRx = cur;
      r.w16(CAPR, (cur - 16) & 0xffff);
    }
  }

  /** Reset and reopen (PCI error, corrupt ring): 8139too's rtl8139_tx_timeout path. */
  private restart(): void {
    this.counters.resets++;
    const queued = this.txQueue.splice(0);
    this.chipReset();
    this.open();
    for (const f of queued) this.xmit(f);
    this.onTxSpace?.();
  }

  /** The INTx handler (shared line: false when the chip has nothing pending). */
  handleIrq(): boolean {
    if (!this.opened) return false;
    const status = this.regs.r16(ISR);
    if (status === 0 || status === 0xffff) return false;
    this.counters.interrupts++;
    this.regs.w16(ISR, status);
    if (status & INT_PCIERR) {
      this.o.log(`${this.o.name}: PCI bus error (ISR 0x${status.toString(16)}): resetting the chip`);
      this.restart();
      return true;
    }
    if (status & (INT_RXOVW | INT_FOVW)) this.counters.rxMissed++;
    if (status & RX_BITS) this.rxInterrupt();
    if (status & TX_BITS) this.txInterrupt();
    return true;
  }
}
