// A full garbage collection soon after a domain goes, in the long-running daemons (the
// hypervisor and dom0, both started with --expose-gc). An idle daemon may not collect for a
// long time: until it does, a destroyed domain's views of its memory stay mapped (their
// backing stores' deleters munmap them) and V8's old space keeps growing with what each
// create/destroy left as garbage, so a create/destroy loop looks like a leak of ~10 KiB a
// domain. One collection per burst of destroys (coalesced, 50 ms later) costs a few ms.
const DELAY_MS = 50;

let timer: NodeJS.Timeout | null = null;

/** Schedule one full collection, unless one is already due. A no-op without --expose-gc. */
export function collectSoon(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc || timer) return;
  timer = setTimeout(() => {
    timer = null;
    gc();
  }, DELAY_MS);
  timer.unref();
}
