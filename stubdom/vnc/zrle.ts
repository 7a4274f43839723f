// ZRLE encoding (RFC 6143 7.7.6): the rectangle in 64x64 tiles, each tile solid, packed palette
// (2-16 colours), palette RLE or raw, whichever is smallest - text screens are mostly two or
// three colours in long runs - all through one zlib stream that lives as long as the
// connection (the client keeps one inflater), flushed with Z_SYNC_FLUSH per rectangle.
import { constants, createDeflate, type Deflate } from 'node:zlib';
import { cpixelBytes, cpixelValue, putPixel, toPixel, type PixelFormat } from './pixel-format.js';

const TILE = 64;

export class ZrleEncoder {
  private readonly deflate: Deflate = createDeflate({ level: 6 });
  private chunks: Buffer[] = [];
  private closed = false;

  constructor() {
    this.deflate.on('data', (c: Buffer) => this.chunks.push(c));
    this.deflate.on('error', () => (this.closed = true));
  }

  /** The ZRLE payload of one rectangle (u32 length + zlib data). */
  async encode(src: Uint32Array, stride: number, x: number, y: number, w: number, h: number, pf: PixelFormat): Promise<Buffer> {
    if (this.closed) throw new Error('zlib stream closed');
    const raw = encodeTiles(src, stride, x, y, w, h, pf);
    this.chunks = [];
    this.deflate.write(raw);
    await new Promise<void>((resolve) => this.deflate.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    const z = Buffer.concat(this.chunks);
    this.chunks = [];
    const head = Buffer.alloc(4);
    head.writeUInt32BE(z.length);
    return Buffer.concat([head, z]);
  }

  close(): void {
    this.closed = true;
    this.deflate.destroy();
  }
}

/** The uncompressed tile stream of a rectangle. */
export function encodeTiles(src: Uint32Array, stride: number, x: number, y: number, w: number, h: number, pf: PixelFormat): Buffer {
  const cp = cpixelBytes(pf);
  const parts: Buffer[] = [];
  const tile = new Uint32Array(TILE * TILE);
  for (let ty = 0; ty < h; ty += TILE) {
    for (let tx = 0; tx < w; tx += TILE) {
      const tw = Math.min(TILE, w - tx);
      const th = Math.min(TILE, h - ty);
      for (let r = 0; r < th; r++) for (let c = 0; c < tw; c++) tile[r * tw + c] = src[(y + ty + r) * stride + x + tx + c]!;
      parts.push(encodeTile(tile.subarray(0, tw * th), tw, th, pf, cp));
    }
  }
  return Buffer.concat(parts);
}

function encodeTile(px: Uint32Array, w: number, h: number, pf: PixelFormat, cp: number): Buffer {
  const palette = new Map<number, number>();
  for (let i = 0; i < px.length; i++) if (!palette.has(px[i]!) && palette.size < 128) palette.set(px[i]!, palette.size);
  const put = (out: Buffer, o: number, v: number) => putPixel(out, o, cpixelValue(toPixel(v, pf), pf), cp, pf.bigEndian);
  if (palette.size === 1) {
    const out = Buffer.alloc(1 + cp);
    out[0] = 1;
    put(out, 1, px[0]!);
    return out;
  }
  const n = palette.size;
  const rawSize = 1 + px.length * cp;
  const bits = n <= 2 ? 1 : n <= 4 ? 2 : 4;
  const packedSize = n <= 16 ? 1 + n * cp + h * Math.ceil((w * bits) / 8) : Infinity;
  // Palette RLE: per run one index byte, plus length bytes for runs longer than one.
  let rleSize = Infinity;
  if (n < 128) {
    rleSize = 1 + n * cp;
    let i = 0;
    while (i < px.length) {
      let j = i + 1;
      while (j < px.length && px[j] === px[i]) j++;
      const len = j - i;
      rleSize += len === 1 ? 1 : 1 + Math.floor((len - 1) / 255) + 1;
      i = j;
    }
  }
  if (rawSize <= packedSize && rawSize <= rleSize) {
    const out = Buffer.alloc(rawSize);
    out[0] = 0;
    for (let i = 0; i < px.length; i++) put(out, 1 + i * cp, px[i]!);
    return out;
  }
  const header = (sub: number, size: number) => {
    const out = Buffer.alloc(size);
    out[0] = sub;
    let o = 1;
    for (const v of palette.keys()) {
      put(out, o, v);
      o += cp;
    }
    return { out, o };
  };
  if (packedSize <= rleSize) {
    const { out, o: start } = header(n, packedSize);
    let o = start;
    for (let r = 0; r < h; r++) {
      let acc = 0;
      let nbits = 0;
      for (let c = 0; c < w; c++) {
        acc = (acc << bits) | palette.get(px[r * w + c]!)!;
        nbits += bits;
        if (nbits === 8) {
          out[o++] = acc;
          acc = 0;
          nbits = 0;
        }
      }
      if (nbits) out[o++] = acc << (8 - nbits);
    }
    return out;
  }
  const { out, o: start } = header(128 + n, rleSize);
  let o = start;
  let i = 0;
  while (i < px.length) {
    let j = i + 1;
    while (j < px.length && px[j] === px[i]) j++;
    const len = j - i;
    const idx = palette.get(px[i]!)!;
    if (len === 1) out[o++] = idx;
    else {
      out[o++] = idx | 0x80;
      let rest = len - 1;
      while (rest >= 255) {
        out[o++] = 255;
        rest -= 255;
      }
      out[o++] = rest;
    }
    i = j;
  }
  return out;
}
