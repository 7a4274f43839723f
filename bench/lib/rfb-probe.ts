// A measuring RFB viewer for the VNC benchmark: handshake (None), the server's pixel format,
// one encoding list, and framebuffer updates read to their last byte (Raw, CopyRect, ZRLE,
// DesktopSize framing), so the bytes on the wire and the time to a complete update are exact.
import { connect, type Socket } from 'node:net';

export class RfbProbe {
  width = 0;
  height = 0;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  bytes = 0;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.bytes += d.length;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {});
  }

  static async open(port: number, encodings: number[]): Promise<RfbProbe> {
    const sock = connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    const p = new RfbProbe(sock);
    await p.read(12);
    sock.write('RFB 003.008\n');
    const n = (await p.read(1))[0]!;
    await p.read(n);
    sock.write(Buffer.from([1]));
    if ((await p.read(4)).readUInt32BE(0) !== 0) throw new Error('security failed');
    sock.write(Buffer.from([1]));
    const init = await p.read(24);
    p.width = init.readUInt16BE(0);
    p.height = init.readUInt16BE(2);
    await p.read(init.readUInt32BE(20));
    const se = Buffer.alloc(4 + 4 * encodings.length);
    se[0] = 2;
    se.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => se.writeInt32BE(e, 4 + 4 * i));
    sock.write(se);
    return p;
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) await new Promise<void>((r) => this.waiters.push(r));
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** FramebufferUpdateRequest for the whole screen. */
  request(incremental: boolean): void {
    const req = Buffer.alloc(10);
    req[0] = 3;
    req[1] = incremental ? 1 : 0;
    req.writeUInt16BE(this.width, 6);
    req.writeUInt16BE(this.height, 8);
    this.sock.write(req);
  }

  /** Ask for an update and read it whole: its bytes, time and encodings used. */
  async update(incremental: boolean): Promise<{ bytes: number; ms: number; encodings: number[] }> {
    const before = this.bytes - this.buf.length;
    const t0 = process.hrtime.bigint();
    this.request(incremental);
    const head = await this.read(4);
    const n = head.readUInt16BE(2);
    const encodings: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await this.read(12);
      const w = r.readUInt16BE(4);
      const h = r.readUInt16BE(6);
      const enc = r.readInt32BE(8);
      encodings.push(enc);
      if (enc === 0) await this.read(w * h * 4);
      else if (enc === 1) await this.read(4);
      else if (enc === 16) await this.read((await this.read(4)).readUInt32BE(0));
      else if (enc === -223) {
        this.width = w;
        this.height = h;
      } else throw new Error(`encoding ${enc}`);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { bytes: this.bytes - this.buf.length - before, ms, encodings };
  }

  close(): void {
    this.sock.destroy();
  }
}
