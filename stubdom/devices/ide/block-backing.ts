// The image behind an emulated disk or CD-ROM: the same raw file blkback serves (xl's
// `format=raw` target). Synchronous positional I/O on a file descriptor: the device model runs
// in its own worker thread and a guest's PIO/DMA exit is synchronous anyway. Reads past the end
// of the file return zeros (sparse tail); devices never write past their reported capacity.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync, constants } from 'node:fs';

export interface BlockBacking {
  /** Bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Fills dst[off..off+len) from byte `pos`; throws on I/O errors. */
  readAt(pos: number, dst: Uint8Array, off: number, len: number): void;
  /** Writes src[off..off+len) at byte `pos`; throws on I/O errors or when read-only. */
  writeAt(pos: number, src: Uint8Array, off: number, len: number): void;
  flush(): void;
  close(): void;
}

export class FileBacking implements BlockBacking {
  private closed = false;

  constructor(
    private readonly fd: number,
    readonly readOnly: boolean,
    readonly size: number,
    private readonly ownsFd: boolean,
  ) {}

  /** Opens an image by path (read-only when asked, or when the file is not writable). */
  static open(path: string, opts: { readOnly?: boolean } = {}): FileBacking {
    const ro = opts.readOnly ?? false;
    // libuv opens with O_CLOEXEC already.
    const fd = openSync(path, ro ? constants.O_RDONLY : constants.O_RDWR);
    return new FileBacking(fd, ro, fstatSync(fd).size, true);
  }

  /** Uses an already-open descriptor (e.g. handed over by dom0); not closed by close(). */
  static fromFd(fd: number, readOnly: boolean): FileBacking {
    return new FileBacking(fd, readOnly, fstatSync(fd).size, false);
  }

  readAt(pos: number, dst: Uint8Array, off: number, len: number): void {
    if (this.closed) throw new Error('backing closed');
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, dst, off + done, len - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    if (done < len) dst.fill(0, off + done, off + len);
  }

  writeAt(pos: number, src: Uint8Array, off: number, len: number): void {
    if (this.closed) throw new Error('backing closed');
    if (this.readOnly) throw new Error('read-only backing');
    let done = 0;
    while (done < len) done += writeSync(this.fd, src, off + done, len - done, pos + done);
  }

  flush(): void {
    if (!this.closed && !this.readOnly) fsyncSync(this.fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) closeSync(this.fd);
  }
}
