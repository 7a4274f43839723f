// The one shape of a component's counters (netback's per vif, blkback's per vbd, an emulated
// device's): a class whose numeric fields ARE the names users see (xl network-stats,
// device-stats, the stub domain's metrics, bench tables), in snake_case as Linux's ethtool
// and sysfs statistics name theirs, each documented where it is declared. No renaming on the
// way out: grep finds a counter under the same name in the code, the docs and the output.

/** The counters of `c` (its own numeric fields), as exported. */
export function counterFields(c: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** a / b rounded to 2 decimals, 0 when b is 0 (averages derived from counters). */
export function ratio(a: number, b: number): number {
  return b > 0 ? Math.round((a / b) * 100) / 100 : 0;
}
