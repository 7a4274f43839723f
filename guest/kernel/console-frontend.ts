// hvc0: the guest end of Xen's console ring. Output from the guest's userland (the pty master)
// and from printk goes into `out`; keystrokes from dom0 arrive in `in` and are typed into the
// pty. Output that does not fit waits in a bounded queue until dom0 drains the ring; past
// HIGH_WATER the kernel stops reading userland's pty (console-pty.ts: the writer blocks) until
// the queue is back under LOW_WATER. Only printk, which must never block, can reach
// MAX_BACKLOG, past which its lines are dropped.
import { ConsoleGuestEnd } from '../../drivers/wire/console-ring.js';
import type { ConsolePace } from './console-pty.js';

const MAX_BACKLOG = 256 * 1024;
const HIGH_WATER = 64 * 1024;
const LOW_WATER = 16 * 1024;

export class ConsoleFrontend implements ConsolePace {
  private readonly ring: ConsoleGuestEnd;
  private backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private drained: (() => void)[] = [];
  private readonly inBuf = new Uint8Array(1024);
  /** Where input from dom0 goes (the pty master). */
  input: (bytes: Uint8Array) => void = () => {};

  constructor(page: Uint8Array, private readonly notify: () => void) {
    this.ring = new ConsoleGuestEnd(page.buffer as SharedArrayBuffer, page.byteOffset);
  }

  get full(): boolean {
    return this.backlogBytes >= HIGH_WATER;
  }

  whenDrained(resume: () => void): void {
    if (this.backlogBytes < LOW_WATER) resume();
    else this.drained.push(resume);
  }

  write(bytes: Uint8Array): void {
    if (this.backlogBytes + bytes.length > MAX_BACKLOG) return; // drop rather than grow without bound
    this.backlog.push(bytes);
    this.backlogBytes += bytes.length;
    this.flush();
  }

  /** The console event channel fired: dom0 consumed output and/or sent input. */
  onEvent(): void {
    this.flush();
    let got = 0;
    for (;;) {
      const n = this.ring.read(this.inBuf);
      if (n <= 0) break;
      got += n;
      this.input(this.inBuf.slice(0, n));
    }
    if (got > 0) this.notify();
  }

  private flush(): void {
    let wrote = false;
    while (this.backlog.length > 0) {
      const head = this.backlog[0]!;
      const n = this.ring.write(head);
      if (n <= 0) break;
      wrote = true;
      this.backlogBytes -= n;
      if (n === head.length) this.backlog.shift();
      else {
        this.backlog[0] = head.subarray(n);
        break;
      }
    }
    if (wrote) this.notify();
    if (this.drained.length > 0 && this.backlogBytes < LOW_WATER) for (const resume of this.drained.splice(0)) resume();
  }
}
