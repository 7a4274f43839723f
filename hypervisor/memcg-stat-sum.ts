// A domain's memory.stat (cgroup v1) as the sum of its directories' own counters: the
// domain's memory cgroup and its userland's child ("user", hypervisor/cgroups.ts).
//
// Why not the domain's hierarchical total_X lines, which say the same in one read: on the
// host kernels we run on (measured on 6.18), a parent's totals can lag its child's charges by
// tens of MiB for up to 2 s. memory.stat aggregates per-CPU counters only when a cgroup has
// had "enough" updates (64 pages per CPU) since its last flush, and counts a child's updates
// towards its ancestors only until the child itself has had enough (mm/memcontrol.c,
// memcg_rstat_updated: "if @memcg is already flushable then all its ancestors are flushable
// as well"). A flush that clears the child's count before its parent's (children first)
// while the child is charging leaves the child over the threshold and the parent under it:
// from then on nothing the child charges reaches the parent's count, reading the parent does
// not flush, and its total_X misses what the child charged until the periodic flush. A
// guest program holding 48 MiB then did not show in `free` (2 runs in 40 here; more in CI).
// Each cgroup's own counters are kept right when that cgroup is read (its own updates always
// count towards its own flush), so the sum of them is what the totals should have said.

/** Keys that are not amounts: the parent's own value stands. */
const NOT_SUMMED = /^hierarchical_/;

/** The whole tree's memory.stat from each directory's parsed memory.stat (`own` first, then
 * every directory below it), under the plain names (rss, cache, ...); total_X lines are not
 * used. */
export function sumMemoryStats(own: Record<string, number>, below: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(own)) if (!k.startsWith('total_')) out[k] = v;
  for (const stat of below) {
    for (const [k, v] of Object.entries(stat)) {
      if (k.startsWith('total_') || NOT_SUMMED.test(k)) continue;
      out[k] = (out[k] ?? 0) + v;
    }
  }
  return out;
}
