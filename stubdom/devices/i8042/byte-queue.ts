// A bounded FIFO of bytes, as a PS/2 device's output buffer: when it is full, new bytes are
// dropped and counted (a guest that never reads its keyboard cannot make the device model grow).
export class ByteQueue {
  private readonly buf: Uint8Array;
  private head = 0;
  private count = 0;
  dropped = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  get length(): number {
    return this.count;
  }

  room(): number {
    return this.buf.length - this.count;
  }

  push(b: number): boolean {
    if (this.count === this.buf.length) {
      this.dropped++;
      return false;
    }
    this.buf[(this.head + this.count) % this.buf.length] = b & 0xff;
    this.count++;
    return true;
  }

  /** All of `bytes` or none (a scan code sequence or a mouse packet is never cut). */
  pushAll(bytes: readonly number[]): boolean {
    if (this.room() < bytes.length) {
      this.dropped++;
      return false;
    }
    for (const b of bytes) this.push(b);
    return true;
  }

  shift(): number | undefined {
    if (this.count === 0) return undefined;
    const b = this.buf[this.head]!;
    this.head = (this.head + 1) % this.buf.length;
    this.count--;
    return b;
  }

  /** The queued bytes, oldest first (a saved device). */
  snapshot(): Uint8Array {
    const out = new Uint8Array(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.buf[(this.head + i) % this.buf.length]!;
    return out;
  }

  /** Replaces the contents; false (and unchanged) if they do not fit. */
  restore(bytes: Uint8Array): boolean {
    if (bytes.length > this.buf.length) return false;
    this.buf.set(bytes);
    this.head = 0;
    this.count = bytes.length;
    return true;
  }

  get capacity(): number {
    return this.buf.length;
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
  }
}
