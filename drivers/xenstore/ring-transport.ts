// Guest side of the xenstore ring: the Transport a guest kernel's xenbus uses. Requests go
// into `req`, replies and watch events come out of `rsp`. The owner wires `notify` to the
// event channel's send and calls onEvent() whenever that channel fires.
import { FrameReader } from './xs-framing.js';
import type { Transport } from './transport.js';
import { RING_CORRUPT, XENSTORE_RING_SIZE, XsRingEnd } from './xs-ring.js';
import { XsError } from './xs-wire.js';

export interface RingTransport extends Transport {
  /** Call when the xenstore event channel fires: drains replies, pushes queued requests. */
  onEvent(): void;
}

export function ringTransport(page: Uint8Array, notify: () => void): RingTransport {
  const ring = new XsRingEnd(page, 'guest');
  const queue: Uint8Array[] = [];
  let headOff = 0; // bytes of queue[0] already in the ring
  const scratch = new Uint8Array(XENSTORE_RING_SIZE);
  let receiver: (msg: Uint8Array) => void = () => {};
  const closers: ((err?: Error) => void)[] = [];
  let closed = false;
  let pumping = false;
  let again = false;

  const finish = (err?: Error) => {
    if (closed) return;
    closed = true;
    queue.length = 0;
    reader.stop();
    for (const c of closers) c(err);
  };
  const reader = new FrameReader(
    (_h, _p, msg) => receiver(msg),
    (why) => finish(new XsError('EIO', `xenstored sent a bad message: ${why}`)),
  );

  // One pass moves as much as both rings allow, then signals the peer once.
  const pump = () => {
    if (pumping) {
      again = true; // a receiver sent from inside the pass: loop once more
      return;
    }
    pumping = true;
    let changed = false;
    try {
      do {
        again = false;
        if (ring.error !== 0) {
          finish(new XsError('EIO', `xenstored flagged the ring with error ${ring.error}`));
          return;
        }
        while (!closed && queue.length > 0) {
          const head = queue[0]!;
          const n = ring.write(head, headOff, head.length - headOff);
          if (n === RING_CORRUPT) return finish(new XsError('EIO', 'xenstore ring indices corrupt'));
          if (n === 0) break;
          changed = true;
          headOff += n;
          if (headOff === head.length) {
            queue.shift();
            headOff = 0;
          }
        }
        for (;;) {
          if (closed) return;
          const n = ring.read(scratch, 0, scratch.length);
          if (n === RING_CORRUPT) return finish(new XsError('EIO', 'xenstore ring indices corrupt'));
          if (n === 0) break;
          changed = true;
          reader.push(scratch.subarray(0, n));
        }
      } while (again && !closed);
    } finally {
      pumping = false;
      if (changed) notify();
    }
  };

  return {
    send(msg) {
      if (closed) return;
      queue.push(msg);
      pump();
    },
    onMessage(cb) {
      receiver = cb;
    },
    close() {
      finish();
    },
    onClose(cb) {
      closers.push(cb);
    },
    onEvent() {
      if (!closed) pump();
    },
  };
}
