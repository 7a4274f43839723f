// Several threads pinning the same grant through one shared active table: the shared bits
// must stay set for as long as anyone holds the grant, and end clear.
import { buildSync } from 'esbuild';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { GTF_permit_access } from '../../drivers/grant/grant-entry.js';
import { ActiveGrantTable, GrantTable } from '../../drivers/grant/grant-table.js';

function bundle(name: string): string {
  const entry = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  return buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', write: false, target: 'node20' }).outputFiles[0]!
    .text;
}

describe('grant pins across worker threads', () => {
  it('never leaves a holder without GTF_reading/GTF_writing, and ends clear', async () => {
    const tableBuf = new SharedArrayBuffer(32 * 8);
    const activeBuf = new SharedArrayBuffer(ActiveGrantTable.bytesFor(32));
    const gt = new GrantTable(tableBuf);
    const ref = gt.grantAccess(0, 12, false);
    const startBuf = new SharedArrayBuffer(8);
    const start = new Int32Array(startBuf);
    const code = bundle('grant-pin-worker.ts');
    const workers = [false, true, false, true].map(
      (write) => new Worker(code, { eval: true, workerData: { tableBuf, activeBuf, startBuf, ref, domid: 0, rounds: 100_000, write } }),
    );
    const deadline = Date.now() + 20_000;
    while (Atomics.load(start, 0) < workers.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    Atomics.store(start, 1, 1);
    Atomics.notify(start, 1);
    const results = (await Promise.all(workers.map((w) => once(w, 'message')))).map(([m]) => m as { failures: number; unprotected: number });
    await Promise.all(workers.map((w) => w.terminate()));
    for (const r of results) expect(r).toEqual({ failures: 0, unprotected: 0 });
    expect(gt.entry(ref).flags).toBe(GTF_permit_access);
    expect(gt.endAccess(ref)).toBe(true);
  }, 60_000);
});
