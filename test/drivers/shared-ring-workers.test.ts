// The ring engine across two threads sharing only SharedArrayBuffers: the front end here, the
// back end in a worker (fixtures/ring-back-worker.ts, bundled with esbuild since workers
// cannot load TypeScript). Wake-ups use Atomics.wait/notify on doorbell words, standing in
// for event channels.
import { buildSync } from 'esbuild';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { FrontRing, RING_OVERFLOW, SharedRing } from '../../drivers/ring/shared-ring.js';
import { NETIF_RSP_OKAY, NETIF_TX_SLOT_SIZE, netifTxRequest, netifTxResponse } from '../../drivers/wire/netif.js';

function bundleWorker(): string {
  const entry = fileURLToPath(new URL('./fixtures/ring-back-worker.ts', import.meta.url));
  const out = buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', write: false, target: 'node20' });
  return out.outputFiles[0]!.text;
}

describe('shared ring across worker threads', () => {
  it('moves 100k requests with few notifications and no lost wake-ups', async () => {
    const total = 100_000;
    const ringBuf = new SharedArrayBuffer(4096);
    const bellBuf = new SharedArrayBuffer(64);
    const bell = new Int32Array(bellBuf);
    const ring = new SharedRing(ringBuf, 0, NETIF_TX_SLOT_SIZE);
    const front = new FrontRing(ring); // initialise before the back end attaches
    const worker = new Worker(bundleWorker(), { eval: true, workerData: { ringBuf, bellBuf, total } });
    const result = once(worker, 'message');

    let sent = 0;
    let received = 0;
    let frontNotifies = 0;
    let frontArms = 0;
    let frontTimeouts = 0;
    let wrong = 0;
    let overflow = false;
    const rsp = { id: 0, status: 0 };
    const deadline = Date.now() + 30_000;
    while (received < total && Date.now() < deadline) {
      // Fill in uneven batches.
      const batch = 1 + (sent % 37);
      for (let k = 0; k < batch && sent < total && front.freeRequests() > 0; k++, sent++) {
        netifTxRequest.encode(ring.view, front.nextRequestSlot(), {
          gref: sent,
          offset: 0,
          flags: 0,
          id: sent & 0xffff,
          size: (sent * 7) & 0xffff,
        });
      }
      if (front.pushRequests()) {
        frontNotifies++;
        Atomics.add(bell, 0, 1);
        Atomics.notify(bell, 0);
      }
      const seen = Atomics.load(bell, 1);
      let n = front.unconsumedResponses();
      if (n === RING_OVERFLOW) {
        overflow = true;
        break;
      }
      if (n === 0) {
        const canSend = sent < total && front.freeRequests() > 0;
        if (canSend) continue;
        frontArms++;
        if (!front.finalCheckForResponses()) {
          if (Atomics.wait(bell, 1, seen, 5000) === 'timed-out') frontTimeouts++;
        }
        continue;
      }
      while (n-- > 0) {
        netifTxResponse.decode(front.takeResponse(), 0, rsp);
        if (rsp.id !== (received & 0xffff) || rsp.status !== NETIF_RSP_OKAY) wrong++;
        received++;
      }
    }
    if (overflow || received < total) {
      await worker.terminate();
      expect.fail(`front end stopped early: overflow=${overflow} received=${received}`);
    }
    const [msg] = (await result) as [{ done: number; bad: number; error?: string }];
    await worker.terminate();

    expect(overflow).toBe(false);
    expect(wrong).toBe(0);
    expect(msg.error).toBeUndefined();
    expect(msg.done).toBe(total);
    expect(msg.bad).toBe(0);
    expect(received).toBe(total);
    // No wake-up had to come from a timeout: every sleep was ended by a real notification.
    expect(frontTimeouts).toBe(0);
    expect(Atomics.load(bell, 4)).toBe(0);
    // Each side notifies at most once per time the other armed its event index in a final
    // check (+1 for the initial event index of 1).
    const backArms = Atomics.load(bell, 3);
    const backNotifies = Atomics.load(bell, 2);
    expect(frontNotifies).toBeLessThanOrEqual(backArms + 1);
    expect(backNotifies).toBeLessThanOrEqual(frontArms + 1);
    // And a busy ring costs far fewer notifications than requests.
    expect(frontNotifies + backNotifies).toBeLessThan(total / 4);
  }, 60_000);
});
