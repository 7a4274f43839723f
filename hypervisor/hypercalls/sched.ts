// sched_op: a domain shuts itself down, or sets its one-shot timer (VIRQ_TIMER).
import { VIRQ } from '../../drivers/hypercall/ops.js';
import { guest, shutdownReason, type HypercallContext, type HypercallTable } from './context.js';

export function schedHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'sched.shutdown': guest((c, a) => {
      hv.shutdown(c, shutdownReason(a.reason));
      return { result: null };
    }),
    'sched.set_timer': guest((c, a) => {
      if (c.timer) clearTimeout(c.timer);
      c.timer = null;
      const ms = Number(a.timeoutMs);
      if (Number.isFinite(ms) && ms >= 0) {
        c.timer = setTimeout(() => {
          c.timer = null;
          const p = c.evtchn.findVirq(VIRQ.TIMER);
          if (p) c.evtchn.raise(p.port);
        }, Math.min(ms, 2 ** 31 - 1));
      }
      return { result: null };
    }),
  };
}
