// The host bridge at 00:00.0: Intel 82441FX (i440FX PMC), 8086:1237 rev 02, class 0600.
// Its chipset registers (PAM 0x59-0x5F, SMRAM 0x72, DRAM rows...) are kept as plain
// read/write bytes: the memory map they would control is fixed by the hypervisor.
import { PCI_CLASS_BRIDGE_HOST, PCI_STATUS_DEVSEL_MEDIUM, PCI_STATUS_FAST_BACK, PCI_VENDOR_ID_INTEL } from './constants.js';
import { PciFunction } from './pci-function.js';

export const I440FX_DEVICE_ID = 0x1237;

export class I440fxHostBridge extends PciFunction {
  constructor() {
    super('i440fx', {
      vendor: PCI_VENDOR_ID_INTEL,
      device: I440FX_DEVICE_ID,
      revision: 0x02,
      classCode: PCI_CLASS_BRIDGE_HOST,
      status: PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM,
    });
    // Host bridges always decode memory and master; the command register is mostly fixed.
    this.config[0x04] = 0x06;
    this.wmask[0x04] = 0;
    this.wmask[0x05] = 0;
    this.writable(0x50, 0x30);
    // PAM0 reset value (BIOS area read from DRAM disabled) and DRAM row boundaries.
    this.config[0x59] = 0x00;
    this.config[0x72] = 0x02;
  }
}
