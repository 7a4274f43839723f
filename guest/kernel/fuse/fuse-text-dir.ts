// A FUSE filesystem whose root is a directory of read-only files generated when read, served
// by the guest kernel on its event loop: how the kernel shows the domain's /proc/meminfo,
// /proc/cpuinfo ... (guest/kernel/proc/). Each file behaves as a procfs file does: read with
// direct I/O (no page cache, so the size is never used to cut a read short), its text made
// at open and served from that snapshot at any offset, so a reader that reads in pieces
// sees one consistent file; a reader that reopens, or comes back to offset 0 on the same
// descriptor, sees fresh values (Linux's seq_file starts over at a read from 0: `free -s`,
// `top` and `vmstat` keep /proc/meminfo open and lseek to 0 for each refresh). Mode 0444
// with allow_other: every guest user can read; nobody can write.
//
// sendfile(2) is the exception: this host's FUSE splices even a direct-I/O file through the
// page cache, up to the inode's size (Linux later made it copy_splice_read, as procfs does),
// so busybox's `cat`, which uses sendfile, would print nothing of a size-0 file. So before
// answering an OPEN the snapshot is made and handed to the kernel (FUSE_NOTIFY_STORE), which
// grows i_size to its end; a size left longer by an earlier snapshot is cut back at the first
// short read, and every open without FOPEN_KEEP_CACHE drops the page cache. stat therefore
// says 0 until a file is first opened and then the size of its latest snapshot, as LXCFS's
// files do.
//
// The owner must never read these files with a blocking call on the event loop that serves
// them: the request would wait for an answer only that loop can give. Reads from libuv's
// thread pool (fs.promises) are fine.
import { closeSync, mkdirSync, openSync, constants as fsc } from 'node:fs';
import { native, type FdWatcher } from '../../../native/index.js';
import {
  decodeInHeader,
  DT_DIR,
  DT_REG,
  EACCES,
  EIO,
  encodeAttr,
  encodeOutHeader,
  ENFILE,
  ENOENT,
  ENOSYS,
  ENOTDIR,
  EPERM,
  FOPEN_DIRECT_IO,
  FUSE_ACCESS,
  FUSE_ATTR_OUT_SIZE,
  FUSE_BATCH_FORGET,
  FUSE_DESTROY,
  FUSE_DIRENT_SIZE,
  FUSE_ENTRY_OUT_SIZE,
  FUSE_FLUSH,
  FUSE_FORGET,
  FUSE_GETATTR,
  FUSE_IN_HEADER_SIZE,
  FUSE_INIT,
  FUSE_INIT_OUT_SIZE,
  FUSE_INTERRUPT,
  FUSE_KERNEL_VERSION,
  FUSE_LOOKUP,
  FUSE_MIN_READ_BUFFER,
  FUSE_NOTIFY_STORE,
  FUSE_NOTIFY_STORE_OUT_SIZE,
  FUSE_OPEN,
  FUSE_OPEN_OUT_SIZE,
  FUSE_OPENDIR,
  FUSE_OUR_MINOR,
  FUSE_OUT_HEADER_SIZE,
  FUSE_READ,
  FUSE_READDIR,
  FUSE_RELEASE,
  FUSE_RELEASEDIR,
  FUSE_ROOT_ID,
  FUSE_SETATTR,
  FUSE_STATFS,
  FUSE_STATFS_OUT_SIZE,
  IN,
  S_IFDIR,
  S_IFREG,
  type FuseInHeader,
} from './fuse-abi.js';

export interface GeneratedFile {
  name: string;
  /** The file's whole text, made at each open. */
  generate(): string | Promise<string>;
}

export interface FuseTextDirOptions {
  /** Shown in /proc/mounts as the source and as fuse.<subtype>. */
  name: string;
  subtype: string;
  log?: (msg: string) => void;
}

/** Open files at once (every guest process's, together); beyond this an open gets ENFILE. */
export const MAX_OPEN_FILES = 1024;
/** The largest text a file may have (procfs's seq_file has no fixed limit; ours is bounded). */
export const MAX_TEXT_BYTES = 4 << 20;
/** Largest READ the kernel sends (we ask for no more than its default max_pages). */
const MAX_WRITE = 4096;
/** Names and attributes never change while mounted: let the kernel cache them. */
const VALID_SECONDS = 3600n;
const BUDGET = 64;
const O_ACCMODE = 3;

interface OpenFile {
  node: number;
  text?: Promise<Uint8Array>;
  /** A READ was answered from `text`: a READ at offset 0 now makes the text again. */
  served?: boolean;
}

export class FuseTextDir {
  private fd = -1;
  private watcher: FdWatcher | null = null;
  private mounted = false;
  private closed = false;
  private readonly files: GeneratedFile[];
  private readonly byName = new Map<string, number>();
  private readonly open = new Map<bigint, OpenFile>();
  private nextFh = 1n;
  private readonly lastError = new Map<string, string>();
  private readonly rx = new Uint8Array(Math.max(FUSE_MIN_READ_BUFFER, FUSE_IN_HEADER_SIZE + 80 + MAX_WRITE) + 4096);
  private readonly rxView = new DataView(this.rx.buffer);
  private readonly ih: FuseInHeader = { len: 0, opcode: 0, unique: 0n, nodeid: 0n, uid: 0, gid: 0, pid: 0 };
  private readonly birth = Math.floor(Date.now() / 1000);
  /** Requests answered (for counters and tests). */
  requests = 0;

  constructor(
    readonly dir: string,
    files: GeneratedFile[],
    private readonly opts: FuseTextDirOptions,
  ) {
    this.files = [...files];
    // Inode 1 is the directory; file i is inode i + 2.
    this.files.forEach((f, i) => {
      if (!/^[\w.-]{1,64}$/.test(f.name) || this.byName.has(f.name)) throw new Error(`bad or repeated file name "${f.name}"`);
      this.byName.set(f.name, i + 2);
    });
  }

  /** Where a file is, in the mount namespace of whoever mounted us. */
  path(name: string): string {
    if (!this.byName.has(name)) throw new Error(`no file "${name}" in ${this.dir}`);
    return `${this.dir}/${name}`;
  }

  /** Create the mount point, mount, and start serving. */
  mount(): void {
    const n = native();
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    this.fd = openSync('/dev/fuse', fsc.O_RDWR | fsc.O_NONBLOCK);
    try {
      const data = `fd=${this.fd},rootmode=${S_IFDIR.toString(8)},user_id=0,group_id=0,allow_other,default_permissions`;
      n.mount(this.opts.name, this.dir, `fuse.${this.opts.subtype}`, n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC, data);
      this.mounted = true;
    } catch (e) {
      closeSync(this.fd);
      this.fd = -1;
      throw e;
    }
    this.watcher = n.watchFd(this.fd, () => this.drain());
    this.watcher.start(n.READABLE);
  }

  /** Abort the connection first (so nothing can wait on us any more), then unmount. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.fd >= 0) {
      closeSync(this.fd); // the last /dev/fuse fd: the kernel aborts the connection
      this.fd = -1;
    }
    if (this.mounted) {
      try {
        native().umount2(this.dir, native().MNT_DETACH);
      } catch (e) {
        this.opts.log?.(`${this.dir}: umount: ${(e as Error).message}`);
      }
      this.mounted = false;
    }
    this.open.clear();
  }

  private drain(): void {
    for (let i = 0; i < BUDGET && !this.closed; i++) {
      let got: number | null;
      try {
        got = native().read(this.fd, this.rx, 0, this.rx.length);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // interrupted before we read it
        if (code !== 'ENODEV') this.opts.log?.(`${this.dir}: read /dev/fuse: ${(e as Error).message}`);
        this.watcher?.stop();
        return;
      }
      if (got === null) return;
      if (got < FUSE_IN_HEADER_SIZE) continue;
      this.requests++;
      this.dispatch(got);
    }
  }

  private dispatch(got: number): void {
    const v = this.rxView;
    const h = decodeInHeader(v, this.ih);
    const unique = h.unique;
    const node = Number(h.nodeid);
    switch (h.opcode) {
      case FUSE_INIT:
        return this.init(unique);
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET:
      case FUSE_INTERRUPT:
        return; // no reply
      case FUSE_LOOKUP: {
        if (node !== FUSE_ROOT_ID) return this.error(unique, ENOTDIR);
        const end = this.rx.indexOf(0, IN.lookup.name);
        const name = Buffer.from(this.rx.subarray(IN.lookup.name, end < 0 || end > got ? got : end)).toString('utf8');
        const ino = this.byName.get(name);
        if (ino === undefined) return this.error(unique, ENOENT);
        const out = this.body(FUSE_ENTRY_OUT_SIZE);
        out.setBigUint64(0, BigInt(ino), true);
        out.setBigUint64(8, 0n, true); // generation
        out.setBigUint64(16, VALID_SECONDS, true); // entry_valid
        out.setBigUint64(24, VALID_SECONDS, true); // attr_valid
        this.attr(out, 40, ino);
        return this.reply(unique, out);
      }
      case FUSE_GETATTR: {
        if (!this.exists(node)) return this.error(unique, ENOENT);
        const out = this.body(FUSE_ATTR_OUT_SIZE);
        out.setBigUint64(0, VALID_SECONDS, true);
        this.attr(out, 16, node);
        return this.reply(unique, out);
      }
      case FUSE_SETATTR:
        return this.error(unique, EPERM); // as chmod/truncate of a procfs file
      case FUSE_OPENDIR:
        if (node !== FUSE_ROOT_ID) return this.error(unique, ENOTDIR);
        return this.reply(unique, this.body(FUSE_OPEN_OUT_SIZE));
      case FUSE_READDIR:
        return this.readdir(unique, Number(v.getBigUint64(IN.read.offset, true)), v.getUint32(IN.read.size, true));
      case FUSE_OPEN: {
        if (node === FUSE_ROOT_ID) return this.error(unique, EACCES);
        if (!this.exists(node)) return this.error(unique, ENOENT);
        if ((v.getUint32(IN.open.flags, true) & O_ACCMODE) !== fsc.O_RDONLY) return this.error(unique, EACCES);
        if (this.open.size >= MAX_OPEN_FILES) return this.error(unique, ENFILE);
        const fh = this.nextFh++;
        const f: OpenFile = { node, text: this.generate(node) };
        this.open.set(fh, f);
        const answer = () => {
          const out = this.body(FUSE_OPEN_OUT_SIZE);
          out.setBigUint64(0, fh, true);
          out.setUint32(8, FOPEN_DIRECT_IO, true);
          this.reply(unique, out);
        };
        // A file that cannot be made still opens: its READs get EIO, as before.
        f.text!.then((text) => (this.store(node, text), answer()), answer);
        return;
      }
      case FUSE_READ:
        return this.read(unique, v.getBigUint64(IN.read.fh, true), Number(v.getBigUint64(IN.read.offset, true)), v.getUint32(IN.read.size, true));
      case FUSE_RELEASE:
        this.open.delete(v.getBigUint64(IN.release.fh, true));
        return this.reply(unique, null);
      case FUSE_RELEASEDIR:
      case FUSE_FLUSH:
      case FUSE_ACCESS: // default_permissions: the kernel checked the mode already
      case FUSE_DESTROY:
        return this.reply(unique, null);
      case FUSE_STATFS: {
        const out = this.body(FUSE_STATFS_OUT_SIZE);
        out.setUint32(40, 4096, true); // bsize
        out.setUint32(44, 255, true); // namelen
        out.setUint32(48, 4096, true); // frsize
        return this.reply(unique, out);
      }
      default:
        return this.error(unique, ENOSYS);
    }
  }

  private exists(node: number): boolean {
    return node === FUSE_ROOT_ID || (node >= 2 && node < this.files.length + 2);
  }

  private init(unique: bigint): void {
    const v = this.rxView;
    const out = this.body(FUSE_INIT_OUT_SIZE);
    out.setUint32(0, FUSE_KERNEL_VERSION, true);
    if (v.getUint32(IN.init.major, true) !== FUSE_KERNEL_VERSION) return this.reply(unique, new DataView(out.buffer, 0, 8));
    out.setUint32(4, Math.min(v.getUint32(IN.init.minor, true), FUSE_OUR_MINOR), true);
    out.setUint32(8, 0, true); // max_readahead: nothing is cached anyway
    out.setUint32(12, 0, true); // no optional features
    out.setUint16(16, 16, true); // max_background
    out.setUint16(18, 12, true); // congestion_threshold
    out.setUint32(20, MAX_WRITE, true); // max_write (nothing is writable)
    out.setUint32(24, 1, true); // time_gran
    this.reply(unique, out);
  }

  private attr(out: DataView, at: number, node: number): void {
    const dir = node === FUSE_ROOT_ID;
    encodeAttr(out, at, {
      ino: node,
      size: 0,
      blocks: 0,
      time: this.birth,
      mode: dir ? S_IFDIR | 0o555 : S_IFREG | 0o444,
      nlink: dir ? 2 : 1,
      uid: 0,
      gid: 0,
      blksize: 4096,
    });
  }

  private readdir(unique: bigint, offset: number, size: number): void {
    const entries: [string, number, number][] = [
      ['.', FUSE_ROOT_ID, DT_DIR],
      ['..', FUSE_ROOT_ID, DT_DIR],
      ...this.files.map((f, i): [string, number, number] => [f.name, i + 2, DT_REG]),
    ];
    const parts: Buffer[] = [];
    let used = 0;
    for (let i = offset; i < entries.length; i++) {
      const [name, ino, type] = entries[i]!;
      const nameBytes = Buffer.from(name);
      const len = (FUSE_DIRENT_SIZE + nameBytes.length + 7) & ~7;
      if (used + len > size) break;
      const d = Buffer.alloc(len);
      d.writeBigUInt64LE(BigInt(ino), 0);
      d.writeBigUInt64LE(BigInt(i + 1), 8); // the offset of the next entry
      d.writeUInt32LE(nameBytes.length, 16);
      d.writeUInt32LE(type, 20);
      nameBytes.copy(d, FUSE_DIRENT_SIZE);
      parts.push(d);
      used += len;
    }
    this.send(unique, 0, parts);
  }

  private read(unique: bigint, fh: bigint, offset: number, size: number): void {
    const f = this.open.get(fh);
    if (!f) return this.error(unique, EIO);
    if (offset === 0 && f.served) f.text = undefined; // read again from the start: fresh values
    f.text ??= this.generate(f.node);
    f.served = true;
    f.text.then(
      (text) => this.send(unique, 0, [text.subarray(Math.min(offset, text.length), Math.min(offset + size, text.length))]),
      () => this.error(unique, EIO),
    );
  }

  /** Give the kernel the snapshot (see the top of this file): FUSE_NOTIFY_STORE puts it in
   * the page cache and grows i_size to its end (a store of no bytes would not grow it). */
  private store(node: number, text: Uint8Array): void {
    if (this.fd < 0 || text.length === 0) return;
    const head = new DataView(new ArrayBuffer(FUSE_OUT_HEADER_SIZE + FUSE_NOTIFY_STORE_OUT_SIZE));
    encodeOutHeader(head, 0, head.byteLength + text.length, FUSE_NOTIFY_STORE, 0n); // unique 0: a notification
    head.setBigUint64(FUSE_OUT_HEADER_SIZE, BigInt(node), true); // nodeid
    head.setBigUint64(FUSE_OUT_HEADER_SIZE + 8, 0n, true); // offset
    head.setUint32(FUSE_OUT_HEADER_SIZE + 16, text.length, true); // size
    try {
      native().writev(this.fd, [new Uint8Array(head.buffer), text]);
    } catch (e) {
      // ENOENT: the inode is already forgotten. sendfile then reads nothing; read(2) still works.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENODEV') this.opts.log?.(`${this.dir}: notify store: ${(e as Error).message}`);
    }
  }

  private async generate(node: number): Promise<Uint8Array> {
    const file = this.files[node - 2]!;
    try {
      const text = Buffer.from(await file.generate());
      if (text.length > MAX_TEXT_BYTES) throw new Error(`${text.length} bytes is more than ${MAX_TEXT_BYTES}`);
      return text;
    } catch (e) {
      // Once per new reason: a reader looping on a broken file must not flood the console.
      const why = (e as Error).message;
      if (this.lastError.get(file.name) !== why) this.opts.log?.(`${this.dir}/${file.name}: ${why}`);
      this.lastError.set(file.name, why);
      throw e;
    }
  }

  /** A zeroed reply body of `len` bytes. */
  private body(len: number): DataView {
    return new DataView(new ArrayBuffer(len));
  }

  private reply(unique: bigint, body: DataView | null): void {
    this.send(unique, 0, body ? [new Uint8Array(body.buffer, body.byteOffset, body.byteLength)] : []);
  }

  private error(unique: bigint, errno: number): void {
    this.send(unique, -errno, []);
  }

  private send(unique: bigint, error: number, parts: Uint8Array[]): void {
    if (this.fd < 0) return;
    const head = new Uint8Array(FUSE_OUT_HEADER_SIZE);
    let len = FUSE_OUT_HEADER_SIZE;
    for (const p of parts) len += p.length;
    encodeOutHeader(new DataView(head.buffer), 0, len, error, unique);
    try {
      native().writev(this.fd, [head, ...parts]);
    } catch (e) {
      // ENOENT: the request was interrupted and is gone; ENODEV: aborted. Neither is ours to fix.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENODEV') this.opts.log?.(`${this.dir}: reply: ${(e as Error).message}`);
    }
  }
}
