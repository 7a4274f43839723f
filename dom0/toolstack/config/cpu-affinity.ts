// `cpus=` vCPU pinning, as xl's parse_cpurange()/update_cpumap_range() read it: comma-separated
// terms applied left to right to an empty set, each `N`, `N-M` (M >= N) or `all`, optionally
// prefixed by `^` to remove instead of add ("^all" is refused). A string applies to every vCPU; a
// list gives vCPU i the i-th entry (entries past max_vcpus are ignored, vCPUs past the list keep
// no pinning). Bits past the host's CPU count are silently dropped, as libxl's bitmaps do.
// NUMA-node terms (`node:1`, `nodes:0-1`) are not supported: xenode has no NUMA placement.

export interface CpuTerm {
  exclude: boolean;
  /** `all`: every host CPU. */
  all: boolean;
  from: number;
  to: number;
}

/** One pinning spec ("0-3,^1"), kept symbolic because "all" depends on the host. */
export interface CpuSet {
  text: string;
  terms: CpuTerm[];
}

/** Pinning from the config: one set for all vCPUs, or one per vCPU (a list). */
export type CpuAffinity =
  | { form: 'string'; set: CpuSet }
  | { form: 'list'; perVcpu: CpuSet[] };

/** Parses a spec; throws Error with xl's wording ("Invalid pcpu range: ..."). */
export function parseCpuSet(text: string): CpuSet {
  const terms: CpuTerm[] = [];
  for (const piece of text.split(',')) {
    if (piece === '') continue; // strtok() skips empty fields
    let s = piece.replace(/^\s+/, '');
    let exclude = false;
    if (s.startsWith('^')) { exclude = true; s = s.slice(1); }
    if (/^nodes?:/.test(s)) throw new Error(`NUMA node pinning \`${piece}' is not supported by xenode`);
    if (s === 'all') {
      if (exclude) throw new Error('Can\'t combine "^" and "all".');
      terms.push({ exclude, all: true, from: 0, to: 0 });
      continue;
    }
    const m = /^(\d+)(?:-(\d+))?$/.exec(s);
    const from = m ? Number(m[1]) : NaN;
    const to = m?.[2] !== undefined ? Number(m[2]) : from;
    if (!m || to < from || !Number.isSafeInteger(to)) throw new Error(`Invalid pcpu range: ${piece}.`);
    terms.push({ exclude, all: false, from, to });
  }
  return { text, terms };
}

/** The host CPUs a set selects, ascending. */
export function cpuSetToCpus(set: CpuSet, hostCpus: number): number[] {
  const on = new Array<boolean>(hostCpus).fill(false);
  for (const t of set.terms) {
    const from = t.all ? 0 : t.from;
    const to = t.all ? hostCpus - 1 : Math.min(t.to, hostCpus - 1);
    for (let c = from; c <= to; c++) on[c] = !t.exclude;
  }
  return on.flatMap((b, i) => (b ? [i] : []));
}

/** Per-vCPU host CPU lists, as libxl's vcpu_hard_affinity array holds them. */
export function affinityPerVcpu(aff: CpuAffinity, maxVcpus: number, hostCpus: number): number[][] {
  const sets = aff.form === 'string'
    ? new Array<CpuSet>(maxVcpus).fill(aff.set)
    : aff.perVcpu.slice(0, maxVcpus);
  return sets.map((s) => cpuSetToCpus(s, hostCpus));
}
