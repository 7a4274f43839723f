// The bounds a domain is created and run within: what its kernel costs beyond its RAM, the
// smallest memory it may have, the last domain id, and its CPU quota.
import type { Domain } from './domain.js';

/** The guest kernel's own runtime (Node) is accounted beyond the guest's RAM, as Xen accounts
 * a domain's overhead (p2m, shadow) beyond `memory`: the cgroup limit is target + this. */
export const KERNEL_OVERHEAD_BYTES = 64 * 1024 * 1024;
export const MAX_DOMID = 0x7ff0; // DOMID_FIRST_RESERVED
export const MIN_MEMORY_MIB = 16;

/** A domain runs on at most `onlineVcpus` CPUs' worth of time, and within its credit cap
 * (percent of one CPU; 0 = none): the CFS quota is the smaller. With as many vCPUs as the host
 * has CPUs and no cap, there is no quota at all. */
export function cpuLimit(d: Domain, hostCpus: number): number {
  const vcpuLimit = d.onlineVcpus >= hostCpus ? 0 : d.onlineVcpus * 100;
  if (d.cap > 0 && vcpuLimit > 0) return Math.min(d.cap, vcpuLimit);
  return d.cap > 0 ? d.cap : vcpuLimit;
}
