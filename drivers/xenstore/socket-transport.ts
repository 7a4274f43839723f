// Transport over xenstored's unix socket, found the way Debian's libxenstore 4.17 finds it:
// $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket.
import { connect, type Socket } from 'node:net';
import { FrameReader } from './xs-framing.js';
import type { Transport } from './transport.js';
import { XsError } from './xs-wire.js';

export function defaultXenstoredSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XENSTORED_PATH) return env.XENSTORED_PATH;
  return `${env.XENSTORED_RUNDIR || '/var/run/xenstored'}/socket`;
}

export function socketTransport(path = defaultXenstoredSocketPath()): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const onErr = (e: Error) => reject(e);
    sock.once('error', onErr);
    sock.once('connect', () => {
      sock.off('error', onErr);
      sock.setNoDelay?.(true);
      resolve(wrapSocket(sock));
    });
  });
}

function wrapSocket(sock: Socket): Transport {
  let receiver: (msg: Uint8Array) => void = () => {};
  const closers: ((err?: Error) => void)[] = [];
  let closed = false;
  const finish = (err?: Error) => {
    if (closed) return;
    closed = true;
    sock.destroy();
    for (const c of closers) c(err);
  };
  const reader = new FrameReader(
    (_hdr, _payload, msg) => receiver(msg),
    (why) => finish(new XsError('EIO', `xenstored sent a bad message: ${why}`)),
  );
  sock.on('data', (chunk: Buffer) => reader.push(chunk));
  sock.on('error', (e) => finish(e));
  sock.on('close', () => finish());
  return {
    send(msg) {
      if (!closed) sock.write(msg);
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
  };
}
