// The stand-alone runner's device model thread (the stub domain's job, in one process): the
// stub domain's ioreq server and dispatcher (stubdom/device-model/) serving the vCPUs' ioreq
// slots, with the stub domain's 16550A (stubdom/devices/uart16550/) at 0x3F8 / IRQ 4 on the
// master side of a pty. Interrupt lines go straight into KVM (KVM_IRQ_LINE: VM handles work
// from any thread of the process).
//
// It runs IoreqServer.run(): it sleeps on the doorbell futex the vCPUs ring, and between
// requests pumps console input from the pty into the UART.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { NativeAddon } from '../../native/index.js';
import { AddressBus } from '../../stubdom/device-model/address-bus.js';
import type { FutexOps } from '../../drivers/ioreq/futex.js';
import { GuestMemory } from '../../stubdom/device-model/guest-memory.js';
import { IoreqDispatcher } from '../../stubdom/device-model/ioreq-dispatch.js';
import { IrqLines } from '../../stubdom/device-model/interrupts.js';
import { IoreqServer } from '../../stubdom/device-model/ioreq-server.js';
import { PtySerialBackend } from '../../stubdom/devices/uart16550/pty-backend.js';
import { Uart16550 } from '../../stubdom/devices/uart16550/uart16550.js';
import { DM_DOORBELL, DM_STOP } from './kvm-abi.js';

export interface DmWorkerData {
  addonPath: string;
  vm: number;
  memory: SharedArrayBuffer;
  ram: Array<{ gpa: number; size: number; offset: number }>;
  ioreqPage: SharedArrayBuffer;
  vcpus: number;
  /** Int32 words: [doorbell, stop]. */
  words: SharedArrayBuffer;
  /** The pty master: the UART's far end (the slave is the console). */
  consoleFd: number;
  uartBase: number;
  uartIrq: number;
}


const wd = workerData as DmWorkerData;
const addon = createRequire(wd.addonPath)(wd.addonPath) as NativeAddon;
const futex: FutexOps = { futexWait: addon.futexWait.bind(addon), futexWake: addon.futexWake.bind(addon) };
const quiet = { info() {}, warn() {}, error() {} };

const pio = new AddressBus('pio', 0x10000);
const mmio = new AddressBus('mmio', 2 ** 52);
const memory = new GuestMemory(wd.memory, wd.ram);
const dispatcher = new IoreqDispatcher({ pio, mmio, memory, log: quiet });

const lines = new IrqLines({
  raise(line) {
    setLine(line, 1);
  },
  lower(line) {
    setLine(line, 0);
  },
});
function setLine(line: number, level: 0 | 1): void {
  try {
    addon.kvm.irqLine(wd.vm, line, level);
  } catch {
    // the VM is being destroyed under us: nobody to interrupt
  }
}

addon.setNonblocking(wd.consoleFd, true);
const serial = new PtySerialBackend(wd.consoleFd, addon);
const uart = new Uart16550({ irq: lines.source(wd.uartIrq, 'com1'), backend: serial });
serial.uart = uart;
pio.register(wd.uartBase, 8, uart, 'uart16550', uart.metrics);

const server = new IoreqServer({ page: wd.ioreqPage, vcpus: wd.vcpus, dispatcher, futex, log: quiet });
const words = new Int32Array(wd.words);

function poll(): boolean {
  return serial.pump() > 0;
}

server.run({ doorbell: { view: words, index: DM_DOORBELL }, stop: { view: words, index: DM_STOP }, waitMs: 20, poll });
parentPort!.postMessage({ type: 'metrics', server: server.metrics, dispatch: dispatcher.metrics, uart: uart.metrics, serial: serial.metrics });
