// Native ping-pong baselines between two processes on this host, for the event-channel round
// trip to be compared with in the same run:
//   futex   the addon's futexWait/futexWake on a shared memfd word, both sides blocking (the
//           cheapest cross-process wake-up there is: what a vCPU thread would use);
//   eventfd eventfd doorbells watched with uv_poll on each side's event loop (the mechanism
//           xenode's event channels are built on, without the event-channel layer).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { native } from '../../native/index.js';
import { track, kill as killChild } from './children.js';

const CHILD = join(import.meta.dirname, 'pingpong-child.js');

function startChild(mode: string, fds: number[], maxMs: number): ChildProcess {
  return track(spawn(process.execPath, [CHILD, mode, String(maxMs)], { stdio: ['ignore', 'pipe', 'inherit', ...fds] }));
}

export interface PingPong {
  /** The far end's process. */
  readonly pid: number;
  /** `iterations` timed round trips after `warmup` untimed ones; samples in microseconds. */
  run(iterations: number, warmup: number, timeoutMs: number): Promise<Float64Array>;
  close(): void;
}

export async function futexPingPong(maxMs: number): Promise<PingPong> {
  const n = native();
  const fd = n.memfdCreate('bench-futex', 4096);
  const v = new Int32Array(n.mapShared(fd, 4096));
  const child = startChild('futex', [fd], maxMs);
  n.close(fd);
  const readyBy = Date.now() + 10_000;
  while (Atomics.load(v, 1) === 0) {
    if (Date.now() > readyBy || child.exitCode !== null) throw new Error('futex ping-pong child did not start');
    n.futexWait(v, 1, 0, 50);
  }
  let seq = Atomics.load(v, 0);
  return {
    pid: child.pid!,
    async run(iterations, warmup, timeoutMs) {
      const samples = new Float64Array(iterations);
      const deadline = Date.now() + timeoutMs;
      for (let i = -warmup; i < iterations; i++) {
        const t0 = process.hrtime.bigint();
        const sent = seq + 1;
        Atomics.store(v, 0, sent);
        n.futexWake(v, 0, 1);
        while (Atomics.load(v, 0) === sent) {
          if (n.futexWait(v, 0, sent, 200) === 'timed-out' && Date.now() > deadline) throw new Error(`futex ping-pong timed out at ${i}`);
        }
        seq = sent + 1;
        if (i >= 0) samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
      }
      return samples;
    },
    close() {
      Atomics.store(v, 0, -1);
      n.futexWake(v, 0, 1);
      setTimeout(() => killChild(child), 200).unref();
    },
  };
}

export async function eventfdPingPong(maxMs: number): Promise<PingPong> {
  const n = native();
  const childBell = n.eventfdCreate(0);
  const myBell = n.eventfdCreate(0);
  const child = startChild('eventfd', [childBell, myBell], maxMs);
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error('eventfd ping-pong child did not start')), 10_000);
    child.stdout!.once('data', () => (clearTimeout(t), res()));
    child.once('exit', () => (clearTimeout(t), rej(new Error('eventfd ping-pong child exited'))));
  });
  let onBell: (() => void) | null = null;
  const w = n.watchFd(myBell, () => {
    if (n.eventfdRead(myBell) > 0) onBell?.();
  });
  w.start(n.READABLE);
  return {
    pid: child.pid!,
    run(iterations, warmup, timeoutMs) {
      const samples = new Float64Array(iterations);
      return new Promise((res, rej) => {
        let i = -warmup;
        let t0 = 0n;
        const timer = setTimeout(() => ((onBell = null), rej(new Error(`eventfd ping-pong timed out at ${i}`))), timeoutMs);
        onBell = () => {
          if (i >= 0) samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
          i++;
          if (i >= iterations) {
            clearTimeout(timer);
            onBell = null;
            return res(samples);
          }
          t0 = process.hrtime.bigint();
          n.eventfdWrite(childBell, 1);
        };
        t0 = process.hrtime.bigint();
        n.eventfdWrite(childBell, 1);
      });
    },
    close() {
      w.close();
      killChild(child);
      n.close(childBell);
      n.close(myBell);
    },
  };
}
