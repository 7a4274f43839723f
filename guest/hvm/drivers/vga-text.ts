// The VGA text console (Linux's vgacon): the 80x25 colour text screen at 0xB8000 that the VGA
// BIOS leaves a PC in, found by probing the adapter's registers (the misc output register at
// 0x3CC reads back its colour bit; an empty bus reads all ones). The terminal (vt-screen.ts)
// keeps the screen in a page of guest RAM; changed rows go to the adapter with one `rep movsw`
// per flush (one exit), and the cursor through CRTC 0x0E/0x0F (0x0A bit 5 hides it), so a
// line of output costs a handful of exits, not one per character.
import type { Cpu } from '../cpu/io.js';
import type { DmaBuffer } from '../cpu/ram.js';
import { VtScreen } from './vt-screen.js';

const TEXT_BASE = 0xb8000;
const MISC_READ = 0x3cc;
const CRTC_INDEX = 0x3d4;
const CRTC_DATA = 0x3d5;
const COLS = 80;
const ROWS = 25;

export interface VgaTextCounters {
  flushes: number;
  bytes: number;
}

export class VgaTextConsole {
  readonly screen = new VtScreen(COLS, ROWS);
  readonly counters: VgaTextCounters = { flushes: 0, bytes: 0 };
  private scheduled = false;
  private cursor = -1;
  private cursorShown = true;

  private constructor(
    private readonly cpu: Cpu,
    /** COLS x ROWS x 2 bytes of guest RAM the screen is staged in for the rep movsw. */
    private readonly shadow: DmaBuffer,
  ) {}

  /** A VGA in colour text mode, or null when there is none (vga = "none"). */
  static probe(cpu: Cpu, shadow: DmaBuffer): VgaTextConsole | null {
    if (shadow.view.length < COLS * ROWS * 2) throw new RangeError('VGA shadow buffer too small');
    const misc = cpu.inb(MISC_READ);
    if (misc === 0xff || (misc & 1) === 0) return null;
    cpu.claimPorts('vga', 0x3c0, 0x20);
    cpu.claimMmio('vga', TEXT_BASE, COLS * ROWS * 2);
    const vt = new VgaTextConsole(cpu, shadow);
    vt.flush();
    return vt;
  }

  describe(): string {
    return `Console: colour VGA+ ${COLS}x${ROWS}`;
  }

  /** Console output: drawn at the next turn of the event loop, all of it at once. */
  write(bytes: Uint8Array): void {
    this.screen.write(bytes);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Copy the changed rows to the adapter and move the cursor. */
  flush(): void {
    this.scheduled = false;
    const dirty = this.screen.takeDirty();
    if (dirty) {
      const [lo, hi] = dirty;
      const cells = this.screen.cells;
      const v = this.shadow.view;
      for (let i = lo * COLS; i < (hi + 1) * COLS; i++) {
        v[i * 2] = cells[i]! & 0xff;
        v[i * 2 + 1] = cells[i]! >> 8;
      }
      const count = (hi - lo + 1) * COLS;
      this.cpu.movsToMmio(TEXT_BASE + lo * COLS * 2, 2, this.shadow.gpa + lo * COLS * 2, count);
      this.counters.flushes++;
      this.counters.bytes += count * 2;
    }
    const pos = this.screen.row * COLS + this.screen.col;
    if (pos !== this.cursor) {
      this.cursor = pos;
      this.cpu.outw(CRTC_INDEX, 0x0e | (pos & 0xff00));
      this.cpu.outw(CRTC_INDEX, 0x0f | ((pos & 0xff) << 8));
    }
    if (this.screen.cursorVisible !== this.cursorShown) {
      this.cursorShown = this.screen.cursorVisible;
      this.cpu.outb(CRTC_INDEX, 0x0a);
      this.cpu.outb(CRTC_DATA, this.cursorShown ? 0x0d : 0x20);
    }
  }
}
