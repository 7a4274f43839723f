// The project's native addon: the host primitives Node cannot reach alone (see
// ../shared/reference/host-primitives.md). Every function here is a thin, synchronous wrapper
// over one or two syscalls; all policy lives in TypeScript.
//
// Errors: a failing syscall throws an Error whose `code` is the errno name ("EBADF", ...)
// and whose message names the call, e.g. "memfd_create: EMFILE". Non-blocking reads and
// writes that would block return null instead of throwing.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FdWatcher {
  /** Start (or change) watching; `events` is a mask of READABLE | WRITABLE. */
  start(events: number): void;
  /** Stop watching; start() may be called again. */
  stop(): void;
  /** Stop and release the uv_poll handle (the fd itself is NOT closed). */
  close(): void;
}

export interface PtyPair {
  master: number;
  slave: number;
  /** e.g. "/dev/pts/7" */
  path: string;
}

export interface RecvResult {
  /** Bytes received into the buffer; 0 means the peer closed. */
  bytes: number;
  /** File descriptors carried by SCM_RIGHTS (already owned by this process). */
  fds: number[];
}

export interface NativeAddon {
  // ---- memory ----
  /** memfd_create(name, MFD_CLOEXEC) + ftruncate(size). Sparse: pages are allocated on touch. */
  memfdCreate(name: string, size: number): number;
  /** mmap(MAP_SHARED) of [offset, offset+length) of fd, wrapped as a SharedArrayBuffer whose
   * deleter munmaps. The buffer can be posted to worker threads. */
  mapShared(fd: number, length: number, offset?: number): SharedArrayBuffer;
  /** fstat(fd).st_size */
  fdSize(fd: number): number;

  // ---- futex (shared, NOT FUTEX_PRIVATE_FLAG: works across processes on a memfd) ----
  /** Block the calling thread while view[index] === expected. Returns "ok" (woken),
   * "not-equal" (value differed on entry) or "timed-out". timeoutMs < 0 waits forever. */
  futexWait(view: Int32Array, index: number, expected: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out';
  /** Wake up to `count` waiters on view[index]; returns how many were woken. */
  futexWake(view: Int32Array, index: number, count: number): number;

  // ---- eventfd ----
  /** eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK). */
  eventfdCreate(initval?: number): number;
  /** Add `value` (default 1) to the counter. */
  eventfdWrite(fd: number, value?: number): void;
  /** Read and reset the counter; returns 0 if it was 0 (would block). */
  eventfdRead(fd: number): number;

  // ---- fd readiness on the current event loop (uv_poll) ----
  /** Watch `fd` on the calling thread's libuv loop. The callback runs with the events that
   * fired (READABLE/WRITABLE) or a negative errno. Level-triggered: drain in the callback. */
  watchFd(fd: number, callback: (events: number) => void): FdWatcher;
  /** Blocking poll(2) of one fd for readability, for worker threads that may block.
   * Returns true when readable, false on timeout. */
  pollReadable(fd: number, timeoutMs: number): boolean;
  READABLE: number;
  WRITABLE: number;

  // ---- plain fd I/O (non-blocking fds return null on EAGAIN) ----
  read(fd: number, buf: Uint8Array, offset: number, length: number): number | null;
  write(fd: number, buf: Uint8Array, offset: number, length: number): number | null;
  /** writev of several buffers in one syscall (a vnet header plus a frame, say). */
  writev(fd: number, bufs: Uint8Array[]): number | null;
  close(fd: number): void;
  setNonblocking(fd: number, on: boolean): void;
  setCloexec(fd: number, on: boolean): void;
  /** dup(fd) with O_CLOEXEC. */
  dup(fd: number): number;

  // ---- unix sockets with SCM_RIGHTS ----
  /** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK). Message boundaries kept. */
  seqpacketPair(): [number, number];
  /** sendmsg of one datagram carrying `fds` as SCM_RIGHTS. Returns null on EAGAIN. */
  sendMsg(fd: number, buf: Uint8Array, fds: number[]): number | null;
  /** recvmsg of one datagram; null on EAGAIN. Received fds are made O_CLOEXEC. */
  recvMsg(fd: number, buf: Uint8Array): RecvResult | null;

  // ---- TAP ----
  /** open /dev/net/tun + TUNSETIFF(IFF_TAP|IFF_NO_PI[|IFF_VNET_HDR]); with vnetHdr also
   * TUNSETVNETHDRSZ(12) and TUNSETOFFLOAD(offloads). The fd is O_NONBLOCK|O_CLOEXEC.
   * Returns the fd and the name the kernel gave. */
  tapOpen(name: string, vnetHdr: boolean, offloads: number): { fd: number; name: string };
  /** TUNSETOFFLOAD on an open TAP fd. */
  tapSetOffload(fd: number, offloads: number): void;
  TUN_F_CSUM: number;
  TUN_F_TSO4: number;
  TUN_F_TSO6: number;
  TUN_F_TSO_ECN: number;

  // ---- pseudo-terminals ----
  /** posix_openpt + grantpt + unlockpt + open(ptsname). Both fds O_CLOEXEC; the master is
   * O_NONBLOCK. The slave is put in raw mode when `raw` is true. */
  openpty(raw: boolean): PtyPair;
  setWinsize(fd: number, rows: number, cols: number): void;
  getWinsize(fd: number): { rows: number; cols: number };
  /** Put a terminal fd into raw mode; returns an opaque saved state for restoreTermios. */
  makeRaw(fd: number): Uint8Array;
  restoreTermios(fd: number, saved: Uint8Array): void;

  // ---- processes ----
  /** kill(pid, sig) returning false on ESRCH instead of throwing. */
  kill(pid: number, sig: number): boolean;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Where node-gyp put the build, whether we run from the source tree (native/) or from dist/native/. */
export function nativeBuildDir(): string {
  const override = process.env.XENODE_NATIVE_DIR;
  if (override) return override;
  const candidates = [join(here, '..', 'build', 'Release'), join(here, '..', '..', 'build', 'Release')];
  for (const c of candidates) if (existsSync(join(c, 'xenode.node'))) return c;
  throw new Error(
    `xenode native addon not built: none of ${candidates.join(', ')} holds xenode.node; run "npm install" (node-gyp rebuild)`,
  );
}

/** Path of the jailer executable (native/jailer.c) that builds a domain's sandbox. */
export function jailerPath(): string {
  return join(nativeBuildDir(), 'xenode-jailer');
}

let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(join(nativeBuildDir(), 'xenode.node')) as NativeAddon;
  }
  return cached;
}
