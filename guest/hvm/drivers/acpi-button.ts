// The ACPI fixed-hardware power and sleep buttons and soft-off, as Linux's ACPI core and button
// driver use them (drivers/acpi/button.c, acpica's evevent.c/hwsleep.c) on a Xen HVM guest.
// This kernel reads no ACPI tables: it finds the PM1a block where the FADT would say it is, from
// the PIIX4 PM function hvmloader programmed (8086:7113: PMBA at config 0x40, decode enable at
// 0x80, SCI on its Interrupt Line, IRQ 9), as Linux's PIIX4 quirk reads the same registers.
//
//   probe   clear stale status (write 1s to PM1a_STS), enable PWRBTN_EN and SLPBTN_EN in
//           PM1a_EN, set SCI_EN in PM1a_CNT (hvmloader's acpi_enable_sci; no SMI_CMD here)
//   SCI     read PM1a_STS, acknowledge what is set (write 1 to clear) and report each button:
//           "button/power PWRF 00000080 00000001" is what acpid receives on Linux
//   S5      the last step of poweroff: SLP_TYP 0 (hvmloader's \_S5) | SLP_EN to PM1a_CNT
import type { Cpu } from '../cpu/io.js';
import type { PciConfigSpace, PciDevice } from '../firmware/pci.js';
import { PCI_VENDOR_INTEL, PIIX4_PM_DEVICE, PIIX4_PMBA, PIIX4_PMREGMISC } from '../firmware/pci.js';

const PM1_STS = 0;
const PM1_EN = 2;
const PM1_CNT = 4;
const PWRBTN = 1 << 8;
const SLPBTN = 1 << 9;
const SCI_EN = 1 << 0;
const SLP_EN = 1 << 13;
const SLP_TYP_S5 = 0;
const SLP_TYP_SHIFT = 10;

/** What the button driver hands to acpid (the netlink/input event's text form). */
export type AcpiButtonEvent = 'button/power PWRF 00000080 00000001' | 'button/sleep SLPF 00000080 00000001';

export interface AcpiButtonCounters {
  scis: number;
  power: number;
  sleep: number;
}

export class AcpiButtons {
  readonly counters: AcpiButtonCounters = { scis: 0, power: 0, sleep: 0 };
  /** acpid: called once per press. */
  onEvent: (e: AcpiButtonEvent) => void = () => {};

  private constructor(
    private readonly cpu: Cpu,
    readonly base: number,
    readonly irq: number,
  ) {}

  /** Finds the PM function and its block; null when the machine has none (or it is not set up). */
  static probe(cpu: Cpu, cfg: PciConfigSpace, devices: PciDevice[], log: (m: string) => void): AcpiButtons | null {
    const d = devices.find((x) => x.vendor === PCI_VENDOR_INTEL && x.device === PIIX4_PM_DEVICE);
    if (!d) return null;
    const base = cfg.read16(d.bus, d.dev, d.fn, PIIX4_PMBA) & 0xffc0;
    if (!(cfg.read8(d.bus, d.dev, d.fn, PIIX4_PMREGMISC) & 1) || base === 0 || d.irq === null) {
      log('ACPI: PM1a block not enabled by the firmware: no power button');
      return null;
    }
    cpu.claimPorts('acpi-pm', base, 64);
    const b = new AcpiButtons(cpu, base, d.irq);
    cpu.outw(base + PM1_STS, PWRBTN | SLPBTN);
    cpu.outw(base + PM1_EN, PWRBTN | SLPBTN);
    cpu.outw(base + PM1_CNT, cpu.inw(base + PM1_CNT) | SCI_EN);
    log(`ACPI: PM1a_EVT_BLK 0x${base.toString(16)}, PM1a_CNT_BLK 0x${(base + PM1_CNT).toString(16)}, SCI IRQ ${d.irq}`);
    log('input: Power Button as /devices/LNXSYSTM:00/LNXPWRBN:00/input/input0');
    log('ACPI: button: Power Button [PWRF]');
    log('input: Sleep Button as /devices/LNXSYSTM:00/LNXSLPBN:00/input/input1');
    log('ACPI: button: Sleep Button [SLPF]');
    return b;
  }

  /** The SCI: true when it was ours (a status bit was set). */
  handleIrq(): boolean {
    const sts = this.cpu.inw(this.base + PM1_STS) & (PWRBTN | SLPBTN);
    if (!sts) return false;
    this.counters.scis++;
    this.cpu.outw(this.base + PM1_STS, sts);
    if (sts & PWRBTN) {
      this.counters.power++;
      this.onEvent('button/power PWRF 00000080 00000001');
    }
    if (sts & SLPBTN) {
      this.counters.sleep++;
      this.onEvent('button/sleep SLPF 00000080 00000001');
    }
    return true;
  }

  /** acpi_enter_sleep_state(S5): the machine turns off. */
  softOff(): void {
    this.cpu.outw(this.base + PM1_CNT, (SLP_TYP_S5 << SLP_TYP_SHIFT) | SCI_EN);
    this.cpu.outw(this.base + PM1_CNT, (SLP_TYP_S5 << SLP_TYP_SHIFT) | SLP_EN | SCI_EN);
  }
}
