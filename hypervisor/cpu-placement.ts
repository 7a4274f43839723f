// Which host CPUs a domain's vCPUs are on when its config pins nothing (no `cpus=`, no
// `xl vcpu-pin`): one host CPU per online vCPU, the least used ones. The guest kernel
// confines its userland to them, so the guest's sched_getaffinity (what `nproc`, Python's
// os.sched_getaffinity and thread-pool sizing read) says how many CPUs the guest has, as a
// Xen guest's kernel would. Xen places a new domain's vCPUs on the least loaded pCPUs too;
// here the placement is static, and a domain's CPU time is capped at its vCPUs' worth anyway
// (cpuLimit in domain-limits.ts).

export interface PlacedDomain {
  /** Host CPUs its vCPUs are on. */
  cpus: number[];
  /** Its online vCPUs: the load it brings, spread over `cpus`. */
  vcpus: number;
}

/** `want` host CPUs (at most all of them) for one domain: those carrying the least vCPU load
 * of the `others`, preferring the ones it has already (no needless moves), then low numbers. */
export function placeVcpus(want: number, hostCpus: number[], others: PlacedDomain[], current: number[] = []): number[] {
  const n = Math.max(1, Math.min(want, hostCpus.length));
  const load = new Map<number, number>(hostCpus.map((c) => [c, 0]));
  for (const o of others) {
    const on = o.cpus.filter((c) => load.has(c));
    for (const c of on) load.set(c, load.get(c)! + o.vcpus / on.length);
  }
  const mine = new Set(current);
  const ranked = [...hostCpus].sort((a, b) => load.get(a)! - load.get(b)! || Number(mine.has(b)) - Number(mine.has(a)) || a - b);
  return ranked.slice(0, n).sort((a, b) => a - b);
}
