// An in-process connection for dom0's own toolstack: the client's Transport hands messages to
// xenstored directly and gets replies on the microtask queue (never re-entering the caller
// from inside send()). domid 0 is privileged; any other domid behaves as that unprivileged
// domain would over its ring, which is what tests of the permission rules use.
import type { Transport } from '../../drivers/xenstore/transport.js';
import { FrameReader } from '../../drivers/xenstore/xs-framing.js';
import { Connection, type ConnectionHost } from './connection.js';

export class LocalConnection extends Connection {
  private readonly reader: FrameReader;
  private queue: { msg: Uint8Array; taken?: () => void }[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  private receiver: (msg: Uint8Array) => void = () => {};
  private readonly closers: ((err?: Error) => void)[] = [];

  constructor(host: ConnectionHost, domid: number, maxOutputBytes: number) {
    super(host, domid, domid === 0, maxOutputBytes);
    this.reader = new FrameReader(
      (hdr, payload) => host.handle(this, hdr, payload),
      (why) => host.dropConnection(this, why),
    );
  }

  get label(): string {
    return `local client ${this.serial} (dom${this.domid})`;
  }

  /** The client's end. */
  transport(): Transport {
    return {
      send: (msg) => {
        if (!this.closed) this.reader.push(msg);
      },
      onMessage: (cb) => {
        this.receiver = cb;
      },
      close: () => {
        if (this.closed) return;
        this.host.connectionClosed(this);
      },
      onClose: (cb) => {
        this.closers.push(cb);
      },
    };
  }

  protected deliver(msg: Uint8Array, _eventKey?: string, taken?: () => void): void {
    if (this.closed) return taken?.();
    this.queue.push({ msg, taken });
    this.queuedBytes += msg.length;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  pendingOutputBytes(): number {
    return this.queuedBytes;
  }

  shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.stop();
    this.queue = [];
    this.queuedBytes = 0;
    this.outputDiscarded();
    for (const c of this.closers) c();
  }

  abort(): void {
    this.shutdown();
  }

  private flush(): void {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const m of q) {
      if (this.closed) return;
      // Taken before the client sees it: an event that arrives while the client's watch
      // callback runs is a new one, not merged into the one being handled.
      m.taken?.();
      this.receiver(m.msg);
    }
  }
}
