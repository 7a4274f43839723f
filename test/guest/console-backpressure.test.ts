// A guest program that writes to its console faster than dom0 drains hvc0's ring is made to
// wait, as Linux's hvc makes it wait: nothing it wrote is lost. Real parts: a pty from the
// addon, a shell writing into its slave, the console page's ring in shared memory drained by
// the backend's end of the same codec.
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { ConsoleFrontend } from '../../guest/kernel/console-frontend.js';
import { connectConsolePty } from '../../guest/kernel/console-pty.js';
import { ConsoleBackendEnd } from '../../drivers/wire/console-ring.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('hvc0 back-pressure', () => {
  const fds: number[] = [];
  afterEach(() => {
    for (const fd of fds.splice(0)) closeSync(fd);
  });

  it('a writer faster than dom0 blocks instead of losing output, and every byte arrives in order', async () => {
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    const hvc = new ConsoleFrontend(page, () => {});
    const dom0 = new ConsoleBackendEnd(page.buffer as SharedArrayBuffer);
    const pty = native().openpty(true);
    fds.push(pty.master, pty.slave);
    connectConsolePty(pty.master, (b) => hvc.write(b), hvc);

    // ~1.3 MB: five times the queue the frontend would hold before it used to drop.
    const expected = Array.from({ length: 190_000 }, (_, i) => `${i + 1}\n`).join('');
    const writer = spawn('/bin/sh', ['-c', `seq 1 190000 > ${pty.path}`], { stdio: 'ignore' });
    let exited = false;
    writer.on('exit', () => (exited = true));
    try {
      // dom0 is not draining: the writer must be stuck in write(2), not finished.
      await sleep(500);
      expect(exited).toBe(false);

      const got: Buffer[] = [];
      let total = 0;
      const buf = new Uint8Array(2048);
      const deadline = Date.now() + 20_000;
      while (total < expected.length && Date.now() < deadline) {
        const n = dom0.readOutput(buf);
        if (n > 0) {
          got.push(Buffer.from(buf.subarray(0, n)));
          total += n;
        }
        hvc.onEvent(); // dom0 consumed: the frontend refills the ring
        if (n <= 0) await sleep(1);
      }
      expect(total).toBe(expected.length);
      expect(Buffer.concat(got).toString('latin1') === expected).toBe(true);
    } finally {
      writer.kill('SIGKILL');
    }
  }, 30_000);
});
