// One viewer's RFB connection (RFC 6143), from the version handshake to framebuffer updates:
//
//   version   "RFB 003.008\n"; 3.3 (and 3.4/3.5, which mean 3.3), 3.7 and 3.8 are accepted
//   security  3.7/3.8: the type list (None or VNC Authentication) and the client's choice;
//             3.3: the server's type as a u32. SecurityResult after VNC auth (and after None
//             in 3.8), with a reason string on failure in 3.8. A wrong password is answered
//             after a delay the server decides (it grows with the address's failures)
//   init      ClientInit (the shared flag: every viewer shares the display), ServerInit
//   normal    SetPixelFormat, SetEncodings, FramebufferUpdateRequest, KeyEvent, PointerEvent,
//             ClientCutText (skipped); updates only when something changed since the frame the
//             viewer has, in Raw or ZRLE as it prefers, CopyRect for a scrolled text screen,
//             DesktopSize when the mode changes
//
// Everything the client sends is parsed from a bounded buffer and checked before use: an
// unknown message type, a SetEncodings of more than 1024 entries, a cut text longer than
// 1 MiB, a pixel format that cannot be served, or 64 KiB of unparsed bytes close this
// connection alone with a log line naming what was wrong.
import type { Socket } from 'node:net';
import { CHALLENGE_BYTES, newChallenge, responseMatches } from './vnc-auth.js';
import { decodePixelFormat, encodePixelFormat, rawPixels, SERVER_PIXEL_FORMAT, type PixelFormat } from './pixel-format.js';
import { ZrleEncoder } from './zrle.js';
import { keysymToKey, KEY_LEFT_SHIFT } from './keysym-map.js';
import { TILE, type DisplaySurface } from '../display/display-surface.js';

export const ENC_RAW = 0;
export const ENC_COPYRECT = 1;
export const ENC_ZRLE = 16;
export const ENC_DESKTOP_SIZE = -223;
const SEC_NONE = 1;
const SEC_VNC = 2;
const MAX_BUFFERED = 64 * 1024;
const MAX_ENCODINGS = 1024;
const MAX_CUT_TEXT = 1 << 20;
/** A viewer that does not read its updates: skip it while this much is queued for it. */
const MAX_QUEUED_OUT = 8 << 20;

export interface ViewerInput {
  key(key: number, down: boolean): void;
  pointer(x: number, y: number, buttons: number): void;
}

export interface SessionOptions {
  name: string;
  password: string | null;
  surface: DisplaySurface;
  input: ViewerInput;
  /** How long to wait before answering a failed authentication (ms). */
  failureDelay(): number;
  /** An accepted authentication resets the address's failures. */
  authOk(): void;
  log(msg: string): void;
  onClose(): void;
}

type State = 'version' | 'security' | 'auth' | 'failing' | 'init' | 'normal' | 'closed';

export class RfbSession {
  private state: State = 'version';
  private buf: Buffer = Buffer.alloc(0);
  private minor = 8;
  private challenge: Buffer | null = null;
  private pf: PixelFormat = SERVER_PIXEL_FORMAT;
  private encodings: number[] = [ENC_RAW];
  private request: { incremental: boolean; x: number; y: number; w: number; h: number } | null = null;
  /** The surface frame this viewer has (-1: nothing yet). */
  private sentFrame = -1;
  private sentSize = { w: 0, h: 0 };
  private zrle: ZrleEncoder | null = null;
  private busy = false;
  private skipCutText = 0;
  private shiftDown = false;
  /** Bytes of updates sent and rectangles, for the benchmark. */
  readonly stats = { updates: 0, bytes: 0, rects: 0, copyRects: 0 };
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly sock: Socket,
    private readonly opts: SessionOptions,
  ) {
    this.ready = new Promise((r) => (this.markReady = r));
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => this.close());
    sock.on('close', () => this.close());
    sock.write('RFB 003.008\n');
  }

  get authenticated(): boolean {
    return this.state === 'normal' || this.state === 'init';
  }

  get active(): boolean {
    return this.state === 'normal';
  }

  close(why?: string): void {
    if (this.state === 'closed') return;
    if (why) this.opts.log(why);
    this.state = 'closed';
    this.zrle?.close();
    this.sock.destroy();
    this.opts.onClose();
  }

  private fail(why: string): void {
    this.close(`closing viewer ${this.peer()}: ${why}`);
  }

  private peer(): string {
    return `${this.sock.remoteAddress ?? '?'}:${this.sock.remotePort ?? '?'}`;
  }

  private onData(d: Buffer): void {
    if (this.state === 'closed') return;
    if (this.skipCutText > 0) {
      const n = Math.min(this.skipCutText, d.length);
      this.skipCutText -= n;
      d = d.subarray(n);
      if (!d.length) return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.buf.length > MAX_BUFFERED) return this.fail(`more than ${MAX_BUFFERED} bytes of unparsed input`);
    for (;;) {
      const used = this.step();
      if (used <= 0 || (this.state as State) === 'closed' || (this.state as State) === 'failing') break;
      this.buf = this.buf.subarray(used);
      if (this.skipCutText > 0) {
        const n = Math.min(this.skipCutText, this.buf.length);
        this.skipCutText -= n;
        this.buf = this.buf.subarray(n);
      }
    }
  }

  /** Consumes one message if it is complete; returns the bytes used (0: need more). */
  private step(): number {
    const b = this.buf;
    switch (this.state) {
      case 'version': {
        if (b.length < 12) return 0;
        const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(b.subarray(0, 12).toString('latin1'));
        if (!m || Number(m[1]) !== 3) {
          this.fail(`not an RFB 3.x version string: ${JSON.stringify(b.subarray(0, 12).toString('latin1'))}`);
          return 0;
        }
        const minor = Number(m[2]);
        this.minor = minor >= 8 ? 8 : minor === 7 ? 7 : 3;
        const type = this.opts.password ? SEC_VNC : SEC_NONE;
        if (this.minor === 3) {
          const w = Buffer.alloc(4);
          w.writeUInt32BE(type);
          this.sock.write(w);
          this.chose(type);
        } else {
          this.sock.write(Buffer.from([1, type]));
          this.state = 'security';
        }
        return 12;
      }
      case 'security': {
        if (b.length < 1) return 0;
        const type = this.opts.password ? SEC_VNC : SEC_NONE;
        if (b[0] !== type) {
          this.securityResult(false, 'security type not offered');
          this.fail(`asked for security type ${b[0]}, offered ${type}`);
          return 0;
        }
        this.chose(type);
        return 1;
      }
      case 'auth': {
        if (b.length < CHALLENGE_BYTES) return 0;
        const ok = responseMatches(this.opts.password!, this.challenge!, b.subarray(0, CHALLENGE_BYTES));
        if (ok) {
          this.state = 'init';
          this.opts.authOk();
          this.securityResult(true);
        } else {
          // Answer late, so guessing costs time; the connection then closes.
          this.state = 'failing';
          const delay = this.opts.failureDelay();
          this.opts.log(`viewer ${this.peer()}: wrong VNC password (answered after ${delay} ms)`);
          setTimeout(() => {
            if (this.state !== 'failing') return; // the viewer went away meanwhile
            this.securityResult(false, 'Authentication failed');
            this.sock.end();
            this.state = 'closed';
            this.opts.onClose();
          }, delay);
        }
        return CHALLENGE_BYTES;
      }
      case 'init': {
        if (b.length < 1) return 0;
        this.serverInit();
        return 1;
      }
      case 'normal':
        return this.message(b);
      default:
        return 0;
    }
  }

  private chose(type: number): void {
    if (type === SEC_VNC) {
      this.challenge = newChallenge();
      this.sock.write(this.challenge);
      this.state = 'auth';
    } else {
      if (this.minor >= 8) this.securityResult(true);
      this.state = 'init';
    }
  }

  private securityResult(ok: boolean, reason = ''): void {
    if (this.state === 'closed') return;
    const w = Buffer.alloc(4);
    w.writeUInt32BE(ok ? 0 : 1);
    if (ok || this.minor < 8) return void this.sock.write(w);
    const r = Buffer.from(reason, 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(r.length);
    this.sock.write(Buffer.concat([w, len, r]));
  }

  private serverInit(): void {
    const s = this.opts.surface;
    s.refresh();
    const name = Buffer.from(this.opts.name, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt16BE(s.width, 0);
    head.writeUInt16BE(s.height, 2);
    const nlen = Buffer.alloc(4);
    nlen.writeUInt32BE(name.length);
    this.sock.write(Buffer.concat([head, encodePixelFormat(SERVER_PIXEL_FORMAT), nlen, name]));
    this.sentSize = { w: s.width, h: s.height };
    this.state = 'normal';
    this.markReady();
  }

  private message(b: Buffer): number {
    if (b.length < 1) return 0;
    switch (b[0]) {
      case 0: {
        if (b.length < 20) return 0;
        const pf = decodePixelFormat(b.subarray(4, 20));
        if (typeof pf === 'string') {
          this.fail(`SetPixelFormat with ${pf}`);
          return 0;
        }
        this.pf = pf;
        this.sentFrame = -1; // everything again, in the new format
        this.zrle?.close();
        this.zrle = null;
        return 20;
      }
      case 2: {
        if (b.length < 4) return 0;
        const n = b.readUInt16BE(2);
        if (n > MAX_ENCODINGS) {
          this.fail(`SetEncodings with ${n} encodings (at most ${MAX_ENCODINGS})`);
          return 0;
        }
        if (b.length < 4 + 4 * n) return 0;
        this.encodings = [];
        for (let i = 0; i < n; i++) this.encodings.push(b.readInt32BE(4 + 4 * i));
        return 4 + 4 * n;
      }
      case 3: {
        if (b.length < 10) return 0;
        this.request = { incremental: b[1] !== 0, x: b.readUInt16BE(2), y: b.readUInt16BE(4), w: b.readUInt16BE(6), h: b.readUInt16BE(8) };
        if (!this.request.incremental) this.sentFrame = -1;
        this.opts.surface.refresh(); // cheap when nothing changed
        this.pump();
        return 10;
      }
      case 4: {
        if (b.length < 8) return 0;
        this.keyEvent(b[1] !== 0, b.readUInt32BE(4));
        return 8;
      }
      case 5: {
        if (b.length < 6) return 0;
        const s = this.opts.surface;
        this.opts.input.pointer(Math.min(b.readUInt16BE(2), Math.max(0, s.width - 1)), Math.min(b.readUInt16BE(4), Math.max(0, s.height - 1)), b[1]!);
        return 6;
      }
      case 6: {
        if (b.length < 8) return 0;
        const len = b.readUInt32BE(4);
        if (len > MAX_CUT_TEXT) {
          this.fail(`ClientCutText of ${len} bytes (at most ${MAX_CUT_TEXT}; a negative length reads as huge)`);
          return 0;
        }
        this.skipCutText = len; // the guest has no clipboard to give it to
        return 8;
      }
      default:
        this.fail(`unknown client message type ${b[0]}`);
        return 0;
    }
  }

  private keyEvent(down: boolean, keysym: number): void {
    const k = keysymToKey(keysym);
    if (!k) return; // a key the en-us map has no PC key for
    if (k.key === KEY_LEFT_SHIFT || k.key === 0x36) this.shiftDown = down;
    const fakeShift = down && k.shift === true && !this.shiftDown;
    const dropShift = down && k.shift === false && this.shiftDown;
    if (fakeShift) this.opts.input.key(KEY_LEFT_SHIFT, true);
    if (dropShift) this.opts.input.key(KEY_LEFT_SHIFT, false);
    this.opts.input.key(k.key, down);
    if (fakeShift) this.opts.input.key(KEY_LEFT_SHIFT, false);
    if (dropShift) this.opts.input.key(KEY_LEFT_SHIFT, true);
  }

  /** Send an update if the viewer asked for one and there is something it does not have. */
  pump(): void {
    if (this.state !== 'normal' || !this.request || this.busy) return;
    const s = this.opts.surface;
    if (this.sentFrame >= 0 && s.frame <= this.sentFrame && this.sentSize.w === s.width && this.sentSize.h === s.height) return;
    if (this.sock.writableLength > MAX_QUEUED_OUT) return;
    this.busy = true;
    this.sendUpdate().then(
      () => (this.busy = false),
      (e: Error) => this.fail(`update failed: ${e.message}`),
    );
  }

  private async sendUpdate(): Promise<void> {
    const s = this.opts.surface;
    const frame = s.frame;
    const rects: Buffer[] = [];
    const rect = (x: number, y: number, w: number, h: number, enc: number, body: Buffer) => {
      const r = Buffer.alloc(12);
      r.writeUInt16BE(x, 0);
      r.writeUInt16BE(y, 2);
      r.writeUInt16BE(w, 4);
      r.writeUInt16BE(h, 6);
      r.writeInt32BE(enc, 8);
      rects.push(r, body);
      this.stats.rects++;
    };
    let areas: [number, number, number, number][];
    const resized = this.sentSize.w !== s.width || this.sentSize.h !== s.height;
    if (resized && this.encodings.includes(ENC_DESKTOP_SIZE)) {
      rect(0, 0, s.width, s.height, ENC_DESKTOP_SIZE, Buffer.alloc(0));
      this.sentSize = { w: s.width, h: s.height };
      this.sentFrame = -1;
    }
    const W = Math.min(s.width, this.sentSize.w);
    const H = Math.min(s.height, this.sentSize.h);
    const scroll = s.scroll;
    if (this.sentFrame < 0) areas = [[0, 0, W, H]];
    else if (scroll && scroll.frame === frame && this.sentFrame === frame - 1 && this.encodings.includes(ENC_COPYRECT) && W === s.width && H === s.height) {
      const body = Buffer.alloc(4);
      body.writeUInt16BE(0, 0);
      body.writeUInt16BE(scroll.dy, 2);
      rect(0, 0, W, H - scroll.dy, ENC_COPYRECT, body);
      this.stats.copyRects++;
      areas = this.tileRects((t) => scroll.residual[t] === 1, W, H);
    } else areas = this.tileRects((t) => s.tileStamp[t]! > this.sentFrame, W, H);
    const enc = this.encodings.find((e) => e === ENC_ZRLE || e === ENC_RAW) ?? ENC_RAW;
    for (const [x, y, w, h] of areas) {
      if (w <= 0 || h <= 0) continue;
      if (enc === ENC_ZRLE) {
        this.zrle ??= new ZrleEncoder();
        rect(x, y, w, h, ENC_ZRLE, await this.zrle.encode(s.pixels, s.width, x, y, w, h, this.pf));
      } else rect(x, y, w, h, ENC_RAW, rawPixels(s.pixels, s.width, x, y, w, h, this.pf));
    }
    if ((this.state as State) === 'closed') return;
    const head = Buffer.alloc(4);
    head[0] = 0;
    head.writeUInt16BE(rects.length / 2, 2);
    const msg = Buffer.concat([head, ...rects]);
    this.sock.write(msg);
    this.stats.updates++;
    this.stats.bytes += msg.length;
    this.sentFrame = frame;
    this.request = null;
  }

  /** Dirty tiles as rectangles: runs along each tile row, merged downwards when equal. */
  private tileRects(dirty: (tile: number) => boolean, W: number, H: number): [number, number, number, number][] {
    const s = this.opts.surface;
    const out: [number, number, number, number][] = [];
    let open = new Map<string, [number, number, number, number]>();
    for (let ty = 0; ty < s.tilesY; ty++) {
      const next = new Map<string, [number, number, number, number]>();
      let tx = 0;
      while (tx < s.tilesX) {
        if (!dirty(ty * s.tilesX + tx)) {
          tx++;
          continue;
        }
        const start = tx;
        while (tx < s.tilesX && dirty(ty * s.tilesX + tx)) tx++;
        const x = start * TILE;
        const w = Math.min(W, tx * TILE) - x;
        const y = ty * TILE;
        const h = Math.min(H, y + TILE) - y;
        const key = `${x},${w}`;
        const above = open.get(key);
        if (above) {
          above[3] += h;
          next.set(key, above);
          open.delete(key);
        } else {
          const r: [number, number, number, number] = [x, y, w, h];
          out.push(r);
          next.set(key, r);
        }
      }
      open = next;
    }
    return out.filter(([x, y]) => x < W && y < H);
  }
}
