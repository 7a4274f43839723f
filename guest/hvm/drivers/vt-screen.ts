// The text terminal of a PC console (Linux's vt, TERM=linux, as far as a shell and its line
// editing need it): bytes in, a grid of CP437 cells with VGA attributes out. Handles printable
// characters (UTF-8 decoded and shown in CP437 where it has them, '?' where not), CR, LF, BS,
// TAB, BEL, and the CSI sequences shells and readline send: SGR colours (30-37, 40-47, 90-97,
// bold, reverse, reset), cursor moves (A B C D G H f d), erase in line/display (K J), insert
// and delete characters and lines (@ P X L M), cursor show/hide (?25h/l), save and restore
// (ESC 7 / ESC 8, CSI s / u), reset (ESC c). Other sequences are parsed and ignored.
import { CP437_TO_UNICODE } from '../../../common/cp437.js';

const UNICODE_TO_CP437 = new Map<number, number>(CP437_TO_UNICODE.map((u, i) => [u, i]));
UNICODE_TO_CP437.set(0x20, 0x20);
const DEFAULT_ATTR = 0x07;
/** ANSI colour order (black red green yellow blue magenta cyan white) -> VGA's (bgr bits). */
const ANSI_TO_VGA = [0, 4, 2, 6, 1, 5, 3, 7];

export class VtScreen {
  readonly cells: Uint16Array;
  row = 0;
  col = 0;
  cursorVisible = true;
  /** Rows changed since the last takeDirty(), as a [first, last] range (-1: none). */
  private dirtyLo = -1;
  private dirtyHi = -1;
  private fg = 7;
  private bg = 0;
  private bold = false;
  private reverse = false;
  private state: 'text' | 'esc' | 'csi' | 'charset' = 'text';
  private params = '';
  private utf8 = 0;
  private utf8Need = 0;
  private saved = { row: 0, col: 0 };
  private wrapPending = false;

  constructor(
    readonly cols = 80,
    readonly rows = 25,
  ) {
    this.cells = new Uint16Array(cols * rows).fill((DEFAULT_ATTR << 8) | 0x20);
    this.touch(0, rows - 1);
  }

  private attr(): number {
    let fg = this.fg | (this.bold ? 8 : 0);
    let bg = this.bg;
    if (this.reverse) [fg, bg] = [bg, fg & 7];
    return ((bg & 7) << 4) | (fg & 0x0f);
  }

  /** An erased cell: a space in the current background colour, as Linux's vt erases. */
  private blank(): number {
    return ((((this.bg & 7) << 4) | 7) << 8) | 0x20;
  }

  private touch(lo: number, hi: number): void {
    this.dirtyLo = this.dirtyLo < 0 ? lo : Math.min(this.dirtyLo, lo);
    this.dirtyHi = Math.max(this.dirtyHi, hi);
  }

  /** The changed rows since the last call, or null. */
  takeDirty(): [number, number] | null {
    if (this.dirtyLo < 0) return null;
    const r: [number, number] = [this.dirtyLo, this.dirtyHi];
    this.dirtyLo = this.dirtyHi = -1;
    return r;
  }

  write(bytes: Uint8Array): void {
    for (const b of bytes) this.byte(b);
  }

  private byte(b: number): void {
    if (this.state === 'esc') return this.escape(b);
    if (this.state === 'csi') return this.csi(b);
    if (this.state === 'charset') {
      this.state = 'text';
      return;
    }
    if (this.utf8Need > 0) {
      if ((b & 0xc0) !== 0x80) {
        this.utf8Need = 0;
        this.put(0x3f);
      } else {
        this.utf8 = (this.utf8 << 6) | (b & 0x3f);
        if (--this.utf8Need === 0) this.put(UNICODE_TO_CP437.get(this.utf8) ?? 0x3f);
        return;
      }
    }
    if (b >= 0xc0 && b < 0xf8) {
      this.utf8Need = b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : 1;
      this.utf8 = b & (0x3f >> this.utf8Need);
      return;
    }
    if (b >= 0x80) return this.put(0x3f);
    switch (b) {
      case 0x1b:
        this.state = 'esc';
        return;
      case 0x0d:
        this.col = 0;
        this.wrapPending = false;
        return;
      case 0x0a:
      case 0x0b:
      case 0x0c:
        this.lineFeed();
        return;
      case 0x08:
        if (this.col > 0) this.col--;
        this.wrapPending = false;
        return;
      case 0x09:
        this.col = Math.min(this.cols - 1, (this.col & ~7) + 8);
        return;
      case 0x07:
        return;
      default:
        if (b >= 0x20) this.put(b);
    }
  }

  private put(ch: number): void {
    if (this.wrapPending) {
      this.col = 0;
      this.lineFeed();
    }
    this.cells[this.row * this.cols + this.col] = (this.attr() << 8) | ch;
    this.touch(this.row, this.row);
    if (this.col === this.cols - 1) this.wrapPending = true;
    else this.col++;
  }

  private lineFeed(): void {
    this.wrapPending = false;
    if (this.row < this.rows - 1) {
      this.row++;
      return;
    }
    this.scrollUp(0, 1);
  }

  private scrollUp(top: number, n: number): void {
    const c = this.cols;
    this.cells.copyWithin(top * c, (top + n) * c);
    this.cells.fill(this.blank(), (this.rows - n) * c);
    this.touch(top, this.rows - 1);
  }

  private escape(b: number): void {
    this.state = 'text';
    if (b === 0x5b) {
      this.state = 'csi';
      this.params = '';
    } else if (b === 0x37) this.saved = { row: this.row, col: this.col };
    else if (b === 0x38) ({ row: this.row, col: this.col } = this.saved);
    else if (b === 0x63) this.reset();
    else if (b === 0x28 || b === 0x29) this.state = 'charset';
    else if (b === 0x4d && this.row > 0) this.row--; // reverse index
  }

  private reset(): void {
    this.fg = 7;
    this.bg = 0;
    this.bold = this.reverse = false;
    this.cells.fill((DEFAULT_ATTR << 8) | 0x20);
    this.row = this.col = 0;
    this.cursorVisible = true;
    this.touch(0, this.rows - 1);
  }

  private csi(b: number): void {
    if ((b >= 0x30 && b <= 0x3f) || b === 0x20) {
      if (this.params.length < 32) this.params += String.fromCharCode(b);
      return;
    }
    this.state = 'text';
    const priv = this.params.startsWith('?');
    const ps = (priv ? this.params.slice(1) : this.params).split(';').map((p) => (p === '' ? NaN : Number(p)));
    const n = (i: number, d = 1) => (Number.isFinite(ps[i]!) && ps[i]! > 0 ? ps[i]! : d);
    const c = this.cols;
    const at = this.row * c;
    this.wrapPending = false;
    switch (String.fromCharCode(b)) {
      case 'm':
        for (const p of ps.map((v) => (Number.isFinite(v) ? v : 0))) {
          if (p === 0) [this.fg, this.bg, this.bold, this.reverse] = [7, 0, false, false];
          else if (p === 1) this.bold = true;
          else if (p === 22) this.bold = false;
          else if (p === 7) this.reverse = true;
          else if (p === 27) this.reverse = false;
          else if (p >= 30 && p <= 37) this.fg = ANSI_TO_VGA[p - 30]!;
          else if (p === 39) this.fg = 7;
          else if (p >= 40 && p <= 47) this.bg = ANSI_TO_VGA[p - 40]!;
          else if (p === 49) this.bg = 0;
          else if (p >= 90 && p <= 97) this.fg = ANSI_TO_VGA[p - 90]! | 8;
        }
        return;
      case 'A':
        this.row = Math.max(0, this.row - n(0));
        return;
      case 'B':
      case 'e':
        this.row = Math.min(this.rows - 1, this.row + n(0));
        return;
      case 'C':
      case 'a':
        this.col = Math.min(c - 1, this.col + n(0));
        return;
      case 'D':
        this.col = Math.max(0, this.col - n(0));
        return;
      case 'G':
      case '`':
        this.col = Math.min(c - 1, n(0) - 1);
        return;
      case 'd':
        this.row = Math.min(this.rows - 1, n(0) - 1);
        return;
      case 'H':
      case 'f':
        this.row = Math.min(this.rows - 1, n(0) - 1);
        this.col = Math.min(c - 1, n(1) - 1);
        return;
      case 'K': {
        const mode = Number.isFinite(ps[0]!) ? ps[0]! : 0;
        const [lo, hi] = mode === 0 ? [this.col, c] : mode === 1 ? [0, this.col + 1] : [0, c];
        this.cells.fill(this.blank(), at + lo, at + hi);
        this.touch(this.row, this.row);
        return;
      }
      case 'J': {
        const mode = Number.isFinite(ps[0]!) ? ps[0]! : 0;
        const here = at + this.col;
        const [lo, hi] = mode === 0 ? [here, c * this.rows] : mode === 1 ? [0, here + 1] : [0, c * this.rows];
        this.cells.fill(this.blank(), lo, hi);
        this.touch(0, this.rows - 1);
        return;
      }
      case '@': {
        const k = Math.min(n(0), c - this.col);
        this.cells.copyWithin(at + this.col + k, at + this.col, at + c - k);
        this.cells.fill(this.blank(), at + this.col, at + this.col + k);
        this.touch(this.row, this.row);
        return;
      }
      case 'P': {
        const k = Math.min(n(0), c - this.col);
        this.cells.copyWithin(at + this.col, at + this.col + k, at + c);
        this.cells.fill(this.blank(), at + c - k, at + c);
        this.touch(this.row, this.row);
        return;
      }
      case 'X':
        this.cells.fill(this.blank(), at + this.col, at + Math.min(c, this.col + n(0)));
        this.touch(this.row, this.row);
        return;
      case 'L': {
        const k = Math.min(n(0), this.rows - this.row);
        this.cells.copyWithin((this.row + k) * c, this.row * c, (this.rows - k) * c);
        this.cells.fill(this.blank(), this.row * c, (this.row + k) * c);
        this.touch(this.row, this.rows - 1);
        return;
      }
      case 'M':
        this.scrollUp(this.row, Math.min(n(0), this.rows - this.row));
        return;
      case 's':
        this.saved = { row: this.row, col: this.col };
        return;
      case 'u':
        ({ row: this.row, col: this.col } = this.saved);
        return;
      case 'h':
      case 'l':
        if (priv && ps[0] === 25) this.cursorVisible = b === 0x68;
        return;
      default:
        return; // parsed and ignored
    }
  }
}
