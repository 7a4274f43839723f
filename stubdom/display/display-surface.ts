// What a viewer of the guest's screen sees, as 32-bit pixels (0x00RRGGBB), rebuilt from the
// display adapter's shared state (stubdom/devices/vga/vga-shared.ts) only when the device model
// says something changed. It keeps, per 16x16 tile, the frame in which the tile last changed,
// so each viewer gets exactly what changed since the frame it has. In text mode it also notices
// when the screen scrolled (rows moved up) so viewers that have the previous frame can be sent
// one CopyRect plus the new lines instead of the whole screen.
//
// Text mode: cells of 9x16 pixels (the VGA's 8-pixel glyphs plus the 9th column, which repeats
// the 8th for the line-drawing characters 0xC0-0xDF when the attribute controller's line
// graphics bit is set), colours through the attribute controller's palette and the DAC, the
// underline cursor between the CRTC's cursor start and end lines. Blinking is not animated: a
// blinking cell is drawn steady (animating it would cost CPU on an idle screen). VBE modes: 8
// bpp through the DAC, 15/16/24/32 bpp true colour.
import { bytesPerPixel } from '../devices/vga/bochs-dispi.js';
import { ATTR_BASE, DAC_BASE, W, type VgaState } from '../devices/vga/vga-shared.js';
import { VgaCore } from '../devices/vga/vga.js';
import { GLYPH_HEIGHT, type VgaFont } from './psf-font.js';

export const TILE = 16;
/** Node 20 has Atomics.waitAsync; TypeScript's ES2022 library does not declare it. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t: number): { async: boolean; value: Promise<string> | string } }).waitAsync;
const CELL_WIDTH = 9;

export interface ScrollHint {
  /** The frame this scroll produced. */
  frame: number;
  /** Pixels the screen content moved up. */
  dy: number;
  /** Tiles that still differ after the move (the rest is the moved content). */
  residual: Uint8Array;
}

export class DisplaySurface {
  width = 0;
  height = 0;
  pixels = new Uint32Array(0);
  /** Frame counter: bumped whenever pixels change. */
  frame = 0;
  /** The frame in which the size last changed (viewers then need a DesktopSize). */
  sizeFrame = 0;
  tilesX = 0;
  tilesY = 0;
  tileStamp = new Int32Array(0);
  scroll: ScrollHint | null = null;
  private seenGeneration = -1;
  private mode = '';
  private cells = new Uint16Array(0);
  private cursorCell = -1;
  private palette = new Uint32Array(16);
  private readonly dac = new Uint32Array(256);

  constructor(
    private readonly state: VgaState,
    private readonly font: VgaFont,
  ) {}

  /** Resolves when the adapter changes after what this surface last rendered (or after
   * `timeoutMs`): the display sleeps instead of polling an unchanged screen. */
  changed(timeoutMs: number): Promise<unknown> {
    const r = waitAsync(this.state.words, W.GENERATION, this.seenGeneration, timeoutMs);
    return Promise.resolve(r.value);
  }

  /** Re-render if the adapter changed since the last call; true when pixels changed. */
  refresh(): boolean {
    const gen = this.state.generation();
    if (gen === this.seenGeneration) return false;
    this.seenGeneration = gen;
    const before = this.frame;
    const next = this.frame + 1;
    this.scroll = null;
    this.readDac();
    if (Atomics.load(this.state.words, W.VBE_ENABLED)) this.renderVbe(next);
    else this.renderText(next);
    return this.frame !== before;
  }

  private readDac(): void {
    const r = this.state.regs;
    for (let i = 0; i < 256; i++) {
      const c = (v: number) => ((v & 0x3f) << 2) | ((v & 0x3f) >> 4);
      this.dac[i] = (c(r[DAC_BASE + i * 3]!) << 16) | (c(r[DAC_BASE + i * 3 + 1]!) << 8) | c(r[DAC_BASE + i * 3 + 2]!);
    }
  }

  private resize(w: number, h: number, frame: number, mode: string): void {
    this.width = w;
    this.height = h;
    this.pixels = new Uint32Array(w * h);
    this.tilesX = Math.ceil(w / TILE);
    this.tilesY = Math.ceil(h / TILE);
    this.tileStamp = new Int32Array(this.tilesX * this.tilesY).fill(frame);
    this.sizeFrame = frame;
    this.frame = frame;
    this.mode = mode;
  }

  private markRect(x: number, y: number, w: number, h: number, frame: number, into: Int32Array | Uint8Array = this.tileStamp): void {
    const tx1 = Math.min(this.tilesX - 1, Math.floor((x + w - 1) / TILE));
    const ty1 = Math.min(this.tilesY - 1, Math.floor((y + h - 1) / TILE));
    for (let ty = Math.floor(y / TILE); ty <= ty1; ty++) for (let tx = Math.floor(x / TILE); tx <= tx1; tx++) into[ty * this.tilesX + tx] = into === this.tileStamp ? frame : 1;
    this.frame = frame;
  }

  // ---- text mode ---------------------------------------------------------------------------

  private renderText(frame: number): void {
    const regs = this.state.regs;
    const g = VgaCore.textGeometry(regs);
    const mode = `text ${g.cols}x${g.rows}`;
    const cells = g.cols * g.rows;
    let full = false;
    if (mode !== this.mode) {
      this.resize(g.cols * CELL_WIDTH, g.rows * GLYPH_HEIGHT, frame, mode);
      this.cells = new Uint16Array(cells).fill(0xffff);
      full = true;
    }
    // The 16 colours: attribute controller palette -> DAC.
    const pal = new Uint32Array(16);
    for (let i = 0; i < 16; i++) pal[i] = this.dac[regs[ATTR_BASE + i]! & 0x3f]!;
    if (!full && pal.some((v, i) => v !== this.palette[i])) full = true;
    this.palette = pal;
    const modeCtl = regs[ATTR_BASE + 0x10]!;
    const blinkBit = (modeCtl & 0x08) !== 0;
    const lineGraphics = (modeCtl & 0x04) !== 0;

    // Read the cells the CRTC shows (start address and pitch in character units).
    const vram = this.state.vram;
    const now = new Uint16Array(cells);
    for (let r = 0; r < g.rows; r++) {
      for (let c = 0; c < g.cols; c++) {
        const o = ((g.start + r * g.pitch + c) * 2) % 0x8000;
        now[r * g.cols + c] = vram[o]! | (vram[o + 1]! << 8);
      }
    }
    const cursor = g.cursorOn && g.cursor >= g.start && g.cursor < g.start + cells ? g.cursor - g.start : -1;
    const cursorLines: [number, number] = [regs[0x0a]! & 0x1f, Math.min(GLYPH_HEIGHT - 1, regs[0x0b]! & 0x1f)];

    // Scrolled? Find the upward shift k that makes the most rows equal to the old ones.
    if (!full && g.rows > 2) {
      const rowEq = (newRow: number, oldRow: number) => {
        for (let c = 0; c < g.cols; c++) if (now[newRow * g.cols + c] !== this.cells[oldRow * g.cols + c]) return false;
        return true;
      };
      const matches = (k: number) => {
        let n = 0;
        for (let r = 0; r + k < g.rows; r++) if (rowEq(r, r + k)) n++;
        return n;
      };
      const still = matches(0);
      let best = 0;
      let bestN = still;
      for (let k = 1; k < g.rows - 1; k++) {
        const n = matches(k);
        if (n > bestN) [best, bestN] = [k, n];
      }
      if (best > 0 && bestN >= still + 2) {
        const dy = best * GLYPH_HEIGHT;
        this.pixels.copyWithin(0, dy * this.width);
        this.cells.copyWithin(0, best * g.cols);
        this.cells.fill(0xffff, (g.rows - best) * g.cols);
        // The cursor's underline moved up with the pixels: redraw that cell, and the new one.
        const movedCursor = this.cursorCell - best * g.cols;
        if (this.cursorCell >= 0 && movedCursor >= 0) this.cells[movedCursor] = 0xffff;
        this.cursorCell = -1;
        this.scroll = { frame, dy, residual: new Uint8Array(this.tilesX * this.tilesY) };
        this.markRect(0, 0, this.width, this.height - dy, frame);
      }
    }

    for (let i = 0; i < cells; i++) {
      const isCursor = i === cursor;
      const wasCursor = i === this.cursorCell;
      if (!full && now[i] === this.cells[i] && isCursor === wasCursor) continue;
      this.drawCell(i % g.cols, Math.floor(i / g.cols), now[i]!, isCursor ? cursorLines : null, blinkBit, lineGraphics);
      this.markRect((i % g.cols) * CELL_WIDTH, Math.floor(i / g.cols) * GLYPH_HEIGHT, CELL_WIDTH, GLYPH_HEIGHT, frame);
      if (this.scroll) this.markRect((i % g.cols) * CELL_WIDTH, Math.floor(i / g.cols) * GLYPH_HEIGHT, CELL_WIDTH, GLYPH_HEIGHT, frame, this.scroll.residual);
    }
    this.cells = now;
    this.cursorCell = cursor;
  }

  private drawCell(col: number, row: number, cell: number, cursor: [number, number] | null, blinkBit: boolean, lineGraphics: boolean): void {
    const ch = cell & 0xff;
    const attr = cell >> 8;
    const fg = this.palette[attr & 0x0f]!;
    const bg = this.palette[blinkBit ? (attr >> 4) & 0x07 : attr >> 4]!;
    const glyphs = this.font.glyphs;
    const ninth = lineGraphics && ch >= 0xc0 && ch <= 0xdf;
    const x0 = col * CELL_WIDTH;
    const y0 = row * GLYPH_HEIGHT;
    for (let y = 0; y < GLYPH_HEIGHT; y++) {
      let bits = glyphs[ch * GLYPH_HEIGHT + y]!;
      if (cursor && y >= cursor[0] && y <= cursor[1]) bits = 0xff;
      const base = (y0 + y) * this.width + x0;
      for (let x = 0; x < 8; x++) this.pixels[base + x] = bits & (0x80 >> x) ? fg : bg;
      this.pixels[base + 8] = (ninth || (cursor && y >= cursor[0] && y <= cursor[1])) && bits & 1 ? fg : bg;
    }
  }

  // ---- VBE modes ---------------------------------------------------------------------------

  private renderVbe(frame: number): void {
    const w = this.state.words;
    const xres = w[W.VBE_XRES]!;
    const yres = w[W.VBE_YRES]!;
    const bpp = w[W.VBE_BPP]!;
    const pitch = w[W.VBE_PITCH]!;
    const start = w[W.VBE_START]!;
    const mode = `vbe ${xres}x${yres}x${bpp}`;
    let full = false;
    if (mode !== this.mode) {
      this.resize(xres, yres, frame, mode);
      full = true;
    }
    const vram = this.state.vram;
    const bytes = bytesPerPixel(bpp);
    for (let y = 0; y < yres; y++) {
      const row = start + y * pitch;
      if (row + xres * bytes > vram.length) break; // the device clamps; stay safe on a torn read
      for (let tx = 0; tx < this.tilesX; tx++) {
        let changed = false;
        const x1 = Math.min(xres, (tx + 1) * TILE);
        for (let x = tx * TILE; x < x1; x++) {
          const o = row + x * bytes;
          let v: number;
          if (bpp === 32 || bpp === 24) v = vram[o]! | (vram[o + 1]! << 8) | (vram[o + 2]! << 16);
          else if (bpp === 8) v = this.dac[vram[o]!]!;
          else {
            const p = vram[o]! | (vram[o + 1]! << 8);
            const [r, g, b] = bpp === 16 ? [p >> 11, (p >> 5) & 0x3f, p & 0x1f] : [(p >> 10) & 0x1f, (p >> 5) & 0x1f, p & 0x1f];
            const g8 = bpp === 16 ? (g << 2) | (g >> 4) : (g << 3) | (g >> 2);
            v = (((r << 3) | (r >> 2)) << 16) | (g8 << 8) | ((b << 3) | (b >> 2));
          }
          const i = y * this.width + x;
          if (this.pixels[i] !== v) {
            this.pixels[i] = v;
            changed = true;
          }
        }
        if (changed || full) this.markRect(tx * TILE, y, TILE, 1, frame);
      }
    }
  }
}
