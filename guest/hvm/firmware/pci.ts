// PCI from the guest side, configuration mechanism #1 (ports 0xCF8/0xCFC): what hvmloader's
// pci_setup() does before the BIOS runs, and what the kernel's PCI core reads back afterwards.
//
//   scan      every device 0..31 of bus 0, functions 1-7 too when function 0 says
//             multi-function; vendor/device/class/revision/subsystem, header type, interrupt
//             pin and line, and each BAR's kind and size (sized the classic way: decode off,
//             write all ones, read the mask back, restore)
//   assign    hvmloader's policy: PIIX3 PIRQ A-D routed to ISA IRQs 10, 11, 10, 11 (config
//             0x60-0x63 of 00:01.0); I/O BARs from 0xC000 upwards in device order, each
//             aligned to its size; memory BARs from the bottom of the MMIO hole (0xF0000000)
//             largest first; I/O and memory decode enabled (bus mastering stays off until a
//             driver asks, as on real hardware); the Interrupt Line register of every
//             function with an INTx pin set to the ISA IRQ its PIRQ reaches
//             ((slot - 1 + pin - 1) & 3, the PIIX swizzle); IDE decode enabled in the
//             PIIX3 IDE's IDETIM registers (0x40, 0x42 bit 15); the PIIX4 ACPI PM function
//             (8086:7113) as hvmloader sets it: SCI hard-wired to IRQ 9 (Interrupt Line), the
//             PM1a block at 0xB000 (PMBA, 0x40), PM I/O decode on (PMREGMISC, 0x80).
import type { Cpu } from '../cpu/io.js';

export const PCI_VENDOR_ID = 0x00;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_CLASS_REVISION = 0x08;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;

export const PCI_VENDOR_INTEL = 0x8086;
export const PIIX3_ISA_DEVICE = 0x7000;
export const PIIX3_IDE_DEVICE = 0x7010;
export const PIIX4_PM_DEVICE = 0x7113;
/** hvmloader's PIIX4 PM setup (Xen's ACPI_PM1A_EVT_BLK_ADDRESS_V1, the FADT's SCI_INT). */
export const PIIX4_PMBA = 0x40;
export const PIIX4_PMREGMISC = 0x80;
export const ACPI_PM_BASE = 0xb000;
export const ACPI_SCI_IRQ = 9;
const PIIX_PIRQC = 0x60;
const PIIX_IDETIM = [0x40, 0x42] as const;
const IDETIM_DECODE_ENABLE = 0x8000;

export const DEFAULT_PIRQ_ROUTES: readonly (number | null)[] = [10, 11, 10, 11];
export const PCI_IO_BASE = 0xc000;
export const PCI_MMIO_BASE = 0xf000_0000;
const PCI_MMIO_END = 0xfec0_0000; // IOAPIC and friends above

export interface PciBar {
  index: number;
  kind: 'io' | 'mem';
  size: number;
  prefetchable: boolean;
  /** Address assigned (0 until assigned). */
  base: number;
}

export interface PciDevice {
  bus: number;
  dev: number;
  fn: number;
  vendor: number;
  device: number;
  revision: number;
  /** base << 16 | sub << 8 | prog-if */
  classCode: number;
  headerType: number;
  subsystemVendor: number;
  subsystem: number;
  /** 0 none, 1..4 INTA..INTD */
  pin: number;
  /** ISA IRQ from the Interrupt Line register (null = not connected, 0xFF). */
  irq: number | null;
  bars: (PciBar | undefined)[];
}

export function bdf(d: Pick<PciDevice, 'bus' | 'dev' | 'fn'>): string {
  return `0000:${d.bus.toString(16).padStart(2, '0')}:${d.dev.toString(16).padStart(2, '0')}.${d.fn}`;
}

const hex = (v: number, w: number) => (v >>> 0).toString(16).padStart(w, '0');

/** Configuration mechanism #1 through the vCPU's port I/O. */
export class PciConfigSpace {
  constructor(private readonly cpu: Cpu) {}

  private select(bus: number, dev: number, fn: number, reg: number): void {
    this.cpu.outl(0xcf8, (0x8000_0000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
  }

  read32(bus: number, dev: number, fn: number, reg: number): number {
    this.select(bus, dev, fn, reg);
    return this.cpu.inl(0xcfc);
  }

  read16(bus: number, dev: number, fn: number, reg: number): number {
    this.select(bus, dev, fn, reg);
    return this.cpu.inw(0xcfc + (reg & 2));
  }

  read8(bus: number, dev: number, fn: number, reg: number): number {
    this.select(bus, dev, fn, reg);
    return this.cpu.inb(0xcfc + (reg & 3));
  }

  write32(bus: number, dev: number, fn: number, reg: number, v: number): void {
    this.select(bus, dev, fn, reg);
    this.cpu.outl(0xcfc, v >>> 0);
  }

  write16(bus: number, dev: number, fn: number, reg: number, v: number): void {
    this.select(bus, dev, fn, reg);
    this.cpu.outw(0xcfc + (reg & 2), v);
  }

  write8(bus: number, dev: number, fn: number, reg: number, v: number): void {
    this.select(bus, dev, fn, reg);
    this.cpu.outb(0xcfc + (reg & 3), v);
  }

  /** Linux's pci_check_type1(): CONFIG_ADDRESS keeps a written enable bit. */
  probe(): boolean {
    const saved = this.cpu.inl(0xcf8);
    this.cpu.outl(0xcf8, 0x8000_0000);
    const ok = this.cpu.inl(0xcf8) === 0x8000_0000;
    this.cpu.outl(0xcf8, saved);
    return ok;
  }

  // Per-device conveniences.
  cmd(d: PciDevice): number {
    return this.read16(d.bus, d.dev, d.fn, PCI_COMMAND);
  }

  setCmd(d: PciDevice, v: number): void {
    this.write16(d.bus, d.dev, d.fn, PCI_COMMAND, v);
  }

  /** pci_set_master(). */
  setMaster(d: PciDevice): void {
    const c = this.cmd(d);
    if (!(c & PCI_COMMAND_MASTER)) this.setCmd(d, c | PCI_COMMAND_MASTER);
  }
}

function sizeBars(cfg: PciConfigSpace, bus: number, dev: number, fn: number): (PciBar | undefined)[] {
  const bars: (PciBar | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  const cmd = cfg.read16(bus, dev, fn, PCI_COMMAND);
  // Decode off while the BARs hold all ones (they would decode at the top of the space).
  if (cmd & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)) cfg.write16(bus, dev, fn, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
  for (let i = 0; i < 6; i++) {
    const reg = PCI_BASE_ADDRESS_0 + 4 * i;
    const orig = cfg.read32(bus, dev, fn, reg);
    cfg.write32(bus, dev, fn, reg, 0xffff_ffff);
    const mask = cfg.read32(bus, dev, fn, reg);
    cfg.write32(bus, dev, fn, reg, orig);
    if (mask === 0 || mask === 0xffff_ffff) continue;
    if (mask & 1) {
      const m = (mask & 0xffff_fffc) | 0xffff_0000;
      const size = (~m + 1) >>> 0;
      bars[i] = { index: i, kind: 'io', size, prefetchable: false, base: orig & 0xffff_fffc };
    } else {
      const size = (~(mask & 0xffff_fff0) + 1) >>> 0;
      bars[i] = { index: i, kind: 'mem', size, prefetchable: (mask & 8) !== 0, base: (orig & 0xffff_fff0) >>> 0 };
      if (((mask >> 1) & 3) === 2) i++; // 64-bit BAR: the next register is its upper half
    }
  }
  if (cmd & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)) cfg.write16(bus, dev, fn, PCI_COMMAND, cmd);
  return bars;
}

function readFunction(cfg: PciConfigSpace, bus: number, dev: number, fn: number, id: number): PciDevice {
  const cr = cfg.read32(bus, dev, fn, PCI_CLASS_REVISION);
  const sub = cfg.read32(bus, dev, fn, PCI_SUBSYSTEM_VENDOR_ID);
  const intr = cfg.read16(bus, dev, fn, PCI_INTERRUPT_LINE);
  const line = intr & 0xff;
  return {
    bus,
    dev,
    fn,
    vendor: id & 0xffff,
    device: id >>> 16,
    revision: cr & 0xff,
    classCode: cr >>> 8,
    headerType: cfg.read8(bus, dev, fn, PCI_HEADER_TYPE) & 0x7f,
    subsystemVendor: sub & 0xffff,
    subsystem: sub >>> 16,
    pin: (intr >>> 8) & 0xff,
    irq: line === 0xff || line === 0 ? null : line,
    bars: sizeBars(cfg, bus, dev, fn),
  };
}

/** Enumerates bus 0. */
export function pciScan(cfg: PciConfigSpace): PciDevice[] {
  const out: PciDevice[] = [];
  for (let dev = 0; dev < 32; dev++) {
    const id0 = cfg.read32(0, dev, 0, PCI_VENDOR_ID);
    if ((id0 & 0xffff) === 0xffff || id0 === 0) continue;
    const multi = (cfg.read8(0, dev, 0, PCI_HEADER_TYPE) & 0x80) !== 0;
    for (let fn = 0; fn < (multi ? 8 : 1); fn++) {
      const id = fn === 0 ? id0 : cfg.read32(0, dev, fn, PCI_VENDOR_ID);
      if ((id & 0xffff) === 0xffff || id === 0) continue;
      out.push(readFunction(cfg, 0, dev, fn, id));
    }
  }
  return out;
}

/** PIRQ (0..3) that INTx pin `pin` of slot `dev` reaches on the PIIX3. */
export function pirqOf(dev: number, pin: number): number {
  return (dev - 1 + pin - 1) & 3;
}

export interface AssignOptions {
  pirqRoutes?: readonly (number | null)[];
  ioBase?: number;
  mmioBase?: number;
  log?: (line: string) => void;
}

/** hvmloader's pci_setup(): routes, BARs, decode, interrupt lines, IDE decode. Updates the
 * devices in place (bars[].base, irq). */
export function pciAssignResources(cfg: PciConfigSpace, devices: PciDevice[], o: AssignOptions = {}): void {
  const log = o.log ?? (() => {});
  const routes = o.pirqRoutes ?? DEFAULT_PIRQ_ROUTES;
  const isa = devices.find((d) => d.vendor === PCI_VENDOR_INTEL && d.device === PIIX3_ISA_DEVICE);
  if (isa) {
    for (let p = 0; p < 4; p++) {
      const irq = routes[p] ?? null;
      cfg.write8(isa.bus, isa.dev, isa.fn, PIIX_PIRQC + p, irq === null ? 0x80 : irq & 0x0f);
      log(`PCI-ISA link ${p} routed to ${irq === null ? 'nothing' : `IRQ${irq}`}`);
    }
  }
  for (const d of devices) {
    if (d.pin < 1 || d.pin > 4) continue;
    const acpi = d.vendor === PCI_VENDOR_INTEL && d.device === PIIX4_PM_DEVICE;
    const irq = acpi ? ACPI_SCI_IRQ : isa ? (routes[pirqOf(d.dev, d.pin)] ?? null) : null;
    cfg.write8(d.bus, d.dev, d.fn, PCI_INTERRUPT_LINE, irq ?? 0xff);
    d.irq = irq;
    log(`pci dev ${hex(d.dev, 2)}:${d.fn} INT${'ABCD'[d.pin - 1]}->IRQ${irq ?? '-'}`);
  }
  const sorted = [...devices].sort((a, b) => a.dev * 8 + a.fn - (b.dev * 8 + b.fn));
  const memBars: { d: PciDevice; b: PciBar }[] = [];
  const ioBars: { d: PciDevice; b: PciBar }[] = [];
  for (const d of sorted) {
    for (const b of d.bars) {
      if (!b) continue;
      (b.kind === 'io' ? ioBars : memBars).push({ d, b });
    }
  }
  memBars.sort((x, y) => y.b.size - x.b.size);
  let mem = o.mmioBase ?? PCI_MMIO_BASE;
  for (const { d, b } of memBars) {
    mem = Math.ceil(mem / b.size) * b.size;
    if (mem + b.size > PCI_MMIO_END) throw new Error(`PCI MMIO hole exhausted at ${bdf(d)} BAR${b.index}`);
    b.base = mem;
    mem += b.size;
    cfg.write32(d.bus, d.dev, d.fn, PCI_BASE_ADDRESS_0 + 4 * b.index, (b.base | (b.prefetchable ? 8 : 0)) >>> 0);
    log(`pci dev ${hex(d.dev, 2)}:${d.fn} bar ${hex(PCI_BASE_ADDRESS_0 + 4 * b.index, 2)} size ${hex(b.size, 9)}: ${hex(b.base | (b.prefetchable ? 8 : 0), 9)}`);
  }
  let io = o.ioBase ?? PCI_IO_BASE;
  for (const { d, b } of ioBars) {
    io = Math.ceil(io / b.size) * b.size;
    if (io + b.size > 0x10000) throw new Error(`PCI I/O space exhausted at ${bdf(d)} BAR${b.index}`);
    b.base = io;
    io += b.size;
    cfg.write32(d.bus, d.dev, d.fn, PCI_BASE_ADDRESS_0 + 4 * b.index, b.base | 1);
    log(`pci dev ${hex(d.dev, 2)}:${d.fn} bar ${hex(PCI_BASE_ADDRESS_0 + 4 * b.index, 2)} size ${hex(b.size, 9)}: ${hex(b.base | 1, 9)}`);
  }
  for (const d of sorted) {
    if (d.classCode >>> 8 === 0x0600) continue; // host bridge
    const c = cfg.cmd(d);
    const want = (c & ~PCI_COMMAND_MASTER) | PCI_COMMAND_IO | PCI_COMMAND_MEMORY;
    if (want !== c) cfg.setCmd(d, want);
    if (d.vendor === PCI_VENDOR_INTEL && d.device === PIIX3_IDE_DEVICE) {
      for (const reg of PIIX_IDETIM) {
        const t = cfg.read16(d.bus, d.dev, d.fn, reg);
        cfg.write16(d.bus, d.dev, d.fn, reg, t | IDETIM_DECODE_ENABLE);
      }
    }
    if (d.vendor === PCI_VENDOR_INTEL && d.device === PIIX4_PM_DEVICE) {
      cfg.write32(d.bus, d.dev, d.fn, PIIX4_PMBA, ACPI_PM_BASE | 1);
      cfg.write8(d.bus, d.dev, d.fn, PIIX4_PMREGMISC, 1);
      log(`pci dev ${hex(d.dev, 2)}:${d.fn} ACPI PM block at ${hex(ACPI_PM_BASE, 4)}, SCI IRQ${ACPI_SCI_IRQ}`);
    }
  }
}

/** Short human name for a class code (lspci's). */
export function className(classCode: number): string {
  const base = classCode >>> 16;
  const sub = (classCode >>> 8) & 0xff;
  const names: Record<number, string> = {
    0x0101: 'IDE interface',
    0x0200: 'Ethernet controller',
    0x0600: 'Host bridge',
    0x0601: 'ISA bridge',
    0x0680: 'Bridge',
    0xff80: 'Unassigned class',
  };
  return names[(base << 8) | sub] ?? `Class ${hex((base << 8) | sub, 4)}`;
}

export function describe(d: PciDevice): string {
  return `${bdf(d).slice(5)} ${className(d.classCode)} [${hex((d.classCode >>> 8) & 0xffff, 4)}]: [${hex(d.vendor, 4)}:${hex(d.device, 4)}] (rev ${hex(d.revision, 2)})`;
}
