// The Intel MultiProcessor Specification 1.4 table: how a guest without ACPI finds its CPUs,
// its I/O APIC and how interrupt lines reach it. Linux scans 0xF0000-0xFFFFF for the "_MP_"
// floating pointer (arch/x86/kernel/mpparse.c). This is what Firecracker and other
// direct-boot VMMs hand Linux; we add PCI interrupt entries so Linux can route the device
// model's PCI INTx lines (e.g. the RTL8139's INTA#) to their I/O APIC pins.
//
// The in-kernel irqchip (KVM's default GSI routing) wires GSI n to IOAPIC pin n (and to the
// 8259 for n < 16), so ISA IRQ n is declared as pin n: no interrupt source overrides.

export const MPTABLE_BASE = 0xf0000;
export const IOAPIC_ADDR = 0xfec00000;
export const LAPIC_ADDR = 0xfee00000;
export const IOAPIC_PINS = 24;

const BUS_ISA = 0;
const BUS_PCI = 1;

export interface PciIrqRoute {
  /** PCI device number on bus 0. */
  dev: number;
  /** Interrupt pin: 1 = INTA# ... 4 = INTD#. */
  pin: number;
  /** The I/O APIC pin (= KVM GSI) the device model raises for it. */
  gsi: number;
}

export interface MpTableOptions {
  vcpus: number;
  /** PCI INTx routes (level-triggered, active low). Pins 16-23 are free for them. */
  pciIrqs?: PciIrqRoute[];
}

function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + b[i]!) & 0xff;
  return (0x100 - s) & 0xff;
}

/** Writes the floating pointer and the configuration table at `base` in guest memory
 * (`mem` indexed by guest-physical address). Returns the bytes used. */
export function writeMpTable(mem: Uint8Array, opts: MpTableOptions, base = MPTABLE_BASE): number {
  const n = opts.vcpus;
  if (n < 1 || n > 254) throw new RangeError('the MP table describes 1 to 254 CPUs');
  const ioapicId = n; // APIC IDs 0..n-1 are the CPUs
  const pci = opts.pciIrqs ?? [];
  for (const r of pci) {
    if (r.dev < 0 || r.dev > 31 || r.pin < 1 || r.pin > 4 || r.gsi < 0 || r.gsi >= IOAPIC_PINS) throw new RangeError(`bad PCI IRQ route ${JSON.stringify(r)}`);
  }
  const entries: number[][] = [];
  const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  const u16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
  const ascii = (s: string, len: number) => Array.from({ length: len }, (_, i) => (i < s.length ? s.charCodeAt(i) : 0x20));

  // processors (type 0, 20 bytes): CPU 0 is the bootstrap processor
  for (let i = 0; i < n; i++) {
    entries.push([0, i, 0x14, 0x01 | (i === 0 ? 0x02 : 0), ...u32(0x600), ...u32(0x201), ...u32(0), ...u32(0)]);
  }
  // buses (type 1, 8 bytes)
  entries.push([1, BUS_ISA, ...ascii('ISA', 6)]);
  entries.push([1, BUS_PCI, ...ascii('PCI', 6)]);
  // the I/O APIC (type 2, 8 bytes): enabled, version 0x11
  entries.push([2, ioapicId, 0x11, 0x01, ...u32(IOAPIC_ADDR)]);
  // I/O interrupt assignments (type 3, 8 bytes): ISA IRQ i -> pin i, conforming (edge, high),
  // except on pins a PCI route takes (PIIX3 PIRQs steer PCI INTx onto ISA IRQs such as 10/11).
  const pciPins = new Set(pci.map((r) => r.gsi));
  for (let irq = 0; irq < 16; irq++) if (!pciPins.has(irq)) entries.push([3, 0 /* INT */, ...u16(0), BUS_ISA, irq, ioapicId, irq]);
  // PCI: source irq = dev << 2 | (pin - 1); level-triggered (3 << 2), active low (3)
  for (const r of pci) entries.push([3, 0, ...u16(0x0f), BUS_PCI, (r.dev << 2) | (r.pin - 1), ioapicId, r.gsi]);
  // local interrupt assignments (type 4): LINT0 ExtINT on the BSP, LINT1 NMI on all
  entries.push([4, 3 /* ExtINT */, ...u16(0), BUS_ISA, 0, 0, 0]);
  entries.push([4, 1 /* NMI */, ...u16(0), BUS_ISA, 0, 0xff, 1]);

  const tableAddr = base + 16;
  const body = entries.flat();
  const tableLen = 44 + body.length;
  if (base + 16 + tableLen > mem.length) throw new RangeError('guest memory too small for the MP table');
  // configuration table header
  const hdr = [
    ...ascii('PCMP', 4),
    ...u16(tableLen),
    4, // spec revision 1.4
    0, // checksum, below
    ...ascii('XENODE', 8),
    ...ascii('KVM HVM', 12),
    ...u32(0), // OEM table pointer
    ...u16(0), // OEM table size
    ...u16(entries.length),
    ...u32(LAPIC_ADDR),
    ...u16(0), // extended table length
    0, // extended table checksum
    0,
  ];
  mem.set(hdr, tableAddr);
  mem.set(body, tableAddr + 44);
  mem[tableAddr + 7] = checksum(mem, tableAddr, tableAddr + tableLen);
  // floating pointer structure (16 bytes)
  const fp = [...ascii('_MP_', 4), ...u32(tableAddr), 1, 4, 0, 0, 0, 0, 0, 0];
  mem.set(fp, base);
  mem[base + 10] = checksum(mem, base, base + 16);
  return 16 + tableLen;
}
