// init's controlling terminal is a pty; the kernel holds its master and carries bytes between
// it and the console device (hvc0 for a PV guest, the 8250 UART for an HVM guest). Shared by
// both kernels.
//
// A read of the master fails with EIO while no one has the slave open: between two gettys,
// and while agetty or systemd hang the line up (vhangup) and open it again. That is not the
// end of the console, so the kernel stops watching (the master would poll as readable all the
// time) and looks again a little later, as a serial line waits for carrier.
import { native } from '../../native/index.js';

const RETRY_MS = [10, 20, 50, 100, 200];

/** A console device that can fall behind (hvc0's ring when dom0 is slow to drain it). While it
 * is full the kernel stops reading the master, the pty's buffer fills, and the writer blocks
 * in write(2), as Linux's hvc makes a writer wait; nothing is dropped. */
export interface ConsolePace {
  readonly full: boolean;
  /** Call `resume` once, when there is room again. */
  whenDrained(resume: () => void): void;
}

/** Send what userland writes to `output`; returns the function that types bytes into the pty,
 * and its `close()`, which stops watching the master (call it before closing the master: a
 * watcher left on a closed descriptor crashes the process). */
export function connectConsolePty(master: number, output: (bytes: Uint8Array) => void, pace?: ConsolePace): ((input: Uint8Array) => void) & { close(): void } {
  const buf = new Uint8Array(4096);
  let retries = 0;
  let closed = false;
  const watcher = native().watchFd(master, () => {
    for (let i = 0; i < 16; i++) {
      let n: number | null;
      try {
        n = native().read(master, buf, 0, buf.length);
      } catch {
        watcher.stop();
        const t = setTimeout(() => closed || watcher.start(native().READABLE), RETRY_MS[Math.min(retries++, RETRY_MS.length - 1)]!);
        t.unref();
        return;
      }
      retries = 0;
      if (n === null || n === 0) break;
      output(buf.slice(0, n));
      if (pace?.full) {
        watcher.stop();
        pace.whenDrained(() => closed || watcher.start(native().READABLE));
        return;
      }
    }
  });
  watcher.start(native().READABLE);
  const input = (bytes: Uint8Array) => {
    try {
      if (!closed) native().write(master, bytes, 0, bytes.length);
    } catch {
      /* no one on the line right now */
    }
  };
  return Object.assign(input, {
    close: () => {
      if (closed) return;
      closed = true;
      watcher.close();
    },
  });
}
