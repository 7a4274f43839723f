// A guest's console in the browser. Output: xenconsoled writes every byte it takes off a
// guest's console ring both to the guest's pty and to its log (guest-<name>.log); the bridge
// follows the log, so `xl console` (which reads the pty) and any number of browsers all see
// all of it. Input: keystrokes go into the same pty `xl console` writes to, so xenconsoled
// puts them on the same ring (two people typing interleave, as on one keyboard).
//
// A browser that reads slowly, or not at all, never holds anything up. The page acknowledges
// what it has taken in ({"type":"ack","bytes":total} every ACK_EVERY bytes, as ttyd's flow
// control does: the kernel's socket buffers on loopback hold megabytes, so what the server has
// queued says little); output beyond CLIENT_WINDOW unacknowledged bytes, or beyond
// CLIENT_BUFFER_LIMIT queued in the server, is skipped for that client (not read, not queued)
// and counted, and the client is told how much it missed once it catches up. The guest, dom0
// and other clients never wait on it.
//
// The log is capped and rotated (common/capped-log-file.ts renames it to .1 and starts a new
// one): the bridge reads the old file to its end, then follows the new one from its start.
import { closeSync, fstatSync, openSync, readSync, statSync, watch, writeSync, constants, type FSWatcher } from 'node:fs';
import type { WebSocket } from 'ws';
import { ConsoleDaemon } from '../console/console-daemon.js';

/** Unsent output a client may have queued before its output is dropped. */
export const CLIENT_BUFFER_LIMIT = 256 * 1024;
/** Output a client may have unacknowledged before its output is dropped. */
export const CLIENT_WINDOW = 512 * 1024;
/** How often (bytes) the page acknowledges; well inside the window. */
export const ACK_EVERY = 32 * 1024;
/** What a newly attached browser is shown of the console's past. */
const BACKLOG = 16 * 1024;
const CHUNK = 64 * 1024;

export interface ConsoleTarget {
  domid: number;
  name: string;
  /** The console pty `xl console` attaches to (the toolstack's `console` answer). */
  tty: string;
}

export interface ConsoleClientStats {
  domid: number;
  sentBytes: number;
  ackedBytes: number;
  droppedBytes: number;
}

export class ConsoleBridge {
  private logFd: number;
  private readonly logPath: string;
  private readonly ttyFd: number;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout;
  private offset: number;
  private readonly buf = Buffer.alloc(CHUNK);
  private closed = false;
  /** Dropped bytes the client has not been told about yet. */
  private unreported = 0;
  readonly stats: ConsoleClientStats;

  constructor(
    private readonly ws: WebSocket,
    target: ConsoleTarget,
    private readonly onResize: (rows: number, cols: number) => void,
  ) {
    this.stats = { domid: target.domid, sentBytes: 0, ackedBytes: 0, droppedBytes: 0 };
    this.logFd = openSync(ConsoleDaemon.logPath(target.name), 'r');
    try {
      this.ttyFd = openSync(target.tty, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
    } catch (e) {
      closeSync(this.logFd);
      throw e;
    }
    this.logPath = ConsoleDaemon.logPath(target.name);
    this.offset = Math.max(0, fstatSync(this.logFd).size - BACKLOG);
    this.follow();
    // inotify is the fast path; this is a backstop should an event be missed.
    this.poll = setInterval(() => this.pump(), 1000);
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.close());
    ws.on('error', () => this.close());
    this.pump();
  }

  /** Watch the log file now at logPath (inotify follows an inode, not a name). */
  private follow(): void {
    this.watcher?.close();
    this.watcher = watch(this.logPath, () => this.pump());
    this.watcher.on('error', () => {});
  }

  /** After the old file is read to its end: the log was rotated if its name is another file now. */
  private rotated(): boolean {
    let ino: number;
    try {
      ino = statSync(this.logPath).ino;
    } catch {
      return false; // between the rename and the new file: look again at the next event
    }
    if (ino === fstatSync(this.logFd).ino) return false;
    let fd: number;
    try {
      fd = openSync(this.logPath, 'r');
    } catch {
      return false;
    }
    closeSync(this.logFd);
    this.logFd = fd;
    this.offset = 0;
    this.follow();
    return true;
  }

  /** Move what the log gained since last time to the client, or skip it if the client is full. */
  private pump(): void {
    if (this.closed) return;
    this.drain();
    while (this.rotated()) this.drain();
  }

  private drain(): void {
    const size = fstatSync(this.logFd).size;
    if (size < this.offset) this.offset = 0; // truncated
    while (this.offset < size) {
      if (this.ws.bufferedAmount > CLIENT_BUFFER_LIMIT || this.stats.sentBytes - this.stats.ackedBytes > CLIENT_WINDOW) {
        const skipped = size - this.offset;
        this.stats.droppedBytes += skipped;
        this.unreported += skipped;
        this.offset = size;
        return;
      }
      const n = readSync(this.logFd, this.buf, 0, Math.min(CHUNK, size - this.offset), this.offset);
      if (n <= 0) break;
      this.offset += n;
      if (this.unreported > 0) {
        this.ws.send(JSON.stringify({ type: 'dropped', bytes: this.unreported, total: this.stats.droppedBytes }));
        this.unreported = 0;
      }
      this.ws.send(Buffer.from(this.buf.subarray(0, n)), { binary: true });
      this.stats.sentBytes += n;
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      let n = 0;
      try {
        n = writeSync(this.ttyFd, data);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return this.notice(`input dropped: ${(e as Error).message}`);
      }
      // The pty's input queue is full (the guest is not reading): say so, drop the rest.
      if (n < data.length) this.notice(`input dropped: ${data.length - n} of ${data.length} bytes (the guest is not reading its console)`);
      return;
    }
    let msg: { type?: unknown; rows?: unknown; cols?: unknown; bytes?: unknown };
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      return this.notice('control message is not JSON');
    }
    const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 9999;
    if (msg.type === 'ack' && typeof msg.bytes === 'number' && Number.isSafeInteger(msg.bytes) && msg.bytes >= 0 && msg.bytes <= this.stats.sentBytes) {
      // Output skipped meanwhile was never sent, so an ack can only catch up to what was.
      this.stats.ackedBytes = Math.max(this.stats.ackedBytes, msg.bytes);
      this.pump();
    } else if (msg.type === 'resize' && ok(msg.rows) && ok(msg.cols)) this.onResize(msg.rows as number, msg.cols as number);
    else this.notice('bad control message (want {"type":"ack","bytes":N} with N at most what was sent, or {"type":"resize","rows":N,"cols":N})');
  }

  /** An error for the client, unless it is not reading (then its own noise is not queued). */
  private notice(message: string): void {
    if (this.ws.bufferedAmount <= CLIENT_BUFFER_LIMIT) this.ws.send(JSON.stringify({ type: 'error', message }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    this.watcher?.close();
    closeSync(this.logFd);
    closeSync(this.ttyFd);
  }
}
