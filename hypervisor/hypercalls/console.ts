// console_io: a line for the hypervisor's console ring.
import { guest, type HypercallContext, type HypercallTable } from './context.js';

export function consoleHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'console.write': guest((c, a) => {
      hv.logFor(c, String(a.text).slice(0, 1024));
      return { result: null };
    }),
  };
}
