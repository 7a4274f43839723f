// The 8x16 glyphs the VGA text screen is drawn with, read from a Linux console font (PSF 1 or
// 2, gzipped, with its Unicode table) - Debian's console-setup-linux ships the IBM VGA font as
// Uni2-VGA16.psf.gz. Glyphs are looked up by the CP437 byte the guest writes. Without the font
// file every character is drawn as a hollow box (and the display says why once).
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { CP437_TO_UNICODE } from '../../common/cp437.js';

export const GLYPH_WIDTH = 8;
export const GLYPH_HEIGHT = 16;
export const DEFAULT_FONT = '/usr/share/consolefonts/Uni2-VGA16.psf.gz';

export class VgaFont {
  /** 256 glyphs x 16 rows, bit 7 = leftmost pixel. */
  readonly glyphs = new Uint8Array(256 * GLYPH_HEIGHT);
  readonly missing: string | null;

  constructor(path = DEFAULT_FONT) {
    let missing: string | null = null;
    try {
      this.load(gunzipSync(readFileSync(path)));
    } catch (e) {
      missing = `${path}: ${(e as Error).message}`;
      for (let c = 0; c < 256; c++) {
        const g = this.glyphs.subarray(c * GLYPH_HEIGHT, (c + 1) * GLYPH_HEIGHT);
        if (c === 0x20 || c === 0 || c === 0xff) continue;
        g.set([0, 0, 0x7e, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x7e, 0, 0, 0, 0]);
      }
    }
    this.missing = missing;
  }

  private load(f: Buffer): void {
    let count: number;
    let size: number;
    let height: number;
    let offset: number;
    let table: number | null = null;
    let utf8 = false;
    if (f[0] === 0x36 && f[1] === 0x04) {
      const mode = f[2]!;
      size = height = f[3]!;
      count = mode & 1 ? 512 : 256;
      offset = 4;
      if (mode & 2) table = offset + count * size;
    } else if (f.readUInt32LE(0) === 0x864ab572) {
      offset = f.readUInt32LE(8);
      const flags = f.readUInt32LE(12);
      count = f.readUInt32LE(16);
      size = f.readUInt32LE(20);
      height = f.readUInt32LE(24);
      if (f.readUInt32LE(28) !== 8) throw new Error('not an 8-pixel-wide font');
      if (flags & 1) {
        table = offset + count * size;
        utf8 = true;
      }
    } else throw new Error('not a PSF font');
    if (height !== GLYPH_HEIGHT || offset + count * size > f.length) throw new Error(`unexpected glyph size ${height}`);
    // Unicode -> glyph index.
    const byCode = new Map<number, number>();
    if (table !== null) {
      let g = 0;
      let p = table;
      while (p < f.length && g < count) {
        if (utf8) {
          const end = f.indexOf(0xff, p);
          const entry = f.subarray(p, end < 0 ? f.length : end).toString('utf8');
          for (const ch of entry.split('\ufffe')[0]!) if (!byCode.has(ch.codePointAt(0)!)) byCode.set(ch.codePointAt(0)!, g);
          p = end < 0 ? f.length : end + 1;
          g++;
        } else {
          const u = f.readUInt16LE(p);
          p += 2;
          if (u === 0xffff) g++;
          else if (u !== 0xfffe && !byCode.has(u)) byCode.set(u, g);
        }
      }
    }
    for (let c = 0; c < 256; c++) {
      const g = table === null ? c : byCode.get(CP437_TO_UNICODE[c]!) ?? byCode.get(0xfffd) ?? 0;
      this.glyphs.set(f.subarray(offset + g * size, offset + g * size + GLYPH_HEIGHT), c * GLYPH_HEIGHT);
    }
  }
}
