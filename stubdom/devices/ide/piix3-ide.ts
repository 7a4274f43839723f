// The PIIX3 IDE function (82371SB, 8086:7010) at 00:01.1: class 0101, prog-if 0x80 (legacy
// "compatibility" mode with bus mastering), two channels on the fixed ISA ports and IRQs
// (primary 0x1F0-0x1F7 + 0x3F6, IRQ 14; secondary 0x170-0x177 + 0x376, IRQ 15), and the
// bus-master registers in BAR4 (16 I/O ports). The legacy ports decode only while the PCI
// command register enables I/O space and the channel's IDETIM register (0x40 / 0x42) has its
// "IDE decode enable" bit 15 set, which is what Linux's ata_piix checks before using a port;
// the machine's firmware step sets both. Timing registers (IDETIM, SIDETIM 0x44) are stored.
import type { FieldReader, FieldWriter } from '../../device-model/device-state.js';
import type { AddressBus, IoHandler } from '../../device-model/address-bus.js';
import type { GuestMemory } from '../../device-model/guest-memory.js';
import type { IrqSource } from '../../device-model/interrupts.js';
import { LimitedLog, type DeviceLogger, defaultLogger } from '../../device-model/log.js';
import { PCI_CLASS_STORAGE_IDE, PCI_COMMAND_IO, PCI_STATUS_DEVSEL_MEDIUM, PCI_STATUS_FAST_BACK, PCI_VENDOR_ID_INTEL } from '../pci/constants.js';
import { PciFunction } from '../pci/pci-function.js';
import { AtaDisk } from './ata-disk.js';
import { BM_STATUS_DRV0_DMA, BM_STATUS_DRV1_DMA, BusMasterChannel } from './bus-master.js';
import { IdeChannel } from './ide-channel.js';
import { createIdeMetrics, type IdeDrive, type IdeMetrics } from './ide-drive.js';

export const PIIX3_IDE_DEVICE_ID = 0x7010;
export const IDE_LEGACY = [
  { cmd: 0x1f0, ctl: 0x3f6, irq: 14 },
  { cmd: 0x170, ctl: 0x376, irq: 15 },
] as const;
const IDETIM = [0x40, 0x42] as const;
const IDETIM_IDE_DECODE = 0x8000;

export interface Piix3IdeOptions {
  memory: GuestMemory;
  /** INTRQ of the primary and secondary channel (ISA IRQ 14 and 15). */
  irqs: [IrqSource, IrqSource];
  log?: DeviceLogger;
}

export class Piix3Ide extends PciFunction {
  readonly channels: [IdeChannel, IdeChannel];
  readonly metrics: IdeMetrics;
  private readonly dlog: LimitedLog;

  constructor(opts: Piix3IdeOptions) {
    const metrics = createIdeMetrics();
    super(
      'piix3-ide',
      {
        vendor: PCI_VENDOR_ID_INTEL,
        device: PIIX3_IDE_DEVICE_ID,
        revision: 0x00,
        classCode: PCI_CLASS_STORAGE_IDE | 0x80,
        status: PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM,
      },
      metrics,
    );
    this.metrics = metrics;
    this.dlog = new LimitedLog(opts.log ?? defaultLogger('stubdom'), 'piix3-ide');
    const mk = (i: number) =>
      new IdeChannel(i, opts.irqs[i]!, new BusMasterChannel(opts.memory, this, metrics, this.dlog, `bmdma${i}`), metrics, this.dlog);
    this.channels = [mk(0), mk(1)];
    this.writable(0x40, 5); // IDETIM primary/secondary, SIDETIM
    this.writable(0x48, 1); // UDMACTL (PIIX4; harmless storage)
    this.writable(0x4a, 2);
    const bm: IoHandler = {
      read: (off, size) => this.channels[(off >> 3) & 1]!.bm.read(off & 7, Math.min(size, 8 - (off & 7))),
      write: (off, size, v) => this.channels[(off >> 3) & 1]!.bm.write(off & 7, Math.min(size, 8 - (off & 7)), v),
    };
    this.addBar(4, { kind: 'io', size: 16, handler: bm });
  }

  /** Puts a device on channel 0/1, unit 0 (master) / 1 (slave). */
  attachDrive(channel: 0 | 1, unit: 0 | 1, drive: IdeDrive): void {
    this.channels[channel].attach(unit, drive);
    this.channels[channel].bm.status |= unit === 0 ? BM_STATUS_DRV0_DMA : BM_STATUS_DRV1_DMA;
  }

  /** Xen unplug: removes the ATA disks (not CD-ROMs); `keepPrimaryMaster` for AUX unplug. */
  unplugDisks(keepPrimaryMaster = false): number {
    let n = 0;
    for (let c = 0; c < 2; c++) {
      for (let u = 0; u < 2; u++) {
        if (keepPrimaryMaster && c === 0 && u === 0) continue;
        const d = this.channels[c]!.drives[u];
        if (d instanceof AtaDisk) {
          this.channels[c]!.detach(u as 0 | 1);
          n++;
        }
      }
    }
    return n;
  }

  decodes(channel: number): boolean {
    const t = IDETIM[channel]!;
    const idetim = this.config[t]! | (this.config[t + 1]! << 8);
    return (this.command & PCI_COMMAND_IO) !== 0 && (idetim & IDETIM_IDE_DECODE) !== 0;
  }

  /** Firmware step: enable IDE decode on both channels (IDETIM bit 15). */
  enableDecode(): void {
    for (const t of IDETIM) this.config[t + 1]! |= IDETIM_IDE_DECODE >> 8;
  }

  /** Registers the fixed legacy ports on the I/O bus. */
  attachLegacyPorts(pio: AddressBus): void {
    for (let i = 0; i < 2; i++) {
      const ch = this.channels[i]!;
      const L = IDE_LEGACY[i]!;
      pio.register(
        L.cmd,
        8,
        {
          read: (off, size) => (this.decodes(i) ? ch.read(off, size) : size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1),
          write: (off, size, v) => {
            if (this.decodes(i)) ch.write(off, size, v);
          },
        },
        `ide${i}`,
        this.metrics,
      );
      pio.register(
        L.ctl,
        1,
        {
          read: (_off, size) => (this.decodes(i) ? ch.readAltStatus() : size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1),
          write: (_off, _size, v) => {
            if (this.decodes(i)) ch.writeDeviceControl(v & 0xff);
          },
        },
        `ide${i}-ctl`,
        this.metrics,
      );
    }
  }

  reset(): void {
    for (const c of this.channels) c.reset();
  }

  /** PCI config, then each channel with its drives (docs/kvm.md, "Save, restore, migration"). */
  saveState(f: FieldWriter): void {
    this.savePciState(f);
    for (const c of this.channels) c.saveState(f);
  }

  loadState(r: FieldReader): void {
    this.loadPciState(r);
    for (const c of this.channels) c.loadState(r);
    r.end();
  }
}
