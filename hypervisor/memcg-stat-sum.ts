// A domain's memory.stat (cgroup v1) as the sum of its directories' own counters: the
// domain's memory cgroup and its userland's child ("user", hypervisor/cgroups.ts).
//
// Why not the domain's hierarchical total_X lines, which say the same in one read: on the
// host kernel we run on (6.18), a parent's totals can miss what its child has just charged.
// Measured: a process in the child holding 48 MiB, the parent's total_rss read at once showed
// 8-30 MiB of it in 2 reads of 400 (the child's own rss, and the sum below, all 48), and a
// guest's `free` missed a program's 48 MiB in 3 runs of 120 (0 of 200 with the sum).
// Our reading of mm/memcontrol.c: memory.stat folds the per-CPU counters in only when a
// cgroup has had enough updates (64 pages a CPU) since its last flush, and a child's updates
// count towards its ancestors only until the child itself has had enough (memcg_rstat_updated:
// "if @memcg is already flushable then all its ancestors are flushable as well"); a flush
// that clears the child's count before the parent's, while the child charges, leaves the child
// over the threshold and the parent under it, and the parent's totals stay behind until the
// periodic flush (2 s). A cgroup's own updates always count towards its own flush, so each
// directory's own counters are right when it is read, and their sum is what the totals
// should have said.

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
