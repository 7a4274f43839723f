// RFB pixel formats (RFC 6143 7.4): the server's own (32 bpp, depth 24, little-endian,
// red at bit 16, as QEMU offers) and whatever a client asks for with SetPixelFormat, which must
// be honoured (vncsnapshot asks for 32 bpp with red at bit 0). Colour-map formats are refused:
// every client in use asks for true colour.
export interface PixelFormat {
  bpp: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

export const SERVER_PIXEL_FORMAT: PixelFormat = {
  bpp: 32, depth: 24, bigEndian: false, trueColour: true,
  redMax: 255, greenMax: 255, blueMax: 255, redShift: 16, greenShift: 8, blueShift: 0,
};

export function encodePixelFormat(pf: PixelFormat): Buffer {
  const b = Buffer.alloc(16);
  b[0] = pf.bpp;
  b[1] = pf.depth;
  b[2] = pf.bigEndian ? 1 : 0;
  b[3] = pf.trueColour ? 1 : 0;
  b.writeUInt16BE(pf.redMax, 4);
  b.writeUInt16BE(pf.greenMax, 6);
  b.writeUInt16BE(pf.blueMax, 8);
  b[10] = pf.redShift;
  b[11] = pf.greenShift;
  b[12] = pf.blueShift;
  return b;
}

/** A client's PIXEL_FORMAT (16 bytes), or an error naming what is wrong with it. */
export function decodePixelFormat(b: Uint8Array): PixelFormat | string {
  const dv = new DataView(b.buffer, b.byteOffset, 16);
  const pf: PixelFormat = {
    bpp: b[0]!, depth: b[1]!, bigEndian: b[2] !== 0, trueColour: b[3] !== 0,
    redMax: dv.getUint16(4), greenMax: dv.getUint16(6), blueMax: dv.getUint16(8),
    redShift: b[10]!, greenShift: b[11]!, blueShift: b[12]!,
  };
  if (pf.bpp !== 8 && pf.bpp !== 16 && pf.bpp !== 32) return `bits-per-pixel ${pf.bpp} (8, 16 or 32)`;
  if (!pf.trueColour) return 'a colour-map pixel format (only true colour is served)';
  for (const [max, shift] of [[pf.redMax, pf.redShift], [pf.greenMax, pf.greenShift], [pf.blueMax, pf.blueShift]] as const) {
    if (max === 0 || (max & (max + 1)) !== 0 || shift >= pf.bpp) return `colour max ${max} / shift ${shift}`;
  }
  return pf;
}

function sameAsServer(pf: PixelFormat): boolean {
  const s = SERVER_PIXEL_FORMAT;
  return pf.bpp === 32 && !pf.bigEndian && pf.redMax === 255 && pf.greenMax === 255 && pf.blueMax === 255 && pf.redShift === s.redShift && pf.greenShift === s.greenShift && pf.blueShift === s.blueShift;
}

/** 0x00RRGGBB -> the client's pixel value. */
export function toPixel(v: number, pf: PixelFormat): number {
  const r = (((v >> 16) & 0xff) * pf.redMax + 127) / 255;
  const g = (((v >> 8) & 0xff) * pf.greenMax + 127) / 255;
  const b = ((v & 0xff) * pf.blueMax + 127) / 255;
  return ((r << pf.redShift) | (g << pf.greenShift) | (b << pf.blueShift)) >>> 0;
}

/** Writes `bytes` bytes of pixel value p at out[o] in the client's byte order. */
export function putPixel(out: Buffer, o: number, p: number, bytes: number, bigEndian: boolean): void {
  if (bytes === 1) out[o] = p;
  else if (bytes === 2) bigEndian ? out.writeUInt16BE(p & 0xffff, o) : out.writeUInt16LE(p & 0xffff, o);
  else if (bytes === 3) {
    // ZRLE's CPIXEL: the three significant bytes, in the client's byte order.
    if (bigEndian) out.writeUIntBE(p & 0xffffff, o, 3);
    else out.writeUIntLE(p & 0xffffff, o, 3);
  } else bigEndian ? out.writeUInt32BE(p, o) : out.writeUInt32LE(p, o);
}

/** Raw encoding of a rectangle of `src` (row stride `stride` pixels). */
export function rawPixels(src: Uint32Array, stride: number, x: number, y: number, w: number, h: number, pf: PixelFormat): Buffer {
  const bytes = pf.bpp / 8;
  if (sameAsServer(pf)) {
    // The server's own format: the rows as they are (0x00RRGGBB little-endian).
    const out = Buffer.alloc(w * h * 4);
    const dst = new Uint32Array(out.buffer, out.byteOffset, w * h);
    for (let row = 0; row < h; row++) dst.set(src.subarray((y + row) * stride + x, (y + row) * stride + x + w), row * w);
    return out;
  }
  const out = Buffer.alloc(w * h * bytes);
  let o = 0;
  let last = -1;
  let lastP = 0;
  for (let row = 0; row < h; row++) {
    const base = (y + row) * stride + x;
    for (let col = 0; col < w; col++) {
      const v = src[base + col]!;
      if (v !== last) {
        last = v;
        lastP = toPixel(v, pf);
      }
      putPixel(out, o, lastP, bytes, pf.bigEndian);
      o += bytes;
    }
  }
  return out;
}

/** ZRLE's compressed pixel size: 3 bytes for 32 bpp true colour whose colours fit 24 bits. */
export function cpixelBytes(pf: PixelFormat): number {
  if (pf.bpp === 32 && pf.depth <= 24) {
    const all = ((pf.redMax << pf.redShift) | (pf.greenMax << pf.greenShift) | (pf.blueMax << pf.blueShift)) >>> 0;
    if ((all & 0xff000000) === 0) return 3;
    if ((all & 0x000000ff) === 0) return 3;
  }
  return pf.bpp / 8;
}

/** For a 3-byte CPIXEL whose colours live in the top three bytes, the value shifted down. */
export function cpixelValue(p: number, pf: PixelFormat): number {
  const all = ((pf.redMax << pf.redShift) | (pf.greenMax << pf.greenShift) | (pf.blueMax << pf.blueShift)) >>> 0;
  return (all & 0xff) === 0 && pf.bpp === 32 ? p >>> 8 : p;
}
