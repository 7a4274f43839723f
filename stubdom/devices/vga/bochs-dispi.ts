// The Bochs VBE extension ("dispi") of QEMU's standard VGA, which Linux's bochs-drm, SeaBIOS's
// VGA BIOS and OVMF program: an index port 0x1CE and a 16-bit data port 0x1CF (also at offset
// 0x500 of the card's MMIO BAR).
//
//   0 ID (0xB0C0-0xB0C5)   1 XRES   2 YRES   3 BPP (8, 15, 16, 24, 32)
//   4 ENABLE: 0x01 enabled, 0x02 GETCAPS (XRES/YRES/BPP read as the maxima), 0x40 LFB,
//     0x80 NOCLEAR (keep video memory when enabling)
//   5 BANK (64 KiB window at 0xA0000)   6 VIRT_WIDTH   7 VIRT_HEIGHT   8 X_OFFSET   9 Y_OFFSET
//   10 video memory in 64 KiB units (read-only)
//
// Every write is followed by a fix-up, as QEMU's vbe_fixup_regs does, so that whatever a guest
// writes, the mode fits the video memory: an unknown depth becomes 8 bpp; resolutions are
// clamped to MAX_XRES x MAX_YRES (a 65535x65535 request gets 2560x1600), widths to multiples of
// 8; the virtual width to at least the visible one; the height to what the memory holds at that
// pitch; the panning offsets so the visible window ends inside the memory; the bank to the
// memory's 64 KiB pages. The display only ever sees the fixed-up mode.
import type { IoHandler } from '../../device-model/address-bus.js';
import { W, type VgaState } from './vga-shared.js';
import type { VgaWindowOverride } from './vga.js';

export const DISPI_INDEX_PORT = 0x1ce;
export const DISPI_PORT_COUNT = 3;
export const DISPI_ID0 = 0xb0c0;
export const DISPI_ID5 = 0xb0c5;
export const DISPI_MAX_XRES = 2560;
export const DISPI_MAX_YRES = 1600;
export const DISPI_MAX_BPP = 32;
export const DISPI_ENABLED = 0x01;
export const DISPI_GETCAPS = 0x02;
export const DISPI_LFB_ENABLED = 0x40;
export const DISPI_NOCLEAR = 0x80;

export const enum Dispi {
  ID = 0,
  XRES = 1,
  YRES = 2,
  BPP = 3,
  ENABLE = 4,
  BANK = 5,
  VIRT_WIDTH = 6,
  VIRT_HEIGHT = 7,
  X_OFFSET = 8,
  Y_OFFSET = 9,
  VIDEO_MEMORY_64K = 10,
}
const DISPI_REGS = 11;
const VALID_BPP = new Set([8, 15, 16, 24, 32]);

export function bytesPerPixel(bpp: number): number {
  return bpp === 15 ? 2 : bpp / 8;
}

export class BochsDispi implements VgaWindowOverride {
  readonly regs = new Uint16Array(DISPI_REGS);
  private index = 0;
  /** Writes that had to be clamped (a hostile or confused guest). */
  clamped = 0;

  constructor(private readonly state: VgaState) {
    this.reset();
  }

  reset(): void {
    this.regs.fill(0);
    this.regs[Dispi.ID] = DISPI_ID5;
    this.regs[Dispi.XRES] = 640;
    this.regs[Dispi.YRES] = 480;
    this.regs[Dispi.BPP] = 8;
    this.regs[Dispi.VIDEO_MEMORY_64K] = Math.min(0xffff, this.state.vram.length >>> 16);
    this.fixup();
    this.publish();
  }

  /** Ports 0x1CE (index) and 0x1CF (data), 16 bits each, so the data port's word reaches
   * 0x1D0: registered at DISPI_INDEX_PORT with length DISPI_PORT_COUNT, as QEMU does. */
  readonly ports: IoHandler = {
    read: (off, size) => {
      if (off === 0) return size === 1 ? this.index & 0xff : this.index;
      if (off === 1) return size === 1 ? this.readData() & 0xff : this.readData();
      return 0xff;
    },
    write: (off, size, v) => {
      if (off === 0) {
        // A 16-bit write of the index; byte writes set the low byte.
        this.index = size === 1 ? (this.index & 0xff00) | (v & 0xff) : v & 0xffff;
        return;
      }
      if (off === 1) this.writeData(v & 0xffff);
    },
  };

  readData(): number {
    const i = this.index;
    if (i >= DISPI_REGS) return 0;
    if (this.regs[Dispi.ENABLE]! & DISPI_GETCAPS) {
      if (i === Dispi.XRES) return DISPI_MAX_XRES;
      if (i === Dispi.YRES) return DISPI_MAX_YRES;
      if (i === Dispi.BPP) return DISPI_MAX_BPP;
    }
    return this.regs[i]!;
  }

  writeData(v: number): void {
    const i = this.index;
    const r = this.regs;
    switch (i) {
      case Dispi.ID:
        if (v >= DISPI_ID0 && v <= DISPI_ID5) r[Dispi.ID] = v;
        return;
      case Dispi.VIDEO_MEMORY_64K:
        return;
      case Dispi.ENABLE: {
        const was = r[Dispi.ENABLE]! & DISPI_ENABLED;
        r[Dispi.ENABLE] = v & (DISPI_ENABLED | DISPI_GETCAPS | DISPI_LFB_ENABLED | DISPI_NOCLEAR);
        if (v & DISPI_ENABLED && !was) {
          r[Dispi.X_OFFSET] = 0;
          r[Dispi.Y_OFFSET] = 0;
          r[Dispi.BANK] = 0;
          this.fixup();
          if (!(v & DISPI_NOCLEAR)) this.state.vram.fill(0);
        }
        break;
      }
      case Dispi.VIRT_HEIGHT:
        return; // derived from the memory and the pitch, as QEMU does
      default:
        if (i < DISPI_REGS) r[i] = v;
        else return;
    }
    this.fixup();
    this.publish();
  }

  /** vbe_fixup_regs: make the mode fit the card. */
  private fixup(): void {
    const r = this.regs;
    const before = r.slice();
    if (!VALID_BPP.has(r[Dispi.BPP]!)) r[Dispi.BPP] = 8;
    r[Dispi.XRES] = Math.max(8, Math.min(DISPI_MAX_XRES, r[Dispi.XRES]!) & ~7);
    r[Dispi.YRES] = Math.max(1, Math.min(DISPI_MAX_YRES, r[Dispi.YRES]!));
    let virtWidth = Math.max(r[Dispi.XRES]!, Math.min(DISPI_MAX_XRES * 4, r[Dispi.VIRT_WIDTH]!) & ~7);
    const bytes = bytesPerPixel(r[Dispi.BPP]!);
    const vram = this.state.vram.length;
    let pitch = virtWidth * bytes;
    let maxY = Math.floor(vram / pitch);
    if (maxY < r[Dispi.YRES]!) {
      // Too wide a virtual screen for this height: fall back to no horizontal panning.
      virtWidth = r[Dispi.XRES]!;
      pitch = virtWidth * bytes;
      maxY = Math.floor(vram / pitch);
    }
    if (maxY < r[Dispi.YRES]!) r[Dispi.YRES] = maxY;
    r[Dispi.VIRT_WIDTH] = virtWidth;
    r[Dispi.VIRT_HEIGHT] = Math.min(0xffff, maxY);
    r[Dispi.X_OFFSET] = Math.min(r[Dispi.X_OFFSET]!, virtWidth - r[Dispi.XRES]!);
    r[Dispi.Y_OFFSET] = Math.min(r[Dispi.Y_OFFSET]!, maxY - r[Dispi.YRES]!);
    r[Dispi.BANK] = Math.min(r[Dispi.BANK]!, Math.max(0, (vram >>> 16) - 1));
    for (let i = 0; i < DISPI_REGS; i++) if (r[i] !== before[i] && i !== Dispi.VIRT_HEIGHT && i !== Dispi.VIRT_WIDTH) {
      this.clamped++;
      break;
    }
  }

  /** The mode, for the display thread. */
  private publish(): void {
    const r = this.regs;
    const w = this.state.words;
    const bytes = bytesPerPixel(r[Dispi.BPP]!);
    const pitch = r[Dispi.VIRT_WIDTH]! * bytes;
    w[W.VBE_XRES] = r[Dispi.XRES]!;
    w[W.VBE_YRES] = r[Dispi.YRES]!;
    w[W.VBE_BPP] = r[Dispi.BPP]!;
    w[W.VBE_PITCH] = pitch;
    w[W.VBE_START] = r[Dispi.Y_OFFSET]! * pitch + r[Dispi.X_OFFSET]! * bytes;
    w[W.CLAMPED] = this.clamped;
    Atomics.store(w, W.VBE_ENABLED, r[Dispi.ENABLE]! & DISPI_ENABLED);
    this.state.touch();
  }

  enabled(): boolean {
    return (this.regs[Dispi.ENABLE]! & DISPI_ENABLED) !== 0;
  }

  /** With VBE on, 0xA0000-0xAFFFF is a 64 KiB window onto video memory at BANK. */
  windowToVram(offset: number): number {
    if (!this.enabled() || offset >= 0x10000) return -1;
    return this.regs[Dispi.BANK]! * 0x10000 + offset;
  }
}
