// Reassembles xenstore messages from a byte stream (a unix socket, or bytes drained from a
// ring). Complete messages inside one chunk are handed out as views without copying; only a
// message split across chunks is gathered into one preallocated buffer.
import { XENSTORE_PAYLOAD_MAX, XS_HEADER_SIZE, type XsHeader } from './xs-wire.js';

/** `msg` is the whole message (header + payload); both views are only valid during the call. */
export type FrameHandler = (hdr: XsHeader, payload: Uint8Array, msg: Uint8Array) => void;

export class FrameReader {
  /** Partial message (header and payload) carried over between chunks. */
  private readonly partial = new Uint8Array(XS_HEADER_SIZE + XENSTORE_PAYLOAD_MAX);
  private used = 0;
  private dead = false;

  /**
   * @param onMessage called once per message; `payload` is only valid during the call.
   * @param onError called once when the peer breaks the protocol; the reader then ignores
   *   everything (the caller drops the connection, as xenstored does).
   */
  constructor(
    private readonly onMessage: FrameHandler,
    private readonly onError: (why: string) => void,
  ) {}

  /** Ignore all further input (the connection is being dropped). */
  stop(): void {
    this.dead = true;
    this.used = 0;
  }

  push(chunk: Uint8Array): void {
    let off = 0;
    while (!this.dead && off < chunk.length) {
      if (this.used > 0) {
        off = this.continuePartial(chunk, off);
        continue;
      }
      const left = chunk.length - off;
      if (left < XS_HEADER_SIZE) {
        this.partial.set(chunk.subarray(off), 0);
        this.used = left;
        return;
      }
      const hdr = headerAt(chunk, off);
      if (!this.checkLen(hdr)) return;
      const end = off + XS_HEADER_SIZE + hdr.len;
      if (end > chunk.length) {
        this.partial.set(chunk.subarray(off), 0);
        this.used = left;
        return;
      }
      this.onMessage(hdr, chunk.subarray(off + XS_HEADER_SIZE, end), chunk.subarray(off, end));
      off = end;
    }
  }

  private continuePartial(chunk: Uint8Array, off: number): number {
    if (this.used < XS_HEADER_SIZE) {
      const take = Math.min(XS_HEADER_SIZE - this.used, chunk.length - off);
      this.partial.set(chunk.subarray(off, off + take), this.used);
      this.used += take;
      off += take;
      if (this.used < XS_HEADER_SIZE) return off;
      if (!this.checkLen(headerAt(this.partial, 0))) return chunk.length;
    }
    const hdr = headerAt(this.partial, 0);
    const total = XS_HEADER_SIZE + hdr.len;
    const take = Math.min(total - this.used, chunk.length - off);
    this.partial.set(chunk.subarray(off, off + take), this.used);
    this.used += take;
    off += take;
    if (this.used === total) {
      this.used = 0;
      this.onMessage(hdr, this.partial.subarray(XS_HEADER_SIZE, total), this.partial.subarray(0, total));
    }
    return off;
  }

  private checkLen(hdr: XsHeader): boolean {
    if (hdr.len <= XENSTORE_PAYLOAD_MAX) return true;
    this.dead = true;
    this.used = 0;
    this.onError(`payload length ${hdr.len} exceeds ${XENSTORE_PAYLOAD_MAX}`);
    return false;
  }
}

function headerAt(b: Uint8Array, off: number): XsHeader {
  // Hand-rolled little-endian reads: cheaper than a DataView per message.
  const u32 = (o: number) =>
    (b[off + o]! | (b[off + o + 1]! << 8) | (b[off + o + 2]! << 16) | (b[off + o + 3]! << 24)) >>> 0;
  return { type: u32(0), reqId: u32(4), txId: u32(8), len: u32(12) };
}
