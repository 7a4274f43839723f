// vcpu_op for the caller itself: how its vCPUs ran.
import { type DomainCpuStat } from '../../drivers/hypercall/ops.js';
import { guest, fault, type HypercallContext, type HypercallTable } from './context.js';

export function vcpuHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'vcpu.runstate': guest((c) => {
      if (!c.cgroup) throw fault('ENOSYS', 'this domain has no cpu cgroup');
      const { perCpuNs, userTicks, systemTicks } = c.cgroup.cpuStat();
      // The domain's time, wherever in its cpuset it ran, shared out over its online vCPUs.
      const total = perCpuNs.reduce((t, ns) => t + ns, 0);
      const runningNs = Array.from({ length: c.onlineVcpus }, () => Math.floor(total / c.onlineVcpus));
      const r: DomainCpuStat = { runningNs, userTicks, systemTicks, cpus: c.vcpuCpus };
      return { result: r };
    }),
  };
}
