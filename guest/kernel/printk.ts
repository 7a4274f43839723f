// The guest kernel's log: lines stamped like Linux's printk, sent to the console (hvc0) and
// kept in a small buffer for the guest's own `dmesg`-like needs.
// The clock starts with the first line, which the kernel prints once it runs: a kernel loaded
// ahead of its domain's unpause (hypervisor.ts loadKernel) waits before that, and Linux's
// timestamps count from the kernel's start, not from its loading.
let started: bigint | null = null;
let sink: ((bytes: Uint8Array) => void) | null = null;
const early: string[] = [];

export function printk(msg: string): void {
  const now = process.hrtime.bigint();
  started ??= now;
  const us = Number((now - started) / 1000n);
  const stamp = `[${String(Math.floor(us / 1e6)).padStart(5, ' ')}.${String(us % 1e6).padStart(6, '0')}]`;
  const line = `${stamp} ${msg}`;
  process.stderr.write(line + '\n');
  if (sink) sink(Buffer.from(line + '\r\n'));
  else early.push(line);
}

/** Connect printk to the console once it exists; early lines are replayed. */
export function setConsoleSink(fn: (bytes: Uint8Array) => void): void {
  sink = fn;
  for (const l of early.splice(0)) fn(Buffer.from(l + '\r\n'));
}
