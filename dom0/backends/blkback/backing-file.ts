// What a vbd's sectors live in: a raw image file or a host block device (a disk, a partition,
// a loop device). Opened once per device by blkback, read and written through io_uring with
// the frontend's memory registered (uring-io.ts) or, where the kernel cannot, with
// preadv/pwritev on libuv's thread pool (the addon's span I/O: no view per page); flushed
// with fdatasync.
//
// By default the file is opened O_DIRECT, as Linux blkback bypasses dom0's page cache: the
// guest has a cache of its own, and a second one in dom0 would only hide the disk's real
// behaviour from both. Where O_DIRECT is refused (tmpfs, or a device whose logical blocks are
// larger than 512 bytes) the store falls back to buffered I/O; fdatasync makes flushes durable
// either way.
//
// Formats: raw only. qcow/qcow2/vhd/qed are refused with a clear error (docs/block.md says
// how to convert).
import { closeSync, fstatSync, openSync, readFileSync, constants as fsc, fdatasync } from 'node:fs';
import { constants as osc } from 'node:os';
import { native } from '../../../native/index.js';
import type { UringIo } from './uring-io.js';
import { ownEntry } from '../../../common/own-entry.js';

// Disk I/O runs on libuv's pool (4 threads by default): enough threads that a ring's worth
// of requests (32) can be at the disk at once. Read by libuv when the pool first starts,
// which is after dom0's modules are loaded.
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '32';

export const SECTOR = 512;

/** I/Os at least this big go through io_uring (when the vbd has a ring): what it saves is the
 * pinning of every page per request (most of a 1 MiB request's cost). Smaller ones stay on the
 * thread pool, whose threads submit them in parallel: one io_uring thread doing all the
 * submitting and completing of 4 KiB reads at queue depth 32 made 23-28k IOPS to the pool's
 * 35k. */
export const URING_MIN_BYTES = 128 * 1024;

export class FormatError extends Error {}

export interface BackingOptions {
  readonly: boolean;
  /** libxl's format name; only raw is served. */
  format: string;
  /** Try O_DIRECT (default true). */
  direct?: boolean;
}

/** Bytes of guest memory an I/O moves: the first `n` (offset, length) pairs of `spans`, in
 * `mem`. The store copies the list when it starts; the bytes must stay put until it ends. */
export interface Spans {
  mem: Uint8Array;
  spans: Float64Array;
  n: number;
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
  /** Fills the spans from byte `pos` of the disk, on libuv's thread pool. */
  read(io: Spans, pos: number): Promise<void>;
  write(io: Spans, pos: number): Promise<void>;
  /** The same, blocking the calling thread: for a lone small request, a trip through the
   * thread pool costs more than the disk (docs/block.md). */
  readSync(io: Spans, pos: number): void;
  writeSync(io: Spans, pos: number): void;
  /** fdatasync: everything written before is on stable storage when this resolves. */
  flush(): Promise<void>;
  /** Asynchronous I/O on spans of `uring.mem` goes through this ring instead of the thread
   * pool (null: back to the pool). */
  useUring(uring: UringIo | null): void;
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
  if (ownEntry(UNSUPPORTED, fmt)) {
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
  private uring: UringIo | null = null;

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

  private total(io: Spans): number {
    let t = 0;
    for (let k = 0; k < io.n; k++) t += io.spans[2 * k + 1]!;
    return t;
  }

  private short(kind: 'read' | 'write'): Error {
    return Object.assign(new Error(`${kind} beyond the end of ${this.path}`), { code: 'EIO' });
  }

  /** The thread-pool I/O (native pread/pwritevSegsAsync: every byte, or an error). */
  private io(kind: 'read' | 'write', given: Spans, pos: number): Promise<void> {
    // Our own copy of the list: a retry (below) starts after the caller has reused its own.
    const io: Spans = { mem: given.mem, spans: given.spans.slice(0, 2 * given.n), n: given.n };
    const want = this.total(io);
    return new Promise((resolve, reject) => {
      let retried = false;
      const start = () => {
        // Whether this attempt went out O_DIRECT: another I/O in flight may drop O_DIRECT
        // before this one's EINVAL comes back, and this one must be retried all the same.
        const direct = this.direct;
        const done = (r: number) => {
          if (r === -osc.errno.EINVAL && direct && !retried) {
            // O_DIRECT refused this transfer (alignment): carry on buffered.
            retried = true;
            try {
              this.dropDirect();
            } catch (e) {
              return reject(e);
            }
            return start();
          }
          if (r < 0) return reject(errnoError(kind, -r));
          if (r < want) return reject(this.short(kind));
          resolve();
        };
        try {
          const u = this.uring;
          const n = native();
          if (u && want >= URING_MIN_BYTES && io.mem === u.mem && u.hasRoom) u.run(kind === 'write', this.fd, io.spans, io.n, pos, done);
          else if (kind === 'read') n.preadvSegsAsync(this.fd, io.mem, io.spans, io.n, pos, done);
          else n.pwritevSegsAsync(this.fd, io.mem, io.spans, io.n, pos, done);
        } catch (e) {
          reject(e);
        }
      };
      start();
    });
  }

  read(io: Spans, pos: number): Promise<void> {
    return this.io('read', io, pos);
  }

  write(io: Spans, pos: number): Promise<void> {
    return this.io('write', io, pos);
  }

  private ioSync(kind: 'read' | 'write', io: Spans, pos: number): void {
    const want = this.total(io);
    const n = native();
    let r: number;
    try {
      r = kind === 'read' ? n.preadvSegs(this.fd, io.mem, io.spans, io.n, pos) : n.pwritevSegs(this.fd, io.mem, io.spans, io.n, pos);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL' || !this.direct) throw e;
      this.dropDirect();
      r = kind === 'read' ? n.preadvSegs(this.fd, io.mem, io.spans, io.n, pos) : n.pwritevSegs(this.fd, io.mem, io.spans, io.n, pos);
    }
    if (r < want) throw this.short(kind);
  }

  readSync(io: Spans, pos: number): void {
    this.ioSync('read', io, pos);
  }

  writeSync(io: Spans, pos: number): void {
    this.ioSync('write', io, pos);
  }

  flush(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
  }

  useUring(uring: UringIo | null): void {
    this.uring = uring;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** An Error like node's for a failed system call (code 'EIO', 'ENOSPC'...). */
function errnoError(kind: 'read' | 'write', errno: number): NodeJS.ErrnoException {
  const code = Object.entries(osc.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
  return Object.assign(new Error(`${kind === 'read' ? 'preadv' : 'pwritev'}: ${code}`), { code, errno: -errno });
}
