// The PIIX4 power-management function (00:01.3, 8086:7113, class 0680), as QEMU's piix4 PM
// gives a Xen HVM guest and hvmloader sets it up: the ACPI fixed-hardware registers in the I/O
// block its PMBA names (config 0x40, bit 0 reads 1 = I/O space; decoded while PMREGMISC bit 0,
// config 0x80, is set). hvmloader puts the block at 0xB000 (Xen's ACPI_PM1A_EVT_BLK_ADDRESS_V1)
// and hard-wires the SCI to ISA IRQ 9 (the FADT's SCI_INT); the kernel below reads both back.
//
//   PMBA+0  PM1a_STS  16 bit, write 1 to clear: TMR_STS 0, GBL_STS 5, PWRBTN_STS 8,
//                     SLPBTN_STS 9, RTC_STS 10, WAK_STS 15
//   PMBA+2  PM1a_EN   16 bit: TMR_EN 0, GBL_EN 5, PWRBTN_EN 8, SLPBTN_EN 9, RTC_EN 10
//   PMBA+4  PM1a_CNT  16 bit: SCI_EN 0, SLP_TYP 12:10, SLP_EN 13 (write-only, reads 0)
//   PMBA+8  PM_TMR    32-bit read of the 24-bit 3.579545 MHz ACPI timer
//
// The SCI is level: asserted while (STS & EN) has a bit that can raise it, as Xen's pmtimer.c
// (pmt_update_sci) and QEMU's acpi_update_sci compute it. A power or sleep button press sets
// its status bit whether or not it is enabled (Xen's hvm_acpi_power_button), so a guest that
// enables the button later still sees the press. SLP_EN with SLP_TYP 0 (hvmloader's DSDT \_S5)
// is soft-off; another SLP_TYP (S3, S4) is refused with a log line: xenode cannot suspend a
// guest. The timer counts but raises no overflow SCI (TMR_STS is never set).
import type { AddressBus, BusRegion, IoHandler } from '../../device-model/address-bus.js';
import type { IrqSource } from '../../device-model/interrupts.js';
import type { DeviceLogger } from '../../device-model/log.js';
import { PCI_STATUS_DEVSEL_MEDIUM, PCI_VENDOR_ID_INTEL } from '../pci/constants.js';
import { PciFunction } from '../pci/pci-function.js';

export const PIIX4_PM_DEVICE_ID = 0x7113;
export const PIIX4_PM_CLASS = 0x068000;
/** Config-space registers hvmloader programs. */
export const PIIX4_PMBA = 0x40;
export const PIIX4_PMREGMISC = 0x80;
/** Where hvmloader puts the block, and the SCI's line. */
export const ACPI_PM_BASE = 0xb000;
export const ACPI_SCI_IRQ = 9;
export const ACPI_PM_IO_SIZE = 64;

export const PM1_STS = 0;
export const PM1_EN = 2;
export const PM1_CNT = 4;
export const PM_TMR = 8;

export const TMR_STS = 1 << 0;
export const GBL_STS = 1 << 5;
export const PWRBTN_STS = 1 << 8;
export const SLPBTN_STS = 1 << 9;
export const RTC_STS = 1 << 10;
export const WAK_STS = 1 << 15;
export const SCI_EN = 1 << 0;
export const SLP_EN = 1 << 13;
export const SLP_TYP_SHIFT = 10;
/** hvmloader's \_S5 package: SLP_TYP 0 is soft-off. */
export const SLP_TYP_S5 = 0;
/** The status bits that can raise the SCI (Xen's SCI_MASK plus the RTC's). */
const SCI_MASK = TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS;
const STS_BITS = SCI_MASK | WAK_STS;
const PM_TIMER_HZ = 3_579_545;

export interface Piix4PmOptions {
  sci: IrqSource;
  /** The guest wrote SLP_EN with the S5 type: it has powered itself off. */
  onSoftOff?: () => void;
  log: DeviceLogger;
}

export interface Piix4PmMetrics {
  exits: number;
  powerButtonPresses: number;
  sleepButtonPresses: number;
  scis: number;
}

export class Piix4Pm extends PciFunction {
  readonly metrics: Piix4PmMetrics;
  sts = 0;
  en = 0;
  cnt = 0;
  private region: BusRegion | null = null;
  private pio: AddressBus | null = null;
  private readonly t0 = process.hrtime.bigint();
  /** Sleep types already refused (logged once each). */
  private readonly refusedTypes = new Set<number>();
  readonly registers: IoHandler;

  constructor(private readonly o: Piix4PmOptions) {
    const metrics: Piix4PmMetrics = { exits: 0, powerButtonPresses: 0, sleepButtonPresses: 0, scis: 0 };
    super('piix4-pm', { vendor: PCI_VENDOR_ID_INTEL, device: PIIX4_PM_DEVICE_ID, revision: 0x03, classCode: PIIX4_PM_CLASS, interruptPin: 1, status: PCI_STATUS_DEVSEL_MEDIUM }, metrics);
    this.metrics = metrics;
    // PMBA: bits 15:6 the base, bit 0 hard-wired to 1 (I/O space); PMREGMISC bit 0.
    this.config[PIIX4_PMBA] = 0x01;
    this.writable(PIIX4_PMBA, 1, 0xc0);
    this.writable(PIIX4_PMBA + 1, 1, 0xff);
    this.writable(PIIX4_PMREGMISC, 1, 0x01);
    this.registers = {
      read: (off, size) => this.read(off, size),
      write: (off, size, v) => this.write(off, size, v),
    };
  }

  /** The I/O space the block is decoded in (the machine's port bus). */
  attachIo(pio: AddressBus): void {
    this.pio = pio;
    this.remapBlock();
  }

  /** Where the block decodes now (null: PMREGMISC off or no base). */
  get base(): number | null {
    return this.region?.base ?? null;
  }

  protected override onConfigWrite(reg: number, size: number): void {
    if (reg + size > PIIX4_PMBA && reg < PIIX4_PMBA + 4) this.remapBlock();
    else if (reg + size > PIIX4_PMREGMISC && reg <= PIIX4_PMREGMISC) this.remapBlock();
  }

  private remapBlock(): void {
    if (!this.pio) return;
    const base = (this.config[PIIX4_PMBA]! | (this.config[PIIX4_PMBA + 1]! << 8)) & 0xffc0;
    const on = (this.config[PIIX4_PMREGMISC]! & 1) !== 0 && base !== 0;
    if (this.region && (!on || this.region.base !== base)) {
      this.pio.unregister(this.region);
      this.region = null;
    }
    if (on && !this.region) {
      try {
        this.region = this.pio.register(base, ACPI_PM_IO_SIZE, this.registers, 'acpi-pm', this.metrics);
      } catch (e) {
        // A base over another device's ports: the block stays dark, as a conflicting decode would.
        this.o.log.warn(`acpi-pm: ACPI PM block at 0x${base.toString(16)}: ${(e as Error).message}`);
      }
    }
  }

  /** xl trigger DOM power: PWRBTN_STS, and the SCI if the guest enabled the button. */
  pressPowerButton(): void {
    this.metrics.powerButtonPresses++;
    this.sts |= PWRBTN_STS;
    this.updateSci();
  }

  /** xl trigger DOM sleep. */
  pressSleepButton(): void {
    this.metrics.sleepButtonPresses++;
    this.sts |= SLPBTN_STS;
    this.updateSci();
  }

  /** True while a press is waiting for the guest to notice and clear it. */
  get buttonPending(): boolean {
    return (this.sts & (PWRBTN_STS | SLPBTN_STS)) !== 0;
  }

  /** Whether the guest's OS has enabled the power button's SCI (an OS with ACPI running). */
  get powerButtonEnabled(): boolean {
    return (this.en & PWRBTN_STS) !== 0 && (this.cnt & SCI_EN) !== 0;
  }

  reset(): void {
    this.sts = 0;
    this.en = 0;
    this.cnt = 0;
    this.updateSci();
  }

  private timer(): number {
    const ticks = ((process.hrtime.bigint() - this.t0) * BigInt(PM_TIMER_HZ)) / 1_000_000_000n;
    return Number(ticks & 0xffffffn);
  }

  private reg16(off: number): number {
    if (off === PM1_STS) return this.sts;
    if (off === PM1_EN) return this.en;
    if (off === PM1_CNT) return this.cnt & ~SLP_EN;
    return 0;
  }

  private read(off: number, size: number): number {
    if (off >= PM_TMR && off < PM_TMR + 4) return (this.timer() >>> (8 * (off - PM_TMR))) & (size >= 4 ? 0xffffffff : (1 << (8 * size)) - 1);
    if (off >= 12) return size >= 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    // Byte or word reads of the 16-bit registers.
    let v = 0;
    for (let i = 0; i < size; i++) {
      const a = off + i;
      v |= ((this.reg16(a & ~1) >> (8 * (a & 1))) & 0xff) << (8 * i);
    }
    return v >>> 0;
  }

  private write(off: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) {
      const a = off + i;
      const byte = (value >>> (8 * i)) & 0xff;
      const shift = 8 * (a & 1);
      const reg = a & ~1;
      if (reg === PM1_STS) this.sts &= ~((byte << shift) & STS_BITS);
      else if (reg === PM1_EN) this.en = ((this.en & ~(0xff << shift)) | (byte << shift)) & SCI_MASK;
      else if (reg === PM1_CNT) {
        this.cnt = (this.cnt & ~(0xff << shift)) | (byte << shift);
        if (a === PM1_CNT + 1 && this.cnt & SLP_EN) this.sleep((this.cnt >> SLP_TYP_SHIFT) & 7);
      }
    }
    this.updateSci();
  }

  private sleep(type: number): void {
    this.cnt &= ~SLP_EN;
    if (type === SLP_TYP_S5) {
      this.o.log.info('acpi-pm: S5 (soft off) entered');
      this.o.onSoftOff?.();
      return;
    }
    if (!this.refusedTypes.has(type)) this.o.log.warn(`acpi-pm: sleep type ${type} requested: xenode cannot suspend a guest; it keeps running`);
    this.refusedTypes.add(type);
    this.sts |= WAK_STS;
  }

  private updateSci(): void {
    const level = (this.sts & this.en & SCI_MASK) !== 0;
    if (level && !this.o.sci.level) this.metrics.scis++;
    this.o.sci.set(level);
  }
}
