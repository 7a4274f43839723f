// The Xen platform PCI device (qemu-xen's xen_platform.c): 5853:0001 rev 1, class ff80,
// subsystem 5853:0001, INTA; BAR0 = 256 I/O ports (byte 0: platform flags, byte 8: a log
// port), BAR1 = 16 MiB prefetchable MMIO that PV drivers use as space to map grant frames
// (reads 0, writes ignored). PV-on-HVM drivers find it and use the fixed ports 0x10-0x1F to
// take over from the emulated devices (Linux: arch/x86/xen/platform-pci-unplug.c):
//
//   inw(0x10)  -> 0x49d2 magic (0xd249 when the drivers are blacklisted)
//   inb(0x12)  -> protocol version 1
//   outw(0x12) <- product number (3 = Linux);  outl(0x10) <- driver build number
//   outw(0x10) <- unplug mask: bit 0 all IDE disks, bit 1 all NICs, bit 2 IDE disks except
//                 the primary master, bit 3 NVMe. CD-ROMs are never unplugged.
//   outb(0x10) <- platform flags (bit 0 ROM lock);  outb(0x12) <- a log character
//   inb(0x10)  -> platform flags; other reads: all ones.
import type { AddressBus, IoHandler } from '../../device-model/address-bus.js';
import type { DeviceLogger } from '../../device-model/log.js';
import { defaultLogger } from '../../device-model/log.js';
import { PCI_CLASS_OTHERS, PCI_STATUS_DEVSEL_MEDIUM, PCI_STATUS_FAST_BACK, PCI_VENDOR_ID_XEN } from '../pci/constants.js';
import { PciFunction } from '../pci/pci-function.js';

export const XEN_PLATFORM_DEVICE_ID = 0x0001;
export const XEN_PLATFORM_IOPORT = 0x10;
export const XEN_IOPORT_MAGIC_VAL = 0x49d2;
export const XEN_IOPORT_MAGIC_BLACKLISTED = 0xd249;
export const UNPLUG_ALL_IDE_DISKS = 1;
export const UNPLUG_ALL_NICS = 2;
export const UNPLUG_AUX_IDE_DISKS = 4;
export const UNPLUG_NVME_DISKS = 8;

export interface XenPlatformOptions {
  /** Called with the mask a guest writes (the machine removes the devices). */
  onUnplug?: (mask: number) => void;
  /** Answer the "blacklisted" magic so PV drivers stay away. */
  blacklisted?: boolean;
  log?: DeviceLogger;
}

export interface XenPlatformMetrics {
  exits: number;
  unplugRequests: number;
  /** OR of every unplug mask written. */
  unplugMask: number;
  productNumber: number;
  driverVersion: number;
}

export class XenPlatform extends PciFunction {
  readonly metrics: XenPlatformMetrics;
  flags = 0;
  blacklisted: boolean;
  private readonly onUnplug: ((mask: number) => void) | undefined;
  private readonly logSink: DeviceLogger;
  private logLine = '';

  constructor(opts: XenPlatformOptions = {}) {
    const metrics: XenPlatformMetrics = { exits: 0, unplugRequests: 0, unplugMask: 0, productNumber: -1, driverVersion: -1 };
    super(
      'xen-platform',
      {
        vendor: PCI_VENDOR_ID_XEN,
        device: XEN_PLATFORM_DEVICE_ID,
        revision: 1,
        classCode: PCI_CLASS_OTHERS | 0x8000,
        subsystemVendor: PCI_VENDOR_ID_XEN,
        subsystem: XEN_PLATFORM_DEVICE_ID,
        interruptPin: 1,
        status: PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM,
      },
      metrics,
    );
    this.metrics = metrics;
    this.onUnplug = opts.onUnplug;
    this.blacklisted = opts.blacklisted ?? false;
    this.logSink = opts.log ?? defaultLogger('stubdom');
    const bar0: IoHandler = {
      read: (off, size) => (off === 0 && size === 1 ? this.flags : size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1),
      write: (off, size, v) => {
        if (size !== 1) return;
        if (off === 0) this.flags = v & 1;
        else if (off === 8) this.logByte(v);
      },
    };
    const bar1: IoHandler = { read: () => 0, write: () => {} };
    this.addBar(0, { kind: 'io', size: 0x100, handler: bar0 });
    this.addBar(1, { kind: 'mem', size: 0x100_0000, prefetchable: true, handler: bar1 });
  }

  /** The fixed ports 0x10-0x1F (registered on the I/O bus by the machine). */
  readonly fixedPorts: IoHandler = {
    read: (off, size) => {
      if (size === 2 && off === 0) return this.blacklisted ? XEN_IOPORT_MAGIC_BLACKLISTED : XEN_IOPORT_MAGIC_VAL;
      if (size === 1 && off === 0) return this.flags;
      if (size === 1 && off === 2) return 1;
      return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    },
    write: (off, size, v) => {
      if (size === 2 && off === 0) this.unplug(v & 0xffff);
      else if (size === 2 && off === 2) this.metrics.productNumber = v & 0xffff;
      else if (size === 4 && off === 0) this.metrics.driverVersion = v >>> 0;
      else if (size === 1 && off === 0) this.flags = v & 1;
      else if (size === 1 && off === 2) this.logByte(v);
    },
  };

  attachFixedPorts(pio: AddressBus): void {
    pio.register(XEN_PLATFORM_IOPORT, 16, this.fixedPorts, 'xen-platform-fixed', this.metrics);
  }

  private unplug(mask: number): void {
    this.metrics.unplugRequests++;
    this.metrics.unplugMask |= mask;
    this.logSink.info(`xen-platform: guest unplugs emulated devices, mask 0x${mask.toString(16)}`);
    this.onUnplug?.(mask);
  }

  private logByte(v: number): void {
    const c = v & 0xff;
    if (c === 0x0a || this.logLine.length >= 4095) {
      this.logSink.info(`xen-platform: guest: ${this.logLine}`);
      this.logLine = '';
      if (c === 0x0a) return;
    }
    // Printable ASCII only: the line ends up in our logs.
    this.logLine += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.';
  }
}
