// QEMU's standard VGA (`-device VGA`, what xl's `vga = "stdvga"` / `stdvga = 1` gives): PCI
// 1234:1111, class 0300 (VGA-compatible), the VGA core's legacy ports and window, the Bochs
// dispi registers at 0x1CE, the video memory as a prefetchable BAR 0 (the linear framebuffer),
// and a 4 KiB MMIO BAR 2 with the VGA ports at 0x400 (0x3C0-0x3DF) and the dispi registers at
// 0x500 (16-bit, one per index), as QEMU's "qext" region has them.
import type { AddressBus, IoHandler } from '../../device-model/address-bus.js';
import { PciFunction } from '../pci/pci-function.js';
import { BochsDispi, DISPI_INDEX_PORT, DISPI_PORT_COUNT } from './bochs-dispi.js';
import { VgaCore, VGA_PORT_BASE, VGA_PORT_COUNT, VGA_WINDOW_BASE, VGA_WINDOW_SIZE, type VgaMetrics } from './vga.js';
import type { VgaState } from './vga-shared.js';
import { packPages, readRegisters, unpackPages, writeRegisters, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';

export const STDVGA_VENDOR = 0x1234;
export const STDVGA_DEVICE = 0x1111;
const PCI_CLASS_DISPLAY_VGA = 0x030000;
const MMIO_BAR_SIZE = 0x1000;
const MMIO_VGA_PORTS = 0x400;
const MMIO_DISPI = 0x500;

export interface StdVgaMetrics extends VgaMetrics {
  lfbWrites: number;
  clamped: number;
}

const VGA_CORE_REGISTERS = [
  'crtcIndex', 'seqIndex', 'gcIndex', 'attrIndex', 'attrFlipFlop', 'dacReadIndex', 'dacWriteIndex', 'dacComponent', 'dacState', 'pelMask', 'retraceToggle',
] as const;

export class StdVga extends PciFunction {
  readonly vga: VgaCore;
  readonly dispi: BochsDispi;
  readonly metrics: StdVgaMetrics;

  /** PCI config, the VGA core and dispi registers, the shared register words and the video
   * memory without its zero pages (docs/kvm.md, "Save, restore, migration"). */
  saveState(f: FieldWriter): void {
    this.savePciState(f);
    f.bytes('regs', this.state.regs).bytes('words', new Uint8Array(this.state.words.buffer, this.state.words.byteOffset, this.state.words.byteLength));
    f.u32('vramBytes', this.state.vram.length).bytes('vram', packPages(this.state.vram));
    writeRegisters(f, this.vga, VGA_CORE_REGISTERS);
    f.bytes('dispi', new Uint8Array(this.dispi.regs.buffer.slice(0))).u8('dispiIndex', (this.dispi as unknown as { index: number }).index);
  }

  loadState(r: FieldReader): void {
    this.loadPciState(r);
    const regs = r.bytes('regs', this.state.regs.length);
    const words = r.bytes('words', this.state.words.byteLength);
    r.u32('vramBytes', this.state.vram.length, this.state.vram.length);
    const vram = r.bytes('vram');
    const core = readRegisters(r, this.vga, VGA_CORE_REGISTERS, { crtcIndex: 0xff, seqIndex: 0xff, gcIndex: 0xff, attrIndex: 0xff, dacReadIndex: 0xff, dacWriteIndex: 0xff, dacComponent: 2, dacState: 3, pelMask: 0xff, retraceToggle: 0xff });
    const dispi = r.bytes('dispi', this.dispi.regs.byteLength);
    const dispiIndex = r.u8('dispiIndex', this.dispi.regs.length - 1);
    r.end();
    unpackPages(vram, this.state.vram, r.section);
    this.state.regs.set(regs);
    new Uint8Array(this.state.words.buffer, this.state.words.byteOffset, this.state.words.byteLength).set(words);
    Object.assign(this.vga, core);
    new Uint8Array(this.dispi.regs.buffer).set(dispi);
    Object.assign(this.dispi, { index: dispiIndex });
  }

  constructor(readonly state: VgaState) {
    const metrics: StdVgaMetrics = { exits: 0, portWrites: 0, memWrites: 0, lfbWrites: 0, clamped: 0 };
    super('stdvga', { vendor: STDVGA_VENDOR, device: STDVGA_DEVICE, revision: 2, classCode: PCI_CLASS_DISPLAY_VGA, subsystemVendor: 0x1af4, subsystem: 0x1100 }, metrics);
    this.metrics = metrics;
    this.vga = new VgaCore(state, metrics);
    this.dispi = new BochsDispi(state);
    this.vga.override = this.dispi;
    const vram = state.vram;
    const lfb: IoHandler = {
      read: (off, size) => {
        let v = 0;
        for (let i = 0; i < size; i++) v |= (off + i < vram.length ? vram[off + i]! : 0xff) << (8 * i);
        return v >>> 0;
      },
      write: (off, size, v) => {
        metrics.lfbWrites++;
        for (let i = 0; i < size && off + i < vram.length; i++) vram[off + i] = (v >>> (8 * i)) & 0xff;
        state.touch();
      },
    };
    const mmio: IoHandler = {
      read: (off, size) => {
        if (off >= MMIO_VGA_PORTS && off < MMIO_VGA_PORTS + 0x20) {
          let v = 0;
          for (let i = 0; i < size; i++) v |= this.vga.readPort(0x3c0 + off - MMIO_VGA_PORTS + i) << (8 * i);
          return v >>> 0;
        }
        if (off >= MMIO_DISPI && off < MMIO_DISPI + 0x20 && size === 2 && !(off & 1)) return this.dispiAt((off - MMIO_DISPI) >> 1);
        return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
      },
      write: (off, size, v) => {
        if (off >= MMIO_VGA_PORTS && off < MMIO_VGA_PORTS + 0x20) {
          for (let i = 0; i < size; i++) this.vga.writePort(0x3c0 + off - MMIO_VGA_PORTS + i, (v >>> (8 * i)) & 0xff);
        } else if (off >= MMIO_DISPI && off < MMIO_DISPI + 0x20 && size === 2 && !(off & 1)) {
          this.dispiAt((off - MMIO_DISPI) >> 1, v);
        }
        metrics.clamped = this.dispi.clamped;
      },
    };
    this.addBar(0, { kind: 'mem', size: vram.length, prefetchable: true, handler: lfb });
    this.addBar(2, { kind: 'mem', size: MMIO_BAR_SIZE, handler: mmio });
  }

  private dispiAt(index: number, write?: number): number {
    this.dispi.ports.write(0, 2, index);
    if (write === undefined) return this.dispi.readData();
    this.dispi.writeData(write & 0xffff);
    return 0;
  }

  /** The fixed legacy decode: VGA ports, the 0xA0000 window, the dispi ports. */
  attachLegacy(pio: AddressBus, mmio: AddressBus): void {
    pio.register(VGA_PORT_BASE, VGA_PORT_COUNT, this.vga.ports, 'vga', this.metrics);
    mmio.register(VGA_WINDOW_BASE, VGA_WINDOW_SIZE, this.vga.window, 'vga-window', this.metrics);
    const dispiPorts: IoHandler = {
      read: (off, size) => this.dispi.ports.read(off, size),
      write: (off, size, v) => {
        this.dispi.ports.write(off, size, v);
        this.metrics.clamped = this.dispi.clamped;
      },
    };
    pio.register(DISPI_INDEX_PORT, DISPI_PORT_COUNT, dispiPorts, 'vbe-dispi', this.metrics);
  }

  reset(): void {
    this.dispi.reset();
    this.vga.reset();
  }
}
