// Where a network driver's frames go in and out of the host: the seam between netback (or
// netfront) and the device that carries its frames. One frame per read or write on `fd`,
// each preceded by a 12-byte vnet header (net/vnet-hdr.ts), so the drivers move frames with
// the same readv/writev calls (straight into and out of guest pages) whatever is behind it.
//
// Two implementations:
//   - a TAP (tapPort): the real thing, an interface in a network namespace that a bridge,
//     a route or a guest's stack sees;
//   - a SOCK_SEQPACKET socketpair (socketPairPort): keeps frame boundaries as a TAP does, so
//     the drivers run unchanged in a test without root or /dev/net/tun; the test holds the
//     other end (FrameWire) and plays the bridge or the guest's stack.
import { native } from '../native/index.js';
import { VNET_HDR_LEN } from './vnet-hdr.js';

export interface FramePort {
  /** Non-blocking fd: one frame (vnet header first) per read or write. */
  readonly fd: number;
  /** The interface's name (for log lines and `ip`). */
  readonly name: string;
  /** What the other side may hand us (TUN_F_CSUM / TUN_F_TSO4 / TUN_F_TSO6): TUNSETOFFLOAD. */
  setOffload(flags: number): void;
  /** Gone: the interface disappears (a TAP) or the wire sees end of file. */
  close(): void;
}

/** A TAP already open (with IFF_VNET_HDR) as a FramePort. `onClose` replaces the plain close
 * (netfront's provider gives TAPs back its own way). */
export function tapPort(tap: { fd: number; name: string }, onClose?: (fd: number) => void): FramePort {
  let open = true;
  return {
    fd: tap.fd,
    name: tap.name,
    setOffload: (flags) => native().tapSetOffload(tap.fd, flags),
    close: () => {
      if (!open) return;
      open = false;
      if (onClose) onClose(tap.fd);
      else closeQuietly(tap.fd);
    },
  };
}

function closeQuietly(fd: number): void {
  try {
    native().close(fd);
  } catch {
    /* already closed */
  }
}

/** The far end of a socketpair port: what a bridge (or a guest's stack) would do with the
 * frames. Frames are Uint8Arrays of vnet header + Ethernet frame. */
export class FrameWire {
  /** The offloads the driver last set on its end (what it says it takes). */
  offloads = 0;
  /** Set when the driver closed its end. */
  closed = false;
  private readonly buf = new Uint8Array(VNET_HDR_LEN + 65536 + 64);

  constructor(readonly fd: number) {}

  /** One frame to the driver: `vnet` (12 bytes) then the frame. False when the driver's
   * receive queue is full (a TAP would drop it too). */
  send(vnet: Uint8Array, frame: Uint8Array): boolean {
    try {
      return native().writev(this.fd, [vnet, frame]) !== null;
    } catch {
      return false;
    }
  }

  /** The next frame the driver wrote (vnet header included), or null if none is queued. */
  recv(): Uint8Array | null {
    let n: number | null;
    try {
      n = native().read(this.fd, this.buf, 0, this.buf.length);
    } catch {
      return null;
    }
    if (n === null || n === 0) return null;
    return this.buf.slice(0, n);
  }

  /** Every frame queued now. */
  drain(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let f = this.recv(); f; f = this.recv()) out.push(f);
    return out;
  }

  close(): void {
    closeQuietly(this.fd);
  }
}

/** A FramePort over a socketpair, and the wire at its other end. */
export function socketPairPort(name: string): { port: FramePort; wire: FrameWire } {
  const [ours, theirs] = native().seqpacketPair();
  const wire = new FrameWire(theirs);
  let open = true;
  const port: FramePort = {
    fd: ours,
    name,
    setOffload: (flags) => {
      wire.offloads = flags;
    },
    close: () => {
      if (!open) return;
      open = false;
      wire.closed = true;
      closeQuietly(ours);
    },
  };
  return { port, wire };
}
