// The stand-alone runner's device model thread (the stub domain's job, in one process): the
// stub domain's ioreq server and dispatcher (stubdom/device-model/) serving the vCPUs' ioreq
// slots, with a 16550 UART at 0x3F8 / IRQ 4 whose other side is a pty. Interrupts go straight
// into KVM (KVM_IRQ_LINE: VM handles work from any thread of the process).
//
// It runs IoreqServer.run(): it sleeps on the doorbell futex the vCPUs ring, and between
// requests polls the pty for console input.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { NativeAddon } from '../../native/index.js';
import { AddressBus } from '../../stubdom/device-model/address-bus.js';
import type { FutexOps } from '../../stubdom/device-model/futex.js';
import { GuestMemory } from '../../stubdom/device-model/guest-memory.js';
import { IoreqDispatcher } from '../../stubdom/device-model/ioreq-dispatch.js';
import { IoreqServer } from '../../stubdom/device-model/ioreq-server.js';
import { DM_DOORBELL, DM_STOP } from './kvm-abi.js';
import { Uart16550 } from './uart16550.js';

export interface DmWorkerData {
  addonPath: string;
  vm: number;
  memory: SharedArrayBuffer;
  ram: Array<{ gpa: number; size: number; offset: number }>;
  ioreqPage: SharedArrayBuffer;
  vcpus: number;
  /** Int32 words: [doorbell, stop]. */
  words: SharedArrayBuffer;
  /** The pty slave: the UART's far end. */
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

addon.setNonblocking(wd.consoleFd, true);
const uart = new Uart16550({
  output(bytes) {
    try {
      return addon.write(wd.consoleFd, bytes, 0, bytes.length) !== null;
    } catch {
      return true; // nobody on the console: the bytes go nowhere, as on a real unplugged line
    }
  },
  irq(level) {
    addon.kvm.irqLine(wd.vm, wd.uartIrq, level ? 1 : 0);
  },
});
pio.register(wd.uartBase, 8, uart, 'uart16550');

const server = new IoreqServer({ page: wd.ioreqPage, vcpus: wd.vcpus, dispatcher, futex, log: quiet });
const words = new Int32Array(wd.words);
const inbuf = new Uint8Array(64);

function poll(): boolean {
  uart.flush();
  const room = Math.min(uart.rxRoom(), inbuf.length);
  if (room === 0) return false;
  let n: number | null = null;
  try {
    n = addon.read(wd.consoleFd, inbuf, 0, room);
  } catch {
    n = null;
  }
  if (n && n > 0) {
    uart.input(inbuf.subarray(0, n));
    return true;
  }
  return false;
}

server.run({ doorbell: { view: words, index: DM_DOORBELL }, stop: { view: words, index: DM_STOP }, waitMs: 20, poll });
parentPort!.postMessage({ type: 'metrics', server: server.metrics, dispatch: dispatcher.metrics, uart: uart.metrics });
