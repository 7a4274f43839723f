// The project's native addon: the host primitives Node cannot reach alone (memfd memory shared
// as SharedArrayBuffers, futexes, eventfd doorbells, SCM_RIGHTS, TAPs, ptys, mounts). Every function here is a thin, synchronous wrapper
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

/** A segment register as KVM_GET_SREGS/KVM_SET_SREGS carry it. */
export interface KvmSegment {
  base: bigint | number;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

export interface KvmSregs {
  cs: KvmSegment; ds: KvmSegment; es: KvmSegment; fs: KvmSegment; gs: KvmSegment; ss: KvmSegment;
  tr: KvmSegment; ldt: KvmSegment;
  gdt: { base: bigint | number; limit: number };
  idt: { base: bigint | number; limit: number };
  cr0: bigint | number; cr2: bigint | number; cr3: bigint | number; cr4: bigint | number; cr8: bigint | number;
  efer: bigint | number;
  apicBase: bigint | number;
}

export type KvmRegName = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi' | 'rsp' | 'rbp' | 'r8' | 'r9' | 'r10' | 'r11'
  | 'r12' | 'r13' | 'r14' | 'r15' | 'rip' | 'rflags';

export interface KvmVcpuStats {
  id: number;
  /** Thread that last ran the vCPU (0 before its first run). */
  tid: number;
  inRun: boolean;
  /** That thread's CPU time, or -1 once it is gone. */
  cpuNs: number;
  runs: number;
  /** Port I/O and MMIO exits handed to user space (device model or engine). */
  io: number;
  mmio: number;
  /** Exits answered in C++ by the null handler (unclaimed ports/addresses). */
  nullIo: number;
  nullMmio: number;
  interrupted: number;
  other: number;
  ioBytes: number;
}

/** /dev/kvm, as native/kvm.cc exposes it. VMs and vCPUs are process-wide integer handles,
 * usable from any thread. Only kick() and vcpuStats() may be called on a vCPU while another
 * thread is inside run() for it. */
/** io_uring for disk I/O into one registered memory (native/uring.cc). */
export interface UringAddon {
  /** A ring of `entries` (rounded up to a power of two) with `mem` registered as its fixed
   * buffer (pinned until close). Throws when the kernel lacks io_uring or READV_FIXED. */
  open(entries: number, mem: Uint8Array, done?: (err: Error | null) => void): { handle: number; eventfd: number; entries: number };
  /** Queue a preadv/pwritev of spans of the registered memory ((offset, length) pairs, the
   * first n) at `pos`; it starts at the next flush() (or reap()); the result comes from
   * reap() with `token`. Throws EBUSY when `entries` requests are in flight. */
  submit(handle: number, write: boolean, fd: number, segs: Float64Array, n: number, pos: number, token: number): void;
  /** Start everything queued, with one io_uring_enter; returns how many the kernel did not
   * take now (EAGAIN/EBUSY: out of resources until some complete), to be flushed again. */
  flush(handle: number): number;
  /** Completed requests as (token, bytes or -errno) pairs in `out`; returns how many. */
  reap(handle: number, out: Float64Array): number;
  close(handle: number): void;
}

export interface KvmAddon {
  /** Is /dev/kvm usable with what the engine needs? `reason` says why not, plainly. */
  available(): { ok: boolean; reason: string; maxVcpus?: number; irqfd?: number };
  /** KVM_CREATE_VM + TSS/identity-map pages + in-kernel irqchip (PIC, IOAPIC, LAPICs) + PIT,
   * and an mmap of [0, memBytes) of the domain's memfd for mapMemory(). */
  createVm(memfd: number, memBytes: number): number;
  /** KVM_SET_USER_MEMORY_REGION: guest-physical [guestPhys, +size) = memfd [memOffset, +size). */
  mapMemory(vm: number, slot: number, guestPhys: number | bigint, memOffset: number | bigint, size: number | bigint): void;
  /** Drop the VM handle (the VM itself goes when its last vCPU is destroyed too). */
  destroyVm(vm: number): void;
  /** KVM_IRQ_LINE: set GSI `irq` (PIC + IOAPIC pins 0-15, IOAPIC 16-23) to `level`. */
  irqLine(vm: number, irq: number, level: 0 | 1): void;
  /** KVM_IRQFD: writes to `eventfd` raise `gsi` in the kernel; with resampleFd, level-triggered. */
  irqfd(vm: number, eventfd: number, gsi: number, resampleFd?: number, deassign?: boolean): void;
  /** Ports the device model claims (8192-byte bitmap, bit set = forward); null = all. Others
   * get Xen's null handler in C++: reads all ones, writes dropped. */
  setPioForward(vm: number, bitmap: Uint8Array | null): void;
  /** MMIO ranges the device model claims, [start, end) pairs; null = all. */
  setMmioForward(vm: number, ranges: Float64Array | null): void;
  /** KVM_CREATE_VCPU + kvm_run mmap + CPUID (host-supported, topology of nrVcpus cores) +
   * LAPIC LINT0 ExtINT / LINT1 NMI. vCPU 0 boots; the others wait for INIT/SIPI.
   * cpuidClear: (leaf, index, reg 0-3 = eax-edx, bits) quadruples of feature bits to hide. */
  createVcpu(vm: number, id: number, nrVcpus?: number, cpuidClear?: Uint32Array | null): number;
  /** Throws EBUSY while a thread is inside run() (kick it first). */
  destroyVcpu(vcpu: number): void;
  getRegs(vcpu: number): Record<KvmRegName, bigint>;
  setRegs(vcpu: number, regs: Partial<Record<KvmRegName, bigint | number>>): void;
  getSregs(vcpu: number): KvmSregs;
  setSregs(vcpu: number, sregs: Partial<KvmSregs>): void;
  setFpu(vcpu: number, fpu: { fcw?: number; fsw?: number; ftwx?: number; mxcsr?: number }): void;
  setMsrs(vcpu: number, msrs: Array<[number, number | bigint]>): void;
  /** Queue exception `vector` (with an error code unless -1/omitted) for the next entry. */
  injectException(vcpu: number, vector: number, errorCode?: number): void;
  /** Complete the previous exit from `exitRecord` (IN / MMIO-read data at byte 64), then
   * KVM_RUN until an exit user space must see; returns its EXIT_* type. Blocks the calling
   * thread (a vCPU worker). Layout: hypervisor/kvm/kvm.ts. */
  run(vcpu: number, exitRecord: Uint8Array): number;
  /** Make run() return EXIT_INTERRUPTED now (or at its next call). True if it was inside. */
  kick(vcpu: number): boolean;
  vcpuStats(vcpu: number): KvmVcpuStats;
  /** native/kvm-state.cc: a paused vCPU's whole state as KVM's structs in a record list
   * (common/kvm-state-codec.ts reads it), and back. */
  saveVcpu(vcpu: number): Uint8Array;
  loadVcpu(vcpu: number, state: Uint8Array): { msrsSkipped: number };
  /** The in-kernel PIC pair, IOAPIC, PIT and kvmclock, and back. */
  saveVm(vm: number): Uint8Array;
  loadVm(vm: number, state: Uint8Array): void;
  /** Re-register a memory slot with or without KVM_MEM_LOG_DIRTY_PAGES. */
  setDirtyLogging(vm: number, slot: number, guestPhys: number, memOffset: number, size: number, on: boolean): void;
  /** KVM_GET_DIRTY_LOG: bit n = page n of the slot written since the last call. */
  getDirtyLog(vm: number, slot: number, bitmap: Uint8Array): void;
  EXIT_NONE: number;
  EXIT_IO: number;
  EXIT_MMIO: number;
  EXIT_SHUTDOWN: number;
  EXIT_INTERNAL_ERROR: number;
  EXIT_FAIL_ENTRY: number;
  EXIT_INTERRUPTED: number;
  EXIT_HLT: number;
  EXIT_SYSTEM_EVENT: number;
  EXIT_UNKNOWN: number;
  EXIT_RECORD_BYTES: number;
  KICK_SIGNAL: number;
}

export interface NativeAddon {
  // ---- memory ----
  /** memfd_create(name, MFD_CLOEXEC) + ftruncate(size). Sparse: pages are allocated on touch. */
  memfdCreate(name: string, size: number): number;
  /** A file for guest RAM on a detached tmpfs of its own with huge=within_size (2 MiB pages
   * when the host has them); throws when the kernel cannot (fall back to memfdCreate). */
  hugeRamCreate(name: string, size: number): number;
  /** mmap(MAP_SHARED) of [offset, offset+length) of fd, wrapped as a SharedArrayBuffer whose
   * deleter munmaps. The buffer can be posted to worker threads. */
  mapShared(fd: number, length: number, offset?: number): SharedArrayBuffer;
  /** fstat(fd).st_size */
  fdSize(fd: number): number;

  // ---- futex (shared, NOT FUTEX_PRIVATE_FLAG: works across processes on a memfd) ----
  /** Block the calling thread while view[index] === expected. Returns "ok" (woken),
   * "not-equal" (value differed on entry) or "timed-out". timeoutMs < 0 waits forever. */
  futexWait(view: Int32Array, index: number, expected: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out';
  /** Spin (yielding the CPU each turn) until view[index] != expected (1), fd is readable (2;
   * -1 for none) or maxUs (at most 10 ms) pass (0). */
  busyPoll(view: Int32Array, index: number, expected: number, fd: number, maxUs: number): 0 | 1 | 2;
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
  /** readv into several buffers in one syscall (a vnet header, then the pages a frame lands in). */
  readv(fd: number, bufs: Uint8Array[]): number | null;
  /** readv into `head`, then spans of `mem` given as (offset, length) pairs in `segs` (the
   * first `n`): a frame straight into guest pages without a view per page. */
  readvSegs(fd: number, head: Uint8Array | null, mem: Uint8Array, segs: Float64Array, n: number): number | null;
  /** writev from `head`, `head2` (either may be null), then spans of `mem` as in readvSegs. */
  writevSegs(fd: number, head: Uint8Array | null, head2: Uint8Array | null, mem: Uint8Array, segs: Float64Array, n: number): number | null;
  /** preadv/pwritev of spans of `mem` (as in readvSegs) at file position `pos`, until every
   * byte moved: returns the bytes moved (fewer only at the end of the file) or throws. */
  preadvSegs(fd: number, mem: Uint8Array, segs: Float64Array, n: number, pos: number): number;
  pwritevSegs(fd: number, mem: Uint8Array, segs: Float64Array, n: number, pos: number): number;
  /** The same on libuv's thread pool: `done` gets the bytes moved or -errno. */
  preadvSegsAsync(fd: number, mem: Uint8Array, segs: Float64Array, n: number, pos: number, done: (result: number) => void): void;
  pwritevSegsAsync(fd: number, mem: Uint8Array, segs: Float64Array, n: number, pos: number, done: (result: number) => void): void;
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
  /** The same TUNSETIFF (+ vnet header and offloads) on a /dev/net/tun fd opened elsewhere: the
   * TAP is created in the network namespace of whoever opened the fd (a guest kernel gets such
   * fds from its jailer). The fd is made O_NONBLOCK | O_CLOEXEC. */
  tapAttach(fd: number, name: string, vnetHdr: boolean, offloads: number): { fd: number; name: string };
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

  // ---- mounts (in the caller's mount namespace) ----
  /** mount(2); `data` is the filesystem's option string. */
  mount(source: string, target: string, fstype: string, flags?: number, data?: string): void;
  /** umount2(2). */
  umount2(target: string, flags?: number): void;
  MS_RDONLY: number;
  MS_NOSUID: number;
  MS_NODEV: number;
  MS_NOEXEC: number;
  MS_BIND: number;
  MNT_DETACH: number;

  // ---- processes ----
  /** kill(pid, sig) returning false on ESRCH instead of throwing. */
  kill(pid: number, sig: number): boolean;
  /** sched_setaffinity(tid, cpus) for one thread (0: the caller); false if it is gone. */
  setAffinity(tid: number, cpus: number[]): boolean;
  /** waitpid(pid, WNOHANG): true when that exited child was collected (PID 1 reaping orphans). */
  reap(pid: number): boolean;
  /** prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants become this process's children. */
  setChildSubreaper(): void;

  // ---- io_uring (native/uring.cc): blkback's disk I/O into a frontend's registered memory ----
  uring: UringAddon;

  // ---- KVM (native/kvm.cc; the engine around it is hypervisor/kvm/, see docs/kvm.md) ----
  kvm: KvmAddon;
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
