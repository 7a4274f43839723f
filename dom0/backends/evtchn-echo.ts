// evtchn-echo, dom0's half of the diagnostic split device (xenstore type "echo"; the guest
// half is guest/kernel/frontends/evtchn-echo.ts). When the frontend has published its
// `event-channel` and is Initialised, we bind to it and go Connected. On request (the
// toolstack's `evtchn-pingpong` command) we time N event-channel round trips between dom0 and
// the guest: notify, wait for the echo, repeat. That is the cost of one event each way between
// two domains, measured against a raw futex ping-pong by bench/platform.ts.
//
// Closing: the toolstack sets our state to Closing (device-detach) or the frontend closes;
// either way we close the port and go Closed.
import type { BackendDriver, BackendFactory, Dom0Services } from './backend-bus.js';
import { XenbusState, type XenbusDevice } from '../../drivers/xenbus/xenbus-device.js';
import { ToolstackError } from '../toolstack/rpc.js';

export interface PingPongResult {
  iterations: number;
  warmup: number;
  /** Round-trip times in microseconds. */
  medianUs: number;
  p90Us: number;
  p99Us: number;
  meanUs: number;
  minUs: number;
  maxUs: number;
  totalMs: number;
}

export const PINGPONG_MAX_ITERATIONS = 200_000;

class EchoBackend implements BackendDriver {
  private port = -1;
  private binding = false;
  private closed = false;
  /** Set while a ping-pong runs: called on every echo. */
  private onEcho: (() => void) | null = null;
  private echoes = 0;
  private stray = 0;
  private runs = 0;
  /** Fails the running ping-pong (device closing). */
  private abort: ((e: Error) => void) | null = null;

  constructor(
    private readonly dev: XenbusDevice,
    private readonly frontDomid: number,
    private readonly devid: number,
    private readonly s: Dom0Services,
  ) {}

  async start(): Promise<void> {
    await this.dev.switchState(XenbusState.InitWait);
    await this.dev.watchOtherEnd((state) => void this.frontendChanged(state));
    // The toolstack asks us to close by writing our own state (removeDevice).
    await this.dev.watchPath(`${this.dev.path}/state`, () => {
      void this.dev.state().then((st) => {
        if (st === XenbusState.Closing) return this.disconnect();
      }).catch(() => {});
    });
  }

  private async frontendChanged(state: XenbusState): Promise<void> {
    if ((state === XenbusState.Initialised || state === XenbusState.Connected) && this.port < 0 && !this.binding && !this.closed) {
      this.binding = true;
      try {
        const remote = await this.dev.readInt('event-channel', 1, 1023);
        if (remote === undefined) throw new Error('frontend published no valid event-channel');
        this.port = await this.s.evtchn.bindInterdomain(this.frontDomid, remote);
        this.s.evtchn.on(this.port, () => this.echo());
        await this.dev.switchState(XenbusState.Connected);
      } catch (e) {
        this.s.log.error(`echo ${this.dev.path}: connect failed: ${(e as Error).message}`);
        await this.dev.switchState(XenbusState.Closed).catch(() => {});
      } finally {
        this.binding = false;
      }
    } else if (state === XenbusState.Closing || state === XenbusState.Closed) {
      await this.disconnect();
    }
  }

  private echo(): void {
    this.echoes++;
    if (this.onEcho) this.onEcho();
    else this.stray++;
  }

  private async disconnect(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort?.(new ToolstackError('ENODEV', 'echo device closed during the ping-pong'));
    if (this.port >= 0) await this.s.evtchn.close(this.port).catch(() => {});
    this.port = -1;
    await this.dev.switchState(XenbusState.Closed).catch(() => {});
  }

  /** N timed round trips after `warmup` untimed ones; one run at a time per device. */
  pingPong(iterations: number, warmup: number, timeoutMs: number): Promise<PingPongResult> {
    if (this.port < 0 || !this.s.evtchn.isConnected(this.port)) {
      return Promise.reject(new ToolstackError('ENOTCONN', 'echo device is not connected'));
    }
    if (this.onEcho) return Promise.reject(new ToolstackError('EBUSY', 'a ping-pong is already running on this device'));
    const port = this.port;
    const samples = new Float64Array(iterations);
    return new Promise((resolve, reject) => {
      let i = -warmup;
      let t0 = 0n;
      let start = 0n;
      const finish = (err: Error | null) => {
        clearTimeout(timer);
        this.onEcho = null;
        this.abort = null;
        if (err) return reject(err);
        this.runs++;
        resolve(summarise(samples, warmup, Number(process.hrtime.bigint() - start) / 1e6));
      };
      const timer = setTimeout(() => finish(new ToolstackError('ETIMEDOUT', `ping-pong timed out after ${timeoutMs} ms at round trip ${i}`)), timeoutMs);
      this.abort = finish;
      this.onEcho = () => {
        const now = process.hrtime.bigint();
        if (i >= 0) samples[i] = Number(now - t0) / 1000;
        i++;
        if (i === 0) start = now;
        if (i >= iterations) return finish(null);
        t0 = process.hrtime.bigint();
        this.s.evtchn.notify(port);
      };
      start = process.hrtime.bigint();
      t0 = start;
      this.s.evtchn.notify(port);
    });
  }

  stats(): Record<string, number> {
    return { port: this.port, echoes: this.echoes, stray: this.stray, runs: this.runs };
  }

  async remove(): Promise<void> {
    if (live.get(`${this.frontDomid}/${this.devid}`) === this) live.delete(`${this.frontDomid}/${this.devid}`);
    await this.disconnect();
    await this.dev.close();
  }
}

function summarise(samples: Float64Array, warmup: number, totalMs: number): PingPongResult {
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    iterations: sorted.length,
    warmup,
    medianUs: at(0.5),
    p90Us: at(0.9),
    p99Us: at(0.99),
    meanUs: sum / sorted.length,
    minUs: sorted[0]!,
    maxUs: sorted[sorted.length - 1]!,
    totalMs,
  };
}

/** Live echo backends by "<domid>/<devid>", for the toolstack's evtchn-pingpong command. */
const live = new Map<string, EchoBackend>();

export const evtchnEchoBackend: BackendFactory = async (dev, frontDomid, devid, s) => {
  const b = new EchoBackend(dev, frontDomid, devid, s);
  live.set(`${frontDomid}/${devid}`, b);
  try {
    await b.start();
  } catch (e) {
    live.delete(`${frontDomid}/${devid}`);
    throw e;
  }
  return b;
};

/** Run a ping-pong on domain `domid`'s echo device `devid` (toolstack command evtchn-pingpong). */
export function echoPingPong(domid: number, devid: number, iterations: number, warmup: number, timeoutMs: number): Promise<PingPongResult> {
  const b = live.get(`${domid}/${devid}`);
  if (!b) return Promise.reject(new ToolstackError('ENODEV', `domain ${domid} has no echo device ${devid} (attach one with device-attach, type "echo")`));
  return b.pingPong(iterations, warmup, timeoutMs);
}
