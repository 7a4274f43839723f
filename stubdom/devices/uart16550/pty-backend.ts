// Connects a UART to the master side of a pty (`serial = 'pty'`; the embedder publishes the
// slave's path as the domain's serial tty). Output goes straight to the master; when nobody
// reads the slave the pty fills up and further bytes are dropped (counted), as xenconsoled
// does, rather than stalling the guest. Input is pulled by pump() only as far as the receive
// FIFO has room, so a fast typist (or a paste) is flow-controlled, never overrun.
import type { FdIo } from '../../device-model/fd-io.js';
import type { SerialBackend, Uart16550 } from './uart16550.js';

export class PtySerialBackend implements SerialBackend {
  readonly metrics = { bytesOut: 0, bytesIn: 0, outDropped: 0 };
  uart: Uart16550 | undefined;
  private readonly buf = new Uint8Array(64);

  constructor(
    readonly fd: number,
    private readonly io: FdIo,
    private readonly onResume?: () => void,
  ) {}

  write(data: Uint8Array): void {
    const n = this.io.write(this.fd, data, 0, data.length);
    const wrote = n ?? 0;
    this.metrics.bytesOut += wrote;
    this.metrics.outDropped += data.length - wrote;
  }

  rxSpaceAvailable(): void {
    this.onResume?.();
  }

  /** Moves what fits from the pty into the UART; returns the byte count. */
  pump(): number {
    const u = this.uart;
    if (!u) return 0;
    let total = 0;
    for (let guard = 0; guard < 64; guard++) {
      const room = Math.min(u.rxSpace(), this.buf.length);
      if (room === 0) break;
      const n = this.io.read(this.fd, this.buf, 0, room);
      if (n === null || n === 0) break;
      total += u.receive(this.buf.subarray(0, n));
    }
    this.metrics.bytesIn += total;
    return total;
  }
}
