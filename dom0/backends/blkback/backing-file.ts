// What a vbd's sectors live in: a raw image file or a host block device (a disk, a partition,
// a loop device). Opened once per device by blkback, read and written with preadv/pwritev on
// libuv's thread pool, flushed with fdatasync.
//
// By default the file is opened O_DIRECT, as Linux blkback bypasses dom0's page cache: the
// guest has a cache of its own, and a second one in dom0 would only hide the disk's real
// behaviour from both. Where O_DIRECT is refused (tmpfs, or a device whose logical blocks are
// larger than 512 bytes) the store falls back to buffered I/O; fdatasync makes flushes durable
// either way.
//
// Formats: raw only. qcow/qcow2/vhd/qed are refused with a clear error (docs/block.md says
// how to convert).
import { closeSync, fstatSync, openSync, readFileSync, constants as fsc, readv, writev, fdatasync, readvSync, writevSync } from 'node:fs';

// Disk I/O runs on libuv's pool (4 threads by default): enough threads that a ring's worth
// of requests (32) can be at the disk at once. Read by libuv when the pool first starts,
// which is after dom0's modules are loaded.
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '32';

export const SECTOR = 512;

export class FormatError extends Error {}

export interface BackingOptions {
  readonly: boolean;
  /** libxl's format name; only raw is served. */
  format: string;
  /** Try O_DIRECT (default true). */
  direct?: boolean;
}

export interface BackingStore {
  readonly path: string;
  /** Size in 512-byte sectors (a partial last sector is not addressable). */
  readonly sectors: number;
  readonly readonly: boolean;
  /** "major:minor" in hex for a block device (what Xen's hotplug script writes), else undefined. */
  readonly physicalDevice?: string;
  /** Whether I/O currently bypasses dom0's page cache. */
  readonly direct: boolean;
  /** Fills `bufs` from byte `pos`; resolves when all of them are full. */
  read(bufs: Uint8Array[], pos: number): Promise<void>;
  write(bufs: Uint8Array[], pos: number): Promise<void>;
  /** The same, blocking the calling thread: for a lone small request, a trip through the
   * thread pool costs more than the disk (docs/block.md). */
  readSync(bufs: Uint8Array[], pos: number): void;
  writeSync(bufs: Uint8Array[], pos: number): void;
  /** fdatasync: everything written before is on stable storage when this resolves. */
  flush(): Promise<void>;
  close(): void;
}

const UNSUPPORTED: Record<string, string> = {
  qcow: 'qcow',
  qcow2: 'qcow2',
  vhd: 'vhd',
  qed: 'qed',
};

/** Opens `path` as a raw disk. Throws FormatError for image formats it does not serve and
 * plain errors (ENOENT, EACCES...) for the rest. */
export function openBacking(path: string, o: BackingOptions): BackingStore {
  const fmt = o.format || 'raw';
  if (UNSUPPORTED[fmt]) {
    throw new FormatError(`format ${fmt} is not supported by blkback (raw images and block devices only); convert it: qemu-img convert -O raw ${path} IMAGE.raw`);
  }
  if (fmt !== 'raw') throw new FormatError(`format ${fmt} is not supported by blkback`);
  if (!path.startsWith('/')) throw new Error(`target "${path}" must be an absolute path`);
  return new FileStore(path, o.readonly, o.direct !== false);
}

class FileStore implements BackingStore {
  readonly sectors: number;
  readonly physicalDevice?: string;
  private fd: number;
  direct: boolean;

  constructor(
    readonly path: string,
    readonly readonly: boolean,
    wantDirect: boolean,
  ) {
    const acc = readonly ? fsc.O_RDONLY : fsc.O_RDWR;
    let fd = -1;
    let direct = false;
    if (wantDirect) {
      try {
        fd = openSync(path, acc | fsc.O_DIRECT);
        direct = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      }
    }
    if (fd < 0) fd = openSync(path, acc);
    this.fd = fd;
    this.direct = direct;
    try {
      const st = fstatSync(fd);
      let bytes: number;
      if (st.isFile()) {
        bytes = st.size;
      } else if (st.isBlockDevice()) {
        const maj = Math.floor(st.rdev / 256) & 0xfff;
        const min = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        this.physicalDevice = `${maj.toString(16)}:${min.toString(16)}`;
        bytes = Number(readFileSync(`/sys/dev/block/${maj}:${min}/size`, 'utf8').trim()) * SECTOR;
      } else {
        throw new Error(`${path} is neither a regular file nor a block device`);
      }
      this.sectors = Math.floor(bytes / SECTOR);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** O_DIRECT refused this transfer (alignment): carry on buffered. */
  private dropDirect(): void {
    if (!this.direct) return;
    const fd = openSync(this.path, this.readonly ? fsc.O_RDONLY : fsc.O_RDWR);
    closeSync(this.fd);
    this.fd = fd;
    this.direct = false;
  }

  private io(kind: 'read' | 'write', bufs: Uint8Array[], pos: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let left = bufs;
      let at = pos;
      let retried = false;
      const step = () => {
        const cb = (err: NodeJS.ErrnoException | null, n: number) => {
          if (err) {
            if (err.code === 'EINVAL' && this.direct && !retried) {
              retried = true;
              try {
                this.dropDirect();
              } catch (e) {
                return reject(e);
              }
              return step();
            }
            return reject(err);
          }
          if (n <= 0) return reject(Object.assign(new Error(`${kind} beyond the end of ${this.path}`), { code: 'EIO' }));
          at += n;
          // Short transfer: drop the bytes done and go on with the rest.
          let skip = n;
          let i = 0;
          while (i < left.length && skip >= left[i]!.length) skip -= left[i++]!.length;
          if (i >= left.length) return resolve();
          left = left.slice(i);
          if (skip > 0) left[0] = left[0]!.subarray(skip);
          step();
        };
        if (kind === 'read') readv(this.fd, left, at, cb);
        else writev(this.fd, left, at, cb);
      };
      step();
    });
  }

  read(bufs: Uint8Array[], pos: number): Promise<void> {
    return this.io('read', bufs, pos);
  }

  private ioSync(kind: 'read' | 'write', bufs: Uint8Array[], pos: number): void {
    let left = bufs;
    let at = pos;
    let retried = false;
    for (;;) {
      let n: number;
      try {
        n = kind === 'read' ? readvSync(this.fd, left, at) : writevSync(this.fd, left, at);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EINVAL' && this.direct && !retried) {
          retried = true;
          this.dropDirect();
          continue;
        }
        throw e;
      }
      if (n <= 0) throw Object.assign(new Error(`${kind} beyond the end of ${this.path}`), { code: 'EIO' });
      at += n;
      let skip = n;
      let i = 0;
      while (i < left.length && skip >= left[i]!.length) skip -= left[i++]!.length;
      if (i >= left.length) return;
      left = left.slice(i);
      if (skip > 0) left[0] = left[0]!.subarray(skip);
    }
  }

  readSync(bufs: Uint8Array[], pos: number): void {
    this.ioSync('read', bufs, pos);
  }

  writeSync(bufs: Uint8Array[], pos: number): void {
    this.ioSync('write', bufs, pos);
  }

  write(bufs: Uint8Array[], pos: number): Promise<void> {
    return this.io('write', bufs, pos);
  }

  flush(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
