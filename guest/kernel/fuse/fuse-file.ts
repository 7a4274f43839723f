// A FUSE filesystem whose root is one regular file, served by the guest kernel on its event
// loop: how blkfront shows a disk to the guest's programs as /dev/<vdev>.
//
// The mount: open /dev/fuse (non-blocking), create an empty file at the target, mount
// "fuse.<subtype>" on it with rootmode=100000 (a regular-file root) and the fd. FUSE mounts are
// allowed in a user namespace, which is all the guest kernel has (docs/block.md).
//
// Requests are read with one readv: the first 80 bytes (fuse_in_header + fuse_write_in) into a
// header buffer and the rest straight into page-aligned buffers the owner lends us (guest
// frames), so a WRITE's data lands in pages that can be granted to the backend as they are.
// Replies go out with one writev, READ data straight from the pages it was read into.
// Nothing here blocks: /dev/fuse is watched with uv_poll and drained with a budget.
import { closeSync, openSync, writeFileSync, unlinkSync, constants as fsc } from 'node:fs';
import { native, type FdWatcher } from '../../../native/index.js';
import { SpanIov } from '../../../native/span-iov.js';
import {
  decodeInHeader,
  EINVAL,
  encodeAttr,
  encodeOutHeader,
  ENOENT,
  ENOSYS,
  EOPNOTSUPP,
  ENOTTY,
  FATTR_SIZE,
  FOPEN_KEEP_CACHE,
  FUSE_ACCESS,
  FUSE_ASYNC_DIO,
  FUSE_ASYNC_READ,
  FUSE_ATTR_OUT_SIZE,
  FUSE_BATCH_FORGET,
  FUSE_BIG_WRITES,
  FUSE_DESTROY,
  FUSE_FALLOCATE,
  FUSE_FLUSH,
  FUSE_FORGET,
  FUSE_FSYNC,
  FUSE_FSYNC_FDATASYNC,
  FUSE_GETATTR,
  FUSE_IN_HEADER_SIZE,
  FUSE_INIT,
  FUSE_INIT_OUT_SIZE,
  FUSE_INTERRUPT,
  FUSE_IOCTL,
  FUSE_KERNEL_VERSION,
  FUSE_LOOKUP,
  FUSE_MAX_PAGES,
  FUSE_OPEN,
  FUSE_OPEN_OUT_SIZE,
  FUSE_OUR_MINOR,
  FUSE_OUT_HEADER_SIZE,
  FUSE_READ,
  FUSE_RELEASE,
  FUSE_SETATTR,
  FUSE_STATFS,
  FUSE_STATFS_OUT_SIZE,
  FUSE_WRITE,
  FUSE_WRITE_DATA_OFFSET,
  FUSE_WRITE_OUT_SIZE,
  FUSE_WRITEBACK_CACHE,
  IN,
  S_IFREG,
  type FuseInHeader,
} from './fuse-abi.js';

export const PAGE = 4096;
/** Largest READ/WRITE the kernel sends us: max_pages (256) pages. */
export const FUSE_MAX_IO = 256 * PAGE;
const RX_PAGES = FUSE_MAX_IO / PAGE;

/** A page-sized buffer lent to the session to receive request bytes. */
export interface RxPage {
  view: Uint8Array;
  /** Where the page lies in FuseFileOps.rxMemory, when the owner has one. */
  offset?: number;
}

/** The answer to one READ, WRITE or FSYNC; exactly one method must be called, once. */
export interface FuseReply {
  /** READ: the bytes, as a list of views (sent with one writev). */
  data(bufs: Uint8Array[]): void;
  /** READ: the bytes as (offset, length) pairs of `mem` (the first n of `spans`), written
   * before this returns. */
  spans(mem: Uint8Array, spans: Float64Array, n: number): void;
  /** WRITE: how many bytes were written. */
  written(n: number): void;
  ok(): void;
  /** A positive errno. */
  error(errno: number): void;
}

export interface FuseFileOps {
  /** Size in bytes, mode bits (without the type), for GETATTR. */
  attr(): { size: number; mode: number };
  /** Check an open (flags as open(2) got them); 0 or a positive errno (EROFS, ENOMEDIUM). */
  open(flags: number): number;
  /** `flags`: the reader's open(2) flags (O_DIRECT readers bypass the page cache). */
  read(offset: number, size: number, reply: FuseReply, flags?: number): void;
  /** `pages` hold the data from byte 0 of pages[0] on; ownership passes to the callee, which
   * must give every page back with releaseRx(). */
  write(offset: number, size: number, pages: RxPage[], reply: FuseReply): void;
  fsync(datasync: boolean, reply: FuseReply): void;
  /** The memory every RxPage with an `offset` lies in (lets requests be read into them
   * without a view per page). */
  readonly rxMemory?: Uint8Array;
  /** A page to receive request data into, or null when none is free right now. */
  allocRx(): RxPage | null;
  /** `n` pages at once, in ascending address order, or null if not that many now (then
   * allocRx is asked one page at a time). A WRITE's data lands in these pages as they are,
   * and pages in order make fewer, longer spans down to the host's disk. */
  allocRxMany?(n: number): RxPage[] | null;
  releaseRx(p: RxPage): void;
}

export interface FuseFileOptions {
  /** Name shown in /proc/mounts as the source and as fuse.<subtype>. */
  name: string;
  subtype: string;
  /** Bytes of readahead to allow the kernel (default 128 KiB). */
  maxReadahead?: number;
  /** Let the kernel cache writes and write them back in large requests (FUSE's
   * writeback_cache): for a reader-writer that does small writes and fsyncs what must be
   * durable (a filesystem driver). A write past the end then fails at write-back, not at
   * write(2), so files users open keep write-through. */
  writebackCache?: boolean;
  log?: (msg: string) => void;
}

/** Requests handled per poll callback before yielding to the rest of the event loop. */
const BUDGET = 64;

export class FuseFile {
  private fd = -1;

  /** The /dev/fuse descriptor (-1 when not mounted): busy polls watch it for requests. */
  get deviceFd(): number {
    return this.fd;
  }
  private watcher: FdWatcher | null = null;
  private readonly hdr = new Uint8Array(FUSE_WRITE_DATA_OFFSET);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly rx: RxPage[] = [];
  private readonly rxIov = new SpanIov(RX_PAGES + 1);
  private iovDirty = true;
  /** One reply's pieces (a header, then the data). */
  private readonly replyIov = new SpanIov(RX_PAGES + 1);
  private readonly replyHdr = new Uint8Array(FUSE_OUT_HEADER_SIZE + FUSE_WRITE_OUT_SIZE);
  private readonly replyHdrView = new DataView(this.replyHdr.buffer);
  private readonly replyHead = this.replyHdr.subarray(0, FUSE_OUT_HEADER_SIZE);
  /** Scratch for requests longer than the header buffer (other than WRITE data). */
  private readonly scratch = new Uint8Array(FUSE_WRITE_DATA_OFFSET + 64 * 1024);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private readonly out = new Uint8Array(256);
  private readonly outView = new DataView(this.out.buffer);
  private readonly ih: FuseInHeader = { len: 0, opcode: 0, unique: 0n, nodeid: 0n, uid: 0, gid: 0, pid: 0 };
  private mounted = false;
  private closed = false;
  private paused = false;
  /** Inside fillRx(): the window is being built and must not be given back. */
  private filling = false;
  private readonly birth = Math.floor(Date.now() / 1000);
  /** Requests answered (for counters). */
  requests = 0;

  constructor(
    readonly target: string,
    private readonly ops: FuseFileOps,
    private readonly opts: FuseFileOptions,
  ) {}

  /** Create the mount point, mount, and start serving. */
  mount(): void {
    const n = native();
    this.fd = openSync('/dev/fuse', fsc.O_RDWR | fsc.O_NONBLOCK); // libuv adds O_CLOEXEC
    try {
      writeFileSync(this.target, '', { mode: 0o600 });
      const data = `fd=${this.fd},rootmode=${S_IFREG.toString(8)},user_id=0,group_id=0,allow_other,default_permissions`;
      n.mount(this.opts.name, this.target, `fuse.${this.opts.subtype}`, n.MS_NOSUID | n.MS_NODEV, data);
      this.mounted = true;
    } catch (e) {
      closeSync(this.fd);
      this.fd = -1;
      try {
        unlinkSync(this.target);
      } catch {
        /* never created */
      }
      throw e;
    }
    this.watcher = n.watchFd(this.fd, () => this.drain());
    this.watcher.start(n.READABLE);
  }

  /** Unmount (lazily: open files keep failing with EIO until closed), abort the connection
   * and remove the mount point. Pending replies are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.mounted) {
      try {
        native().umount2(this.target, native().MNT_DETACH);
      } catch (e) {
        this.opts.log?.(`${this.target}: umount: ${(e as Error).message}`);
      }
      this.mounted = false;
    }
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
    try {
      unlinkSync(this.target);
    } catch {
      /* already gone */
    }
    for (const p of this.rx.splice(0)) this.ops.releaseRx(p);
  }

  /** Read and dispatch the requests waiting now (as the poll callback would), for an owner
   * about to be busy for a while. */
  pollRequests(): void {
    if (!this.closed && !this.paused && this.fd >= 0) this.drain();
  }

  /** Pages came back: if we stopped reading for want of them, start again. */
  resume(): void {
    if (this.paused && !this.closed) {
      this.paused = false;
      this.watcher?.start(native().READABLE);
    }
  }

  /** Give the receive window back to the owner (several files share one disk's pages, and
   * an idle one need not hold 1 MiB); it is taken again at the next request. Safe anywhere
   * but inside fillRx() (guarded): readv is synchronous, and a WRITE's pages leave the window
   * before the request is dispatched. */
  dropReceivePages(): void {
    if (!this.rx.length || this.filling) return;
    for (const p of this.rx.splice(0)) this.ops.releaseRx(p);
    this.iovDirty = true;
  }

  private fillRx(): boolean {
    this.filling = true;
    try {
      return this.fillRxNow();
    } finally {
      this.filling = false;
    }
  }

  private fillRxNow(): boolean {
    const want = RX_PAGES - this.rx.length;
    const many = want > 1 ? this.ops.allocRxMany?.(want) : null;
    if (many) {
      for (const p of many) this.rx.push(p);
      this.iovDirty = true;
      return true;
    }
    while (this.rx.length < RX_PAGES) {
      const p = this.ops.allocRx();
      if (!p) return false;
      this.rx.push(p);
      this.iovDirty = true;
    }
    return true;
  }

  private drain(): void {
    const n = native();
    for (let i = 0; i < BUDGET && !this.closed; i++) {
      if (!this.fillRx()) {
        // Out of receive pages: wait for I/O in flight to give some back (resume()).
        this.paused = true;
        this.watcher?.stop();
        return;
      }
      let got: number | null;
      try {
        if (this.iovDirty) {
          const iov = this.rxIov;
          const mem = this.ops.rxMemory;
          iov.reset();
          iov.setHead(this.hdr);
          for (const p of this.rx) {
            if (mem && p.offset !== undefined) iov.addSpan(mem, p.offset, PAGE);
            else iov.add(p.view);
          }
          this.iovDirty = false;
        }
        got = this.rxIov.readv(this.fd);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // the request was interrupted before we read it
        if (code !== 'ENODEV') this.opts.log?.(`${this.target}: read /dev/fuse: ${(e as Error).message}`);
        this.watcher?.stop(); // ENODEV: unmounted / aborted
        return;
      }
      if (got === null) return;
      if (got < FUSE_IN_HEADER_SIZE) continue;
      this.dispatch(got);
    }
  }

  /** The request as one contiguous view (for everything but WRITE data). */
  private body(got: number): DataView {
    if (got <= this.hdr.length) return this.hdrView;
    const len = Math.min(got, this.scratch.length);
    this.scratch.set(this.hdr, 0);
    let at = this.hdr.length;
    for (const p of this.rx) {
      if (at >= len) break;
      const take = Math.min(PAGE, len - at);
      this.scratch.set(p.view.subarray(0, take), at);
      at += take;
    }
    return this.scratchView;
  }

  private dispatch(got: number): void {
    const h = decodeInHeader(this.hdrView, this.ih);
    const unique = h.unique;
    this.requests++;
    switch (h.opcode) {
      case FUSE_INIT:
        return this.init(this.body(got), unique);
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET:
      case FUSE_INTERRUPT:
        return; // no reply
      case FUSE_GETATTR:
        return this.replyAttr(unique);
      case FUSE_SETATTR: {
        // A block device ignores truncation (dd without conv=notrunc opens with O_TRUNC) and
        // has no settable mode or times: answer with the attributes as they are.
        const v = this.body(got);
        const valid = v.getUint32(IN.setattr.valid, true);
        void (valid & FATTR_SIZE);
        return this.replyAttr(unique);
      }
      case FUSE_LOOKUP:
        return this.replyError(unique, ENOENT); // the root is a file: nothing under it
      case FUSE_OPEN: {
        const flags = this.hdrView.getUint32(IN.open.flags, true);
        const err = this.ops.open(flags);
        if (err) return this.replyError(unique, err);
        const o = this.outView;
        o.setBigUint64(FUSE_OUT_HEADER_SIZE, 0n, true); // fh
        o.setUint32(FUSE_OUT_HEADER_SIZE + 8, FOPEN_KEEP_CACHE, true);
        o.setUint32(FUSE_OUT_HEADER_SIZE + 12, 0, true);
        return this.replyOut(unique, FUSE_OPEN_OUT_SIZE);
      }
      case FUSE_READ: {
        const offset = Number(this.hdrView.getBigUint64(IN.read.offset, true));
        const size = this.hdrView.getUint32(IN.read.size, true);
        return this.ops.read(offset, size, this.reply(unique), this.hdrView.getUint32(IN.read.flags, true));
      }
      case FUSE_WRITE: {
        const offset = Number(this.hdrView.getBigUint64(IN.write.offset, true));
        const size = this.hdrView.getUint32(IN.write.size, true);
        if (size > got - FUSE_WRITE_DATA_OFFSET) return this.replyError(unique, EINVAL);
        const pages = this.rx.splice(0, Math.ceil(size / PAGE));
        if (pages.length) this.iovDirty = true;
        return this.ops.write(offset, size, pages, this.reply(unique));
      }
      case FUSE_FSYNC: {
        const flags = this.hdrView.getUint32(IN.fsync.fsyncFlags, true);
        return this.ops.fsync((flags & FUSE_FSYNC_FDATASYNC) !== 0, this.reply(unique));
      }
      case FUSE_FLUSH: // close(2): nothing is buffered here, durability is fsync's job
      case FUSE_RELEASE:
      case FUSE_DESTROY:
        return this.replyOut(unique, 0);
      case FUSE_ACCESS:
        return this.replyOut(unique, 0); // default_permissions already checked the mode
      case FUSE_STATFS: {
        const { size } = this.ops.attr();
        const o = this.outView;
        const b = FUSE_OUT_HEADER_SIZE;
        this.out.fill(0, b, b + FUSE_STATFS_OUT_SIZE);
        o.setBigUint64(b, BigInt(Math.floor(size / PAGE)), true); // blocks
        o.setUint32(b + 40, PAGE, true); // bsize
        o.setUint32(b + 44, 255, true); // namelen
        o.setUint32(b + 48, PAGE, true); // frsize
        return this.replyOut(unique, FUSE_STATFS_OUT_SIZE);
      }
      case FUSE_FALLOCATE:
        return this.replyError(unique, EOPNOTSUPP);
      case FUSE_IOCTL:
        return this.replyError(unique, ENOTTY);
      default:
        return this.replyError(unique, ENOSYS);
    }
  }

  private init(v: DataView, unique: bigint): void {
    const major = v.getUint32(IN.init.major, true);
    const minor = v.getUint32(IN.init.minor, true);
    const theirFlags = v.getUint32(IN.init.flags, true);
    const o = this.outView;
    const b = FUSE_OUT_HEADER_SIZE;
    this.out.fill(0, b, b + FUSE_INIT_OUT_SIZE);
    o.setUint32(b, FUSE_KERNEL_VERSION, true);
    if (major !== FUSE_KERNEL_VERSION) {
      // Tell the kernel our major and let it decide (it retries or gives up).
      return this.replyOut(unique, 8);
    }
    const want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_MAX_PAGES | (this.opts.writebackCache ? FUSE_WRITEBACK_CACHE : 0);
    o.setUint32(b + 4, Math.min(minor, FUSE_OUR_MINOR), true);
    const theirReadahead = v.getUint32(IN.init.maxReadahead, true);
    o.setUint32(b + 8, Math.min(theirReadahead, this.opts.maxReadahead ?? 128 * 1024), true);
    o.setUint32(b + 12, want & theirFlags, true);
    o.setUint16(b + 16, 64, true); // max_background
    o.setUint16(b + 18, 48, true); // congestion_threshold
    o.setUint32(b + 20, FUSE_MAX_IO, true); // max_write
    o.setUint32(b + 24, 1, true); // time_gran
    o.setUint16(b + 28, FUSE_MAX_IO / PAGE, true); // max_pages
    this.replyOut(unique, FUSE_INIT_OUT_SIZE);
  }

  private replyAttr(unique: bigint): void {
    const { size, mode } = this.ops.attr();
    const o = this.outView;
    const b = FUSE_OUT_HEADER_SIZE;
    o.setBigUint64(b, 86400n, true); // attr_valid: a disk's size does not change under us
    o.setUint32(b + 8, 0, true);
    o.setUint32(b + 12, 0, true);
    encodeAttr(o, b + 16, {
      ino: 1,
      size,
      blocks: Math.ceil(size / 512),
      time: this.birth,
      mode: S_IFREG | mode,
      nlink: 1,
      uid: 0,
      gid: 0,
      blksize: PAGE,
    });
    this.replyOut(unique, FUSE_ATTR_OUT_SIZE);
  }

  /** Reply with `bodyLen` bytes already placed in `out` after the header. */
  private replyOut(unique: bigint, bodyLen: number): void {
    encodeOutHeader(this.outView, 0, FUSE_OUT_HEADER_SIZE + bodyLen, 0, unique);
    this.send([this.out.subarray(0, FUSE_OUT_HEADER_SIZE + bodyLen)]);
  }

  private replyError(unique: bigint, errno: number): void {
    const h = new Uint8Array(FUSE_OUT_HEADER_SIZE);
    encodeOutHeader(new DataView(h.buffer), 0, FUSE_OUT_HEADER_SIZE, -errno, unique);
    this.send([h]);
  }

  /** One reply: a list of views, or spans already gathered in a SpanIov. */
  private send(out: Uint8Array[] | SpanIov): void {
    if (this.fd < 0) return;
    try {
      if (out instanceof SpanIov) out.writev(this.fd);
      else native().writev(this.fd, out);
    } catch (e) {
      // ENOENT: the request was interrupted and is gone; ENODEV: aborted. Neither is ours to fix.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENODEV') this.opts.log?.(`${this.target}: reply: ${(e as Error).message}`);
    }
  }

  private reply(unique: bigint): FuseReply {
    let done = false;
    const once = () => {
      if (done) throw new Error('FUSE request answered twice');
      done = true;
    };
    // Replies are written synchronously, so one header buffer serves them all.
    const h = this.replyHdr;
    const hv = this.replyHdrView;
    return {
      data: (bufs) => {
        once();
        let len = FUSE_OUT_HEADER_SIZE;
        for (const b of bufs) len += b.length;
        encodeOutHeader(hv, 0, len, 0, unique);
        this.send([h.subarray(0, FUSE_OUT_HEADER_SIZE), ...bufs]);
      },
      spans: (mem, spans, n) => {
        once();
        let len = FUSE_OUT_HEADER_SIZE;
        for (let k = 0; k < n; k++) len += spans[2 * k + 1]!;
        encodeOutHeader(hv, 0, len, 0, unique);
        const iov = this.replyIov;
        iov.reset();
        iov.setHead(this.replyHead);
        for (let k = 0; k < n; k++) iov.addSpan(mem, spans[2 * k]!, spans[2 * k + 1]!);
        this.send(iov);
      },
      written: (n) => {
        once();
        const len = FUSE_OUT_HEADER_SIZE + FUSE_WRITE_OUT_SIZE;
        encodeOutHeader(hv, 0, len, 0, unique);
        hv.setUint32(FUSE_OUT_HEADER_SIZE, n, true);
        this.send([h.subarray(0, len)]);
      },
      ok: () => {
        once();
        encodeOutHeader(hv, 0, FUSE_OUT_HEADER_SIZE, 0, unique);
        this.send([h.subarray(0, FUSE_OUT_HEADER_SIZE)]);
      },
      error: (errno) => {
        once();
        this.replyError(unique, errno);
      },
    };
  }
}
