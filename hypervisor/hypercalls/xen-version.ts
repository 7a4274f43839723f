// xen_version: which Xen this is (xenode answers as Xen 4.17).
import { guest, type HypercallTable } from './context.js';

export function xenVersionHypercalls(): HypercallTable {
  return {
    'xen.version': guest(() => ({ result: { major: 4, minor: 17, extra: '-xenode' } })),
  };
}
