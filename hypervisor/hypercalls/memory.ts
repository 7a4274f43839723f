// memory_op for the caller itself: its RAM, and what its memory cgroup holds.
import { type DomainMemoryStat } from '../../drivers/hypercall/ops.js';
import { guest, fault, type HypercallContext, type HypercallTable } from './context.js';

export function memoryHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'memory.map_self': guest((c) => {
      if (c.memFd < 0) throw fault('ENOMEM', 'this domain has no memory of its own');
      return { result: { bytes: c.memoryMiB * 1048576, nrPages: c.nrPages }, fds: [c.memFd] };
    }),
    // The caller's own usage, for the /proc files its kernel serves (docs/architecture.md,
    // "What a guest's /proc shows"). No argument: a domain can only ask about itself.
    'memory.stat': guest((c) => {
      if (!c.cgroup || c.memFd < 0) throw fault('ENOSYS', 'this domain has no memory cgroup');
      const stat = c.cgroup.memoryStat();
      const r: DomainMemoryStat = {
        reservationKiB: c.targetKiB,
        nrPages: c.nrPages,
        ramChargedBytes: hv.ramCharged(c, Math.min(stat.shmem ?? 0, stat.mapped_file ?? 0)),
        usageBytes: c.cgroup.memoryUsage(),
        stat,
      };
      return { result: r };
    }),
  };
}
