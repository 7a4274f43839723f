// domctl (dom0 only): one domain's life, memory, vCPUs and scheduling, and dom0's foreign
// mappings of its memory and grant table.
import { GRANT_ENTRIES_PER_FRAME } from '../domain.js';
import { KERNEL_OVERHEAD_BYTES, MIN_MEMORY_MIB, cpuLimit } from '../domain-limits.js';
import { priv, fault, shutdownReason, type HypercallContext, type HypercallTable } from './context.js';

export function domctlHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'domctl.createdomain': priv(async (_c, a) => ({ result: { domid: (await hv.createDomain(a)).domid } })),
    'domctl.getdomaininfo': priv((_c, a) => ({ result: hv.info(hv.domain(a.domid)) })),
    'domctl.pausedomain': priv(async (_c, a) => (await hv.pause(hv.domain(a.domid)), { result: null })),
    'domctl.load_kernel': priv((_c, a) => (hv.loadKernel(hv.domain(a.domid)), { result: null })),
    'domctl.unpausedomain': priv(async (_c, a) => (await hv.unpause(hv.domain(a.domid)), { result: null })),
    'domctl.destroydomain': priv(async (_c, a) => (await hv.destroy(hv.domain(a.domid)), { result: null })),
    'domctl.shutdown': priv((_c, a) => {
      hv.shutdown(hv.domain(a.domid), shutdownReason(a.reason));
      return { result: null };
    }),
    'domctl.setlabel': priv((_c, a) => {
      hv.domain(a.domid).label = String(a.label).slice(0, 64);
      return { result: null };
    }),
    'domctl.max_mem': priv((_c, a) => {
      const d = hv.domain(a.domid);
      d.maxMemKiB = hv.int(a.maxKiB, 'maxKiB', 1024, 1 << 30);
      return { result: null };
    }),
    'domctl.set_target': priv((_c, a) => {
      const d = hv.domain(a.domid);
      const kib = hv.int(a.targetKiB, 'targetKiB', MIN_MEMORY_MIB * 1024, d.maxMemKiB);
      d.targetKiB = kib;
      d.cgroup?.setMemoryLimit(kib * 1024 + KERNEL_OVERHEAD_BYTES, kib * 1024);
      return { result: null };
    }),
    'domctl.max_vcpus': priv((_c, a) => {
      const d = hv.domain(a.domid);
      d.onlineVcpus = hv.int(a.online, 'online vcpus', 1, d.maxVcpus);
      d.cgroup?.setCap(cpuLimit(d, hv.cpuList.length));
      hv.applyCpuset(d);
      return { result: null };
    }),
    'domctl.setvcpuaffinity': priv((_c, a) => {
      const d = hv.domain(a.domid);
      const vcpu = hv.int(a.vcpu, 'vcpu', 0, d.maxVcpus - 1);
      const cpus = (Array.isArray(a.cpus) ? a.cpus : []).filter((c: unknown) => typeof c === 'number' && hv.cpuList.includes(c));
      if (cpus.length === 0) throw fault('EINVAL', `no host CPU in ${JSON.stringify(a.cpus)} (host has ${hv.cpuList.join(',')})`);
      d.vcpuAffinity[vcpu] = cpus;
      d.affinityGiven = true;
      hv.applyCpuset(d);
      return { result: null };
    }),
    'domctl.scheduler_op': priv((_c, a) => {
      const d = hv.domain(a.domid);
      if (a.weight !== undefined) {
        d.weight = hv.int(a.weight, 'weight', 1, 65535);
        d.cgroup?.setWeight(d.weight);
      }
      if (a.cap !== undefined) {
        d.cap = hv.int(a.cap, 'cap', 0, 100 * hv.cpuList.length);
        d.cgroup?.setCap(cpuLimit(d, hv.cpuList.length));
      }
      return { result: { weight: d.weight, cap: d.cap } };
    }),
    'domctl.cgroup_info': priv((_c, a) => {
      const d = hv.domain(a.domid);
      return { result: { memoryLimit: d.cgroup?.memoryLimit() ?? 0, memoryUsage: d.cgroup?.memoryUsage() ?? 0, cpus: d.cgroup?.cpus() ?? [], pids: d.cgroup?.pids() ?? [], frozen: d.cgroup?.isFrozen() ?? false } };
    }),
    // Privileged foreign mappings: dom0 maps guest memory and grant tables as xenconsoled
    // and qemu-dm do in Xen (privcmd). No domU can reach these.
    'domctl.map_foreign_memory': priv((_c, a) => {
      const d = hv.domain(a.domid);
      if (d.memFd < 0) throw fault('ESRCH', `domain ${d.domid} has no memory`);
      return { result: { bytes: d.memoryMiB * 1048576 }, fds: [d.memFd] };
    }),
    'domctl.map_grant_table': priv((_c, a) => {
      const d = hv.domain(a.domid);
      if (d.grantFd < 0) throw fault('ESRCH', `domain ${d.domid} has no grant table`);
      return { result: { frames: d.grantFrames, entries: d.grantFrames * GRANT_ENTRIES_PER_FRAME }, fds: [d.grantFd] };
    }),
  };
}
