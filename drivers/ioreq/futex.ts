// How device-model threads block and wake. The shapes are those of the native addon's
// futexWait/futexWake (native/index.ts): pass `native()` itself, or nativeFutex() from
// native-futex.ts. Those are raw, shared (non-private) futexes and work across processes on a
// memfd mapping, which is what a vCPU in the hypervisor process (or a KVM vCPU thread) needs.
// atomicsFutex is Atomics.wait/notify: worker threads of ONE process only (V8 keeps its own
// wait list, so it never meets a raw futex) — for tests and single-process embedders.

export interface FutexOps {
  /** Block while view[index] === expected, at most timeoutMs (< 0: forever). */
  futexWait(view: Int32Array, index: number, expected: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out';
  /** Wake up to `count` waiters on view[index]; returns how many were woken. */
  futexWake(view: Int32Array, index: number, count: number): number;
}

/** A 32-bit word in shared memory. */
export interface WordRef {
  view: Int32Array;
  index: number;
}

export const atomicsFutex: FutexOps = {
  futexWait(view, index, expected, timeoutMs) {
    return Atomics.wait(view, index, expected, timeoutMs < 0 ? Infinity : timeoutMs);
  },
  futexWake(view, index, count) {
    return Atomics.notify(view, index, count);
  },
};
