// The VGA-compatible core every PC display adapter has (what QEMU's hw/display/vga.c models and
// Linux's vgacon drives): the register ports 0x3B4-0x3DF and the legacy memory window
// 0xA0000-0xBFFFF, with the card in mode 3 (80x25 colour text at 0xB8000) at power-on, as the
// VGA BIOS leaves it.
//
//   0x3C0/0x3C1  attribute controller: index and data share 0x3C0 through a flip-flop that a
//                read of input status 1 (0x3DA/0x3BA) resets; index bit 5 = palette address source
//   0x3C2        misc output (write); input status 0 (read)
//   0x3C4/0x3C5  sequencer      0x3CE/0x3CF  graphics controller
//   0x3C6-0x3C9  DAC: pel mask, read index / state, write index, data (r, g, b per entry, 6 bits)
//   0x3CC        misc output (read)   0x3CA  feature control (read)
//   0x3D4/0x3D5  CRTC (0x3B4/0x3B5 when misc output bit 0 selects mono): 0x0A/0x0B cursor
//                start/end (0x0A bit 5 hides it), 0x0C/0x0D start address, 0x0E/0x0F cursor
//                location; 0x00-0x07 are write-protected while 0x11 bit 7 is set
//   0x3DA        input status 1: display-enable and vertical-retrace bits alternate on every read,
//                so a driver waiting for retrace never spins forever
//
// The memory window is decoded by graphics controller register 6 (memory map select: A0000 128K,
// A0000 64K, B0000 32K, B8000 32K). Memory is kept linear as the CPU sees it through odd/even
// addressing (character, attribute, ...), which is all text mode needs; planar graphics modes
// (12h, 13h's chain-4 planes) are not emulated. Every register write is O(1) and unlogged, so a
// register storm costs the guest its exits and nothing else.
import type { IoHandler } from '../../device-model/address-bus.js';
import { ATTR_BASE, ATTR_COUNT, CRTC_BASE, CRTC_COUNT, DAC_BASE, GC_BASE, GC_COUNT, MISC_OUTPUT, SEQ_BASE, SEQ_COUNT, W, type VgaState } from './vga-shared.js';

export const VGA_PORT_BASE = 0x3b0;
export const VGA_PORT_COUNT = 0x30;
export const VGA_WINDOW_BASE = 0xa0000;
export const VGA_WINDOW_SIZE = 0x20000;

/** Mode 3 as the VGA BIOS programs it (IBM VGA register tables). */
const MODE3_CRTC = [0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff];
const MODE3_SEQ = [0x03, 0x00, 0x03, 0x00, 0x02];
const MODE3_GC = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x00, 0xff];
const MODE3_ATTR = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x0c, 0x00, 0x0f, 0x08, 0x00];
const MODE3_MISC = 0x67;

export interface VgaMetrics {
  exits: number;
  portWrites: number;
  memWrites: number;
}

/** Extra decode the Bochs VBE extension adds to the window (banked framebuffer access). */
export interface VgaWindowOverride {
  /** vram offset for a window offset, or -1 to fall back to the VGA decode. */
  windowToVram(offset: number): number;
}

export class VgaCore {
  override: VgaWindowOverride | null = null;
  private crtcIndex = 0;
  private seqIndex = 0;
  private gcIndex = 0;
  private attrIndex = 0;
  private attrFlipFlop = false;
  private dacReadIndex = 0;
  private dacWriteIndex = 0;
  private dacComponent = 0;
  private dacState = 0;
  private pelMask = 0xff;
  private retraceToggle = 0;

  constructor(
    readonly state: VgaState,
    /** Counted here: register and window writes (the bus counts the exits). */
    readonly metrics: VgaMetrics = { exits: 0, portWrites: 0, memWrites: 0 },
  ) {
    this.reset();
  }

  /** Power-on: mode 3, the EGA palette in the DAC's first 64 entries, text memory blank. */
  reset(): void {
    const r = this.state.regs;
    r.set(MODE3_CRTC, CRTC_BASE);
    r.set(MODE3_SEQ, SEQ_BASE);
    r.set(MODE3_GC, GC_BASE);
    r.set(MODE3_ATTR, ATTR_BASE);
    r[MISC_OUTPUT] = MODE3_MISC;
    for (let c = 0; c < 256; c++) {
      // EGA rgbRGB: bits 0-2 the 2/3 intensity blue, green, red; bits 3-5 the 1/3 ones.
      const v = (lo: number, hi: number) => (c < 64 ? ((c >> lo) & 1) * 0x2a + ((c >> hi) & 1) * 0x15 : 0);
      r[DAC_BASE + c * 3] = v(2, 5);
      r[DAC_BASE + c * 3 + 1] = v(1, 4);
      r[DAC_BASE + c * 3 + 2] = v(0, 3);
    }
    for (let i = 0; i < 0x8000; i += 2) {
      this.state.vram[i] = 0x20;
      this.state.vram[i + 1] = 0x07;
    }
    this.attrFlipFlop = false;
    this.attrIndex = 0x20;
    this.state.touch();
  }

  private mono(): boolean {
    return (this.state.regs[MISC_OUTPUT]! & 1) === 0;
  }

  /** I/O ports 0x3B0-0x3DF (registered at VGA_PORT_BASE). */
  readonly ports: IoHandler = {
    read: (off, size) => {
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.readPort(VGA_PORT_BASE + off + i) << (8 * i);
      return v >>> 0;
    },
    write: (off, size, value) => {
      for (let i = 0; i < size; i++) this.writePort(VGA_PORT_BASE + off + i, (value >>> (8 * i)) & 0xff);
    },
  };

  readPort(port: number): number {
    const r = this.state.regs;
    const mono = this.mono();
    switch (port) {
      case 0x3c0:
        return this.attrIndex;
      case 0x3c1:
        return (this.attrIndex & 0x1f) < ATTR_COUNT ? r[ATTR_BASE + (this.attrIndex & 0x1f)]! : 0;
      case 0x3c2:
        return 0;
      case 0x3c4:
        return this.seqIndex;
      case 0x3c5:
        return this.seqIndex < SEQ_COUNT ? r[SEQ_BASE + this.seqIndex]! : 0;
      case 0x3c6:
        return this.pelMask;
      case 0x3c7:
        return this.dacState;
      case 0x3c8:
        return this.dacWriteIndex;
      case 0x3c9: {
        const v = r[DAC_BASE + this.dacReadIndex * 3 + this.dacComponent]!;
        if (++this.dacComponent === 3) {
          this.dacComponent = 0;
          this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
        }
        return v;
      }
      case 0x3ca:
        return 0;
      case 0x3cc:
        return r[MISC_OUTPUT]!;
      case 0x3ce:
        return this.gcIndex;
      case 0x3cf:
        return this.gcIndex < GC_COUNT ? r[GC_BASE + this.gcIndex]! : 0;
      case 0x3b4:
      case 0x3d4:
        return mono === (port === 0x3b4) ? this.crtcIndex : 0xff;
      case 0x3b5:
      case 0x3d5:
        if (mono !== (port === 0x3b5)) return 0xff;
        return this.crtcIndex < CRTC_COUNT ? r[CRTC_BASE + this.crtcIndex]! : 0;
      case 0x3ba:
      case 0x3da:
        if (mono !== (port === 0x3ba)) return 0xff;
        this.attrFlipFlop = false;
        // Alternate "in retrace" (bits 3 and 0) and "displaying" on every read.
        this.retraceToggle ^= 0x09;
        return this.retraceToggle;
      default:
        return 0xff;
    }
  }

  writePort(port: number, v: number): void {
    this.metrics.portWrites++;
    const r = this.state.regs;
    const mono = this.mono();
    switch (port) {
      case 0x3c0:
        if (!this.attrFlipFlop) this.attrIndex = v & 0x3f;
        else {
          const idx = this.attrIndex & 0x1f;
          if (idx < ATTR_COUNT) {
            r[ATTR_BASE + idx] = idx < 16 ? v & 0x3f : v;
            this.state.touch();
          }
        }
        this.attrFlipFlop = !this.attrFlipFlop;
        return;
      case 0x3c2:
        r[MISC_OUTPUT] = v;
        this.state.touch();
        return;
      case 0x3c4:
        this.seqIndex = v & 0x07;
        return;
      case 0x3c5:
        if (this.seqIndex < SEQ_COUNT) r[SEQ_BASE + this.seqIndex] = v;
        this.state.touch();
        return;
      case 0x3c6:
        this.pelMask = v;
        return;
      case 0x3c7:
        this.dacReadIndex = v;
        this.dacComponent = 0;
        this.dacState = 0x03;
        return;
      case 0x3c8:
        this.dacWriteIndex = v;
        this.dacComponent = 0;
        this.dacState = 0x00;
        return;
      case 0x3c9:
        r[DAC_BASE + this.dacWriteIndex * 3 + this.dacComponent] = v & 0x3f;
        if (++this.dacComponent === 3) {
          this.dacComponent = 0;
          this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
          this.state.touch();
        }
        return;
      case 0x3ce:
        this.gcIndex = v & 0x0f;
        return;
      case 0x3cf:
        if (this.gcIndex < GC_COUNT) r[GC_BASE + this.gcIndex] = v;
        this.state.touch();
        return;
      case 0x3b4:
      case 0x3d4:
        if (mono === (port === 0x3b4)) this.crtcIndex = v & 0x3f;
        return;
      case 0x3b5:
      case 0x3d5: {
        if (mono !== (port === 0x3b5) || this.crtcIndex >= CRTC_COUNT) return;
        const protect = (r[CRTC_BASE + 0x11]! & 0x80) !== 0;
        if (protect && this.crtcIndex <= 7) {
          // Only the line compare bit of the overflow register stays writable.
          if (this.crtcIndex === 7) r[CRTC_BASE + 7] = (r[CRTC_BASE + 7]! & ~0x10) | (v & 0x10);
          return;
        }
        r[CRTC_BASE + this.crtcIndex] = v;
        this.state.touch();
        return;
      }
      default:
        return; // feature control (0x3BA/0x3DA writes) and the rest: nothing to model
    }
  }

  /** vram offset the window offset (from 0xA0000) decodes to, or -1 (open bus). */
  private windowOffset(off: number): number {
    const o = this.override?.windowToVram(off) ?? -1;
    if (o >= 0) return o;
    switch ((this.state.regs[GC_BASE + 6]! >> 2) & 3) {
      case 0:
        return off;
      case 1:
        return off < 0x10000 ? off : -1;
      case 2:
        return off >= 0x10000 && off < 0x18000 ? off - 0x10000 : -1;
      default:
        return off >= 0x18000 ? off - 0x18000 : -1;
    }
  }

  /** The memory window 0xA0000-0xBFFFF (registered at VGA_WINDOW_BASE on the MMIO bus). */
  readonly window: IoHandler = {
    read: (off, size) => {
      let v = 0;
      for (let i = 0; i < size; i++) {
        const o = this.windowOffset(off + i);
        v |= (o >= 0 && o < this.state.vram.length ? this.state.vram[o]! : 0xff) << (8 * i);
      }
      return v >>> 0;
    },
    write: (off, size, value) => {
      this.metrics.memWrites++;
      let touched = false;
      for (let i = 0; i < size; i++) {
        const o = this.windowOffset(off + i);
        if (o < 0 || o >= this.state.vram.length) continue;
        this.state.vram[o] = (value >>> (8 * i)) & 0xff;
        touched = true;
      }
      if (touched) this.state.touch();
    },
  };

  /** Text geometry from the CRTC, clamped to what a screen can be (1..132 x 1..60). */
  static textGeometry(regs: Uint8Array): { cols: number; rows: number; start: number; pitch: number; cursor: number; cursorOn: boolean; cellHeight: number } {
    const c = (i: number) => regs[CRTC_BASE + i]!;
    const cols = Math.min(132, Math.max(1, c(0x01) + 1));
    const overflow = c(0x07);
    const vde = c(0x12) | ((overflow & 0x02) << 7) | ((overflow & 0x40) << 3);
    const cellHeight = (c(0x09) & 0x1f) + 1;
    const rows = Math.min(60, Math.max(1, Math.floor((vde + 1) / cellHeight)));
    return {
      cols,
      rows,
      start: (c(0x0c) << 8) | c(0x0d),
      pitch: Math.max(cols, c(0x13) * 2),
      cursor: (c(0x0e) << 8) | c(0x0f),
      cursorOn: (c(0x0a) & 0x20) === 0 && (c(0x0a) & 0x1f) <= (c(0x0b) & 0x1f),
      cellHeight,
    };
  }
}
