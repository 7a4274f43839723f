// The firmware: hvmloader's PCI setup, then the BIOS's disk probe and boot sequence, before the
// kernel (the same process) takes over. It prints to COM1 as hvmloader and SeaBIOS do.
import type { Cpu } from '../cpu/io.js';
import { PhysicalMemory, PAGE_SIZE, RESERVED_TOP_PAGES } from '../cpu/ram.js';
import { AtaPiix } from '../drivers/ata-piix.js';
import { chooseBootDevice, parseBootOrder, type BootChoice, type BootDisk } from './boot-order.js';
import { PciConfigSpace, pciAssignResources, pciScan, PIIX3_IDE_DEVICE, PCI_VENDOR_INTEL, type AssignOptions, type PciDevice } from './pci.js';

export interface FirmwareOptions {
  cpu: Cpu;
  /** Guest RAM (the BIOS uses low memory only). */
  ram: SharedArrayBuffer;
  /** `boot=` letters (xenode.boot= on the command line). */
  bootOrder?: string;
  log: (line: string) => void;
  pci?: AssignOptions;
  /** Skip the disk probe and boot sequence (tests of the PCI part). */
  noBoot?: boolean;
}

export interface FirmwareResult {
  cfg: PciConfigSpace;
  devices: PciDevice[];
  boot: BootChoice | null;
}

const hex8 = (v: number) => v.toString(16).padStart(8, '0');

export async function runFirmware(o: FirmwareOptions): Promise<FirmwareResult> {
  const { cpu, log } = o;
  log('HVM Loader (xenode)');
  const cfg = new PciConfigSpace(cpu);
  if (!cfg.probe()) throw new Error('no PCI configuration mechanism #1 at 0xCF8');
  const devices = pciScan(cfg);
  pciAssignResources(cfg, devices, { ...o.pci, log });
  const top = o.ram.byteLength - RESERVED_TOP_PAGES * PAGE_SIZE;
  log('E820 table:');
  log(` [00]: 00000000:00000000 - 00000000:000a0000: RAM`);
  log(` HOLE: 00000000:000a0000 - 00000000:000c0000`);
  log(` [01]: 00000000:000c0000 - 00000000:00100000: RESERVED`);
  log(` [02]: 00000000:00100000 - 00000000:${hex8(top)}: RAM`);
  log(` [03]: 00000000:${hex8(top)} - 00000000:${hex8(o.ram.byteLength)}: RESERVED`);
  log('Invoking BIOS ...');
  log('');
  log('xenode BIOS (SeaBIOS boot protocol)');
  if (o.noBoot) return { cfg, devices, boot: null };

  const disks: BootDisk[] = [];
  const ide = devices.find((d) => d.vendor === PCI_VENDOR_INTEL && d.device === PIIX3_IDE_DEVICE);
  if (ide) {
    const scratch = PhysicalMemory.biosScratch(o.ram);
    // SeaBIOS drives ATA by PIO: bus mastering stays off until the kernel's driver wants it.
    const ata = await AtaPiix.probe({ cpu, cfg, pci: ide, ram: scratch, log, quiet: true, dma: false, bounceBytes: 0x10000 });
    for (const d of ata.devices) {
      const tag = `ata${d.channel}-${d.unit}`;
      if (d.kind === 'ata') {
        log(`${tag}: ${d.model} ATA-7 Hard-Disk (${Math.floor((d.blocks * 512) / 1048576)} MiBytes)`);
        disks.push({ name: d.name, kind: 'disk', readBlock: (lba) => readOne(ata, d, lba) });
      } else {
        log(`${tag}: ${d.model} ATAPI-4 DVD/CD`);
        disks.push({ name: d.name, kind: 'cdrom', readBlock: (lba) => readOne(ata, d, lba) });
      }
    }
  }
  log('');
  const boot = await chooseBootDevice(parseBootOrder(o.bootOrder), disks, log);
  return { cfg, devices, boot };
}

async function readOne(ata: AtaPiix, d: AtaPiix['devices'][number], lba: number): Promise<Uint8Array> {
  let out = new Uint8Array(0);
  if (d.kind === 'ata') await ata.readSectors(d, lba, 1, (b) => (out = b.slice()));
  else await ata.readBlocks(d, lba, 1, (b) => (out = b.slice()));
  return out;
}
