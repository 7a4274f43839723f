// Where a save image goes and comes from: a file, or a socket that `xl` relays to the other
// host (migration). Writes wait for the kernel to take the bytes (a slow peer slows the
// sender, nothing queues without bound); reads hand out chunks as they come and can also read
// the text lines of the migration handshake on the same socket.
import { open, type FileHandle } from 'node:fs/promises';
import type { Socket } from 'node:net';

export interface ByteSink {
  write(b: Uint8Array): Promise<void>;
  /** Bytes written so far. */
  readonly written: number;
}

export interface ByteSource {
  /** The next chunk, or null at the end. */
  read(): Promise<Uint8Array | null>;
}

export class FileSink implements ByteSink {
  written = 0;
  private constructor(private readonly fh: FileHandle) {}

  static async create(path: string): Promise<FileSink> {
    return new FileSink(await open(path, 'w', 0o600));
  }

  async write(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await this.fh.write(b, off, b.length - off);
      off += bytesWritten;
    }
    this.written += b.length;
  }

  async close(sync: boolean): Promise<void> {
    if (sync) await this.fh.sync();
    await this.fh.close();
  }
}

export class FileSource implements ByteSource {
  private readonly buf = Buffer.alloc(1 << 20);
  private constructor(private readonly fh: FileHandle) {}

  static async open(path: string): Promise<FileSource> {
    return new FileSource(await open(path, 'r'));
  }

  async read(): Promise<Uint8Array | null> {
    const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, null);
    return bytesRead === 0 ? null : Buffer.from(this.buf.subarray(0, bytesRead));
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Both directions of a connected socket: binary chunks and text lines. */
export class SocketChannel implements ByteSink, ByteSource {
  written = 0;
  private readonly queue: Buffer[] = [];
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  /** A bound on what we buffer from a peer that sends faster than we load. */
  private static readonly HIGH_WATER = 16 << 20;
  private queued = 0;

  constructor(readonly sock: Socket) {
    sock.on('data', (b: Buffer) => {
      this.queue.push(b);
      this.queued += b.length;
      if (this.queued > SocketChannel.HIGH_WATER) sock.pause();
      this.kick();
    });
    sock.on('end', () => ((this.ended = true), this.kick()));
    sock.on('close', () => ((this.ended = true), this.kick()));
    sock.on('error', (e) => ((this.failure = e), this.kick()));
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async more(): Promise<boolean> {
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure;
      if (this.ended) return false;
      await new Promise<void>((r) => (this.wake = r));
    }
    return true;
  }

  async read(): Promise<Uint8Array | null> {
    if (!(await this.more())) return null;
    const b = this.queue.shift()!;
    this.queued -= b.length;
    if (this.queued <= SocketChannel.HIGH_WATER) this.sock.resume();
    return b;
  }

  /** One text line (without its newline), at most `max` bytes; null at the end. */
  async readLine(max = 4096): Promise<string | null> {
    let line = Buffer.alloc(0);
    for (;;) {
      if (!(await this.more())) return null;
      const b = this.queue[0]!;
      const nl = b.indexOf(10);
      if (nl >= 0) {
        line = Buffer.concat([line, b.subarray(0, nl)]);
        this.queue[0] = b.subarray(nl + 1);
        this.queued -= nl + 1;
        if (this.queue[0].length === 0) this.queue.shift();
        return line.toString('utf8');
      }
      line = Buffer.concat([line, b]);
      this.queue.shift();
      this.queued -= b.length;
      if (line.length > max) throw new Error(`the peer sent a line of more than ${max} bytes`);
    }
  }

  async write(b: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.sock.destroyed || this.ended) throw new Error('the connection to the other side is closed');
    const ok = this.sock.write(b);
    this.written += b.length;
    if (!ok) {
      await new Promise<void>((resolve, reject) => {
        const done = (e?: Error) => {
          this.sock.off('drain', onDrain);
          this.sock.off('close', onClose);
          if (e) reject(e);
          else resolve();
        };
        const onDrain = () => done();
        const onClose = () => done(new Error('the connection to the other side closed'));
        this.sock.on('drain', onDrain);
        this.sock.on('close', onClose);
      });
    }
  }

  writeLine(s: string): Promise<void> {
    return this.write(Buffer.from(`${s}\n`, 'utf8'));
  }

  /** Ends our side after what was written has gone (a last error line must reach the peer). */
  close(): void {
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }
}
