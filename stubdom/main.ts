// The stub domain: a process started by dom0, confined (dom0/stubdom-host.ts starts one per HVM
// guest in native/stubdom-sandbox.c's sandbox), hosting a guest's device model in a worker
// thread of its own (docs/hvm.md says why not a task pool). dom0 talks to it over the
// seqpacket socket on fd 3: `start` (with the guest's fds), `stop`; it tells dom0 when a device
// model ends by itself, so only that guest follows on_crash. When dom0 closes the socket, it
// stops its device models and exits. A dom0 that dies does not close it: dom0 left a copy of
// its end with the hypervisor (dom0/stubdom-host.ts), so the device models serve on, and what
// this side sends meanwhile waits there for the next dom0. The socket closes for good only
// when dom0 stops it, its guest is destroyed, or the hypervisor itself is gone.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, type FdWatcher } from '../native/index.js';
import { MessageSocket, type Received } from '../drivers/hypercall/channel.js';
import { HVM_IOREQ_PAGES, PlatformWord } from '../drivers/hypercall/hvm-platform-page.js';
import type { DmControl, DmExit, DmFault, DmRequest, DmStarted, StartDeviceModel, WorkerData } from './protocol.js';
import type { ControlAnswer } from './device-model-control.js';
import { tryEscapes } from './escape-probe.js';
import { VgaState } from './devices/vga/vga-shared.js';
import { InputQueue } from './devices/i8042/input-queue.js';
import { DisplaySurface } from './display/display-surface.js';
import { VgaFont } from './display/psf-font.js';
import { VncServer } from './vnc/vnc-server.js';
import { CONTROL_BYTES, DmSaveControl, dirtyBitmapBytes, type DmSaveMessage } from './dm-save.js';

const here = dirname(fileURLToPath(import.meta.url));

interface Model {
  /** Readiness watchers on the NIC TAPs (see watchTaps). */
  tapWatchers: FdWatcher[];
  worker: Worker;
  fds: number[];
  words: Int32Array;
  stopping: boolean;
  metrics: unknown;
  /** The guest's VNC server (in this thread: the device model's thread blocks in its loop). */
  vnc: VncServer | null;
  /** Save, restore, migration (dm-save.ts). */
  save: DmSaveControl;
  /** The toolstack's controls to the device model, and the requests waiting for its answer. */
  control: MessagePort;
  pending: Map<number, (a: ControlAnswer) => void>;
}

const DEFAULT_VRAM = 16 << 20;
let font: VgaFont | null = null;

/** The video memory a config asks for: a power of two from 1 to 256 MiB, else the default. */
function vramBytes(asked: unknown): number {
  const n = Number(asked);
  return Number.isInteger(n) && n >= 1 << 20 && n <= 256 << 20 && (n & (n - 1)) === 0 ? n : DEFAULT_VRAM;
}

const models = new Map<number, Model>();
let channel: MessageSocket;

function reply(id: unknown, body: object, fds: number[] = []): void {
  try {
    channel.send({ id, ...body }, fds);
  } catch {
    /* dom0 gone: we exit on close */
  }
}

/** Tell dom0 a device model ended (the next dom0 reads it if this one is dead). */
function upcall(args: DmExit): void {
  try {
    channel.send({ upcall: 'dm.exit', args });
  } catch {
    /* the channel closed: we exit */
  }
}

function closeFds(fds: number[]): void {
  for (const fd of fds) if (fd >= 0) try { native().close(fd); } catch { /* already closed */ }
}

function start(id: unknown, req: StartDeviceModel, fds: number[]): void {
  const fd = (i: number) => (Number.isInteger(i) && i >= 0 && i < fds.length ? fds[i]! : -1);
  if (models.has(req.domid)) {
    closeFds(fds);
    return reply(id, { error: { errno: 'EEXIST', message: `domain ${req.domid} already has a device model` } });
  }
  const { port1: control, port2: workerControl } = new MessageChannel();
  const data: WorkerData = {
    domid: req.domid,
    name: req.name,
    vcpus: req.vcpus,
    memoryBytes: req.memoryBytes,
    nics: req.nics.map((n) => ({ devid: n.devid, mac: n.mac, fd: fd(n.tapFd) })),
    disks: req.disks.map((d) => ({ ...d, fd: d.fd === undefined ? -1 : fd(d.fd) })),
    firmware: req.firmware === true,
    memFd: fd(req.fds.memory),
    ioreqFd: fd(req.fds.ioreq),
    irqFd: fd(req.fds.irq),
    serialFd: fd(req.fds.serial),
    logFd: fd(req.fds.log),
    control: workerControl,
    display: null,
    awaitState: req.awaitState === true,
    saveControl: new SharedArrayBuffer(CONTROL_BYTES),
    dirty: new SharedArrayBuffer(dirtyBitmapBytes(req.memoryBytes)),
  };
  const vga = req.display ? VgaState.create(vramBytes(req.display.vramBytes)) : null;
  const input = vga ? new InputQueue() : null;
  if (vga) data.display = { regs: vga.shared.regsBuffer, vram: vga.shared.vramBuffer, input: input!.buffer };
  for (const n of [data.memFd, data.ioreqFd, data.irqFd]) {
    if (n < 0) {
      closeFds(fds);
      control.close();
      return reply(id, { error: { errno: 'EINVAL', message: 'start needs memory, ioreq and irq fds' } });
    }
  }
  for (const n of fds) native().setNonblocking(n, true);
  const words = new Int32Array(native().mapShared(data.ioreqFd, HVM_IOREQ_PAGES * 4096));
  Atomics.store(words, PlatformWord.STOP, 0);
  const worker = new Worker(join(here, 'worker.js'), { workerData: data, transferList: [workerControl] });
  const ringModel = () => {
    Atomics.add(words, PlatformWord.DOORBELL, 1);
    native().futexWake(words, PlatformWord.DOORBELL, 1);
  };
  const save = new DmSaveControl(data.saveControl, data.dirty, ringModel, data.awaitState);
  const model: Model = { worker, fds, words, stopping: false, metrics: null, tapWatchers: watchTaps(data.nics.map((n) => n.fd), words), vnc: null, control, pending: new Map(), save };
  control.on('message', (a: ControlAnswer) => model.pending.get(a.seq)?.(a));
  control.unref();
  models.set(req.domid, model);
  worker.on('message', (m: { type: string; metrics?: unknown; hard?: boolean }) => {
    if (m.type === 'state' || m.type === 'state-error' || m.type === 'restored' || m.type === 'restore-failed') save.onMessage(m as DmSaveMessage);
    else if (m.type === 'metrics') model.metrics = m.metrics;
    else if (m.type === 'reset') upcall({ domid: req.domid, reason: 'reset', message: `guest reset (${m.hard ? 'hard' : 'soft'})` });
  });
  worker.on('error', (e) => {
    process.stderr.write(`stubdom: device model of domain ${req.domid} failed: ${e.stack ?? e}\n`);
  });
  worker.on('exit', (code) => {
    save.ended(`the device model of domain ${req.domid} exited`);
    models.delete(req.domid);
    for (const answer of model.pending.values()) answer({ seq: 0, error: { errno: 'ESRCH', message: `the device model of domain ${req.domid} ended` } });
    control.close();
    model.vnc?.close();
    for (const w of model.tapWatchers) w.close();
    closeFds(model.fds);
    if (!model.stopping) upcall({ domid: req.domid, reason: 'crash', message: `device model exited (${code})` });
  });
  const vncCfg = req.display?.vnc;
  if (!vga || !vncCfg) return reply(id, { result: { started: req.domid } satisfies DmStarted });
  if (typeof vncCfg.listen !== 'string' || !Number.isInteger(vncCfg.display) || vncCfg.display < 0 || vncCfg.display > 65535 - 5900 || (vncCfg.password !== null && typeof vncCfg.password !== 'string')) {
    void stop(undefined, req.domid);
    return reply(id, { error: { errno: 'EINVAL', message: `bad VNC settings for domain ${req.domid}` } });
  }
  // The display's viewers: keys and pointer go into the queue and ring the device model's
  // doorbell, so the i8042 raises IRQ 1 now rather than at the loop's next bounded wake-up.
  const ring = () => {
    Atomics.add(words, PlatformWord.DOORBELL, 1);
    native().futexWake(words, PlatformWord.DOORBELL, 1);
  };
  font ??= new VgaFont();
  if (font.missing) process.stderr.write(`stubdom: no VGA font (${font.missing}); text is drawn as boxes\n`);
  const log = (m: string) => process.stderr.write(`stubdom d${req.domid}: ${m}\n`);
  // Confined, dom0 hands over the listening socket (our network namespace has no interfaces).
  const listenFd = vncCfg.listenFd === undefined ? -1 : fd(vncCfg.listenFd);
  const vncOpts = { listen: vncCfg.listen, display: vncCfg.display, findUnused: vncCfg.findUnused, password: vncCfg.password, name: req.name };
  const viewers = { key: (k: number, d: boolean) => input!.key(k, d) && ring(), pointer: (x: number, y: number, b: number) => input!.pointer(x, y, b) && ring() };
  (listenFd >= 0
    ? VncServer.adopt(listenFd, vncOpts, new DisplaySurface(vga, font), viewers, log)
    : VncServer.open(vncOpts, new DisplaySurface(vga, font), viewers, log)
  ).then(
    (vnc) => {
      if (!models.has(req.domid)) {
        vnc.close();
        return reply(id, { error: { errno: 'ESRCH', message: `the device model of domain ${req.domid} ended while its VNC server started` } });
      }
      model.vnc = vnc;
      log(`VNC display :${vnc.display} on ${vnc.listen}:${vnc.port}`);
      reply(id, { result: { started: req.domid, vnc: { listen: vnc.listen, port: vnc.port, display: vnc.display } } satisfies DmStarted });
    },
    (e: Error) => {
      void stop(undefined, req.domid);
      reply(id, { error: { errno: 'EADDRINUSE', message: `VNC: ${e.message}` } });
    },
  );
}

/** A frame arriving on a NIC's TAP must reach the guest now, not when the device model next
 * wakes (a guest exit or its bounded wait): this thread watches the TAPs and rings the device
 * model's doorbell, as a real NIC's receive raises its interrupt. The device model reads the
 * frames itself; a watcher rests 1 ms after each ring so a full NIC cannot make it spin. */
function watchTaps(fds: number[], words: Int32Array): FdWatcher[] {
  const n = native();
  return fds.filter((fd) => fd >= 0).map((fd) => {
    const w = n.watchFd(fd, () => {
      Atomics.add(words, PlatformWord.DOORBELL, 1);
      n.futexWake(words, PlatformWord.DOORBELL, 1);
      w.stop();
      setTimeout(() => {
        try {
          w.start(n.READABLE);
        } catch {
          /* closed with its model */
        }
      }, 1);
    });
    w.start(n.READABLE);
    return w;
  });
}

/** An incoming migration's device state, for a model started with awaitState (dm-save.ts). */
function loadState(id: unknown, req: Extract<DmRequest, { op: 'load-state' }>, fds: number[]): void {
  try {
    const m = models.get(Number(req.domid));
    if (!m) return reply(id, { error: { errno: 'ESRCH', message: `no device model for domain ${String(req.domid)}` } });
    const fd = fds[0] ?? -1;
    const size = fd >= 0 ? native().fdSize(fd) : 0;
    if (!Number.isInteger(req.bytes) || req.bytes <= 0 || req.bytes > size) {
      return reply(id, { error: { errno: 'EINVAL', message: `the device state fd holds ${size} bytes, not ${String(req.bytes)}` } });
    }
    const bytes = Uint8Array.from(new Uint8Array(native().mapShared(fd, req.bytes)));
    m.save.deliver((msg) => m.worker.postMessage(msg), bytes);
    reply(id, { result: null });
  } finally {
    closeFds(fds);
  }
}

/** Save, restore and migration requests for one model (dm-save.ts). */
async function saveOp(id: unknown, req: Extract<DmRequest, { op: 'save' | 'fetch-state' | 'thaw' | 'restored' | 'dma-dirty' }>, fds: number[]): Promise<void> {
  try {
    const m = models.get(Number(req.domid));
    if (!m) return reply(id, { error: { errno: 'ESRCH', message: `no device model for domain ${String(req.domid)}` } });
    // States and bitmaps go into memfds dom0 makes and sends (this sandbox cannot create any).
    if (req.op === 'save') return reply(id, { result: { bytes: await m.save.freeze() } });
    if (req.op === 'fetch-state') m.save.fetch(fds[0] ?? -1);
    else if (req.op === 'thaw') m.save.thaw();
    else if (req.op === 'restored') await m.save.restored();
    else {
      if (req.action !== 'start' && req.action !== 'collect' && req.action !== 'stop') throw new Error('dma-dirty: action must be start, collect or stop');
      return reply(id, { result: { bytes: m.save.dmaDirty(req.action, fds[0] ?? -1) } });
    }
    reply(id, { result: null });
  } catch (e) {
    reply(id, { error: { errno: 'EIO', message: (e as Error).message } });
  } finally {
    closeFds(fds);
  }
}

async function stop(id: unknown, domid: number): Promise<void> {
  const m = models.get(domid);
  if (!m) return reply(id, { result: null });
  m.stopping = true;
  Atomics.store(m.words, PlatformWord.STOP, 1);
  Atomics.add(m.words, PlatformWord.DOORBELL, 1);
  native().futexWake(m.words, PlatformWord.DOORBELL, 1);
  const exited = new Promise<void>((r) => m.worker.once('exit', () => r()));
  const timer = setTimeout(() => void m.worker.terminate(), 2000);
  await exited;
  clearTimeout(timer);
  reply(id, { result: null });
}

let controlSeq = 0;
/** Controls waiting for one device model's answer (each also bounded by its 5 s timeout). */
const MAX_PENDING_CONTROLS = 16;

/** A control for a running device model (xl trigger, cd-*): posted to its thread, whose loop
 * the doorbell wakes; answered when the thread has carried it out (or 5 s passed). */
function control(id: unknown, domid: number, c: DmControl, fds: number[]): void {
  const m = models.get(domid);
  const fd = fds[0] ?? -1;
  closeFds(fds.slice(1));
  if (!m) {
    closeFds(fd >= 0 ? [fd] : []);
    return reply(id, { error: { errno: 'ESRCH', message: `domain ${domid} has no device model` } });
  }
  const valid =
    (c?.kind === 'button' && (c.button === 'power' || c.button === 'sleep')) ||
    (c?.kind === 'nmi' && Number.isInteger(c.vcpu) && c.vcpu >= 0 && c.vcpu < 128) ||
    (c?.kind === 'media' && Number.isInteger(c.index) && c.index >= 0 && c.index < 4 && typeof c.insert === 'boolean');
  if (!valid || m.pending.size >= MAX_PENDING_CONTROLS) {
    closeFds(fd >= 0 ? [fd] : []);
    return reply(id, { error: valid ? { errno: 'EBUSY', message: `domain ${domid}: too many controls waiting for its device model` } : { errno: 'EINVAL', message: 'bad device-model control' } });
  }
  const seq = ++controlSeq;
  const timer = setTimeout(() => m.pending.get(seq)?.({ seq, error: { errno: 'ETIMEDOUT', message: `the device model of domain ${domid} did not answer` } }), 5000);
  m.pending.set(seq, (a) => {
    clearTimeout(timer);
    m.pending.delete(seq);
    reply(id, a.error ? { error: a.error } : { result: a.result ?? null });
  });
  m.control.postMessage({ seq, control: c, fd });
  Atomics.add(m.words, PlatformWord.DOORBELL, 1);
  native().futexWake(m.words, PlatformWord.DOORBELL, 1);
}

function onMessage({ message, fds }: Received): void {
  // Requests come as HypercallClient sends them: {id, op, args}.
  const id = message.id;
  const req = { ...(typeof message.args === 'object' && message.args ? message.args : {}), op: message.op } as DmRequest;
  if (req.op === 'start') return start(id, req, fds);
  if (req.op === 'control') return control(id, Number(req.domid), req.control, fds);
  if (req.op !== 'load-state' && req.op !== 'fetch-state' && req.op !== 'dma-dirty') closeFds(fds);
  if (req.op === 'stop') return void stop(id, Number(req.domid));
  if (req.op === 'metrics') return reply(id, { result: models.get(Number(req.domid))?.metrics ?? null });
  if (req.op === 'load-state') return loadState(id, req, fds);
  if (req.op === 'save' || req.op === 'fetch-state' || req.op === 'thaw' || req.op === 'restored' || req.op === 'dma-dirty') return void saveOp(id, req, fds);
  if (req.op === 'fault') {
    // Fault injection (tests): end one device model as a crash would, or act as a subverted
    // one, so dom0 and the hypervisor can show that only its guest goes down.
    const m = models.get(Number(req.domid));
    if (!m) return reply(id, { error: { errno: 'ESRCH', message: `no device model for domain ${String(req.domid)}` } });
    const f = (typeof req.fault === 'object' && req.fault ? req.fault : {}) as DmFault;
    if (f.kind === 'escape') {
      void tryEscapes({ tcpPort: Number(f.tcpPort) || undefined, path: typeof f.path === 'string' ? f.path : undefined, pid: Number(f.pid) || undefined }).then((r) => reply(id, { result: r }));
      return;
    }
    if (f.kind === 'setuid') {
      reply(id, { result: null });
      setTimeout(() => process.setuid?.(0), 50);
      return;
    }
    void m.worker.terminate();
    return reply(id, { result: null });
  }
  reply(id, { error: { errno: 'ENOSYS', message: `unknown stub domain request ${String((req as { op?: unknown }).op)}` } });
}

channel = new MessageSocket(3, onMessage, () => {
  // dom0 is gone, or done with us (it closes the channel after `stop`): every device model
  // stops, then the stub domain exits.
  void Promise.all([...models.keys()].map((domid) => stop(undefined, domid))).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 2500).unref();
});
