// Keys and pointer moves from the display's viewers (the VNC server, in the stub domain's main
// thread) to the i8042 (in the guest's device-model thread): a single-producer single-consumer
// ring of two-word events in a SharedArrayBuffer. Bounded: when the device model does not keep
// up (a guest that never reads its keyboard), new events are dropped and counted; the producer
// never waits.
const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const HEADER = 4;
const EVENT_WORDS = 2;
export const INPUT_QUEUE_EVENTS = 512;

const KIND_KEY = 1;
const KIND_POINTER = 2;

export interface InputSink {
  key(key: number, down: boolean): void;
  pointer(x: number, y: number, buttons: number): void;
}

export class InputQueue {
  readonly words: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer((HEADER + INPUT_QUEUE_EVENTS * EVENT_WORDS) * 4)) {
    this.words = new Int32Array(buffer);
  }

  private push(w0: number, w1: number): boolean {
    const head = Atomics.load(this.words, HEAD);
    const tail = Atomics.load(this.words, TAIL);
    if (tail - head >= INPUT_QUEUE_EVENTS) {
      Atomics.add(this.words, DROPPED, 1);
      return false;
    }
    const at = HEADER + (tail % INPUT_QUEUE_EVENTS) * EVENT_WORDS;
    this.words[at] = w0;
    this.words[at + 1] = w1;
    Atomics.store(this.words, TAIL, tail + 1);
    return true;
  }

  /** key: set 1 code, | 0x100 for E0-prefixed keys. */
  key(key: number, down: boolean): boolean {
    return this.push((KIND_KEY << 24) | (down ? 1 << 16 : 0) | (key & 0x1ff), 0);
  }

  pointer(x: number, y: number, buttons: number): boolean {
    return this.push((KIND_POINTER << 24) | (buttons & 0xff), ((x & 0xffff) << 16) | (y & 0xffff));
  }

  get dropped(): number {
    return Atomics.load(this.words, DROPPED);
  }

  /** Consumer side: hand up to `max` events to `sink`; returns how many. */
  drain(sink: InputSink, max = 64): number {
    const head = Atomics.load(this.words, HEAD);
    const tail = Atomics.load(this.words, TAIL);
    const n = Math.min(max, tail - head);
    for (let i = 0; i < n; i++) {
      const at = HEADER + ((head + i) % INPUT_QUEUE_EVENTS) * EVENT_WORDS;
      const w0 = this.words[at]!;
      const w1 = this.words[at + 1]!;
      const kind = w0 >>> 24;
      if (kind === KIND_KEY) sink.key(w0 & 0x1ff, (w0 & (1 << 16)) !== 0);
      else if (kind === KIND_POINTER) sink.pointer(w1 >>> 16, w1 & 0xffff, w0 & 0xff);
    }
    if (n > 0) Atomics.store(this.words, HEAD, head + n);
    return n;
  }
}
