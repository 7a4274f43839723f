// Linux's CPU list format ("0-3,5"), as cpuset.cpus and /proc/PID/status's Cpus_allowed_list
// write it: read by the hypervisor's cgroups, xl's cpus= and vcpu-pin, and the guest kernel.

/** "0-3,5" -> [0,1,2,3,5] */
export function parseCpuList(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`bad CPU list "${s}"`);
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}
