// Save, restore and migration in the stub domain (docs/kvm.md, "Save, restore, migration"):
// the main thread's side of one device model. The model's worker blocks in its ioreq loop, so
// requests go through shared words it looks at every loop turn (DmSaveWorker, in the worker):
//
//   freeze  the model stops taking input from its backends (TAP frames, pty bytes), saves every
//           device (stubdom/machine-state.ts) and posts the state; it still answers ioreqs
//   thaw    back to normal (a checkpoint: the guest goes on)
//
// A model started for a restore (awaitState) is built while the guest's pages are still coming,
// waits for its state (`load-state`), loads it before the first ioreq and reports the outcome,
// which dom0 waits for (`restored`) before it unpauses the guest. While a migration copies RAM the
// model marks the pages it writes by DMA in a shared bitmap dom0 collects (`dma-dirty`).
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { native } from '../native/index.js';
import { loadMachine, saveMachine } from './machine-state.js';
import type { PcMachine } from './machine.js';
import type { GuestMemory } from './device-model/guest-memory.js';
import { dirtyBitmapBytes } from './protocol.js';

const CMD = 0;
/** control[2]: a state was posted to the worker (load-state). */
const LOAD = 2;
const CMD_RUN = 0;
const CMD_FREEZE = 1;
const CMD_THAW = 2;
export const CONTROL_BYTES = 16;

/** To the worker: the state of an incoming migration. */
export interface LoadStateMessage {
  type: 'load-state';
  bytes: Uint8Array;
}

export type DmSaveMessage =
  | { type: 'state'; bytes: Uint8Array }
  | { type: 'state-error'; message: string }
  | { type: 'restored' }
  | { type: 'restore-failed'; message: string };

export { dirtyBitmapBytes };

/** Main thread: one device model's save controls. */
export class DmSaveControl {
  private readonly words: Int32Array;
  private waiting: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  private restoreOutcome: Promise<void>;
  private settleRestore: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** The last save, until dom0 fetches it into a memfd of its own (a confined stub domain
   * cannot create memfds). */
  private saved: Uint8Array | null = null;

  constructor(
    readonly control: SharedArrayBuffer,
    readonly dirty: SharedArrayBuffer,
    private readonly ring: () => void,
    restoring: boolean,
  ) {
    this.words = new Int32Array(control);
    this.restoreOutcome = restoring
      ? new Promise<void>((resolve, reject) => (this.settleRestore = { resolve, reject }))
      : Promise.resolve();
    this.restoreOutcome.catch(() => {});
  }

  /** Messages from the worker (the caller forwards those with a known type). */
  onMessage(m: DmSaveMessage): void {
    if (m.type === 'state') this.waiting?.resolve(m.bytes);
    else if (m.type === 'state-error') this.waiting?.reject(new Error(m.message));
    else if (m.type === 'restored') this.settleRestore?.resolve();
    else if (m.type === 'restore-failed') this.settleRestore?.reject(new Error(m.message));
    if (m.type === 'state' || m.type === 'state-error') this.waiting = null;
  }

  /** The worker ended: whatever waits fails. */
  ended(why: string): void {
    this.waiting?.reject(new Error(why));
    this.waiting = null;
    this.settleRestore?.reject(new Error(why));
    this.saved = null;
  }

  /** Freeze and save; resolves with the state's size (fetch() hands it over). */
  async freeze(timeoutMs = 10_000): Promise<number> {
    if (this.waiting) throw new Error('a save is already in progress');
    const got = new Promise<Uint8Array>((resolve, reject) => (this.waiting = { resolve, reject }));
    Atomics.store(this.words, CMD, CMD_FREEZE);
    this.ring();
    let timer: NodeJS.Timeout | undefined;
    const bytes = await Promise.race([
      got,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the device model did not save within ${timeoutMs} ms`)), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
    this.saved = bytes;
    return bytes.length;
  }

  /** The last save into dom0's memfd `fd` of exactly its size. */
  fetch(fd: number): void {
    const s = this.saved;
    if (!s) throw new Error('no saved state to fetch');
    if (native().fdSize(fd) < s.length) throw new Error(`the memfd for the state is smaller than its ${s.length} bytes`);
    new Uint8Array(native().mapShared(fd, s.length)).set(s);
    this.saved = null;
  }

  /** An incoming migration's state, for a model started with awaitState. */
  deliver(post: (m: LoadStateMessage) => void, bytes: Uint8Array): void {
    post({ type: 'load-state', bytes });
    Atomics.store(this.words, LOAD, 1);
    Atomics.notify(this.words, LOAD);
  }

  thaw(): void {
    Atomics.store(this.words, CMD, CMD_THAW);
    this.ring();
  }

  restored(): Promise<void> {
    return this.restoreOutcome;
  }

  /** DMA dirty tracking: start (clear and mark), collect (the bits since the last collect,
   * into dom0's memfd `fd` of the bitmap's size), stop. */
  dmaDirty(action: 'start' | 'collect' | 'stop', fd = -1): number {
    const bits = new Int32Array(this.dirty);
    if (action === 'start' || action === 'stop') {
      for (let i = 0; i < bits.length; i++) Atomics.store(bits, i, 0);
      Atomics.store(trackingFlag(this.control).flag, 0, action === 'start' ? 1 : 0);
      this.ring();
      return 0;
    }
    if (fd < 0 || native().fdSize(fd) < bits.byteLength) throw new Error(`dma-dirty collect needs a memfd of ${bits.byteLength} bytes`);
    const out = new Int32Array(native().mapShared(fd, bits.byteLength));
    for (let i = 0; i < bits.length; i++) out[i] = Atomics.exchange(bits, i, 0);
    return bits.byteLength;
  }
}

/** The word (control[1]) that turns DMA dirty tracking on in the worker. */
function trackingFlag(control: SharedArrayBuffer): { flag: Int32Array } {
  return { flag: new Int32Array(control, 4, 1) };
}

/** Worker: obeys the control words from its ioreq loop's poll hook. */
export class DmSaveWorker {
  private readonly words: Int32Array;
  private readonly tracking: Int32Array;
  frozen = false;

  constructor(
    control: SharedArrayBuffer,
    private readonly dirty: SharedArrayBuffer,
    private readonly machine: PcMachine,
    private readonly memory: GuestMemory,
    private readonly post: (m: DmSaveMessage) => void,
  ) {
    this.words = new Int32Array(control);
    this.tracking = trackingFlag(control).flag;
  }

  /** A model started with awaitState: waits (bounded turns of 50 ms, until `stopped`) for the
   * state message. Null if it was stopped first. */
  waitForState(port: MessagePort, stopped: () => boolean, timeoutMs = 30 * 60_000): Uint8Array | null {
    const deadline = Date.now() + timeoutMs;
    while (!stopped() && Date.now() < deadline) {
      const m = receiveMessageOnPort(port)?.message as LoadStateMessage | undefined;
      if (m?.type === 'load-state') return m.bytes;
      Atomics.wait(this.words, LOAD, 0, 50);
    }
    return null;
  }

  /** Loads a saved state before the first ioreq; false (reported) if it is refused. */
  restore(state: Uint8Array): boolean {
    try {
      loadMachine(this.machine, state);
      this.post({ type: 'restored' });
      return true;
    } catch (e) {
      this.post({ type: 'restore-failed', message: (e as Error).message });
      return false;
    }
  }

  /** Each loop turn. Returns true while frozen (the caller then leaves its backends alone). */
  poll(): boolean {
    const want = Atomics.load(this.tracking, 0) === 1;
    if (want !== (this.memory.dirtyPages !== null)) this.memory.dirtyPages = want ? new Int32Array(this.dirty) : null;
    const cmd = Atomics.load(this.words, CMD);
    if (cmd === CMD_FREEZE && !this.frozen) {
      this.frozen = true;
      try {
        this.post({ type: 'state', bytes: saveMachine(this.machine) });
      } catch (e) {
        this.frozen = false;
        Atomics.store(this.words, CMD, CMD_RUN);
        this.post({ type: 'state-error', message: (e as Error).message });
      }
    } else if (cmd === CMD_THAW) {
      this.frozen = false;
      Atomics.store(this.words, CMD, CMD_RUN);
    }
    return this.frozen;
  }
}
