// A small RFB 3.8 client for tests: handshake (None or VNC authentication), a 32 bpp pixel
// format, Raw / CopyRect / ZRLE / DesktopSize decoding into a framebuffer, key events, and
// reading the text back off the screen by matching the VGA font's glyphs cell by cell.
import { connect, type Socket } from 'node:net';
import { inflateSync, constants, createInflate, type Inflate } from 'node:zlib';
import { vncResponse } from '../../stubdom/vnc/vnc-auth.js';
import { VgaFont } from '../../stubdom/display/psf-font.js';
import { CP437_TO_UNICODE } from '../../common/cp437.js';

export class RfbClient {
  width = 0;
  height = 0;
  name = '';
  fb = new Uint32Array(0);
  updates = 0;
  bytes = 0;
  private sock!: Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private inflater: Inflate | null = null;
  private closed = false;
  private pendingUpdate: Promise<boolean> | null = null;

  static async connect(port: number, opts: { password?: string; encodings?: number[] } = {}): Promise<RfbClient> {
    const c = new RfbClient();
    await c.open(port, opts);
    return c;
  }

  private async open(port: number, opts: { password?: string; encodings?: number[] }): Promise<void> {
    this.sock = connect({ host: '127.0.0.1', port });
    this.sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.bytes += d.length;
      for (const w of this.waiters.splice(0)) w();
    });
    this.sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    this.sock.on('error', () => {});
    const version = await this.read(12);
    if (!version.toString('latin1').startsWith('RFB 003.')) throw new Error(`bad version ${version}`);
    this.sock.write('RFB 003.008\n');
    const n = (await this.read(1))[0]!;
    if (n === 0) throw new Error(`refused: ${(await this.read((await this.read(4)).readUInt32BE(0))).toString()}`);
    const types = [...(await this.read(n))];
    if (types.includes(2)) {
      this.sock.write(Buffer.from([2]));
      const challenge = await this.read(16);
      this.sock.write(vncResponse(opts.password ?? '', challenge));
    } else this.sock.write(Buffer.from([1]));
    const result = (await this.read(4)).readUInt32BE(0);
    if (result !== 0) {
      const reason = (await this.read((await this.read(4)).readUInt32BE(0))).toString();
      this.close();
      throw new Error(`authentication failed: ${reason}`);
    }
    this.sock.write(Buffer.from([1])); // ClientInit, shared
    const init = await this.read(24);
    this.width = init.readUInt16BE(0);
    this.height = init.readUInt16BE(2);
    this.name = (await this.read(init.readUInt32BE(20))).toString();
    this.fb = new Uint32Array(this.width * this.height);
    // 32 bpp little-endian, red at bit 16 (the server's own format).
    const pf = Buffer.from([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    this.sock.write(pf);
    const enc = opts.encodings ?? [16, 1, 0, -223];
    const se = Buffer.alloc(4 + 4 * enc.length);
    se[0] = 2;
    se.writeUInt16BE(enc.length, 2);
    enc.forEach((e, i) => se.writeInt32BE(e, 4 + 4 * i));
    this.sock.write(se);
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  request(incremental: boolean): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(this.width, 6);
    b.writeUInt16BE(this.height, 8);
    this.sock.write(b);
  }

  /** Reads one FramebufferUpdate (after a request) into fb. */
  async update(): Promise<{ rects: number; encodings: number[] }> {
    const head = await this.read(4);
    if (head[0] !== 0) throw new Error(`unexpected server message ${head[0]}`);
    const n = head.readUInt16BE(2);
    const encodings: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await this.read(12);
      const [x, y, w, h, enc] = [r.readUInt16BE(0), r.readUInt16BE(2), r.readUInt16BE(4), r.readUInt16BE(6), r.readInt32BE(8)];
      encodings.push(enc);
      if (enc === -223) {
        this.width = w;
        this.height = h;
        this.fb = new Uint32Array(w * h);
      } else if (enc === 0) {
        const px = await this.read(w * h * 4);
        for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.fb[(y + j) * this.width + x + i] = px.readUInt32LE((j * w + i) * 4) & 0xffffff;
      } else if (enc === 1) {
        const s = await this.read(4);
        const sx = s.readUInt16BE(0);
        const sy = s.readUInt16BE(2);
        const copy = new Uint32Array(w * h);
        for (let j = 0; j < h; j++) copy.set(this.fb.subarray((sy + j) * this.width + sx, (sy + j) * this.width + sx + w), j * w);
        for (let j = 0; j < h; j++) this.fb.set(copy.subarray(j * w, (j + 1) * w), (y + j) * this.width + x);
      } else if (enc === 16) {
        const len = (await this.read(4)).readUInt32BE(0);
        const z = await this.read(len);
        this.inflater ??= createInflate();
        const raw = await new Promise<Buffer>((resolve) => {
          const chunks: Buffer[] = [];
          const on = (c: Buffer) => chunks.push(c);
          this.inflater!.on('data', on);
          this.inflater!.write(z);
          this.inflater!.flush(constants.Z_SYNC_FLUSH, () => {
            this.inflater!.off('data', on);
            resolve(Buffer.concat(chunks));
          });
        });
        this.zrleTiles(raw, x, y, w, h);
      } else throw new Error(`unexpected encoding ${enc}`);
    }
    this.updates++;
    return { rects: n, encodings };
  }

  private zrleTiles(d: Buffer, x: number, y: number, w: number, h: number): void {
    let o = 0;
    const cpix = () => {
      const v = d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16);
      o += 3;
      return v;
    };
    for (let ty = 0; ty < h; ty += 64) {
      for (let tx = 0; tx < w; tx += 64) {
        const tw = Math.min(64, w - tx);
        const th = Math.min(64, h - ty);
        const put = (i: number, v: number) => (this.fb[(y + ty + Math.floor(i / tw)) * this.width + x + tx + (i % tw)] = v);
        const sub = d[o++]!;
        if (sub === 0) for (let i = 0; i < tw * th; i++) put(i, cpix());
        else if (sub === 1) {
          const v = cpix();
          for (let i = 0; i < tw * th; i++) put(i, v);
        } else if (sub <= 16) {
          const pal = Array.from({ length: sub }, cpix);
          const bits = sub <= 2 ? 1 : sub <= 4 ? 2 : 4;
          for (let r = 0; r < th; r++) {
            let acc = 0;
            let nb = 0;
            for (let c = 0; c < tw; c++) {
              if (nb === 0) {
                acc = d[o++]!;
                nb = 8;
              }
              nb -= bits;
              put(r * tw + c, pal[(acc >> nb) & ((1 << bits) - 1)]!);
            }
          }
        } else if (sub >= 130) {
          const pal = Array.from({ length: sub - 128 }, cpix);
          let i = 0;
          while (i < tw * th) {
            const b = d[o++]!;
            let len = 1;
            if (b & 0x80) {
              let l: number;
              do {
                l = d[o++]!;
                len += l;
              } while (l === 255);
            }
            for (let k = 0; k < len; k++) put(i++, pal[b & 0x7f]!);
          }
        } else throw new Error(`ZRLE subencoding ${sub} not decoded by the test client`);
      }
    }
  }

  /** Type a keysym (press and release). */
  key(keysym: number): void {
    const b = Buffer.alloc(16);
    b[0] = 4;
    b[1] = 1;
    b.writeUInt32BE(keysym, 4);
    b[8] = 4;
    b.writeUInt32BE(keysym, 12);
    this.sock.write(b);
  }

  /** Type a string (characters as their Latin-1 keysyms, '\n' as Return). */
  type(text: string): void {
    for (const ch of text) this.key(ch === '\n' ? 0xff0d : ch.charCodeAt(0));
  }

  /** Keep asking for updates until the screen text matches (or time runs out). */
  async waitForText(re: RegExp, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let text = '';
    // One update read at a time: a slow one is waited for again (here or in the next call),
    // never read twice; a new request only once the last one was answered.
    if (!this.pendingUpdate) this.request(this.updates > 0);
    while (Date.now() < deadline) {
      this.pendingUpdate ??= this.update().then(() => true);
      const got = await Promise.race([this.pendingUpdate, new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (got) this.pendingUpdate = null;
      text = screenText(this.fb, this.width, this.height);
      if (re.test(text)) return text;
      if (got) this.request(true);
    }
    throw new Error(`screen never matched ${re}:\n${text}`);
  }

  close(): void {
    this.inflater?.close();
    this.sock.destroy();
  }
}

let font: VgaFont | null = null;

/** The text on a VGA text screen (9x16 cells), by matching each cell's glyph exactly. */
export function screenText(fb: Uint32Array | Uint8Array, width: number, height: number, channels = 0): string {
  font ??= new VgaFont();
  const px = (x: number, y: number) => (channels ? (fb[(y * width + x) * channels]! << 16) | (fb[(y * width + x) * channels + 1]! << 8) | fb[(y * width + x) * channels + 2]! : fb[y * width + x]!);
  const lines: string[] = [];
  for (let row = 0; row * 16 + 16 <= height; row++) {
    let line = '';
    for (let col = 0; col * 9 + 9 <= width; col++) {
      const bg = px(col * 9 + 8, row * 16 + 15) === px(col * 9, row * 16) ? px(col * 9, row * 16) : px(col * 9 + 8, row * 16);
      const g = new Uint8Array(16);
      for (let y = 0; y < 16; y++) for (let x = 0; x < 8; x++) if (px(col * 9 + x, row * 16 + y) !== bg) g[y]! |= 0x80 >> x;
      let ch = '?';
      for (let c = 0x20; c < 0x7f; c++) {
        const glyph = font.glyphs.subarray(c * 16, c * 16 + 16);
        if (glyph.every((v, i) => v === g[i])) {
          ch = String.fromCodePoint(CP437_TO_UNICODE[c]!);
          break;
        }
      }
      // A cursor cell (underline) matches nothing: count it as a space.
      line += ch === '?' && g.slice(0, 13).every((v) => v === 0) ? ' ' : ch;
    }
    lines.push(line.trimEnd());
  }
  return lines.join('\n');
}

/** Decodes a PNG (8-bit RGB or RGBA, no interlace) as gvnccapture writes it. */
export function decodePng(png: Buffer): { width: number; height: number; channels: number; data: Uint8Array } {
  let o = 8;
  let width = 0;
  let height = 0;
  let channels = 3;
  const idat: Buffer[] = [];
  while (o < png.length) {
    const len = png.readUInt32BE(o);
    const type = png.toString('latin1', o + 4, o + 8);
    const body = png.subarray(o + 8, o + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[12] !== 0) throw new Error('only 8-bit non-interlaced PNGs');
      channels = body[9] === 6 ? 4 : body[9] === 2 ? 3 : 0;
      if (!channels) throw new Error(`PNG colour type ${body[9]}`);
    } else if (type === 'IDAT') idat.push(body);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[y * stride + i - channels]! : 0;
      const b = y > 0 ? out[(y - 1) * stride + i]! : 0;
      const c = i >= channels && y > 0 ? out[(y - 1) * stride + i - channels]! : 0;
      const p = a + b - c;
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      out[y * stride + i] = (line[i]! + pred) & 0xff;
    }
  }
  return { width, height, channels, data: out };
}
