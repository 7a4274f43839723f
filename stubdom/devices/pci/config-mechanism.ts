// PCI configuration mechanism #1 (ports 0xCF8-0xCFF) plus the PIIX3 Reset Control Register
// that shares the range (byte 0xCF9).
//
//   0xCF8, 32-bit only: CONFIG_ADDRESS = enable(31) | bus(23:16) | dev(15:11) | fn(10:8) |
//                       reg(7:2); bits 30:24 and 1:0 read back as 0.
//   0xCFC-0xCFF:        CONFIG_DATA; byte/word accesses select reg | (port & 3). With the
//                       enable bit clear, reads return all ones and writes are dropped.
//   0xCF9, 8-bit:       Reset Control: bit 2 (RST_CPU) set starts a reset; bit 1 (SYS_RST)
//                       selects a hard reset. Other byte/word accesses to 0xCF8-0xCFB read
//                       all ones and are ignored (Linux's pci_check_type1 relies on that).
import type { IoHandler } from '../../device-model/address-bus.js';
import type { PciConfigTarget } from '../../device-model/ioreq-dispatch.js';

export class PciConfigMechanism1 implements IoHandler {
  address = 0;
  resetControl = 0;
  readonly metrics = { exits: 0, configReads: 0, configWrites: 0, resets: 0 };

  constructor(
    private readonly target: PciConfigTarget,
    /** Called for a reset request through 0xCF9 (hard = SYS_RST was set). */
    private readonly onReset?: (hard: boolean) => void,
  ) {}

  read(offset: number, size: number): number {
    if (offset === 0 && size === 4) return this.address >>> 0;
    if (offset === 1 && size === 1) return this.resetControl;
    if (offset < 4) return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    const byte = offset - 4;
    if (!(this.address & 0x8000_0000) || byte + size > 4) return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    this.metrics.configReads++;
    const a = this.address;
    return this.target.configRead((a >>> 16) & 0xff, (a >>> 11) & 0x1f, (a >>> 8) & 7, (a & 0xfc) | byte, size);
  }

  write(offset: number, size: number, value: number): void {
    if (offset === 0 && size === 4) {
      this.address = (value & 0x80ff_fffc) >>> 0;
      return;
    }
    if (offset === 1 && size === 1) {
      this.resetControl = value & 0x0e;
      if (value & 0x04) {
        this.metrics.resets++;
        this.resetControl &= ~0x04;
        this.onReset?.((value & 0x02) !== 0);
      }
      return;
    }
    if (offset < 4) return;
    const byte = offset - 4;
    if (!(this.address & 0x8000_0000) || byte + size > 4) return;
    this.metrics.configWrites++;
    const a = this.address;
    this.target.configWrite((a >>> 16) & 0xff, (a >>> 11) & 0x1f, (a >>> 8) & 7, (a & 0xfc) | byte, size, value);
  }
}

/** CONFIG_ADDRESS value for a register (what a guest writes to 0xCF8). */
export function pciConfigAddress(bus: number, dev: number, fn: number, reg: number): number {
  return (0x8000_0000 | ((bus & 0xff) << 16) | ((dev & 0x1f) << 11) | ((fn & 7) << 8) | (reg & 0xfc)) >>> 0;
}
