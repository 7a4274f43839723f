// Connects an emulated NIC to its TAP, `vif<domid>.<devid>-emu` (xl's vifname plus "-emu" for
// the HVM tap). The TAP is opened by the embedder WITHOUT IFF_VNET_HDR (the RTL8139 has no
// offloads, so frames are plain Ethernet), O_NONBLOCK, and enslaved to the vif's bridge by the
// hotplug script. Reads happen in pump(), called from the device model's loop (the run()
// poll hook, or a uv_poll callback): one frame per read, stopping when the TAP is empty or the
// NIC's ring is full (the frames then wait in the TAP's queue, as they would in the NIC's
// FIFO) and resuming on rxSpaceAvailable().
import type { FdIo } from '../../device-model/fd-io.js';
import type { NetBackend } from './net-backend.js';
import type { Rtl8139 } from './rtl8139.js';

export function emuTapName(domid: number, devid: number): string {
  return `vif${domid}.${devid}-emu`;
}

export interface TapBackendMetrics {
  framesIn: number;
  framesOut: number;
  /** Transmitted frames the TAP would not take (queue full): dropped, as on a busy wire. */
  txDropped: number;
}

export class TapNetBackend implements NetBackend {
  readonly metrics: TapBackendMetrics = { framesIn: 0, framesOut: 0, txDropped: 0 };
  /** Set while the NIC could not take more frames; cleared by rxSpaceAvailable(). */
  paused = false;
  private readonly buf = new Uint8Array(65536);
  nic: Rtl8139 | undefined;

  constructor(
    readonly fd: number,
    private readonly io: FdIo,
    /** Called when a paused pump should run again (e.g. re-arm a uv_poll watcher). */
    private readonly onResume?: () => void,
  ) {}

  send(frame: Uint8Array): void {
    const n = this.io.write(this.fd, frame, 0, frame.length);
    if (n === null || n !== frame.length) this.metrics.txDropped++;
    else this.metrics.framesOut++;
  }

  rxSpaceAvailable(): void {
    if (!this.paused) return;
    this.paused = false;
    this.onResume?.();
  }

  /** Moves up to `budget` frames from the TAP into the NIC; returns how many it read. */
  pump(budget = 64): number {
    const nic = this.nic;
    if (!nic) return 0;
    let n = 0;
    while (n < budget) {
      if (!nic.canReceive()) {
        this.paused = true;
        break;
      }
      const len = this.io.read(this.fd, this.buf, 0, this.buf.length);
      if (len === null || len === 0) break;
      n++;
      this.metrics.framesIn++;
      nic.receive(this.buf.subarray(0, len));
    }
    return n;
  }
}
