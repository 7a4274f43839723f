// The PIIX3 PCI-to-ISA bridge at 00:01.0 (function 0 of the multi-function PIIX3): 8086:7000,
// class 0601, header type 0x80. What matters here are the PIRQ Route Control registers
// 0x60-0x63 (PIRQA..D): bit 7 set = routing disabled, bits 3:0 = ISA IRQ. Values 0-2, 8 and 13
// are reserved IRQs on the PIIX3; such a route is treated as disabled. Other chipset
// registers are plain read/write bytes.
import { PCI_CLASS_BRIDGE_ISA, PCI_HEADER_TYPE_MULTI_FUNCTION, PCI_STATUS_DEVSEL_MEDIUM, PCI_VENDOR_ID_INTEL } from './constants.js';
import type { PciBus } from './pci-bus.js';
import { PciFunction } from './pci-function.js';

export const PIIX3_ISA_DEVICE_ID = 0x7000;
export const PIIX_PIRQC = 0x60;
const RESERVED_IRQS = new Set([0, 1, 2, 8, 13]);

export class Piix3IsaBridge extends PciFunction {
  private bus: PciBus | undefined;

  constructor() {
    super('piix3-isa', {
      vendor: PCI_VENDOR_ID_INTEL,
      device: PIIX3_ISA_DEVICE_ID,
      revision: 0x00,
      classCode: PCI_CLASS_BRIDGE_ISA,
      headerType: PCI_HEADER_TYPE_MULTI_FUNCTION,
      status: PCI_STATUS_DEVSEL_MEDIUM,
    });
    this.config[0x04] = 0x07;
    this.writable(0x4c, 0xb4);
    // Power-on defaults (82371SB datasheet): PIRQ routing disabled, TOM, ...
    for (let i = 0; i < 4; i++) this.config[PIIX_PIRQC + i] = 0x80;
    this.config[0x69] = 0x02;
    this.config[0x70] = 0x80;
    this.config[0x76] = 0x0c;
    this.config[0x77] = 0x0c;
    this.config[0x78] = 0x02;
    this.config[0xa0] = 0x08;
  }

  /** Becomes `bus`'s PIRQ router. */
  connect(bus: PciBus): void {
    this.bus = bus;
    bus.setPirqRouter((pirq) => this.route(pirq));
  }

  /** ISA IRQ for PIRQ `pirq` (0..3), or null when disabled. */
  route(pirq: number): number | null {
    const v = this.config[PIIX_PIRQC + (pirq & 3)]!;
    if (v & 0x80) return null;
    const irq = v & 0x0f;
    return RESERVED_IRQS.has(irq) ? null : irq;
  }

  /** Firmware-style route programming. */
  setRoute(pirq: number, irq: number | null): void {
    this.config[PIIX_PIRQC + (pirq & 3)] = irq === null ? 0x80 : irq & 0x0f;
    this.bus?.reroute();
  }

  protected override onConfigWrite(reg: number, size: number): void {
    if (reg < PIIX_PIRQC + 4 && reg + size > PIIX_PIRQC) this.bus?.reroute();
  }
}
