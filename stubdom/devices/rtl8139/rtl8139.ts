// Realtek RTL8139C Fast Ethernet controller, C mode (what Linux's 8139too drives):
// PCI 10ec:8139 rev 0x10, BAR0 = 256 bytes of I/O ports, BAR1 = the same registers as 256 bytes
// of MMIO, INTA.
//
// Receive: one contiguous ring at RBSTART of 8/16/32/64 KiB (RCR bits 12:11). Each frame is
// written as a 4-byte header (status u16, length u16 = frame + 4-byte CRC), the frame (padded
// to 60 bytes), its CRC-32, then the write pointer (CBR) is rounded up to a multiple of 4. The
// driver reads at its own offset and writes CAPR = offset - 16 (the register is "off by 16").
// With RCR.WRAP set the chip writes a frame that crosses the ring end linearly into the
// driver's slack past the end (8139too allocates 16 + 2048 extra bytes); with it clear the
// frame wraps to the ring start. A frame that would not leave 8 bytes of space is dropped:
// ISR.RxOverflow, MPC+1.
// Transmit: four descriptors used round-robin; the driver writes TSADn, then TSDn with the
// size and OWN=0; the chip DMAs the frame, sets OWN and TOK, raises TxOK.
// Interrupts: INTA = (ISR & IMR) != 0; ISR bits are cleared by writing 1.
//
// Faults: every DMA goes through GuestMemory and only while PCI bus mastering is enabled.
// A DMA that reaches outside guest RAM (a ring or Tx buffer in a BAR, past the end of RAM...)
// is a PCI master abort: ISR.PCIErr (SERR), PCI status master abort, the receiver and
// transmitter are switched off (CR.RE/TE cleared) and one line is logged; the driver's reset
// path recovers. A Tx size over 1792 bytes aborts that descriptor (TSD.TABT, ISR.TxErr).
import { readRegisters, writeRegisters, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';
import type { IoHandler } from '../../device-model/address-bus.js';
import type { GuestMemory } from '../../device-model/guest-memory.js';
import { type DeviceLogger, defaultLogger } from '../../device-model/log.js';
import { PeerErrors } from '../../../common/peer-errors.js';
import { PCI_CLASS_NETWORK_ETHERNET, PCI_MAX_LAT, PCI_MIN_GNT, PCI_STATUS_DEVSEL_MEDIUM, PCI_STATUS_FAST_BACK, PCI_VENDOR_ID_REALTEK } from '../pci/constants.js';
import { PciFunction } from '../pci/pci-function.js';
import { crc32le, multicastHashIndex } from './crc32.js';
import { Eeprom93c46 } from './eeprom93c46.js';
import type { NetBackend } from './net-backend.js';
import {
  CR_BUFE,
  CR_RE,
  CR_RST,
  CR_TE,
  INT_FOVW,
  INT_PCIERR,
  INT_ROK,
  INT_RXOVW,
  INT_TER,
  INT_TOK,
  RCR_AAP,
  RCR_AB,
  RCR_AM,
  RCR_APM,
  RCR_WRAP,
  REG,
  RTL8139C_PCI_REVISION,
  RXS_BAR,
  RXS_MAR,
  RXS_PAM,
  RXS_ROK,
  TCR_HWREVID_8139C,
  TCR_LOOPBACK,
  TSD_OWN,
  TSD_SIZE_MASK,
  TSD_TABT,
  TSD_TOK,
  TSD_TUN,
  TX_MAX_FRAME,
} from './registers.js';

export const RTL8139_DEVICE_ID = 0x8139;
/** Frames longer than this (without CRC) are "long packets" (> 4 KiB with CRC) and dropped. */
export const RX_MAX_FRAME = 4092;
const MIN_FRAME = 60;

export interface Rtl8139Options {
  /** "00:16:3e:12:34:56" or 6 bytes. */
  mac: string | Uint8Array;
  memory: GuestMemory;
  backend?: NetBackend;
  log?: DeviceLogger;
  name?: string;
}

/** Counters of one emulated NIC, under the names the stub domain's metrics show
 * (common/counters.ts: as netback's, tx = what the guest sends). */
export interface Rtl8139Metrics {
  /** Guest register accesses (counted by the ioreq dispatcher). */
  exits: number;
  tx_packets: number;
  tx_bytes: number;
  /** Transmissions aborted: a descriptor over 1792 bytes (a guest's error, logged). */
  tx_errors: number;
  rx_packets: number;
  rx_bytes: number;
  /** Frames the RCR accept rules (or a disabled receiver) rejected. */
  rx_filtered: number;
  /** Frames dropped for lack of ring space (RxOverflow). */
  rx_overflows: number;
  /** DMA outside guest RAM: master abort (a guest's error, logged). */
  dma_errors: number;
  /** Rising edges of INTA. */
  interrupts: number;
}

/** What a guest's driver can get wrong, counted in the metrics of the same name. */
export const RTL8139_REASONS = ['tx_errors', 'dma_errors'] as const;

export function parseMac(mac: string | Uint8Array): Uint8Array {
  if (mac instanceof Uint8Array) {
    if (mac.length !== 6) throw new RangeError('MAC must be 6 bytes');
    return new Uint8Array(mac);
  }
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new RangeError(`bad MAC "${mac}"`);
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

function setMasked(input: number, mask: number, cur: number): number {
  return ((input & ~mask) | (cur & mask)) >>> 0;
}

/** (base, width) of the register containing byte `a`. */
function regAt(a: number): [number, number] {
  if (a < 0x10) return [a, 1];
  if (a < 0x34) return [a & ~3, 4];
  if (a < 0x36) return [0x34, 2];
  if (a < 0x38) return [a, 1];
  if (a < 0x40) return [a & ~1, 2];
  if (a < 0x50) return [a & ~3, 4];
  if (a < 0x54) return [a, 1];
  if (a < 0x58) return [0x54, 4];
  if (a < 0x5c) return [a, 1];
  if (a < 0x5e) return [0x5c, 2];
  if (a < 0x60) return [a, 1];
  if (a < 0x6c) return [a & ~1, 2];
  if (a === 0x74 || a === 0x75) return [0x74, 2];
  return [a, 1];
}

/** The chip's scalar registers, as saved (the arrays go separately). */
const RTL8139_REGISTERS = [
  'rbstart', 'cmd', 'rxBufPtr', 'rxBufAddr', 'rxBufferSize', 'imr', 'isr', 'tcr', 'rcr', 'mpc', 'cfg9346', 'config0', 'config1',
  'config3', 'config4', 'config5', 'timerInt', 'multiIntr', 'bmcr', 'bmsr', 'anar', 'anlpar', 'aner', 'cscr', 'curTx', 'linkUp',
] as const;

export class Rtl8139 extends PciFunction {
  readonly mac: Uint8Array;
  readonly metrics: Rtl8139Metrics;
  backend: NetBackend | undefined;
  private readonly memory: GuestMemory;
  private readonly peerErrors: PeerErrors<(typeof RTL8139_REASONS)[number]>;

  // Registers.
  private readonly idr = new Uint8Array(6);
  private readonly mar = new Uint8Array(8);
  private readonly tsd = new Uint32Array(4);
  private readonly tsad = new Uint32Array(4);
  private rbstart = 0;
  private cmd = 0;
  private rxBufPtr = 0;
  private rxBufAddr = 0;
  private rxBufferSize = 8192;
  private imr = 0;
  private isr = 0;
  private tcr = 0;
  private rcr = 0;
  private mpc = 0;
  private cfg9346 = 0;
  private config0 = 0;
  private config1 = 0;
  private config3 = 0;
  private config4 = 0;
  private config5 = 0;
  private timerInt = 0;
  private tctrBase = 0;
  private multiIntr = 0;
  private bmcr = 0;
  private bmsr = 0;
  private anar = 0;
  private anlpar = 0;
  private aner = 0;
  private cscr = 0;
  private readonly raw = new Uint8Array(256);
  private curTx = 0;
  private eeprom: Eeprom93c46;
  private readonly rxScratch = new Uint8Array(RX_MAX_FRAME + 8 + MIN_FRAME);
  private linkUp = true;

  constructor(opts: Rtl8139Options) {
    const metrics: Rtl8139Metrics = {
      exits: 0,
      tx_packets: 0,
      tx_bytes: 0,
      tx_errors: 0,
      rx_packets: 0,
      rx_bytes: 0,
      rx_filtered: 0,
      rx_overflows: 0,
      dma_errors: 0,
      interrupts: 0,
    };
    const name = opts.name ?? 'rtl8139';
    super(
      name,
      {
        vendor: PCI_VENDOR_ID_REALTEK,
        device: RTL8139_DEVICE_ID,
        revision: RTL8139C_PCI_REVISION,
        classCode: PCI_CLASS_NETWORK_ETHERNET,
        subsystemVendor: PCI_VENDOR_ID_REALTEK,
        subsystem: RTL8139_DEVICE_ID,
        interruptPin: 1,
        status: PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM,
      },
      metrics,
    );
    this.metrics = metrics;
    this.mac = parseMac(opts.mac);
    this.memory = opts.memory;
    this.backend = opts.backend;
    const sink = opts.log ?? defaultLogger('stubdom');
    this.peerErrors = new PeerErrors(RTL8139_REASONS, (line) => sink.warn(`${name}: ${line}`), metrics);
    this.config[PCI_MIN_GNT] = 0x20;
    this.config[PCI_MAX_LAT] = 0x40;
    const regs: IoHandler = {
      read: (off, size) => this.regRead(off, size),
      write: (off, size, v) => this.regWrite(off, size, v),
    };
    this.addBar(0, { kind: 'io', size: 256, handler: regs });
    this.addBar(1, { kind: 'mem', size: 256, handler: regs });
    this.eeprom = Eeprom93c46.forRtl8139(this.mac);
    this.powerOnReset();
  }

  /** Registers, EEPROM and PCI config (docs/kvm.md, "Save, restore, migration"). The RX ring
   * and TX buffers are guest RAM, which travels on its own. */
  saveState(f: FieldWriter): void {
    this.savePciState(f);
    f.bytes('idr', this.idr).bytes('mar', this.mar).bytes('raw', this.raw);
    f.bytes('tsd', new Uint8Array(this.tsd.buffer.slice(0))).bytes('tsad', new Uint8Array(this.tsad.buffer.slice(0)));
    writeRegisters(f, this, RTL8139_REGISTERS);
    // The timer counts from a host time: carry its value, not the time.
    f.u32('tctr', Math.floor((Date.now() - this.tctrBase) * 33_000) >>> 0);
    this.eeprom.saveState(f);
  }

  loadState(r: FieldReader): void {
    this.loadPciState(r);
    const idr = r.bytes('idr', 6);
    const mar = r.bytes('mar', 8);
    const raw = r.bytes('raw', 256);
    const tsd = r.bytes('tsd', 16);
    const tsad = r.bytes('tsad', 16);
    const regs = readRegisters(r, this, RTL8139_REGISTERS, { curTx: 3, rxBufferSize: 65536 + 16 + 1500, rxBufPtr: 0xffff, rxBufAddr: 0xffff });
    const tctr = r.u32('tctr');
    const eeprom = this.eeprom.readState(r);
    r.end();
    this.idr.set(idr);
    this.mar.set(mar);
    this.raw.set(raw);
    new Uint8Array(this.tsd.buffer).set(tsd);
    new Uint8Array(this.tsad.buffer).set(tsad);
    Object.assign(this, regs);
    this.tctrBase = Date.now() - tctr / 33_000;
    eeprom();
    this.updateIrq();
  }

  /** Power-on / PCI reset: everything, including the MAC reloaded from the EEPROM. */
  powerOnReset(): void {
    this.eeprom = Eeprom93c46.forRtl8139(this.mac);
    this.idr.set(this.mac);
    this.mar.fill(0);
    this.rcr = 0;
    this.mpc = 0;
    this.cfg9346 = 0;
    this.config4 = 0;
    this.config5 = 0;
    this.multiIntr = 0;
    this.raw.fill(0);
    this.softReset();
    this.cmd = 0;
  }

  /** CR.RST: Tx/Rx off, FIFOs and buffer pointers reset; IDR/MAR keep their values. */
  private softReset(): void {
    this.isr = 0;
    this.imr = 0;
    for (let i = 0; i < 4; i++) this.tsd[i] = TSD_OWN;
    this.curTx = 0;
    this.rbstart = 0;
    this.rxBufferSize = 8192 << ((this.rcr >>> 11) & 3);
    this.rxBufPtr = 0;
    this.rxBufAddr = 0;
    this.tcr = TCR_HWREVID_8139C;
    this.cmd = CR_RST;
    this.config0 = 0;
    this.config1 = 0x0c;
    this.config3 = 0x01;
    this.cscr = 0x0340;
    this.bmcr = 0x1000;
    this.bmsr = 0x7809 | 0x0020 | (this.linkUp ? 0x0004 : 0);
    this.anar = 0x05e1;
    this.anlpar = 0x05e1;
    this.aner = 0x0001;
    this.timerInt = 0;
    this.tctrBase = Date.now();
    this.updateIrq();
  }

  // ---- register file -------------------------------------------------------------------

  private regByte(a: number): number {
    if (a < 6) return this.idr[a]!;
    if (a < 8) return 0;
    if (a < 0x10) return this.mar[a - 8]!;
    if (a < 0x20) return (this.tsd[(a - 0x10) >> 2]! >>> (8 * (a & 3))) & 0xff;
    if (a < 0x30) return (this.tsad[(a - 0x20) >> 2]! >>> (8 * (a & 3))) & 0xff;
    const [base, width] = regAt(a);
    const v = this.regValue(base);
    return width === 1 ? v & 0xff : (v >>> (8 * (a - base))) & 0xff;
  }

  private regValue(base: number): number {
    switch (base) {
      case REG.RBSTART:
        return this.rbstart;
      case REG.ERBCR:
      case REG.ERSR:
        return 0;
      case REG.CR:
        return this.cmd | (this.rxBufferEmpty() ? CR_BUFE : 0);
      case REG.CAPR:
        return (this.rxBufPtr - 16) & 0xffff;
      case REG.CBR:
        return this.rxBufAddr & 0xffff;
      case REG.IMR:
        return this.imr;
      case REG.ISR:
        return this.isr;
      case REG.TCR:
        return this.tcr;
      case REG.RCR:
        return this.rcr;
      case REG.TCTR:
        // 33 MHz PCI clocks since the last write.
        return Math.floor((Date.now() - this.tctrBase) * 33_000) >>> 0;
      case REG.MPC:
        return this.mpc & 0xffffff;
      case REG.CR9346:
        return (this.cfg9346 & 0xc0) === 0x80 ? (this.cfg9346 & ~1) | (this.eeprom.dataOut ? 1 : 0) : this.cfg9346;
      case REG.CONFIG0:
        return this.config0;
      case REG.CONFIG1:
        return this.config1;
      case REG.TIMERINT:
        return this.timerInt;
      case REG.MSR:
        return 0xd0 | (~this.bmsr & 0x04);
      case REG.CONFIG3:
        return this.config3;
      case REG.CONFIG4:
        return this.config4;
      case REG.MULINT:
        return this.multiIntr;
      case REG.RERID:
        return RTL8139C_PCI_REVISION;
      case REG.TSAD: {
        let v = 0;
        for (let i = 0; i < 4; i++) {
          const t = this.tsd[i]!;
          if (t & TSD_TOK) v |= 1 << (12 + i);
          if (t & TSD_TUN) v |= 1 << (8 + i);
          if (t & TSD_TABT) v |= 1 << (4 + i);
          if (t & TSD_OWN) v |= 1 << i;
        }
        return v;
      }
      case REG.BMCR:
        return this.bmcr;
      case REG.BMSR:
        return this.bmsr;
      case REG.ANAR:
        return this.anar;
      case REG.ANLPAR:
        return this.anlpar;
      case REG.ANER:
        return this.aner;
      case REG.CSCR:
        return this.cscr;
      case REG.CONFIG5:
        return this.config5;
      default:
        if (base >= 0x6c && base < 0xd8) return this.raw[base]!;
        return 0; // reserved, HLTCLK and the C+ registers of later chips
    }
  }

  /** Register reads have no side effects on this chip, so any width is composed from bytes. */
  regRead(offset: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.regByte((offset + i) & 0xff) << (8 * i);
    return v >>> 0;
  }

  /** Writes are grouped per register: the bytes written are merged into the register's
   * current value (zeros for write-1-to-clear ISR) and the register's write action runs once. */
  regWrite(offset: number, size: number, value: number): void {
    let i = 0;
    while (i < size) {
      const a = (offset + i) & 0xff;
      const [base, width] = regAt(a);
      let cur = base === REG.ISR ? 0 : this.regWriteBase(base, width);
      let j = i;
      while (j < size && ((offset + j) & 0xff) >= base && ((offset + j) & 0xff) < base + width) {
        const sh = 8 * (((offset + j) & 0xff) - base);
        cur = ((cur & ~(0xff << sh)) | (((value >>> (8 * j)) & 0xff) << sh)) >>> 0;
        j++;
      }
      this.writeRegister(base, width, cur);
      i = j;
    }
  }

  private regWriteBase(base: number, width: number): number {
    if (base < 0x30) {
      if (base < 0x10) return this.regByte(base);
      return base < 0x20 ? this.tsd[(base - 0x10) >> 2]! : this.tsad[(base - 0x20) >> 2]!;
    }
    const v = this.regValue(base);
    return width === 4 ? v >>> 0 : v & (width === 2 ? 0xffff : 0xff);
  }

  private configWritable(): boolean {
    return (this.cfg9346 & 0xc0) === 0xc0;
  }

  private writeRegister(base: number, _width: number, v: number): void {
    if (base < 6) {
      this.idr[base] = v;
      return;
    }
    if (base < 8) return;
    if (base < 0x10) {
      this.mar[base - 8] = v;
      return;
    }
    if (base < 0x20) {
      const i = (base - 0x10) >> 2;
      // Status bits 31:24 and 15:14 are read-only (reset on write), 23:22 reserved.
      this.tsd[i] = setMasked(v & ~0xff00c000, 0x00c00000, this.tsd[i]!);
      this.transmit();
      return;
    }
    if (base < 0x30) {
      this.tsad[(base - 0x20) >> 2] = v >>> 0;
      return;
    }
    switch (base) {
      case REG.RBSTART:
        this.rbstart = v >>> 0;
        return;
      case REG.CR:
        this.writeCommand(v & 0xff);
        return;
      case REG.CAPR:
        this.rxBufPtr = (v + 16) % this.rxBufferSize;
        this.backend?.rxSpaceAvailable?.();
        return;
      case REG.IMR:
        this.imr = setMasked(v & 0xffff, 0x1e00, this.imr);
        this.updateIrq();
        return;
      case REG.ISR:
        this.isr = setMasked(this.isr & ~v & 0xffff, 0x1e00, this.isr);
        this.updateIrq();
        return;
      case REG.TCR:
        if (!(this.cmd & CR_TE)) return; // as on the chip (and QEMU): only with Tx enabled
        this.tcr = setMasked(v, 0x7c800000 | 0x8070f80f, this.tcr);
        return;
      case REG.RCR: {
        this.rcr = setMasked(v, 0xf0fc0040, this.rcr);
        const size = 8192 << ((this.rcr >>> 11) & 3);
        if (size !== this.rxBufferSize) {
          this.rxBufferSize = size;
          this.rxBufPtr = 0;
          this.rxBufAddr = 0;
        }
        return;
      }
      case REG.TCTR:
        this.tctrBase = Date.now();
        return;
      case REG.MPC:
        this.mpc = 0;
        return;
      case REG.CR9346:
        this.writeCfg9346(v & 0xff);
        return;
      case REG.CONFIG0:
        if (this.configWritable()) this.config0 = setMasked(v & 0xff, 0xf8, this.config0);
        return;
      case REG.CONFIG1:
        if (this.configWritable()) this.config1 = setMasked(v & 0xff, 0x0c, this.config1);
        return;
      case REG.TIMERINT:
        this.timerInt = v >>> 0;
        return;
      case REG.CONFIG3:
        if (this.configWritable()) this.config3 = setMasked(v & 0xff, 0x8f, this.config3);
        return;
      case REG.CONFIG4:
        if (this.configWritable()) this.config4 = setMasked(v & 0xff, 0x0a, this.config4);
        return;
      case REG.MULINT:
        this.multiIntr = setMasked(v & 0xffff, 0xf000, this.multiIntr);
        return;
      case REG.BMCR:
        // Speed/duplex/autoneg-enable are fixed; reset (15) and restart-autoneg (9) self-clear.
        this.bmcr = setMasked(v & 0xffff, 0x7dff, this.bmcr) & ~0x8200;
        return;
      case REG.BMSR:
        this.bmsr = setMasked(v & 0xffff, 0xff3f, this.bmsr);
        return;
      case REG.ANAR:
        this.anar = v & 0xffff;
        return;
      case REG.ANER:
        this.aner = v & 0xffff;
        return;
      case REG.CSCR:
        this.cscr = v & 0xffff;
        return;
      case REG.CONFIG5:
        this.config5 = setMasked(v & 0xff, 0x80, this.config5);
        return;
      default:
        if (base >= 0x6c && base < 0xd8) this.raw[base] = v & 0xff;
      // ERBCR, ERSR, CBR, MSR, RERID, TSAD, ANLPAR, HLTCLK and C+ registers: read-only/absent.
    }
  }

  private writeCommand(v: number): void {
    if (v & CR_RST) this.softReset();
    const wasTx = (this.cmd & CR_TE) !== 0;
    this.cmd = setMasked(v, 0xe3, this.cmd) & ~CR_RST;
    if (!wasTx && this.cmd & CR_TE) this.transmit();
  }

  private writeCfg9346(v: number): void {
    let val = setMasked(v, 0x31, this.cfg9346);
    const mode = val & 0xc0;
    if (mode === 0x80) {
      this.eeprom.setWires((val & 0x08) !== 0, (val & 0x04) !== 0, (val & 0x02) !== 0);
    } else {
      this.eeprom.setWires(false, false, false); // leaving EEPROM mode drops chip select
      if (mode === 0x40) {
        // Auto-load: reload configuration (and the MAC) from the EEPROM, as after power-on.
        val = 0;
        this.softReset();
        for (let i = 0; i < 3; i++) {
          const w = this.eeprom.contents[7 + i]!;
          this.idr[2 * i] = w & 0xff;
          this.idr[2 * i + 1] = w >> 8;
        }
        this.cmd &= ~CR_RST;
      }
    }
    this.cfg9346 = val;
  }

  private updateIrq(): void {
    this.setIrq((this.isr & this.imr & 0xffff) !== 0);
    this.metrics.interrupts = this.irq?.edges ?? 0;
  }

  /** The MAC the driver currently programmed (IDR0-5). */
  currentMac(): Uint8Array {
    return new Uint8Array(this.idr);
  }

  /** Interrupt status (for tests/diagnostics; the guest reads ISR). */
  get interruptStatus(): number {
    return this.isr;
  }

  /** Link state the PHY reports (BMSR link bit, MediaStatus). */
  setLink(up: boolean): void {
    this.linkUp = up;
    this.bmsr = up ? this.bmsr | 0x0004 : this.bmsr & ~0x0004;
  }

  // ---- faults ---------------------------------------------------------------------------

  /** A DMA hit something that is not guest RAM: master abort, SERR, and the engines stop. */
  private dmaFault(what: string, gpa: number, len: number): void {
    this.signalMasterAbort();
    this.signalSystemError();
    this.cmd &= ~(CR_RE | CR_TE);
    this.isr |= INT_PCIERR;
    this.peerErrors.report('dma_errors', `${what}: DMA to 0x${gpa.toString(16)}+${len} is outside guest RAM; receiver and transmitter stopped`);
    this.updateIrq();
  }

  // ---- transmit -------------------------------------------------------------------------

  private transmit(): void {
    for (let n = 0; n < 4; n++) {
      if (!(this.cmd & CR_TE)) return;
      const i = this.curTx;
      const t = this.tsd[i]!;
      if (t & TSD_OWN) return; // nothing queued in the current descriptor
      if (!this.transmitOne(i, t)) return;
      this.curTx = (i + 1) & 3;
    }
  }

  private transmitOne(i: number, t: number): boolean {
    const size = t & TSD_SIZE_MASK;
    if (size > TX_MAX_FRAME) {
      this.tsd[i] = (t | TSD_OWN | TSD_TABT) >>> 0;
      this.isr |= INT_TER;
      this.peerErrors.report('tx_errors', `Tx descriptor ${i}: ${size} bytes is over ${TX_MAX_FRAME}; aborted`);
      this.updateIrq();
      return true;
    }
    const addr = this.tsad[i]!;
    const frame = new Uint8Array(size);
    if (!this.busMasterEnabled() || !this.memory.read(addr, frame)) {
      this.dmaFault(`Tx descriptor ${i}`, addr, size);
      return false;
    }
    this.tsd[i] = (t | TSD_OWN | TSD_TOK) >>> 0;
    if (size > 0) {
      this.metrics.tx_packets++;
      this.metrics.tx_bytes += size;
      if ((this.tcr & TCR_LOOPBACK) === TCR_LOOPBACK) this.receive(frame);
      else this.backend?.send(frame);
    }
    this.isr |= INT_TOK;
    this.updateIrq();
    return true;
  }

  // ---- receive --------------------------------------------------------------------------

  private rxBufferEmpty(): boolean {
    return (this.rxBufferSize + this.rxBufAddr - this.rxBufPtr) % this.rxBufferSize === 0;
  }

  /** Whether a frame offered now would fit (QEMU's flow-control rule). When false, an
   * embedder reading a TAP should pause until rxSpaceAvailable(). */
  canReceive(): boolean {
    if (!(this.cmd & CR_RE)) return true; // will be dropped, do not hold the queue
    const avail = (this.rxBufferSize + this.rxBufPtr - this.rxBufAddr) % this.rxBufferSize;
    return avail === 0 || avail >= 1514 + 8 || (this.imr & INT_RXOVW) !== 0;
  }

  /** Classifies a frame against RCR; returns the Rx header status bits or -1 to reject. */
  private accept(frame: Uint8Array): number {
    const broadcast = frame[0] === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff;
    if (broadcast) return this.rcr & (RCR_AB | RCR_AAP) ? RXS_BAR : -1;
    if (frame[0]! & 1) {
      if (this.rcr & RCR_AAP) return RXS_MAR;
      if (!(this.rcr & RCR_AM)) return -1;
      const idx = multicastHashIndex(frame, 0);
      return this.mar[idx >> 3]! & (1 << (idx & 7)) ? RXS_MAR : -1;
    }
    let mine = true;
    for (let i = 0; i < 6; i++) if (frame[i] !== this.idr[i]) mine = false;
    if (mine) return this.rcr & (RCR_APM | RCR_AAP) ? RXS_PAM : -1;
    return this.rcr & RCR_AAP ? 0 : -1;
  }

  /**
   * Offers one received frame (no FCS) to the NIC. Returns true when the frame went into the
   * ring, false when it was dropped (receiver off, filtered, too long, ring full, DMA fault).
   */
  receive(frame: Uint8Array): boolean {
    if (!(this.cmd & CR_RE) || frame.length < 14 || frame.length > RX_MAX_FRAME) {
      this.metrics.rx_filtered++;
      return false;
    }
    const status = this.accept(frame);
    if (status < 0) {
      this.metrics.rx_filtered++;
      return false;
    }
    if (!this.busMasterEnabled()) {
      // No bus mastering: the frame cannot leave the FIFO.
      this.isr |= INT_FOVW;
      this.mpc = (this.mpc + 1) & 0xffffff;
      this.metrics.rx_overflows++;
      this.updateIrq();
      return false;
    }
    const size = Math.max(frame.length, MIN_FRAME);
    const avail = (this.rxBufferSize + this.rxBufPtr - this.rxBufAddr) % this.rxBufferSize;
    if (avail !== 0 && size + 8 >= avail) {
      this.isr |= INT_RXOVW;
      this.mpc = (this.mpc + 1) & 0xffffff;
      this.metrics.rx_overflows++;
      this.updateIrq();
      return false;
    }
    // header | frame (zero-padded to 60) | CRC-32 of the padded frame
    const pkt = this.rxScratch;
    const total = size + 8;
    pkt.fill(0, 0, total);
    const dv = new DataView(pkt.buffer, pkt.byteOffset, total);
    dv.setUint16(0, status | RXS_ROK, true);
    dv.setUint16(2, size + 4, true);
    pkt.set(frame, 4);
    dv.setUint32(4 + size, crc32le(pkt, 4, size), true);
    if (!this.writeRing(pkt, total)) return false;
    this.rxBufAddr = ((this.rxBufAddr + 3) & ~3) % this.rxBufferSize;
    this.metrics.rx_packets++;
    this.metrics.rx_bytes += frame.length;
    this.isr |= INT_ROK;
    this.updateIrq();
    return true;
  }

  private writeRing(pkt: Uint8Array, len: number): boolean {
    const size = this.rxBufferSize;
    const at = this.rxBufAddr;
    if (at + len > size) {
      const wrapped = (at + len) % size;
      const noWrap = size < 65536 && (this.rcr & RCR_WRAP) !== 0;
      if (wrapped && !noWrap) {
        const first = len - wrapped;
        if (first > 0 && !this.memory.write(this.rbstart + at, pkt, 0, first)) {
          this.dmaFault('Rx ring', this.rbstart + at, first);
          return false;
        }
        if (!this.memory.write(this.rbstart, pkt, first, wrapped)) {
          this.dmaFault('Rx ring', this.rbstart, wrapped);
          return false;
        }
        this.rxBufAddr = wrapped;
        return true;
      }
    }
    if (!this.memory.write(this.rbstart + at, pkt, 0, len)) {
      this.dmaFault('Rx ring', this.rbstart + at, len);
      return false;
    }
    this.rxBufAddr = at + len;
    return true;
  }
}
