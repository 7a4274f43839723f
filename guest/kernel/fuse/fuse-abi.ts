// The FUSE kernel protocol (include/uapi/linux/fuse.h), the part xenode's servers need (one
// file for a disk, a directory of generated read-only files for /proc):
// opcodes, flags and the byte layouts of the structs it reads and writes. Little-endian,
// as the kernel writes them on x86_64. Pure constants and codecs; no I/O.

export const FUSE_KERNEL_VERSION = 7;
/** The protocol minor we speak. 31 (Linux 5.4) has everything used here: max_pages and
 * the 64-byte fuse_init_out. The kernel talks down to whatever we answer in INIT. */
export const FUSE_OUR_MINOR = 31;
export const FUSE_ROOT_ID = 1;
/** The smallest read buffer /dev/fuse accepts. */
export const FUSE_MIN_READ_BUFFER = 8192;

// ---- opcodes ----
export const FUSE_LOOKUP = 1;
export const FUSE_FORGET = 2; // no reply
export const FUSE_GETATTR = 3;
export const FUSE_SETATTR = 4;
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_WRITE = 16;
export const FUSE_STATFS = 17;
export const FUSE_RELEASE = 18;
export const FUSE_FSYNC = 20;
export const FUSE_SETXATTR = 21;
export const FUSE_GETXATTR = 22;
export const FUSE_LISTXATTR = 23;
export const FUSE_REMOVEXATTR = 24;
export const FUSE_FLUSH = 25;
export const FUSE_INIT = 26;
export const FUSE_OPENDIR = 27;
export const FUSE_READDIR = 28;
export const FUSE_RELEASEDIR = 29;
export const FUSE_ACCESS = 34;
export const FUSE_INTERRUPT = 36; // no reply
export const FUSE_DESTROY = 38;
export const FUSE_IOCTL = 39;
export const FUSE_POLL = 40;
export const FUSE_BATCH_FORGET = 42; // no reply
export const FUSE_FALLOCATE = 43;
export const FUSE_LSEEK = 46;
export const FUSE_SYNCFS = 50;

// ---- INIT flags ----
export const FUSE_ASYNC_READ = 1 << 0;
export const FUSE_ATOMIC_O_TRUNC = 1 << 3;
export const FUSE_BIG_WRITES = 1 << 5;
export const FUSE_ASYNC_DIO = 1 << 15;
export const FUSE_PARALLEL_DIROPS = 1 << 18;
export const FUSE_MAX_PAGES = 1 << 22;

// ---- open flags (fuse_open_out.open_flags) ----
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;

// ---- setattr valid bits ----
export const FATTR_MODE = 1 << 0;
export const FATTR_SIZE = 1 << 3;

export const FUSE_FSYNC_FDATASYNC = 1 << 0;

// ---- sizes ----
export const FUSE_IN_HEADER_SIZE = 40;
export const FUSE_OUT_HEADER_SIZE = 16;
/** A notification the filesystem sends unasked (unique 0, the code in the error field):
 * fuse_notify_store_out { nodeid, offset, size, padding } and then `size` bytes of data. */
export const FUSE_NOTIFY_STORE = 4;
export const FUSE_NOTIFY_STORE_OUT_SIZE = 24;
export const FUSE_ATTR_SIZE = 88;
export const FUSE_ATTR_OUT_SIZE = 16 + FUSE_ATTR_SIZE; // 104
export const FUSE_INIT_OUT_SIZE = 64;
export const FUSE_OPEN_OUT_SIZE = 16;
/** fuse_entry_out: nodeid, generation, entry_valid, attr_valid, their nsecs, then the attr. */
export const FUSE_ENTRY_OUT_SIZE = 40 + FUSE_ATTR_SIZE; // 128
/** fuse_dirent without its name: ino, off, namelen, type. */
export const FUSE_DIRENT_SIZE = 24;
export const FUSE_WRITE_OUT_SIZE = 8;
export const FUSE_STATFS_OUT_SIZE = 80;
/** in_header + fuse_write_in: where a WRITE's data starts. */
export const FUSE_WRITE_DATA_OFFSET = FUSE_IN_HEADER_SIZE + 40;

// ---- errno values the server answers with (negated in the reply) ----
export const EPERM = 1;
export const ENOTDIR = 20;
export const ENFILE = 23;
export const ENOENT = 2;
export const EIO = 5;
export const EACCES = 13;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EROFS = 30;
export const ENOSYS = 38;
export const ENOTTY = 25;
export const EOPNOTSUPP = 95;
export const ENOMEDIUM = 123;

export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
/** d_type values of a dirent. */
export const DT_DIR = 4;
export const DT_REG = 8;

/** struct fuse_in_header, decoded. */
export interface FuseInHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(v: DataView, into: FuseInHeader): FuseInHeader {
  into.len = v.getUint32(0, true);
  into.opcode = v.getUint32(4, true);
  into.unique = v.getBigUint64(8, true);
  into.nodeid = v.getBigUint64(16, true);
  into.uid = v.getUint32(24, true);
  into.gid = v.getUint32(28, true);
  into.pid = v.getUint32(32, true);
  return into;
}

export function encodeOutHeader(v: DataView, o: number, len: number, error: number, unique: bigint): void {
  v.setUint32(o, len, true);
  v.setInt32(o + 4, error, true);
  v.setBigUint64(o + 8, unique, true);
}

export interface FuseAttr {
  ino: number;
  size: number;
  blocks: number;
  /** Seconds since the epoch for atime/mtime/ctime. */
  time: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  blksize: number;
}

/** struct fuse_attr (88 B) at `o`. */
export function encodeAttr(v: DataView, o: number, a: FuseAttr): void {
  v.setBigUint64(o, BigInt(a.ino), true);
  v.setBigUint64(o + 8, BigInt(a.size), true);
  v.setBigUint64(o + 16, BigInt(a.blocks), true);
  v.setBigUint64(o + 24, BigInt(a.time), true); // atime
  v.setBigUint64(o + 32, BigInt(a.time), true); // mtime
  v.setBigUint64(o + 40, BigInt(a.time), true); // ctime
  v.setUint32(o + 48, 0, true);
  v.setUint32(o + 52, 0, true);
  v.setUint32(o + 56, 0, true);
  v.setUint32(o + 60, a.mode, true);
  v.setUint32(o + 64, a.nlink, true);
  v.setUint32(o + 68, a.uid, true);
  v.setUint32(o + 72, a.gid, true);
  v.setUint32(o + 76, 0, true); // rdev
  v.setUint32(o + 80, a.blksize, true);
  v.setUint32(o + 84, 0, true); // flags
}

/** Byte offsets of request bodies, relative to the start of the request. */
export const IN = {
  init: { major: 40, minor: 44, maxReadahead: 48, flags: 52 },
  open: { flags: 40 },
  /** LOOKUP's body is the name, NUL-terminated. */
  lookup: { name: 40 },
  release: { fh: 40 },
  read: { fh: 40, offset: 48, size: 56, readFlags: 60, flags: 72 },
  write: { fh: 40, offset: 48, size: 56, writeFlags: 60, flags: 72 },
  fsync: { fh: 40, fsyncFlags: 48 },
  setattr: { valid: 40, size: 56, mode: 108 },
  access: { mask: 40 },
} as const;
