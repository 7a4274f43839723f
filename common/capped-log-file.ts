// A log file that cannot grow without bound: appends go to `path` until it holds `maxBytes`,
// then it is renamed to `path.1` (replacing an older one) and a fresh `path` begins, as
// logrotate's `size` + `rotate 1` would do. At most 2 x maxBytes on disk per log, whatever a
// guest writes into it (its console, its kernel's stderr).
import { closeSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';

export const DEFAULT_MAX_LOG_BYTES = 1 << 20;

export class CappedLogFile {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes = DEFAULT_MAX_LOG_BYTES,
    private readonly mode = 0o640,
  ) {
    this.fd = openSync(path, 'a', mode);
    this.size = fstatSync(this.fd).size;
  }

  write(data: Uint8Array | string): void {
    if (this.fd < 0) return;
    let bytes = typeof data === 'string' ? Buffer.from(data) : data;
    while (bytes.length > 0) {
      if (this.size >= this.maxBytes) this.rotate();
      const n = Math.min(bytes.length, this.maxBytes - this.size);
      writeSync(this.fd, bytes, 0, n);
      this.size += n;
      bytes = bytes.subarray(n);
    }
  }

  private rotate(): void {
    closeSync(this.fd);
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', this.mode);
    this.size = 0;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}
