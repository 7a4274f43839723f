// The synchronous ioreq path across threads, as it will run for real: a device-model worker
// serving the shared ioreq page in run mode, and vCPU workers that publish requests in their
// slots, ring the doorbell and block in futex_wait on their slot's state word until the device
// model answers IORESP_READY. Workers cannot load TypeScript, so the fixtures are bundled with
// esbuild; futexes are the native addon's raw (shared) ones.
import { buildSync } from 'esbuild';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { IOREQ_READ, IOREQ_TYPE_PIO } from '../../drivers/wire/ioreq.js';
import { native, nativeBuildDir } from '../../native/index.js';
import { IoreqServer } from '../../stubdom/device-model/ioreq-server.js';
import { IoreqTimeoutError, IoreqVcpuPort } from '../../drivers/ioreq/ioreq-vcpu.js';
import { nativeFutex } from '../../drivers/ioreq/native-futex.js';

function bundle(name: string): string {
  const entry = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const out = buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', write: false, target: 'node20', logLevel: 'silent' });
  return out.outputFiles[0]!.text;
}

function result<T>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    w.once('message', (m) => resolve(m as T));
    w.once('error', reject);
  });
}

describe('ioreq round trip across worker threads', () => {
  it('vCPU threads block on their slot word until the device model answers', async () => {
    const addon = join(nativeBuildDir(), 'xenode.node');
    const ram = new SharedArrayBuffer(1024 * 1024);
    const page = new SharedArrayBuffer(4096);
    const ctl = new SharedArrayBuffer(64); // [0] doorbell, [1] stop, [2] dm ready
    const ctlView = new Int32Array(ctl);
    const vcpus = 2;
    const iterations = 1500;
    const dm = new Worker(bundle('dm-worker.ts'), { eval: true, workerData: { addon, ram, page, ctl, vcpus } });
    const dmDone = result<{ error?: string; metrics: IoreqServer['metrics']; txBytes: number }>(dm);
    try {
      const deadline = Date.now() + 20_000;
      while (Atomics.load(ctlView, 2) !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const code = bundle('vcpu-worker.ts');
      const cpus = [...Array(vcpus).keys()].map((vcpu) => new Worker(code, { eval: true, workerData: { addon, ram, page, ctl, vcpu, iterations } }));
      const results = await Promise.all(cpus.map((w) => result<{ error?: string; bad: number; calls: number; sleeps: number; usPerCall: number }>(w)));
      await Promise.all(cpus.map((w) => w.terminate()));
      for (const r of results) {
        expect(r.error).toBeUndefined();
        expect(r.bad).toBe(0);
      }
      IoreqServer.requestStop({ view: ctlView, index: 1 }, { view: ctlView, index: 0 }, nativeFutex());
      const dmr = await dmDone;
      expect(dmr.error).toBeUndefined();
      const calls = results.reduce((a, r) => a + r.calls, 0);
      expect(dmr.metrics.served).toBe(calls);
      expect(dmr.metrics.lostAnswers).toBe(0);
      expect(dmr.metrics.faults).toBe(0);
      expect(dmr.txBytes).toBe(64 * vcpus); // one rep outsb per vCPU
      // The vCPUs really slept in futex_wait (rather than spinning) at least sometimes.
      expect(results.reduce((a, r) => a + r.sleeps, 0)).toBeGreaterThan(0);
      console.log(`ioreq round trip: ${calls} exits, ${results.map((r) => r.usPerCall.toFixed(1)).join('/')} us per exit`);
    } finally {
      Atomics.store(ctlView, 1, 1);
      native().futexWake(ctlView, 0, 1);
      await dm.terminate();
    }
  }, 60_000);

  it('a vCPU whose device model is gone times out instead of hanging', () => {
    const page = new SharedArrayBuffer(4096);
    const ctl = new Int32Array(new SharedArrayBuffer(8));
    const port = new IoreqVcpuPort(page, 0, 0, { view: ctl, index: 0 }, nativeFutex());
    const t0 = Date.now();
    expect(() => port.call({ type: IOREQ_TYPE_PIO, addr: 0x3f8n, size: 1, dir: IOREQ_READ }, 100)).toThrow(IoreqTimeoutError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(Atomics.load(ctl, 0)).toBe(1); // it did ring the doorbell
  });
});
