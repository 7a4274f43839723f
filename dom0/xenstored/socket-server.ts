// xenstored's unix socket: every client is privileged dom0 (the socket is mode 0600, as C
// xenstored makes it). Replies to all requests that arrive in one read are corked into one
// write, which is most of what it takes to serve tens of thousands of requests a second.
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { FrameReader } from '../../drivers/xenstore/xs-framing.js';
import { Connection, type ConnectionHost } from './connection.js';

const CORK_FLUSH_BYTES = 64 * 1024;

export class SocketConnection extends Connection {
  private readonly reader: FrameReader;

  constructor(
    host: ConnectionHost,
    private readonly sock: Socket,
    maxOutputBytes: number,
  ) {
    super(host, 0, true, maxOutputBytes);
    this.reader = new FrameReader(
      (hdr, payload) => host.handle(this, hdr, payload),
      (why) => host.dropConnection(this, why),
    );
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      sock.cork();
      this.reader.push(chunk);
      if (this.closed) return;
      sock.uncork();
      // Backpressure: a client that sends requests faster than it reads the replies is not
      // read from until its replies drain (C xenstored gets this for free from poll()).
      if (sock.writableLength > this.maxOutputBytes / 4) {
        sock.pause();
        sock.once('drain', () => {
          if (!this.closed) sock.resume();
        });
      }
    });
    sock.on('error', () => {}); // 'close' follows; a reset peer is not our error
    sock.on('close', () => {
      if (!this.closed) host.connectionClosed(this);
    });
  }

  get label(): string {
    return `socket client ${this.serial}`;
  }

  protected deliver(msg: Uint8Array, _eventKey?: string, taken?: () => void): void {
    if (this.closed) return taken?.();
    // Node calls back once the bytes are the kernel's, or with an error when they never will be.
    this.sock.write(msg, taken && (() => taken()));
    // Inside a corked batch, hand large backlogs to the kernel now rather than at the end.
    if (this.sock.writableCorked > 0 && this.sock.writableLength > CORK_FLUSH_BYTES) {
      this.sock.uncork();
      this.sock.cork();
    }
  }

  pendingOutputBytes(): number {
    return this.sock.writableLength;
  }

  shutdown(): void {
    this.closed = true;
    this.reader.stop();
    this.sock.destroy();
    this.outputDiscarded();
  }

  abort(): void {
    this.shutdown();
  }
}

/**
 * Listen on `path`: parent directories are created, a stale socket left by a previous run is
 * removed (C xenstored unlinks before bind too); anything else at that path is an error.
 */
export async function listenUnix(path: string, onSocket: (s: Socket) => void): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
    unlinkSync(path);
  }
  const server = createServer({ allowHalfOpen: false }, onSocket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
}
