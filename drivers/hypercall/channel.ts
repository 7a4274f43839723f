// The hypercall channel: a SOCK_SEQPACKET unix socket between one domain and the hypervisor.
// It is the control plane only (like a trap into Xen): each call is one datagram of JSON
// with file descriptors riding along as SCM_RIGHTS (memfds, eventfds). No ring, packet or
// disk block ever crosses it; data paths use shared memory and event channels.
//
// Message shapes (UTF-8 JSON, one per datagram, at most MAX_MESSAGE bytes):
//   request   {"id": n, "op": "evtchn.send", "args": {...}}             (+ fds)
//   reply     {"id": n, "result": {...}} | {"id": n, "error": {"errno": "EINVAL", "message": "..."}} (+ fds)
//   upcall    {"upcall": "evtchn.bound", "args": {...}}                 (+ fds), hypervisor -> domain
import { native, type FdWatcher } from '../../native/index.js';

export const MAX_MESSAGE = 64 * 1024;

export class HypercallError extends Error {
  constructor(readonly errno: string, message: string) {
    super(message);
    this.name = 'HypercallError';
  }
  get code(): string {
    return this.errno;
  }
}

export interface Received {
  message: Record<string, unknown>;
  fds: number[];
}

/** One end of a seqpacket socket, delivering whole messages to a handler on the event loop. */
export class MessageSocket {
  private readonly watcher: FdWatcher;
  private readonly rxBuf = new Uint8Array(MAX_MESSAGE);
  private closed = false;
  private readonly outbox: { bytes: Uint8Array; fds: number[] }[] = [];
  /** A bound on queued output: a peer that never reads must not make us buffer forever. */
  static readonly MAX_OUTBOX = 4096;

  constructor(
    readonly fd: number,
    private readonly onMessage: (m: Received) => void,
    private readonly onClose: () => void,
  ) {
    const n = native();
    n.setNonblocking(fd, true);
    this.watcher = n.watchFd(fd, (events) => this.onReady(events));
    this.watcher.start(n.READABLE);
  }

  send(message: object, fds: number[] = []): void {
    if (this.closed) throw new HypercallError('EPIPE', 'hypercall channel is closed');
    const bytes = Buffer.from(JSON.stringify(message));
    if (bytes.length > MAX_MESSAGE) throw new HypercallError('E2BIG', `hypercall message of ${bytes.length} bytes`);
    if (this.outbox.length === 0 && this.trySend(bytes, fds)) return;
    if (this.outbox.length >= MessageSocket.MAX_OUTBOX) {
      this.close();
      throw new HypercallError('ENOBUFS', 'peer is not reading its hypercall channel');
    }
    this.outbox.push({ bytes, fds });
    this.watcher.start(native().READABLE | native().WRITABLE);
  }

  private trySend(bytes: Uint8Array, fds: number[]): boolean {
    try {
      return native().sendMsg(this.fd, bytes, fds) !== null;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private onReady(events: number): void {
    const n = native();
    if (events < 0) return this.close();
    if (events & n.WRITABLE) {
      while (this.outbox.length > 0) {
        const head = this.outbox[0]!;
        if (!this.trySend(head.bytes, head.fds)) break;
        this.outbox.shift();
      }
      if (this.outbox.length === 0 && !this.closed) this.watcher.start(n.READABLE);
    }
    if (events & n.READABLE) {
      // Bounded batch per callback so one chatty peer cannot starve the loop.
      for (let i = 0; i < 64 && !this.closed; i++) {
        let r;
        try {
          r = n.recvMsg(this.fd, this.rxBuf);
        } catch {
          return this.close();
        }
        if (r === null) break;
        if (r.bytes === 0) return this.close();
        let message: Record<string, unknown>;
        try {
          const parsed: unknown = JSON.parse(Buffer.from(this.rxBuf.buffer, 0, r.bytes).toString('utf8'));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          message = parsed as Record<string, unknown>;
        } catch {
          for (const fd of r.fds) n.close(fd);
          // A garbled control message means a broken or hostile peer: stop talking to it.
          return this.close();
        }
        this.onMessage({ message, fds: r.fds });
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    native().close(this.fd);
    for (const m of this.outbox) for (const fd of m.fds) native().close(fd);
    this.outbox.length = 0;
    this.onClose();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

export interface CallResult<T> {
  result: T;
  fds: number[];
}

type Pending = { resolve: (r: CallResult<any>) => void; reject: (e: Error) => void };

/** The domain side: issue hypercalls, receive upcalls. */
export class HypercallClient {
  private readonly socket: MessageSocket;
  private nextId: number;
  private readonly pending = new Map<number, Pending>();
  private readonly upcallHandlers = new Map<string, (args: any, fds: number[]) => void>();
  private closeHandlers: (() => void)[] = [];

  /** `firstId`: where this client's call ids start. A client taking over a channel whose
   * previous user died (a restarted dom0 and a stub domain) starts past every id the dead
   * one could have used, so a late answer to a dead call is never taken for a new one. */
  constructor(fd: number, opts: { firstId?: number } = {}) {
    this.nextId = opts.firstId ?? 1;
    this.socket = new MessageSocket(fd, (m) => this.dispatch(m), () => this.onClosed());
  }

  call<T = any>(op: string, args: object = {}, fds: number[] = []): Promise<CallResult<T>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.socket.send({ id, op, args }, fds);
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /** Call and return only the result; any fds that came back are closed. */
  async invoke<T = any>(op: string, args: object = {}): Promise<T> {
    const { result, fds } = await this.call<T>(op, args);
    for (const fd of fds) native().close(fd);
    return result;
  }

  onUpcall(name: string, handler: (args: any, fds: number[]) => void): void {
    this.upcallHandlers.set(name, handler);
  }

  onClose(handler: () => void): void {
    this.closeHandlers.push(handler);
  }

  close(): void {
    this.socket.close();
  }

  private dispatch({ message, fds }: Received): void {
    if (typeof message.upcall === 'string') {
      const h = this.upcallHandlers.get(message.upcall);
      if (h) h(message.args, fds);
      else for (const fd of fds) native().close(fd);
      return;
    }
    const id = message.id as number;
    const p = this.pending.get(id);
    if (!p) {
      for (const fd of fds) native().close(fd);
      return;
    }
    this.pending.delete(id);
    const err = message.error as { errno: string; message: string } | undefined;
    if (err) {
      for (const fd of fds) native().close(fd);
      p.reject(new HypercallError(err.errno, err.message));
    } else {
      p.resolve({ result: message.result, fds });
    }
  }

  private onClosed(): void {
    for (const p of this.pending.values()) p.reject(new HypercallError('EPIPE', 'hypervisor went away'));
    this.pending.clear();
    for (const h of this.closeHandlers) h();
  }
}
