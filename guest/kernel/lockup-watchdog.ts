// The guest kernel's soft-lockup detector (Linux's kernel/watchdog.c, in miniature). The
// kernel is one Node event loop: a synchronous call that waits (a mount(2) whose FUSE server
// needs this loop, a blocking read, a busy loop) stops every driver, timer and console line at
// once, and what follows looks like lost I/O: timeouts fire late, all together. So a cheap
// timer ticks twice a second; when it runs late by more than a second, the kernel says so at
// once on its console and in the hypervisor's log (xl dmesg), with the boot phase it was in and
// how much of the gap it spent on a CPU (a busy loop spends all of it; a call that waited,
// none), as Linux prints
//
//   watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]
//
// A paused domain (xl pause) or a host that did not schedule the kernel looks the same from
// inside: the line says "did not run", not why.

/** What the kernel is doing, for the watchdog's line (main.ts and boot/ set it). */
let phase = 'boot';

export function setKernelPhase(p: string): void {
  phase = p;
}

export const WATCHDOG_TICK_MS = 500;
export const WATCHDOG_THRESHOLD_MS = 1000;

export interface LockupReport {
  /** How long the event loop did not run beyond the tick (ms). */
  stuckMs: number;
  /** CPU time the kernel process used meanwhile (ms). */
  cpuMs: number;
  phase: string;
}

/** Linux's line, with the phase and the CPU time spent. */
export function lockupLine(r: LockupReport): string {
  return (
    `watchdog: BUG: soft lockup - the kernel's event loop did not run for ${(r.stuckMs / 1000).toFixed(1)}s ` +
    `(${(r.cpuMs / 1000).toFixed(1)}s of it on a CPU)! [kernel:1] during: ${r.phase}`
  );
}

/** Watch the event loop; `report` gets each lockup once it is over. */
export function startLockupWatchdog(report: (r: LockupReport) => void, tickMs = WATCHDOG_TICK_MS, thresholdMs = WATCHDOG_THRESHOLD_MS): { stop(): void } {
  let last = performance.now();
  let cpu = process.cpuUsage();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - tickMs;
    const used = process.cpuUsage(cpu);
    last = now;
    cpu = process.cpuUsage();
    if (late >= thresholdMs) report({ stuckMs: late, cpuMs: (used.user + used.system) / 1000, phase });
  }, tickMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
