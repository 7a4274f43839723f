// A PC-like machine for one HVM guest, assembled from a config: what qemu-dm builds for Xen.
//
//   00:00.0  i440FX host bridge                8086:1237
//   00:01.0  PIIX3 ISA bridge (PIRQ routing)    8086:7000  (multi-function)
//   00:01.1  PIIX3 IDE                          8086:7010  hda/hdb on 0x1F0 IRQ 14, hdc/hdd on 0x170 IRQ 15
//   00:01.3  PIIX4 ACPI PM                      8086:7113  PM1a block at 0xB000, SCI on IRQ 9
//   00:02.0  standard VGA (vga = "stdvga")      1234:1111  + VGA ports, 0xA0000 window, dispi 0x1CE
//   00:03.0  Xen platform device                5853:0001  (+ fixed ports 0x10-0x1F)
//   00:04.0+ RTL8139 per emulated NIC           10ec:8139  (slot 4 + list index)
//   ISA      16550 UARTs: COM1 0x3F8 IRQ 4, COM2 0x2F8 IRQ 3; i8042 keyboard controller
//            0x60/0x64, keyboard IRQ 1, mouse IRQ 12
//   0xCF8    PCI configuration mechanism #1 (+ 0xCF9 reset control)
// Slot 2 is the VGA adapter's, as in Xen's qemu (empty with vga = "none"). PCI INTx is swizzled onto PIRQ A-D
// ((slot - 1 + pin - 1) & 3) and the PIIX3 routes PIRQs to ISA IRQs (default 10, 11, 10, 11).
//
// There is no BIOS here, so the machine plays hvmloader's part once at creation (firmware:
// true, the default): it assigns BARs (I/O from 0xC000, MMIO from 0xF0000000 down the hole),
// enables I/O and memory decode, programs the PIRQ routes and each function's Interrupt Line,
// and turns on IDE decode in IDETIM. Bus mastering stays off until the guest's driver enables
// it, as on real hardware.
import { AddressBus } from './device-model/address-bus.js';
import type { GuestMemory } from './device-model/guest-memory.js';
import { IrqLines, type InterruptSink } from './device-model/interrupts.js';
import { IoreqDispatcher } from './device-model/ioreq-dispatch.js';
import { IoreqServer, type IoreqServerOptions } from './device-model/ioreq-server.js';
import { type DeviceLogger, defaultLogger } from './device-model/log.js';
import { PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_CONFIG_ADDRESS_PORT, PCI_INTERRUPT_LINE } from './devices/pci/constants.js';
import { PciConfigMechanism1 } from './devices/pci/config-mechanism.js';
import { I440fxHostBridge } from './devices/pci/i440fx.js';
import { PciBus } from './devices/pci/pci-bus.js';
import type { PciFunction } from './devices/pci/pci-function.js';
import { Piix3IsaBridge } from './devices/pci/piix3-isa.js';
import { AtaDisk } from './devices/ide/ata-disk.js';
import { AtapiCdrom } from './devices/ide/atapi-cdrom.js';
import { FileBacking, type BlockBacking } from './devices/ide/block-backing.js';
import { IDE_LEGACY, Piix3Ide } from './devices/ide/piix3-ide.js';
import type { NetBackend } from './devices/rtl8139/net-backend.js';
import { Rtl8139 } from './devices/rtl8139/rtl8139.js';
import { Uart16550, type SerialBackend } from './devices/uart16550/uart16550.js';
import { StdVga } from './devices/vga/std-vga.js';
import type { VgaState } from './devices/vga/vga-shared.js';
import { VGA_WINDOW_BASE, VGA_WINDOW_SIZE } from './devices/vga/vga.js';
import { I8042, I8042_AUX_IRQ, I8042_DATA_PORT, I8042_KBD_IRQ } from './devices/i8042/i8042.js';
import { ACPI_PM_BASE, ACPI_SCI_IRQ, Piix4Pm, PIIX4_PMBA, PIIX4_PMREGMISC } from './devices/acpi-pm/piix4-pm.js';
import { UNPLUG_ALL_IDE_DISKS, UNPLUG_ALL_NICS, UNPLUG_AUX_IDE_DISKS, XenPlatform } from './devices/xen-platform/xen-platform.js';

export const COM_PORTS = [
  { base: 0x3f8, irq: 4 },
  { base: 0x2f8, irq: 3 },
] as const;

export const PCI_SLOT_HOST = 0;
export const PCI_SLOT_PIIX3 = 1;
export const PCI_SLOT_VGA = 2;
export const PCI_SLOT_XEN_PLATFORM = 3;
export const PCI_SLOT_FIRST_NIC = 4;
export const DEFAULT_PIRQ_ROUTES: readonly [number, number, number, number] = [10, 11, 10, 11];
export const DEFAULT_MMIO_HOLE = 0xf000_0000;
export const DEFAULT_PCI_IO_BASE = 0xc000;

export interface MachineNicConfig {
  /** The vif's devid (vif<domid>.<devid>-emu). */
  devid: number;
  mac: string | Uint8Array;
  backend?: NetBackend;
}

export interface MachineDiskConfig {
  /** 0 = hda (primary master), 1 = hdb, 2 = hdc (secondary master), 3 = hdd. See ideIndexForVdev. */
  index: number;
  /** Image path (raw). Omit (or null) for an empty CD-ROM drive. */
  path?: string | null;
  /** Or an already-open backing. */
  backing?: BlockBacking;
  readOnly?: boolean;
  cdrom?: boolean;
}

export interface MachineSerialConfig {
  backend?: SerialBackend;
}

export interface MachineConfig {
  memory: GuestMemory;
  irqSink: InterruptSink;
  nics?: MachineNicConfig[];
  disks?: MachineDiskConfig[];
  /** COM1, COM2 (`serial = 'pty'` gives one). */
  serial?: MachineSerialConfig[];
  /** The standard VGA's video memory and registers (shared with the display); none = no VGA. */
  vga?: VgaState;
  /** The i8042 keyboard controller (default true: every PC has one). */
  i8042?: boolean;
  /** Include the Xen platform device (default true). */
  xenPlatform?: boolean;
  /** ISA IRQs for PIRQ A-D; null disables a PIRQ. */
  pirqRoutes?: readonly (number | null)[];
  /** Do hvmloader's PCI setup (default true). */
  firmware?: boolean;
  mmioHoleStart?: number;
  pciIoBase?: number;
  log?: DeviceLogger;
  /** A guest reset through 0xCF9 (the embedder reboots or destroys the domain). */
  onReset?: (hard: boolean) => void;
  /** The guest entered S5 through the ACPI PM block (it powered itself off). */
  onSoftOff?: () => void;
  /** Told after the machine carried out a Xen platform unplug. */
  onUnplug?: (mask: number) => void;
}

/** IDE index (0..3) for an xl vdev such as hda, hdc, xvda, sdb; undefined beyond the 4th. */
export function ideIndexForVdev(vdev: string): number | undefined {
  const m = /^(?:hd|xvd|sd)([a-z])$/.exec(vdev);
  if (!m) return undefined;
  const i = m[1]!.charCodeAt(0) - 97;
  return i < 4 ? i : undefined;
}

/** The PCI INTx routes of the machine a config builds, as a BIOS's MP table would describe
 * them: every function with an interrupt pin (the Xen platform device, one RTL8139 per
 * emulated NIC) on INTA#, swizzled onto a PIRQ and routed to an ISA IRQ = IOAPIC pin. A kernel
 * booted without firmware (Linux on KVM) finds its devices' interrupts here. */
export function pciIntxRoutes(opts: { nics: number; platform?: boolean; pirqRoutes?: readonly (number | null)[] }): { dev: number; pin: number; gsi: number }[] {
  const routes = opts.pirqRoutes ?? DEFAULT_PIRQ_ROUTES;
  const out: { dev: number; pin: number; gsi: number }[] = [];
  const add = (dev: number) => {
    const gsi = routes[PciBus.pirqOf(dev, 1)];
    if (gsi !== null && gsi !== undefined) out.push({ dev, pin: 1, gsi });
  };
  if (opts.platform ?? true) add(PCI_SLOT_XEN_PLATFORM);
  for (let i = 0; i < opts.nics; i++) add(PCI_SLOT_FIRST_NIC + i);
  return out;
}

export interface MachineMetrics {
  dispatch: IoreqDispatcher['metrics'];
  pci: PciConfigMechanism1['metrics'];
  ide: Piix3Ide['metrics'];
  nics: { devid: number; metrics: Rtl8139['metrics'] }[];
  serial: Uart16550['metrics'][];
  platform?: XenPlatform['metrics'];
  vga?: StdVga['metrics'];
  i8042?: I8042['metrics'];
  acpi: Piix4Pm['metrics'];
}

/** What the MMIO bus answers for guest RAM: nothing reaches it (the guest accesses its RAM
 * directly); it is there so that no BAR can be mapped on top of RAM. */
const GUEST_RAM_DECODE = { read: (_o: number, size: number) => (size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1), write: () => {} };

export class PcMachine {
  readonly memory: GuestMemory;
  readonly pio = new AddressBus('pio', 0x10000);
  readonly mmio = new AddressBus('mmio', 2 ** 52);
  readonly irqs: IrqLines;
  readonly pci: PciBus;
  readonly pciConfig: PciConfigMechanism1;
  readonly hostBridge = new I440fxHostBridge();
  readonly isa = new Piix3IsaBridge();
  readonly ide: Piix3Ide;
  /** The ACPI fixed hardware (power and sleep buttons, S5, the PM timer). */
  readonly acpi: Piix4Pm;
  readonly platform: XenPlatform | undefined;
  readonly nics: { devid: number; nic: Rtl8139 }[] = [];
  readonly serials: Uart16550[] = [];
  readonly vga: StdVga | undefined;
  readonly i8042: I8042 | undefined;
  readonly dispatcher: IoreqDispatcher;
  private readonly cfg: MachineConfig;
  private readonly log: DeviceLogger;

  constructor(cfg: MachineConfig) {
    this.cfg = cfg;
    this.memory = cfg.memory;
    this.log = cfg.log ?? defaultLogger('stubdom');
    this.irqs = new IrqLines(cfg.irqSink, 24);
    this.pci = new PciBus(this.pio, this.mmio, this.irqs, this.log);
    this.pciConfig = new PciConfigMechanism1(this.pci, (hard) => cfg.onReset?.(hard));
    this.pio.register(PCI_CONFIG_ADDRESS_PORT, 8, this.pciConfig, 'pci-config', this.pciConfig.metrics);

    // Guest RAM decodes before PCI, as below a real chipset's top of memory: a BAR moved over
    // RAM stays dark (and says so) instead of shadowing it. The legacy VGA window is the hole.
    for (const r of this.memory.ramRegions()) {
      const end = r.gpa + r.size;
      const parts = [[r.gpa, Math.min(end, VGA_WINDOW_BASE)], [Math.max(r.gpa, VGA_WINDOW_BASE + VGA_WINDOW_SIZE), end]];
      for (const [a, b] of parts) if (b! > a! && a! < this.mmio.limit) this.mmio.register(a!, Math.min(b!, this.mmio.limit) - a!, GUEST_RAM_DECODE, 'guest RAM');
    }

    this.pci.attach(this.hostBridge, PCI_SLOT_HOST, 0);
    this.pci.attach(this.isa, PCI_SLOT_PIIX3, 0);
    this.isa.connect(this.pci);

    this.ide = new Piix3Ide({
      memory: this.memory,
      irqs: [this.irqs.source(IDE_LEGACY[0].irq, 'ide0'), this.irqs.source(IDE_LEGACY[1].irq, 'ide1')],
      log: this.log,
    });
    this.pci.attach(this.ide, PCI_SLOT_PIIX3, 1);
    this.ide.attachLegacyPorts(this.pio);
    for (const d of cfg.disks ?? []) this.addDisk(d);

    this.acpi = new Piix4Pm({ sci: this.irqs.source(ACPI_SCI_IRQ, 'acpi-sci'), onSoftOff: () => cfg.onSoftOff?.(), log: this.log });
    this.pci.attach(this.acpi, PCI_SLOT_PIIX3, 3);
    this.acpi.attachIo(this.pio);

    if (cfg.vga) {
      this.vga = new StdVga(cfg.vga);
      this.pci.attach(this.vga, PCI_SLOT_VGA, 0);
      this.vga.attachLegacy(this.pio, this.mmio);
    }

    if (cfg.xenPlatform ?? true) {
      this.platform = new XenPlatform({ onUnplug: (mask) => this.unplug(mask), log: this.log });
      this.pci.attach(this.platform, PCI_SLOT_XEN_PLATFORM, 0);
      this.platform.attachFixedPorts(this.pio);
    }

    const nics = cfg.nics ?? [];
    if (nics.length > 32 - PCI_SLOT_FIRST_NIC) throw new RangeError('too many emulated NICs');
    nics.forEach((n, i) => {
      const nic = new Rtl8139({ mac: n.mac, memory: this.memory, backend: n.backend, log: this.log, name: `rtl8139.${n.devid}` });
      this.pci.attach(nic, PCI_SLOT_FIRST_NIC + i, 0);
      this.nics.push({ devid: n.devid, nic });
    });

    const serial = cfg.serial ?? [];
    if (serial.length > COM_PORTS.length) throw new RangeError('at most two serial ports');
    serial.forEach((s, i) => {
      const com = COM_PORTS[i]!;
      const uart = new Uart16550({ irq: this.irqs.source(com.irq, `com${i + 1}`), backend: s.backend });
      this.pio.register(com.base, 8, uart, `com${i + 1}`, uart.metrics);
      this.serials.push(uart);
    });

    if (cfg.i8042 ?? true) {
      this.i8042 = new I8042(this.irqs.source(I8042_KBD_IRQ, 'i8042-kbd'), this.irqs.source(I8042_AUX_IRQ, 'i8042-aux'), () => cfg.onReset?.(true));
      this.pio.register(I8042_DATA_PORT, 5, this.i8042.ports, 'i8042', this.i8042.metrics);
    }

    this.dispatcher = new IoreqDispatcher({ pio: this.pio, mmio: this.mmio, memory: this.memory, pci: this.pci, log: this.log });
    if (cfg.firmware ?? true) this.firmwareInit();
  }

  private addDisk(d: MachineDiskConfig): void {
    if (!Number.isInteger(d.index) || d.index < 0 || d.index > 3) throw new RangeError(`IDE index ${d.index} out of range (hda..hdd)`);
    const channel = (d.index >> 1) as 0 | 1;
    const unit = (d.index & 1) as 0 | 1;
    const open = (): BlockBacking | null => d.backing ?? (d.path ? FileBacking.open(d.path, { readOnly: d.readOnly || d.cdrom }) : null);
    if (d.cdrom) this.ide.attachDrive(channel, unit, new AtapiCdrom(open()));
    else {
      const b = open();
      if (!b) throw new Error(`disk ${d.index} needs an image`);
      this.ide.attachDrive(channel, unit, new AtaDisk(b, { serial: `XN${(d.index + 1).toString().padStart(8, '0')}` }));
    }
  }

  /** hvmloader's PCI setup: BARs, decode enables, PIRQ routes, Interrupt Line, IDE decode. */
  firmwareInit(): void {
    const routes = this.cfg.pirqRoutes ?? DEFAULT_PIRQ_ROUTES;
    for (let p = 0; p < 4; p++) this.isa.setRoute(p, routes[p] ?? null);
    let io = this.cfg.pciIoBase ?? DEFAULT_PCI_IO_BASE;
    const holeStart = this.cfg.mmioHoleStart ?? DEFAULT_MMIO_HOLE;
    for (const r of this.memory.ramRegions()) {
      if (r.gpa < 0x1_0000_0000 && r.gpa + r.size > holeStart) throw new RangeError(`guest RAM overlaps the PCI MMIO hole at 0x${holeStart.toString(16)}`);
    }
    const memBars: { f: PciFunction; i: number; size: number }[] = [];
    const fns = this.pci.functions().sort((a, b) => a.dev * 8 + a.fn - (b.dev * 8 + b.fn));
    for (const f of fns) {
      f.bars.forEach((b, i) => {
        if (!b) return;
        if (b.kind === 'io') {
          io = Math.ceil(io / b.size) * b.size;
          f.assignBar(i, io);
          io += b.size;
        } else memBars.push({ f, i, size: b.size });
      });
    }
    memBars.sort((a, b) => b.size - a.size);
    let mem = holeStart;
    for (const m of memBars) {
      mem = Math.ceil(mem / m.size) * m.size;
      if (mem + m.size > 0xfec0_0000) throw new RangeError('PCI MMIO hole exhausted');
      m.f.assignBar(m.i, mem);
      mem += m.size;
    }
    for (const f of fns) {
      if (f === this.hostBridge) continue;
      f.setCommand((f.command & ~0x7) | PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
      const line = this.pci.intxLine(f);
      f.configWrite(PCI_INTERRUPT_LINE, 1, line ?? 0xff);
    }
    this.ide.enableDecode();
    // hvmloader's PIIX4 PM setup: SCI hard-wired to IRQ 9, the PM1a block at 0xB000, decode on.
    this.acpi.configWrite(PCI_INTERRUPT_LINE, 1, ACPI_SCI_IRQ);
    this.acpi.configWrite(PIIX4_PMBA, 4, ACPI_PM_BASE | 1);
    this.acpi.configWrite(PIIX4_PMREGMISC, 1, 1);
  }

  /** Platform reset (what a reboot without rebuilding the domain would do): devices back to
   * power-on state, then the firmware step again. Unplugged devices stay unplugged. */
  reset(): void {
    for (const { nic } of this.nics) nic.powerOnReset();
    this.ide.reset();
    for (const s of this.serials) s.reset();
    this.vga?.reset();
    this.i8042?.reset();
    this.acpi.reset();
    if (this.platform) this.platform.flags = 0;
    this.pciConfig.address = 0;
    if (this.cfg.firmware ?? true) this.firmwareInit();
  }

  /** Carries out a Xen platform unplug (also callable by the embedder). */
  unplug(mask: number): void {
    if (mask & (UNPLUG_ALL_IDE_DISKS | UNPLUG_AUX_IDE_DISKS)) {
      const n = this.ide.unplugDisks(!(mask & UNPLUG_ALL_IDE_DISKS));
      this.log.info(`machine: unplugged ${n} emulated IDE disk(s)`);
    }
    if (mask & UNPLUG_ALL_NICS) {
      for (const { nic } of this.nics) this.pci.detach(nic);
      this.log.info(`machine: unplugged ${this.nics.length} emulated NIC(s)`);
    }
    this.cfg.onUnplug?.(mask);
  }

  /** Emulated NIC for a vif devid (still returned after unplug; it is then off the bus). */
  nic(devid: number): Rtl8139 | undefined {
    return this.nics.find((n) => n.devid === devid)?.nic;
  }

  /** An ioreq server for this machine's dispatcher. */
  createIoreqServer(opts: Omit<IoreqServerOptions, 'dispatcher'>): IoreqServer {
    return new IoreqServer({ ...opts, dispatcher: this.dispatcher, log: opts.log ?? this.log });
  }

  metrics(): MachineMetrics {
    return {
      dispatch: this.dispatcher.metrics,
      pci: this.pciConfig.metrics,
      ide: this.ide.metrics,
      nics: this.nics.map((n) => ({ devid: n.devid, metrics: n.nic.metrics })),
      serial: this.serials.map((s) => s.metrics),
      platform: this.platform?.metrics,
      vga: this.vga?.metrics,
      i8042: this.i8042?.metrics,
      acpi: this.acpi.metrics,
    };
  }

  /** Releases the disk images. */
  close(): void {
    for (const ch of this.ide.channels) {
      for (const d of ch.drives) d?.close();
    }
  }
}
