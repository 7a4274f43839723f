// How much of a domain's RAM file its own memory cgroup pays for. Guest RAM is a file (shmem)
// charged to whichever cgroup first touched each page: the domain's, when its kernel touched
// it first; dom0's, when blkback registered the memory with io_uring first. The domain's
// memory.stat counts the first kind as shmem/cache/mapped_file, beside the guest's own tmpfs
// and page cache; the guest's /proc/meminfo must tell them apart, and memory.stat cannot.
// So: walk the guest kernel's mapping of its RAM (/proc/PID/pagemap gives each resident
// page's frame) and ask /proc/kpagecgroup which memory cgroup each frame is charged to.
// Both need root (the hypervisor's). A 128 MiB guest costs one 256 KiB read of pagemap and
// one read of kpagecgroup per run of contiguous frames (a 2 MiB page is one run).
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

const PAGE = 4096;
/** Entries read from pagemap at a time (1 MiB: 512 MiB of guest). */
const CHUNK_ENTRIES = 131072;
const TWO32 = 2 ** 32;

/** The [start, end) addresses of the mappings of `fileName` in `pid`'s maps. */
export function mappingsOf(maps: string, fileName: string): [number, number][] {
  const out: [number, number][] = [];
  for (const line of maps.split('\n')) {
    if (!line.includes(fileName)) continue;
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) out.push([parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
  }
  return out;
}

/** Bytes of `pid`'s mappings of the file named `fileName` whose frames are charged to the
 * memory cgroup at `memcgDir`. 0 when the process or mapping is gone. */
export function ramChargedBytes(pid: number, fileName: string, memcgDir: string): number {
  let maps: string;
  try {
    maps = readFileSync(`/proc/${pid}/maps`, 'latin1');
  } catch {
    return 0;
  }
  const memcg = statSync(memcgDir).ino; // inode numbers of cgroup dirs fit in 32 bits
  const pagemap = openSync(`/proc/${pid}/pagemap`, 'r');
  const kpagecgroup = openSync('/proc/kpagecgroup', 'r');
  try {
    let pages = 0;
    // 64-bit entries read as (low, high) 32-bit halves: no BigInt per page.
    const entries = new Uint32Array(CHUNK_ENTRIES * 2);
    const owners = new Uint32Array(1024);
    const countRun = (first: number, n: number) => {
      for (let done = 0; done < n; ) {
        const k = Math.min(n - done, owners.length / 2);
        const got = readSync(kpagecgroup, owners, 0, k * 8, (first + done) * 8) / 8;
        for (let i = 0; i < got; i++) if (owners[2 * i] === memcg && owners[2 * i + 1] === 0) pages++;
        if (got < k) return;
        done += k;
      }
    };
    for (const [start, end] of mappingsOf(maps, fileName)) {
      for (let at = start / PAGE; at < end / PAGE; at += CHUNK_ENTRIES) {
        const want = Math.min(CHUNK_ENTRIES, end / PAGE - at);
        const got = readSync(pagemap, entries, 0, want * 8, at * 8) / 8;
        // Runs of present pages with consecutive frames: one kpagecgroup read each.
        let runStart = -1;
        let runLen = 0;
        for (let i = 0; i < got; i++) {
          const hi = entries[2 * i + 1]!;
          // Bit 63: present; bits 0-54: the frame.
          const pfn = hi & 0x80000000 ? entries[2 * i]! + (hi & 0x7fffff) * TWO32 : -1;
          if (pfn >= 0 && runLen > 0 && pfn === runStart + runLen) {
            runLen++;
            continue;
          }
          if (runLen > 0) countRun(runStart, runLen);
          runStart = pfn;
          runLen = pfn >= 0 ? 1 : 0;
        }
        if (runLen > 0) countRun(runStart, runLen);
      }
    }
    return pages * PAGE;
  } finally {
    closeSync(pagemap);
    closeSync(kpagecgroup);
  }
}
