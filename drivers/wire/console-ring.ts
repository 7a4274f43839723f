// io/console.h: the PV console page, and a small byte-ring engine for both of its ends.
//
//   in[1024]  @0     backend -> guest (keyboard input)
//   out[2048] @1024  guest -> backend (console output)
//   in_cons  u32 @3072, in_prod  u32 @3076
//   out_cons u32 @3080, out_prod u32 @3084
//   connection u8 @3088   (Xen 4.21+: XENCONSOLE_CONNECTED 0 / XENCONSOLE_DISCONNECTED 1)
//
// Indices are free-running u32, masked by the ring's size (MASK_XENCONS_IDX). The guest
// writes `out` and reads `in`; the backend (xenconsoled) reads `out` and writes `in`.
// Neither end trusts the other: a producer/consumer pair more than the ring size apart is
// garbage and is reported as CONSOLE_RING_ERROR instead of being acted upon, and every copy
// is bounded by both the ring and the caller's buffer.

export const XENCONS_IN_OFFSET = 0;
export const XENCONS_IN_SIZE = 1024;
export const XENCONS_OUT_OFFSET = 1024;
export const XENCONS_OUT_SIZE = 2048;
export const XENCONS_IN_CONS_OFFSET = 3072;
export const XENCONS_IN_PROD_OFFSET = 3076;
export const XENCONS_OUT_CONS_OFFSET = 3080;
export const XENCONS_OUT_PROD_OFFSET = 3084;
export const XENCONS_CONNECTION_OFFSET = 3088;

export const XENCONSOLE_CONNECTED = 0;
export const XENCONSOLE_DISCONNECTED = 1;

/** Returned when the peer left impossible indices in the page. */
export const CONSOLE_RING_ERROR = -1;

/** Length of buf[start, end) after clamping both ends into the buffer. */
function span(buf: Uint8Array, start: number, end: number): number {
  const s = Math.max(0, Math.min(start, buf.length));
  const e = Math.max(s, Math.min(end, buf.length));
  return e - s;
}

/** One direction of the console page: `size` data bytes at `dataOff`, indices at
 * `consOff`/`prodOff` (byte offsets in the page). */
export class ConsoleByteRing {
  private readonly data: Uint8Array;
  private readonly idx: Uint32Array;
  private readonly consI: number;
  private readonly prodI: number;
  private readonly mask: number;

  constructor(buffer: SharedArrayBuffer, pageOffset: number, dataOff: number, readonly size: number, consOff: number, prodOff: number) {
    this.data = new Uint8Array(buffer, pageOffset + dataOff, size);
    this.idx = new Uint32Array(buffer, pageOffset, 4096 / 4);
    this.consI = consOff >>> 2;
    this.prodI = prodOff >>> 2;
    this.mask = size - 1;
  }

  /** Bytes waiting to be read, or CONSOLE_RING_ERROR. */
  pending(): number {
    const used = (Atomics.load(this.idx, this.prodI) - Atomics.load(this.idx, this.consI)) >>> 0;
    return used > this.size ? CONSOLE_RING_ERROR : used;
  }

  /** Producer: copies as much of src[start, end) as fits; returns bytes written (0 when
   * full) or CONSOLE_RING_ERROR. Publishes the new producer index after the data. */
  write(src: Uint8Array, start = 0, end = src.length): number {
    start = Math.max(0, start);
    const cons = Atomics.load(this.idx, this.consI);
    const prod = Atomics.load(this.idx, this.prodI);
    const used = (prod - cons) >>> 0;
    if (used > this.size) return CONSOLE_RING_ERROR;
    const n = Math.min(this.size - used, span(src, start, end));
    for (let i = 0; i < n; i++) this.data[(prod + i) & this.mask] = src[start + i]!;
    Atomics.store(this.idx, this.prodI, (prod + n) >>> 0);
    return n;
  }

  /** Consumer: copies up to dst[start, end) worth of bytes; returns bytes read (0 when
   * empty) or CONSOLE_RING_ERROR. Frees the space only after the bytes are copied. */
  read(dst: Uint8Array, start = 0, end = dst.length): number {
    start = Math.max(0, start);
    const cons = Atomics.load(this.idx, this.consI);
    const prod = Atomics.load(this.idx, this.prodI);
    const avail = (prod - cons) >>> 0;
    if (avail > this.size) return CONSOLE_RING_ERROR;
    const n = Math.min(avail, span(dst, start, end));
    for (let i = 0; i < n; i++) dst[start + i] = this.data[(cons + i) & this.mask]!;
    Atomics.store(this.idx, this.consI, (cons + n) >>> 0);
    return n;
  }
}

/** Both directions plus the connection flag of one console page. */
export class ConsolePage {
  readonly in: ConsoleByteRing;
  readonly out: ConsoleByteRing;
  private readonly bytes: Uint8Array;

  constructor(buffer: SharedArrayBuffer, pageOffset = 0) {
    if (pageOffset % 4 !== 0 || pageOffset + 4096 > buffer.byteLength) throw new RangeError('bad console page offset');
    this.in = new ConsoleByteRing(buffer, pageOffset, XENCONS_IN_OFFSET, XENCONS_IN_SIZE, XENCONS_IN_CONS_OFFSET, XENCONS_IN_PROD_OFFSET);
    this.out = new ConsoleByteRing(buffer, pageOffset, XENCONS_OUT_OFFSET, XENCONS_OUT_SIZE, XENCONS_OUT_CONS_OFFSET, XENCONS_OUT_PROD_OFFSET);
    this.bytes = new Uint8Array(buffer, pageOffset, 4096);
  }

  get connection(): number {
    return Atomics.load(this.bytes, XENCONS_CONNECTION_OFFSET);
  }
  set connection(v: number) {
    Atomics.store(this.bytes, XENCONS_CONNECTION_OFFSET, v);
  }
}

/** The guest's end (hvc_xen): writes output, reads input. */
export class ConsoleGuestEnd {
  readonly page: ConsolePage;
  constructor(buffer: SharedArrayBuffer, pageOffset = 0) {
    this.page = new ConsolePage(buffer, pageOffset);
  }
  /** Bytes written (0 when the backend has not drained `out`), or CONSOLE_RING_ERROR. */
  write(src: Uint8Array, start?: number, end?: number): number {
    return this.page.out.write(src, start, end);
  }
  read(dst: Uint8Array, start?: number, end?: number): number {
    return this.page.in.read(dst, start, end);
  }
  /** True when a backend announced it services the page (4.21 flag; 0 = connected). */
  get backendConnected(): boolean {
    return this.page.connection !== XENCONSOLE_DISCONNECTED;
  }
}

/** The backend's end (xenconsoled): reads the guest's output, writes input to it. */
export class ConsoleBackendEnd {
  readonly page: ConsolePage;
  constructor(buffer: SharedArrayBuffer, pageOffset = 0) {
    this.page = new ConsolePage(buffer, pageOffset);
  }
  readOutput(dst: Uint8Array, start?: number, end?: number): number {
    return this.page.out.read(dst, start, end);
  }
  writeInput(src: Uint8Array, start?: number, end?: number): number {
    return this.page.in.write(src, start, end);
  }
  /** Mark the page serviced (xenconsoled does this when it connects). */
  connect(): void {
    this.page.connection = XENCONSOLE_CONNECTED;
  }
}
