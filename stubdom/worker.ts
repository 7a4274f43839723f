// One guest's device model, in its own worker thread of the stub domain: the PC the guest
// drives (stubdom/machine.ts) behind the guest's ioreq pages, running IoreqServer.run() until
// the stub domain sets the stop word. Interrupts go out as docs/hvm.md says: IRQ_LEVEL bits
// plus a ring of the guest's irq doorbell.
import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { native } from '../native/index.js';
import { GuestMemory } from './device-model/guest-memory.js';
import { nativeFutex } from '../drivers/ioreq/native-futex.js';
import { PcMachine } from './machine.js';
import { FileBacking } from './devices/ide/block-backing.js';
import { TapNetBackend } from './devices/rtl8139/tap-backend.js';
import { PtySerialBackend } from './devices/uart16550/pty-backend.js';
import { BUFIOREQ_PAGE_OFFSET, HVM_IOREQ_PAGES, IOREQ_PAGE_OFFSET, PlatformWord } from '../drivers/hypercall/hvm-platform-page.js';
import type { WorkerData } from './protocol.js';
import { VgaState } from './devices/vga/vga-shared.js';
import { InputQueue } from './devices/i8042/input-queue.js';
import { DmSaveWorker } from './dm-save.js';
import { serveControls } from './device-model-control.js';

const wd = workerData as WorkerData;
const n = native();
const ram = n.mapShared(wd.memFd, wd.memoryBytes);
const pages = n.mapShared(wd.ioreqFd, HVM_IOREQ_PAGES * 4096);
const words = new Int32Array(pages);

const log = (msg: string) => {
  const line = `stubdom d${wd.domid}: ${msg}\n`;
  process.stderr.write(line);
};

const memory = new GuestMemory(ram, [{ gpa: 0, size: wd.memoryBytes, offset: 0 }]);
const nicBackends = wd.nics.map((nic) => ({ nic, backend: new TapNetBackend(nic.fd, n) }));
const serialBackend = wd.serialFd >= 0 ? new PtySerialBackend(wd.serialFd, {
  read: n.read.bind(n),
  // The UART's output also goes to the guest's console log, as xenconsoled logs a console.
  write: (fd, buf, off, len) => {
    const wrote = n.write(fd, buf, off, len);
    if (wd.logFd >= 0) try { writeSync(wd.logFd, buf, off, len); } catch { /* log full or gone */ }
    return wrote;
  },
}) : undefined;

// The display adapter's memory and registers are shared with the VNC server in the main thread;
// viewers' keys and pointer come back through the input queue.
const vga = wd.display ? new VgaState({ regsBuffer: wd.display.regs, vramBuffer: wd.display.vram }) : undefined;
const input = wd.display ? new InputQueue(wd.display.input) : null;

const machine = new PcMachine({
  memory,
  vga,
  irqSink: {
    raise(line: number) {
      Atomics.or(words, PlatformWord.IRQ_LEVEL, 1 << line);
      Atomics.or(words, PlatformWord.IRQ_EDGES, 1 << line);
      Atomics.add(words, PlatformWord.IRQ_RAISES, 1);
      n.eventfdWrite(wd.irqFd, 1);
    },
    lower(line: number) {
      Atomics.and(words, PlatformWord.IRQ_LEVEL, ~(1 << line));
    },
  },
  nics: nicBackends.map(({ nic, backend }) => ({ devid: nic.devid, mac: nic.mac, backend })),
  disks: wd.disks.map((d) => ({
    index: d.index,
    readOnly: d.readOnly,
    cdrom: d.cdrom,
    ...(d.fd !== undefined && d.fd >= 0 ? { backing: FileBacking.fromFd(d.fd, d.readOnly || d.cdrom) } : { path: d.path }),
  })),
  serial: serialBackend ? [{ backend: serialBackend }] : [],
  // xenode's HVM guest OS has firmware of its own that enumerates PCI and assigns BARs
  // (guest/hvm/firmware); a Linux kernel booted directly on KVM has none, so the machine plays
  // hvmloader's part for it.
  firmware: wd.firmware,
  log: { info: log, warn: log, error: log },
  onReset: (hard) => parentPort?.postMessage({ type: 'reset', hard }),
  // The guest's OS reports its poweroff itself (the vCPU that wrote PM1a_CNT): only logged.
  onSoftOff: () => log('guest entered S5 (soft off)'),
  onUnplug: (mask) => {
    log(`platform unplug mask 0x${mask.toString(16)}`);
    parentPort?.postMessage({ type: 'unplug', mask });
  },
});

for (const { nic, backend } of nicBackends) backend.nic = machine.nic(nic.devid);
if (serialBackend) serialBackend.uart = machine.serials[0];

// Save, restore, migration (dm-save.ts): a restored guest's devices are loaded before the
// first ioreq; a model whose state is refused serves nothing (dom0 then destroys the domain).
const saver = new DmSaveWorker(wd.saveControl, wd.dirty, machine, memory, (m) => parentPort?.postMessage(m));
const state = wd.awaitState && parentPort ? saver.waitForState(parentPort, () => Atomics.load(words, PlatformWord.STOP) !== 0) : null;
if (wd.awaitState && !(state && saver.restore(state))) {
  machine.close();
  throw new Error(state ? 'restore refused' : 'no state came for the restore');
}

const server = machine.createIoreqServer({
  page: pages,
  pageOffset: IOREQ_PAGE_OFFSET,
  vcpus: wd.vcpus,
  futex: nativeFutex(),
  bufferedPage: pages,
  bufferedPageOffset: BUFIOREQ_PAGE_OFFSET,
});

// xl trigger DOM nmi: the NMI word, then the guest's irq doorbell (its runtime looks at the word
// on every irq event), as Xen sets the vCPU's nmi_pending and kicks it.
const platform = {
  nmi(vcpu: number) {
    Atomics.store(words, PlatformWord.NMI_PENDING, vcpu + 1);
    Atomics.add(words, PlatformWord.IRQ_RAISES, 1);
    n.eventfdWrite(wd.irqFd, 1);
  },
};

// run() blocks this thread (it is the device model's loop), so metrics go to the parent from
// the poll hook now and then rather than on request.
let lastReport = 0;
server.run({
  doorbell: { view: words, index: PlatformWord.DOORBELL },
  stop: { view: words, index: PlatformWord.STOP },
  waitMs: 50,
  poll: () => {
    // Frozen for a save: the guest's vCPUs are paused; take nothing in from the backends.
    if (saver.poll()) return false;
    let work = false;
    for (const { backend } of nicBackends) if (backend.pump() > 0) work = true;
    if (serialBackend && serialBackend.pump() > 0) work = true;
    if (input && machine.i8042 && input.drain(machine.i8042) > 0) work = true;
    if (serveControls(wd.control, machine, platform, log) > 0) work = true;
    const now = Date.now();
    if (now - lastReport > 500) {
      lastReport = now;
      parentPort?.postMessage({ type: 'metrics', metrics: { ...machine.metrics(), ioreq: server.metrics } });
    }
    return work;
  },
});
machine.close();
parentPort?.postMessage({ type: 'stopped' });
