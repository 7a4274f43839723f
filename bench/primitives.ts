// Host primitives (npm run bench:primitives): what each of the native addon's primitives
// (native/*.cc, contract in native/index.ts) costs on this host, measured one at a time:
// memory, futexes, eventfds, fd watching, fd and disk I/O, SCM_RIGHTS, TAPs, ptys, processes.
// The cross-process wake-ups use a child process (bench/lib/native-pingpong.ts); the TAP rows
// run in a child in a network namespace of its own (bench/lib/tap-child.ts), so no interface
// ever appears on the host. Root is needed only for hugeRamCreate and the TAP rows, which say
// why they are missing without it. Every loop is bounded in count and time (about 30 s in
// all). Prints a table and writes JSON to bench/results/; docs/host-primitives.md says what
// each primitive is for and holds the results.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../native/index.js';
import { UringIo } from '../dom0/backends/blkback/uring-io.js';
import { futexPingPong, eventfdPingPong, type PingPong } from './lib/native-pingpong.js';
import { killAll } from './lib/children.js';
import { ROOT } from './lib/instance.js';
import { summarise, fmt, table, type Summary } from './lib/stats.js';

const n = native();
const QUICK = process.env.BENCH_QUICK === '1';
/** Each row: at most this many timed samples, and at most this long. */
const SAMPLES = QUICK ? 200 : 2000;
const ROW_MS = QUICK ? 300 : 1500;
const PINGPONG = { iterations: QUICK ? 300 : 2000, warmup: 200, timeoutMs: 15_000 };
const KiB = 1024;
const MiB = 1024 * KiB;

interface Row {
  group: string;
  what: string;
  unit: 'ns' | 'us' | 'ms';
  /** Per operation, in `unit`. */
  summary: Summary | null;
  /** Why there is no measurement, or what the number means beyond its name. */
  note: string;
}
const rows: Row[] = [];

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

const toUnit = { ns: 1e9, us: 1e6, ms: 1e3 } as const;

/** Times `op` (`batch` calls per sample) until SAMPLES samples or ROW_MS pass. */
function measure(group: string, what: string, unit: Row['unit'], op: () => void, batch = 1, note = ''): Summary {
  for (let i = 0; i < Math.min(50, SAMPLES); i++) for (let b = 0; b < batch; b++) op(); // warm-up
  const samples: number[] = [];
  const end = performance.now() + ROW_MS;
  while (samples.length < SAMPLES && performance.now() < end) {
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < batch; b++) op();
    samples.push((Number(process.hrtime.bigint() - t0) / 1e9 / batch) * toUnit[unit]);
  }
  const summary = summarise(samples);
  rows.push({ group, what, unit, summary, note });
  return summary;
}

/** The same for an operation that completes through the event loop. */
async function measureAsync(group: string, what: string, unit: Row['unit'], op: () => Promise<void>, note = ''): Promise<void> {
  for (let i = 0; i < Math.min(50, SAMPLES); i++) await op();
  const samples: number[] = [];
  const end = performance.now() + ROW_MS;
  while (samples.length < SAMPLES && performance.now() < end) {
    const t0 = process.hrtime.bigint();
    await op();
    samples.push((Number(process.hrtime.bigint() - t0) / 1e9) * toUnit[unit]);
  }
  rows.push({ group, what, unit, summary: summarise(samples), note });
}

function missing(group: string, what: string, unit: Row['unit'], why: string): void {
  rows.push({ group, what, unit, summary: null, note: why });
}

const isRoot = process.getuid?.() === 0;

/** `size` bytes of fresh shared memory (the memfd is closed: the mapping keeps it). */
function mapped(name: string, size: number): SharedArrayBuffer {
  const fd = n.memfdCreate(name, size);
  try {
    return n.mapShared(fd, size);
  } finally {
    n.close(fd);
  }
}

// ---------------------------------------------------------------------------- memory

function memory(): void {
  measure('memory', 'memfdCreate(1 MiB) + close', 'us', () => n.close(n.memfdCreate('bench', MiB)));
  const fd = n.memfdCreate('bench-map', MiB);
  measure('memory', 'mapShared(1 MiB)', 'us', () => void n.mapShared(fd, MiB), 1, 'unmapped when the SharedArrayBuffer is collected');
  n.close(fd);
  firstTouch('memfd', (size) => n.memfdCreate('bench-touch', size));
  if (!isRoot) missing('memory', 'first touch, huge-page RAM file, per MiB', 'us', 'needs root (fsopen/fsmount)');
  else firstTouch('huge-page RAM file', (size) => n.hugeRamCreate('bench-huge', size));
}

/** Writes one byte per 4 KiB page of fresh memory: the page faults a guest's first use costs. */
function firstTouch(kind: string, create: (size: number) => number): void {
  const size = 64 * MiB;
  const samples: number[] = [];
  const end = performance.now() + ROW_MS * 2;
  while (samples.length < (QUICK ? 3 : 10) && performance.now() < end) {
    let fd: number;
    try {
      fd = create(size);
    } catch (e) {
      return missing('memory', `first touch, ${kind}, per MiB`, 'us', (e as Error).message);
    }
    const mem = new Uint8Array(n.mapShared(fd, size));
    n.close(fd);
    const t0 = process.hrtime.bigint();
    for (let off = 0; off < size; off += 4096) mem[off] = 1;
    samples.push(Number(process.hrtime.bigint() - t0) / 1e3 / (size / MiB));
  }
  rows.push({ group: 'memory', what: `first touch, ${kind}, per MiB`, unit: 'us', summary: summarise(samples), note: '64 MiB files, one write per 4 KiB page' });
}

// ---------------------------------------------------------------------------- futex, eventfd, watch

/** Round trips with a child process (bench/lib/native-pingpong.ts). */
async function roundTrips(group: string, what: string, note: string, start: (maxMs: number) => Promise<PingPong>): Promise<void> {
  const pp = await start(PINGPONG.timeoutMs + 10_000);
  try {
    const s = summarise(await pp.run(PINGPONG.iterations, PINGPONG.warmup, PINGPONG.timeoutMs));
    rows.push({ group, what, unit: 'us', summary: s, note });
  } finally {
    pp.close();
  }
}

async function wakeups(): Promise<void> {
  const v = new Int32Array(mapped('bench-futex', 4096));
  measure('futex', 'futexWake, nobody waiting', 'ns', () => void n.futexWake(v, 0, 1), 100);
  measure('futex', 'futexWait, word already changed', 'ns', () => void n.futexWait(v, 0, 1, 0), 100, "returns 'not-equal' at once");
  measure('futex', 'busyPoll, word already changed', 'ns', () => void n.busyPoll(v, 0, 1, -1, 10), 100);

  await roundTrips('futex', 'wake round trip to another process', 'both sides blocked in futexWait', futexPingPong);

  const efd = n.eventfdCreate(0);
  measure('eventfd', 'eventfdWrite + eventfdRead', 'ns', () => (n.eventfdWrite(efd, 1), void n.eventfdRead(efd)), 100);
  await roundTrips('eventfd', 'doorbell round trip to another process', 'watchFd (uv_poll) on both event loops', eventfdPingPong);

  n.eventfdWrite(efd, 1);
  measure('fd watch', 'pollReadable, fd ready', 'ns', () => void n.pollReadable(efd, 0), 100);
  void n.eventfdRead(efd);
  let woken: (() => void) | null = null;
  const w = n.watchFd(efd, () => {
    void n.eventfdRead(efd);
    woken?.();
  });
  w.start(n.READABLE);
  try {
    await measureAsync('fd watch', 'watchFd: eventfdWrite to callback, same process', 'us', () => new Promise<void>((res) => ((woken = res), n.eventfdWrite(efd, 1))));
  } finally {
    w.close();
    n.close(efd);
  }
}

// ---------------------------------------------------------------------------- fd I/O, sockets

function frames(): Promise<void> {
  const [a, b] = n.seqpacketPair();
  const frame = new Uint8Array(1514);
  const into = new Uint8Array(65536 + 12);
  measure('fd I/O', 'write + read, one 1514-byte frame', 'us', () => (n.write(a, frame, 0, frame.length), void n.read(b, into, 0, into.length)), 10, 'over a seqpacket pair (frame boundaries kept)');

  // netback's per-frame case: a 12-byte vnet header and the frame from spans of guest memory.
  const mem = new Uint8Array(mapped('bench-mem', MiB));
  const head = new Uint8Array(12);
  const one = new Float64Array([8192, 1514]);
  measure('fd I/O', 'writevSegs + readvSegs, header + 1 span (1514 B)', 'us', () => (n.writevSegs(a, head, null, mem, one, 1), void n.readvSegs(b, head, mem, one, 1)), 10);
  const sixteen = new Float64Array(32);
  for (let i = 0; i < 16; i++) (sixteen[2 * i] = (2 * i + 1) * 4096), (sixteen[2 * i + 1] = 4096);
  measure('fd I/O', 'writevSegs + readvSegs, header + 16 pages (64 KiB)', 'us', () => (n.writevSegs(a, head, null, mem, sixteen, 16), void n.readvSegs(b, head, mem, sixteen, 16)), 10);

  const msg = new Uint8Array(64);
  measure('unix sockets', 'sendMsg + recvMsg, 64 B', 'us', () => (n.sendMsg(a, msg, []), void n.recvMsg(b, into)), 10);
  const passed = n.eventfdCreate(0);
  measure('unix sockets', 'sendMsg + recvMsg, 64 B and one fd', 'us', () => {
    n.sendMsg(a, msg, [passed]);
    for (const fd of n.recvMsg(b, into)!.fds) n.close(fd);
  }, 10, 'includes closing the received fd');
  n.close(passed);
  n.close(a);
  n.close(b);
  return disk(mem);
}

/** blkback's three ways to a disk image: in place, the thread pool, io_uring. Page cache, not
 * O_DIRECT: this is the primitive's cost, not the disk's (bench:block measures disks). */
async function disk(mem: Uint8Array): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-bench-prim-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, new Uint8Array(4 * MiB));
  const fd = openSync(path, 'r+');
  try {
    const spans = new Float64Array(32);
    for (let i = 0; i < 16; i++) (spans[2 * i] = i * 8192), (spans[2 * i + 1] = 4096); // 16 scattered pages
    let pos = 0;
    const next = () => (pos = (pos + 64 * KiB) % (4 * MiB));
    measure('disk I/O', 'preadvSegs, 16 pages (64 KiB)', 'us', () => void n.preadvSegs(fd, mem, spans, 16, next()), 1, 'page cache');
    measure('disk I/O', 'pwritevSegs, 16 pages (64 KiB)', 'us', () => void n.pwritevSegs(fd, mem, spans, 16, next()), 1, 'page cache');
    await measureAsync('disk I/O', 'preadvSegsAsync, 16 pages (64 KiB)', 'us', () => new Promise<void>((res) => n.preadvSegsAsync(fd, mem, spans, 16, next(), () => res())), "libuv's thread pool, one at a time");
    const ring = UringIo.open(mem);
    if (typeof ring === 'string') return missing('disk I/O', 'io_uring read, 16 pages (64 KiB)', 'us', ring);
    try {
      await measureAsync('disk I/O', 'io_uring read, 16 pages (64 KiB)', 'us', () => new Promise<void>((res) => ring.run(false, fd, spans, 16, next(), () => res())), 'registered memory, one at a time');
    } finally {
      ring.close();
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------- TAP, pty, processes

function tap(): void {
  const why = !isRoot ? 'needs root' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun' : '';
  if (why) {
    missing('TAP', 'tapOpen (vnet header) + close', 'us', why);
    missing('TAP', 'write one 1514-byte frame (vnet header)', 'us', why);
    return;
  }
  // A network namespace of its own: the TAP never shows on the host, and goes with the child.
  const child = join(import.meta.dirname, 'lib', 'tap-child.js');
  const r = spawnSync('unshare', ['--net', process.execPath, child, String(SAMPLES), String(ROW_MS)], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) {
    const msg = `tap-child failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().slice(0, 200)}`;
    missing('TAP', 'tapOpen (vnet header) + close', 'us', msg);
    missing('TAP', 'write one 1514-byte frame (vnet header)', 'us', msg);
    return;
  }
  const out = JSON.parse(r.stdout) as { open: number[]; write: number[] };
  rows.push({ group: 'TAP', what: 'tapOpen (vnet header) + close', unit: 'us', summary: summarise(out.open), note: 'creates and deletes the interface' });
  rows.push({ group: 'TAP', what: 'write one 1514-byte frame (vnet header)', unit: 'us', summary: summarise(out.write), note: 'into an up TAP; the kernel takes it' });
}

function pty(): void {
  measure('pty', 'openpty(raw) + close both ends', 'us', () => {
    const p = n.openpty(true);
    n.close(p.master);
    n.close(p.slave);
  });
  const p = n.openpty(true);
  const msg = new Uint8Array(64);
  const into = new Uint8Array(4096);
  measure('pty', 'write 64 B to the master, read them from the slave', 'us', () => {
    n.write(p.master, msg, 0, msg.length);
    n.pollReadable(p.slave, 1000);
    n.read(p.slave, into, 0, into.length);
  }, 1, 'raw mode, through the line discipline');
  n.close(p.master);
  n.close(p.slave);
}

function processes(): void {
  measure('processes', 'kill(self, 0)', 'ns', () => void n.kill(process.pid, 0), 100);
  const all = cpus().map((_, i) => i);
  measure('processes', 'setAffinity(this thread, all CPUs)', 'us', () => void n.setAffinity(0, all), 10);
  missing('mounts', 'mount / umount2', 'us', 'not measured: a guest kernel mounts its disks once, at boot, in its own mount namespace');
}

// ---------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  const killer = setTimeout(() => {
    log('hard time limit reached: stopping');
    killAll();
    process.exit(2);
  }, 3 * 60_000);
  killer.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => (killAll(), process.exit(130)));
  try {
    log('memory');
    memory();
    log('futex, eventfd, fd watch');
    await wakeups();
    log('fd I/O, unix sockets, disk I/O');
    await frames();
    log('TAP, pty, processes');
    tap();
    pty();
    processes();
  } finally {
    killAll();
    clearTimeout(killer);
  }

  const out = [['primitive: operation', 'median', 'p90', 'unit']];
  for (const r of rows) {
    const digits = r.unit === 'ns' ? 0 : 1;
    out.push([`${r.group}: ${r.what}`, r.summary ? fmt(r.summary.median, digits) : '-', r.summary ? fmt(r.summary.p90, digits) : '-', r.unit]);
  }
  process.stdout.write(`\nHost primitives: per operation, ${QUICK ? 'quick run' : `up to ${SAMPLES} samples or ${ROW_MS} ms a row`} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  process.stdout.write(table(out) + '\n\n');
  for (const r of rows) if (r.note) process.stdout.write(`${r.group}: ${r.what}: ${r.note}\n`);

  const dir = join(ROOT, 'bench', 'results');
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString();
  const file = join(dir, `primitives-${when.replace(/[:.]/g, '-')}.json`);
  const machine = { host: hostname(), cpus: cpus().length, cpu: cpus()[0]?.model, kernel: release(), node: process.version, root: isRoot };
  writeFileSync(file, JSON.stringify({ when, machine, config: { SAMPLES, ROW_MS, PINGPONG }, rows }, null, 2));
  log(`results in ${file}`);
}

main().catch((e: unknown) => {
  killAll();
  process.stderr.write(`bench:primitives failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
