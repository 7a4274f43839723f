// init's controlling terminal is a pty; the kernel holds its master and carries bytes between
// it and the console device (hvc0 for a PV guest, the 8250 UART for an HVM guest). Shared by
// both kernels.
import { native } from '../../native/index.js';

/** Send what userland writes to `output`; returns the function that types bytes into the pty. */
export function connectConsolePty(master: number, output: (bytes: Uint8Array) => void): (input: Uint8Array) => void {
  const buf = new Uint8Array(4096);
  const watcher = native().watchFd(master, () => {
    for (let i = 0; i < 16; i++) {
      let n: number | null;
      try {
        n = native().read(master, buf, 0, buf.length);
      } catch {
        watcher.stop(); // EIO: the last process holding the slave is gone
        return;
      }
      if (n === null || n === 0) break;
      output(buf.slice(0, n));
    }
  });
  watcher.start(native().READABLE);
  return (bytes) => {
    try {
      native().write(master, bytes, 0, bytes.length);
    } catch {
      /* userland gone */
    }
  };
}
