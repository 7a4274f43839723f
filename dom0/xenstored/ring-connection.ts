// xenstored's end of a domain's ring page. Requests are read straight out of the ring into a
// per-connection buffer (header, then payload), replies and watch events are written into
// the rsp ring and queued when it is full. Like C xenstored:
// - a domain with `outstanding` replies waiting is not read from until it drains them;
// - impossible indices or an oversized payload stop the connection and set the ring's error
//   indicator; the domain stays introduced (so @releaseDomain still fires later);
// - identical watch events not yet written are sent once;
// - a guest's reconnect request (connection = 1) resets the connection;
// - a guest ringing its event channel for nothing is held off, as netback and blkback do
//   (XSA-332; drivers/evtchn/event-storm-guard.ts).
import {
  RING_CORRUPT, XENSTORE_CONNECTED, XENSTORE_ERROR_COMM, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO,
  XENSTORE_ERROR_RINGIDX, XENSTORE_RECONNECT, XENSTORE_SERVER_FEATURE_ERROR,
  XENSTORE_SERVER_FEATURE_RECONNECTION, XsRingEnd,
} from '../../drivers/xenstore/xs-ring.js';
import { XENSTORE_PAYLOAD_MAX, XS_HEADER_SIZE, readHeader, type XsHeader } from '../../drivers/xenstore/xs-wire.js';
import { EventStormGuard } from '../../drivers/evtchn/event-storm-guard.js';
import { Connection, type ConnectionHost } from './connection.js';
import type { SavedRing } from './live-state.js';

export interface DomainRing {
  /** The guest's xenstore page (a view into a SharedArrayBuffer). */
  page: Uint8Array;
  /** Signal the domain's xenstore event channel. */
  notify: () => void;
  /** Stop listening on that event channel for `ms` (an event storm); absent: never. */
  holdOff?: (ms: number) => void;
}

interface OutMsg {
  buf: Uint8Array;
  off: number;
  eventKey?: string;
  taken?: () => void;
}

export class RingConnection extends Connection {
  private readonly ring: XsRingEnd;
  private readonly hdrBuf = new Uint8Array(XS_HEADER_SIZE);
  private readonly body = new Uint8Array(XENSTORE_PAYLOAD_MAX);
  private inUsed = 0;
  private inHdr: XsHeader | null = null;
  private readonly out: OutMsg[] = [];
  private outBytes = 0;
  /** Replies (not events) not yet fully in the ring: C's "outstanding" count. */
  private outstanding = 0;
  private readonly pendingEvents = new Set<string>();
  private pumping = false;
  /** Consumer index as of the last committed(): published to the guest. */
  private savedCons = -1;
  private again = false;
  private dirty = false;
  /** Set once the connection is stopped for misbehaviour; the domain stays introduced. */
  ignored = false;
  /** The guest's indices as the last event left them: an event after which they have not
   * moved, and that moved no bytes either, was rung for nothing. */
  private peerSeen = -1;
  private moved = 0;
  readonly storm: EventStormGuard;

  constructor(
    host: ConnectionHost,
    domid: number,
    private readonly dring: DomainRing,
    private readonly outstandingLimit: number,
    maxOutputBytes: number,
  ) {
    super(host, domid, false, maxOutputBytes);
    this.ring = new XsRingEnd(dring.page, 'server');
    this.ring.advertise(XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR);
    this.ring.error = XENSTORE_ERROR_NONE;
    this.storm = new EventStormGuard((ms) => dring.holdOff?.(ms));
    if (host.savesState) this.ring.hold();
  }

  /** Changes whenever save() would say something else (with the watch count, which the host
   * adds): a commit that moved no ring saves none. */
  saveKey(): string {
    return `${this.ring.consumed},${this.ring.produced},${this.out.length},${this.outBytes},${this.inUsed},${this.inHdr ? 1 : 0},${this.ignored},${this.transactions.size},${this.abortedTx.size},${this.txIdCursor},${this.target}`;
  }

  /** What a successor needs to carry on with this ring exactly where we are (live-state.ts). */
  save(): SavedRing {
    const partial = this.inHdr ? this.body.subarray(0, this.inUsed) : this.hdrBuf.subarray(0, this.inUsed);
    return {
      domid: this.domid,
      target: this.target,
      reqCons: this.ring.consumed,
      rspProd: this.ring.produced,
      out: this.out.map((m) => ({ bytes: Buffer.from(m.buf.subarray(m.off)).toString('base64'), eventKey: m.eventKey })),
      inHdr: this.inHdr,
      inBytes: Buffer.from(partial).toString('base64'),
      ignored: this.ignored,
      openTx: [...this.transactions.keys(), ...this.abortedTx],
      nextTxId: this.txIdCursor,
      watches: [],
    };
  }

  /**
   * Carry on from a predecessor's saved state instead of resetting the ring: consumption where
   * it had saved it (it may have died before publishing it), its unwritten output less what
   * reached the ring after it saved, its half-read request.
   */
  resume(saved: SavedRing): void {
    this.target = saved.target;
    this.ring.resumeConsumed(saved.reqCons);
    let written = (this.ring.produced - saved.rspProd) >>> 0;
    for (const o of saved.out) {
      const buf = Buffer.from(o.bytes, 'base64');
      const skip = Math.min(written, buf.length);
      written -= skip;
      if (skip === buf.length) continue;
      this.out.push({ buf, off: skip, eventKey: o.eventKey });
      this.outBytes += buf.length - skip;
      if (o.eventKey === undefined) this.outstanding++;
      else if (o.eventKey !== '') this.pendingEvents.add(o.eventKey);
    }
    const partial = Buffer.from(saved.inBytes, 'base64');
    this.inHdr = saved.inHdr;
    (saved.inHdr ? this.body : this.hdrBuf).set(partial.subarray(0, saved.inHdr ? this.body.length : this.hdrBuf.length));
    this.inUsed = partial.length;
    this.restoreTransactions(saved.openTx, saved.nextTxId);
    if (saved.ignored) this.ignored = true;
    this.dirty = true;
  }

  /** The host saved its state: let the guest see what we read and what we wrote. */
  committed(): void {
    if (this.closed) return;
    if (this.ring.release()) this.dirty = true;
    this.savedCons = this.ring.consumed;
    if (!this.ignored) this.flush();
    if (!this.pumping) this.signal();
  }

  get label(): string {
    return `domain ${this.domid} (ring)`;
  }

  /** The domain's event channel fired. */
  onEvent(): void {
    if (this.closed) return;
    const before = this.moved;
    const peer = this.ring.peerIndices();
    this.pump();
    this.storm.handled(this.moved - before + (peer !== this.peerSeen ? 1 : 0));
    this.peerSeen = this.ring.peerIndices();
  }

  /** Empty both rings and forget in-flight state (re-INTRODUCE, guest reconnect). */
  resetRing(): void {
    this.out.length = 0;
    this.outBytes = 0;
    this.outstanding = 0;
    this.pendingEvents.clear();
    this.outputDiscarded();
    this.inUsed = 0;
    this.inHdr = null;
    this.ring.resetIndices();
    this.ring.error = XENSTORE_ERROR_NONE;
    this.ignored = false;
    this.dirty = true;
  }

  /** Stop for good (release, shutdown): no more reads or writes. */
  shutdown(): void {
    this.closed = true;
    this.out.length = 0;
    this.outBytes = 0;
    this.pendingEvents.clear();
    this.outputDiscarded();
  }

  /**
   * Stop talking to a misbehaving domain and tell it why through the error indicator
   * (communication error when it stopped reading). Like C's ignore_connection().
   */
  abort(code = XENSTORE_ERROR_COMM): void {
    if (this.ignored) return;
    this.ignored = true;
    this.out.length = 0;
    this.outBytes = 0;
    this.outstanding = 0;
    this.pendingEvents.clear();
    this.outputDiscarded();
    this.ring.error = code;
    this.dring.notify();
  }

  pendingOutputBytes(): number {
    return this.outBytes;
  }

  protected deliver(msg: Uint8Array, eventKey?: string, taken?: () => void): void {
    if (this.ignored || this.closed) return taken?.();
    if (eventKey !== undefined) {
      if (eventKey !== '') {
        if (this.pendingEvents.has(eventKey)) return taken?.(); // identical event still queued: once is enough
        this.pendingEvents.add(eventKey);
      }
    } else {
      this.outstanding++;
    }
    this.out.push({ buf: msg, off: 0, eventKey, taken });
    this.outBytes += msg.length;
    // With a live state to keep, nothing reaches the guest before it is saved: the host's
    // commit() writes it out (committed()).
    if (this.host.savesState) return;
    // Only write here, never read: this runs inside other connections' requests (watch
    // events), and serving this domain's requests from in there would interleave two
    // requests' changes to the tree. Reading happens on this domain's own events.
    this.flush();
    if (!this.pumping) this.signal();
  }

  private signal(): void {
    if (this.dirty && !this.closed) {
      this.dirty = false;
      this.dring.notify();
    }
  }

  /** Move bytes both ways until neither direction progresses, then signal once. */
  private pump(): void {
    if (this.pumping) {
      this.again = true; // an event arrived while we were busy: look again before returning
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        if (this.closed) return;
        if (this.ring.connection === XENSTORE_RECONNECT) this.reconnect();
        if (this.ignored) return;
        this.flush();
        this.readRequests();
        // Bytes read but not part of a whole request yet: saved before the guest may reuse them.
        if (this.host.savesState && this.ring.consumed !== this.savedCons) this.host.commit?.();
      } while (this.again && !this.closed);
    } finally {
      this.pumping = false;
      this.signal();
    }
  }

  private reconnect(): void {
    this.logLine('guest requested a ring reconnect');
    this.host.resetConnection(this); // drops watches and transactions, like C's reset
    this.resetRing();
    this.ring.connection = XENSTORE_CONNECTED;
  }

  private flush(): void {
    while (this.out.length > 0 && !this.ignored) {
      const m = this.out[0]!;
      const n = this.ring.write(m.buf, m.off, m.buf.length - m.off);
      if (n === RING_CORRUPT) return this.misbehaved(XENSTORE_ERROR_RINGIDX, 'response ring indices corrupt');
      if (n === 0) return;
      this.dirty = true;
      this.moved += n;
      m.off += n;
      this.outBytes -= n;
      if (m.off < m.buf.length) return;
      this.out.shift();
      m.taken?.();
      if (m.eventKey !== undefined) {
        if (m.eventKey !== '') this.pendingEvents.delete(m.eventKey);
      }
      else this.outstanding--;
    }
  }

  private readRequests(): void {
    while (!this.ignored && !this.closed && this.outstanding < this.outstandingLimit) {
      if (!this.inHdr) {
        const n = this.ring.read(this.hdrBuf, this.inUsed, XS_HEADER_SIZE - this.inUsed);
        if (n === RING_CORRUPT) return this.misbehaved(XENSTORE_ERROR_RINGIDX, 'request ring indices corrupt');
        if (n === 0) return;
        this.dirty = true;
        this.moved += n;
        this.inUsed += n;
        if (this.inUsed < XS_HEADER_SIZE) continue;
        const hdr = readHeader(this.hdrBuf); // decoded once from our copy, never from the ring
        if (hdr.len > XENSTORE_PAYLOAD_MAX) {
          return this.misbehaved(XENSTORE_ERROR_PROTO, `payload length ${hdr.len} exceeds ${XENSTORE_PAYLOAD_MAX}`);
        }
        this.inHdr = hdr;
        this.inUsed = 0;
      }
      const hdr = this.inHdr;
      if (this.inUsed < hdr.len) {
        const n = this.ring.read(this.body, this.inUsed, hdr.len - this.inUsed);
        if (n === RING_CORRUPT) return this.misbehaved(XENSTORE_ERROR_RINGIDX, 'request ring indices corrupt');
        if (n === 0) return;
        this.dirty = true;
        this.moved += n;
        this.inUsed += n;
        if (this.inUsed < hdr.len) continue;
      }
      this.inHdr = null;
      this.inUsed = 0;
      this.host.handle(this, hdr, this.body.subarray(0, hdr.len));
    }
  }

  private misbehaved(code: number, why: string): void {
    this.host.dropConnection(this, why, code);
  }
}
