// Where a guest kernel's own stdout and stderr go (its printk copy, Node's warnings, a crash's
// stack): a pipe the hypervisor reads, never a host file handed to the guest. What comes out
// of the pipe is written to log/kernel-<domid>.log through a byte budget (a burst, then a
// steady rate; the rest is counted and dropped) and a size cap with one rotation, so guest
// root writing to its kernel's stdio moves at most a few MB to the host's disk.
import type { Readable } from 'node:stream';
import { CappedLogFile } from '../common/capped-log-file.js';

export const KERNEL_LOG_MAX_BYTES = 1 << 20;
const BURST_BYTES = 256 * 1024;
const BYTES_PER_SEC = 64 * 1024;

export class KernelLogWriter {
  private readonly file: CappedLogFile;
  private tokens = BURST_BYTES;
  private last = Date.now();
  private dropped = 0;
  private open = 0;

  constructor(path: string) {
    this.file = new CappedLogFile(path, KERNEL_LOG_MAX_BYTES);
  }

  /** Read `stream` (the kernel's stdout or stderr) until it ends. */
  attach(stream: Readable): void {
    this.open++;
    stream.on('data', (chunk: Buffer) => this.write(chunk));
    stream.on('error', () => {});
    stream.on('close', () => {
      if (--this.open === 0) this.close();
    });
  }

  private write(chunk: Buffer): void {
    const now = Date.now();
    this.tokens = Math.min(BURST_BYTES, this.tokens + ((now - this.last) * BYTES_PER_SEC) / 1000);
    this.last = now;
    if (this.tokens < chunk.length) {
      this.dropped += chunk.length;
      return;
    }
    this.tokens -= chunk.length;
    if (this.dropped > 0) {
      this.file.write(`\n[xenode: ${this.dropped} bytes of kernel output dropped (rate limit)]\n`);
      this.dropped = 0;
    }
    this.file.write(chunk);
  }

  private close(): void {
    if (this.dropped > 0) this.file.write(`\n[xenode: ${this.dropped} bytes of kernel output dropped (rate limit)]\n`);
    this.file.close();
  }
}
