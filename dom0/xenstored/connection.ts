// One client of xenstored: a socket client, a domain's ring, or an in-process toolstack. It
// carries who the client is (domid, privileged, SET_TARGET target), its transactions, and an
// outgoing path whose backlog is bounded: a peer that stops reading while events pile up for
// it is dropped (XSA-349) instead of growing xenstored's memory without limit.
//
// Events a *different unprivileged domain* caused are another matter: that domain must not be
// able to get anyone else dropped, nor to flood them (one transaction can change hundreds of
// nodes under a path dom0's backends watch). For those, at most one event per watch waits for
// the peer - a newer one is merged into it, as Linux's xenbus does for its backends since
// XSA-349 (watchers re-read what they watch) - and past the output bound they are discarded
// with a log line, never the connection.
import { XS_HEADER_SIZE, XENSTORE_PAYLOAD_MAX, XsType, type XsHeader } from '../../drivers/xenstore/xs-wire.js';
import { LogRateLimit } from '../../common/log-ratelimit.js';
import type { Requester } from './perms.js';
import type { Transaction } from './transaction.js';
import type { Watch, WatchOwner } from './watches.js';

/** What a connection needs from the server that owns it. */
export interface ConnectionHost {
  /** Process one complete request (never throws). */
  handle(conn: Connection, hdr: XsHeader, payload: Uint8Array): void;
  /**
   * Tear the connection down with one log line saying why; `ringError` is what a ring
   * connection reports in its error indicator (default: communication error).
   */
  dropConnection(conn: Connection, why: string, ringError?: number): void;
  /** Forget the connection's watches and transactions (reset, reconnect). */
  resetConnection(conn: Connection): void;
  /** The transport went away by itself (socket closed...). */
  connectionClosed(conn: Connection): void;
  log(line: string): void;
  /**
   * Set when xenstored keeps a live state that must survive it (live-state.ts): ring
   * connections then hold what they read and queue what they write until commit() has saved
   * it, and call commit() after reading.
   */
  readonly savesState?: boolean;
  commit?(): void;
}

export const OK_PAYLOAD: Uint8Array = Buffer.from('OK\0', 'latin1');

let nextSerial = 1;

export abstract class Connection implements WatchOwner {
  readonly serial = nextSerial++;
  target?: number;
  readonly transactions = new Map<number, Transaction>();
  /** Transactions open when a previous xenstored died: their requests get EAGAIN, as after
   * a live update that could not keep them, and the guest retries. */
  readonly abortedTx = new Set<number>();
  private nextTxId = 1;
  closed = false;
  /** Watches with an event another domain caused still waiting for this peer. */
  private readonly waiting = new Set<Watch>();
  /** Such events merged into a waiting one, or discarded past the output bound. */
  mergedEvents = 0;
  discardedEvents = 0;
  /** Lines this peer's requests cause: 10 per 5 s, as printk_ratelimit allows. */
  private readonly logLimit = new LogRateLimit();

  constructor(
    protected readonly host: ConnectionHost,
    readonly domid: number,
    readonly privileged: boolean,
    /** XSA-349 bound on output waiting for this peer, in bytes. */
    protected readonly maxOutputBytes: number,
  ) {}

  /** Names the connection in log lines. */
  abstract get label(): string;

  /**
   * Hand one encoded message to the transport. `eventKey` is set for watch events: the
   * "path\0token" identity used to send an identical pending event only once, or '' for
   * special (@) events, which C never merges. `taken`, when given, is called once the peer
   * has the message (or it was thrown away with the rest of the output).
   */
  protected abstract deliver(msg: Uint8Array, eventKey?: string, taken?: () => void): void;

  /** A log line about something this peer did, rate-limited per connection. */
  logLine(msg: string): void {
    this.logLimit.log((l) => this.host.log(`${this.label}: ${l}`), msg);
  }

  /** The transport threw away its queued output: nothing of ours waits any more. */
  protected outputDiscarded(): void {
    this.waiting.clear();
  }

  /** Bytes accepted by deliver() but not yet taken by the peer. */
  abstract pendingOutputBytes(): number;

  /** Stop the transport for good (release, server shutdown, peer gone). */
  abstract shutdown(): void;

  /** Stop serving a misbehaving peer (called by the host's dropConnection). */
  abstract abort(ringError?: number): void;

  reply(hdr: XsHeader, type: XsType, payload: Uint8Array): void {
    if (payload.length > XENSTORE_PAYLOAD_MAX) {
      // A reply that would not fit is an error, never a connection-killing message (C send_reply).
      this.replyError(hdr, 'E2BIG');
      return;
    }
    this.send(type, hdr.reqId, hdr.txId, payload);
  }

  replyError(hdr: XsHeader, code: string): void {
    this.send(XsType.ERROR, hdr.reqId, hdr.txId, Buffer.from(`${code}\0`, 'latin1'));
  }

  /**
   * A WATCH_EVENT (req_id and tx_id 0). Over-long events are not sent, as in C. `cause` is
   * who changed the node (undefined: xenstored itself or this peer's own watch set-up).
   */
  sendEvent(path: string, token: string, watch?: Watch, cause?: Requester): void {
    if (this.closed) return;
    const len = path.length + token.length + 2;
    if (len > XENSTORE_PAYLOAD_MAX) return;
    const foreign = cause !== undefined && !cause.privileged && cause.domid !== this.domid;
    if (foreign) return this.sendForeignEvent(path, token, len, watch);
    const msg = encodeEvent(path, token, len);
    this.deliver(msg, path[0] === '@' ? '' : `${path}\0${token}`);
    // The bound is checked on events: they are what a peer can be flooded with without
    // asking (XSA-349). Replies are bounded by the peer's own requests: rings by the
    // outstanding-request limit, sockets by not reading more while output is backed up.
    const pending = this.pendingOutputBytes();
    if (!this.closed && pending > this.maxOutputBytes) {
      this.host.dropConnection(
        this,
        `${pending} bytes of output pending (limit ${this.maxOutputBytes}): peer is not reading its watch events (XSA-349)`,
      );
    }
  }

  /** An event another unprivileged domain caused: merged per watch, bounded, never fatal. */
  private sendForeignEvent(path: string, token: string, len: number, watch?: Watch): void {
    if (watch && this.waiting.has(watch)) {
      this.mergedEvents++;
      return;
    }
    if (this.pendingOutputBytes() + XS_HEADER_SIZE + len > this.maxOutputBytes) {
      if (this.discardedEvents++ === 0) {
        this.host.log(`${this.label}: output bound reached; discarding watch events other domains cause (first: ${path.slice(0, 80)})`);
      }
      return;
    }
    const msg = encodeEvent(path, token, len);
    if (watch) this.waiting.add(watch);
    this.deliver(msg, path[0] === '@' ? '' : `${path}\0${token}`, watch ? () => this.waiting.delete(watch) : undefined);
  }

  /** The next transaction id, for a saved state. */
  get txIdCursor(): number {
    return this.nextTxId;
  }

  /** A saved connection's transactions: gone, answered EAGAIN; their ids not reused soon. */
  restoreTransactions(open: number[], next: number): void {
    for (const id of open) this.abortedTx.add(id >>> 0);
    this.nextTxId = next >>> 0 || 1;
  }

  /** Transaction ids are per connection, start at 1 and skip ids still open (C). */
  allocTxId(): number {
    let id = this.nextTxId;
    while (id === 0 || this.transactions.has(id) || this.abortedTx.has(id)) id = (id + 1) >>> 0;
    this.nextTxId = (id + 1) >>> 0;
    return id;
  }

  private send(type: XsType, reqId: number, txId: number, payload: Uint8Array): void {
    if (this.closed) return;
    const msg = Buffer.allocUnsafe(XS_HEADER_SIZE + payload.length);
    writeHdr(msg, type, reqId, txId, payload.length);
    msg.set(payload, XS_HEADER_SIZE);
    this.deliver(msg);
  }
}

function encodeEvent(path: string, token: string, len: number): Buffer {
  const msg = Buffer.allocUnsafe(XS_HEADER_SIZE + len);
  writeHdr(msg, XsType.WATCH_EVENT, 0, 0, len);
  let off = XS_HEADER_SIZE + msg.write(path, XS_HEADER_SIZE, 'latin1');
  msg[off++] = 0;
  off += msg.write(token, off, 'latin1');
  msg[off] = 0;
  return msg;
}

function writeHdr(b: Buffer, type: number, reqId: number, txId: number, len: number): void {
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(reqId >>> 0, 4);
  b.writeUInt32LE(txId >>> 0, 8);
  b.writeUInt32LE(len, 12);
}
