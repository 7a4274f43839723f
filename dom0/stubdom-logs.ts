// What a stub domain writes that lands on the host's disk, bounded: the guest's serial output
// (its console log) comes over a socket dom0 reads into a capped, rotated file, and the stub
// domain's own stdout/stderr come through pipes into dom0's log at a limited rate. A device
// model a guest has subverted holds no host file it could fill. dom0 leaves copies of its
// reading ends with the hypervisor (stubdom-host.ts), so that what the stub domain writes
// while no dom0 runs waits in the socket buffers for the next one, which reads on (adopt).
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { native, type FdWatcher } from '../native/index.js';
import { CappedLogFile } from '../common/capped-log-file.js';
import { LogRateLimit } from '../common/log-ratelimit.js';

/** Lines per 5 s from one stub domain's stderr into dom0's log. */
const STDERR_BURST = 50;
const MAX_LINE = 1024;

export class StubdomLogs {
  /** The end the stub domain writes the console log into (pass it, then close it here); -1
   * when taken over from a dead dom0 (the stub domain has its own). */
  readonly consoleFd: number;
  /** dom0's reading end of the console log. */
  readonly ours: number;
  private readonly streams: Readable[] = [];
  private readonly watcher: FdWatcher;
  private readonly file: CappedLogFile;
  private readonly limit = new LogRateLimit(STDERR_BURST);
  private readonly buf = new Uint8Array(64 * 1024);
  private closed = false;

  /** `reader`: the console log's reading end a dead dom0 left (else a new socket pair). */
  constructor(consoleLogPath: string, reader?: number) {
    this.file = new CappedLogFile(consoleLogPath);
    const [ours, theirs] = reader === undefined ? native().seqpacketPair() : [reader, -1];
    this.ours = ours;
    this.consoleFd = theirs;
    native().setNonblocking(ours, true);
    this.watcher = native().watchFd(ours, () => this.drain());
    this.watcher.start(native().READABLE);
  }

  private drain(): void {
    for (let i = 0; i < 64; i++) {
      const n = native().read(this.ours, this.buf, 0, this.buf.length);
      if (n === null) return;
      if (n <= 0) return this.close();
      this.file.write(this.buf.subarray(0, n));
    }
  }

  /** The reading end of a stub domain's stdout or stderr that a dead dom0 left, as attach(). */
  attachFd(fd: number, out: (line: string) => void): void {
    const stream = new Socket({ fd, readable: true, writable: false });
    this.streams.push(stream);
    this.attach(stream, out);
  }

  /** The stub domain's stdout or stderr, line by line into `out`, rate-limited. */
  attach(stream: Readable, out: (line: string) => void): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = (lines.pop() ?? '').slice(0, MAX_LINE);
      for (const l of lines) this.limit.log(out, l.slice(0, MAX_LINE), 'stub domain lines');
    });
    stream.on('error', () => {});
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    native().close(this.ours);
    for (const s of this.streams) s.destroy();
    this.file.close();
  }
}
