// Typing commands on a guest's console (hvc0 for PV, the emulated 16550 for HVM) from a
// benchmark, as a person at `xl console` would, and reading the output back up to a marker.
// The console's tty comes from the toolstack (`console` RPC), the same pty `xl console` opens.
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import type { BenchInstance } from '../instance.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ttys = new Map<string, string>();

/** The console pty as `xl console` finds it: xenstore's console/tty (for an HVM guest, the
 * emulated UART's pty, which xenconsoled does not serve). */
export async function consoleTty(inst: BenchInstance, dom: string): Promise<string> {
  const known = ttys.get(dom);
  if (known) return known;
  const { domid } = await inst.rpc<{ domid: number }>('domid', { name: dom });
  const r = await inst.run('xenstore-read', [`/local/domain/${domid}/console/tty`]);
  if (r.code !== 0 || !r.stdout.trim()) throw new Error(`no console/tty for ${dom}: ${r.stderr}`);
  ttys.set(dom, r.stdout.trim());
  return r.stdout.trim();
}

/** Runs `command` in the shell on the guest's console; returns what it printed. Bounded by
 * `timeoutMs`; the command keeps running in the guest if that passes (callers bound their
 * workloads themselves, so it ends on its own). */
export async function consoleRun(inst: BenchInstance, dom: string, command: string, timeoutMs = 15_000): Promise<string> {
  const tty = await consoleTty(inst, dom);
  const fd = openSync(tty, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  try {
    const marker = `__XC${Math.random().toString(36).slice(2, 10)}__`;
    const buf = Buffer.alloc(65536);
    for (;;) {
      try {
        if (readSync(fd, buf, 0, buf.length, null) <= 0) break;
      } catch {
        break;
      }
    }
    // The marker is split in the typed line so the echo of the command never matches it.
    writeSync(fd, `${command}; echo ${marker.slice(0, 4)}""${marker.slice(4)} $?\n`);
    let out = '';
    const deadline = Date.now() + timeoutMs;
    const re = new RegExp(`${marker} (\\d+)`);
    while (Date.now() < deadline) {
      try {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n > 0) out += buf.subarray(0, n).toString('utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        await sleep(20);
      }
      const m = re.exec(out);
      if (m) return out.slice(out.indexOf('\n') + 1, m.index).replace(/\r/g, '');
    }
    throw new Error(`${dom}: console command timed out after ${timeoutMs} ms: ${command}\n--- got:\n${out.slice(-1000)}`);
  } finally {
    closeSync(fd);
  }
}

/** Waits until the guest's shell answers on its console. */
export async function waitForShell(inst: BenchInstance, dom: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const out = await consoleRun(inst, dom, 'echo shell-$((6*7))', 3000);
      if (out.includes('shell-42')) return;
    } catch (e) {
      last = e;
    }
    await sleep(500);
  }
  throw new Error(`${dom}: no shell on its console after ${timeoutMs} ms (${(last as Error)?.message ?? ''})`);
}
