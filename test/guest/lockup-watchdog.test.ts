// The guest kernel's soft-lockup detector: an event loop held by a busy loop or by a call that
// waits is reported once it runs again, with how long, the CPU time spent and the phase.
import { afterEach, describe, expect, it } from 'vitest';
import { lockupLine, setKernelPhase, startLockupWatchdog, type LockupReport } from '../../guest/kernel/lockup-watchdog.js';

const tick = () => new Promise((r) => setTimeout(r, 150));

describe('the kernel lockup watchdog', () => {
  let stop = () => {};
  afterEach(() => stop());

  it('a call that waits 600 ms is one report: stuck about that long, little of it on a CPU, in its phase', async () => {
    const reports: LockupReport[] = [];
    stop = startLockupWatchdog((r) => reports.push(r), 50, 300).stop;
    await tick();
    setKernelPhase('IP-Config');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600); // a blocking call
    await tick();
    expect(reports).toHaveLength(1);
    expect(reports[0]!.stuckMs).toBeGreaterThan(450);
    expect(reports[0]!.cpuMs).toBeLessThan(200);
    expect(reports[0]!.phase).toBe('IP-Config');
    expect(lockupLine(reports[0]!)).toMatch(/^watchdog: BUG: soft lockup - the kernel's event loop did not run for 0\.[5-9]s \(0\.[0-2]s of it on a CPU\)! \[kernel:1\] during: IP-Config$/);
  });

  it('a busy loop is reported with its CPU time; short stalls and an idle loop are not', async () => {
    const reports: LockupReport[] = [];
    stop = startLockupWatchdog((r) => reports.push(r), 50, 300).stop;
    await tick();
    const until = Date.now() + 100;
    while (Date.now() < until); // under the threshold
    await tick();
    expect(reports).toHaveLength(0);
    const spin = Date.now() + 500;
    while (Date.now() < spin);
    await tick();
    expect(reports).toHaveLength(1);
    expect(reports[0]!.cpuMs).toBeGreaterThan(100);
  });
});
