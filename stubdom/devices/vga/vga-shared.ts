// The display adapter's state as the device model and the display (the VNC server, in another
// thread of the stub domain) both see it: video memory and the registers that say how to show
// it, in SharedArrayBuffers. The device model is the only writer; the display only reads, and
// re-reads whenever `generation` moved, so a torn read is repaired by the next frame.
//
//   regs (u8)   CRTC 0x00-0x18 at CRTC_BASE, sequencer, graphics controller, attribute
//               controller, misc output, the DAC's 256 x (r, g, b) 6-bit entries
//   words (i32) generation, the VBE (Bochs dispi) mode as clamped by the device, the adapter kind
//   vram        the card's memory: text cells (char, attribute) from offset 0 in text mode, the
//               linear framebuffer in a VBE mode
export const CRTC_BASE = 0x00;
export const CRTC_COUNT = 0x19;
export const SEQ_BASE = 0x20;
export const SEQ_COUNT = 5;
export const GC_BASE = 0x28;
export const GC_COUNT = 9;
export const ATTR_BASE = 0x40;
export const ATTR_COUNT = 0x15;
export const MISC_OUTPUT = 0x58;
export const DAC_BASE = 0x100;
const REGS_BYTES = 0x400;

/** i32 indices in `words`. */
export const W = {
  GENERATION: 0,
  /** 1 while a VBE mode is enabled (dispi ENABLE bit 0). */
  VBE_ENABLED: 1,
  VBE_XRES: 2,
  VBE_YRES: 3,
  VBE_BPP: 4,
  /** Bytes per scan line of the virtual screen. */
  VBE_PITCH: 5,
  /** Byte offset in vram of the first visible pixel (x/y offset applied). */
  VBE_START: 6,
  VRAM_BYTES: 7,
  /** Number of register/memory writes refused or clamped (hostile modes, storms). */
  CLAMPED: 8,
} as const;
const WORDS = 16;

export interface VgaShared {
  regsBuffer: SharedArrayBuffer;
  vramBuffer: SharedArrayBuffer;
}

export class VgaState {
  readonly regs: Uint8Array;
  readonly words: Int32Array;
  readonly vram: Uint8Array;

  constructor(readonly shared: VgaShared) {
    this.regs = new Uint8Array(shared.regsBuffer, 0, REGS_BYTES);
    this.words = new Int32Array(shared.regsBuffer, REGS_BYTES, WORDS);
    this.vram = new Uint8Array(shared.vramBuffer);
  }

  static create(vramBytes: number): VgaState {
    const s = new VgaState({ regsBuffer: new SharedArrayBuffer(REGS_BYTES + WORDS * 4), vramBuffer: new SharedArrayBuffer(vramBytes) });
    s.words[W.VRAM_BYTES] = vramBytes;
    return s;
  }

  /** Something visible may have changed: the display, if it waits (Atomics.waitAsync), wakes. */
  touch(): void {
    Atomics.add(this.words, W.GENERATION, 1);
    Atomics.notify(this.words, W.GENERATION);
  }

  generation(): number {
    return Atomics.load(this.words, W.GENERATION);
  }
}
