// What `xl info` says about the host's processors beyond what the hypervisor reports: cpu_mhz
// (Xen prints the TSC frequency it measured; Linux's "cpu MHz" of the boot CPU is the same
// clock), hw_caps (Xen's first eight featureset words, read from the CPU itself through
// Linux's cpuid device), and virt_caps (what xenode's hypervisor can run).
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import type { HostInfo } from '../../../drivers/hypercall/ops.js';

export interface HostCpuFacts {
  /** cpu_khz, or null when the host does not say. */
  cpuKhz: number | null;
  /** Xen's hw_cap[0..7], or null when CPUID cannot be read (no /dev/cpu/0/cpuid). */
  hwCaps: number[] | null;
  virtCaps: string;
}

/** One CPUID leaf/subleaf through /dev/cpu/0/cpuid (offset = subleaf << 32 | leaf). */
function cpuid(fd: number, leaf: number, subleaf = 0): [number, number, number, number] {
  const b = Buffer.alloc(16);
  readSync(fd, b, 0, 16, BigInt(subleaf) * 2n ** 32n + BigInt(leaf));
  return [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)];
}

/** Xen's featureset order: 1d, 1c, e1d, e1c, Da1, 7b0, 7c0, e7d. */
function readHwCaps(): number[] | null {
  let fd: number;
  try {
    fd = openSync('/dev/cpu/0/cpuid', 'r');
  } catch {
    return null;
  }
  try {
    const maxBasic = cpuid(fd, 0)[0];
    const maxExt = cpuid(fd, 0x80000000)[0];
    const basic = (leaf: number, sub = 0) => (leaf <= maxBasic ? cpuid(fd, leaf, sub) : [0, 0, 0, 0]);
    const ext = (leaf: number) => (leaf <= maxExt ? cpuid(fd, leaf) : [0, 0, 0, 0]);
    const l1 = basic(1);
    const e1 = ext(0x80000001);
    const d1 = basic(0xd, 1);
    const l7 = basic(7, 0);
    const e7 = ext(0x80000007);
    return [l1[3]!, l1[2]!, e1[3]!, e1[2]!, d1[0]!, l7[1]!, l7[2]!, e7[3]!];
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function readCpuKhz(): number | null {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1]) * 1000) : null;
  } catch {
    return null;
  }
}

export function hostCpuFacts(): HostCpuFacts {
  // PV guests always; HVM guests too (the emulated platform, on KVM with hardware paging
  // where /dev/kvm is usable: "hap"); grant tables v1 only.
  const kvm = existsSync('/dev/kvm');
  return { cpuKhz: readCpuKhz(), hwCaps: readHwCaps(), virtCaps: ` pv hvm${kvm ? ' hap' : ''} gnttab-v1` };
}

/** `xl info -n`'s numa_info: one node holding all of the host's memory. */
export function formatNumaInfo(h: HostInfo): string {
  return (
    `${'numa_info'.padEnd(23)}:\n` +
    'node:    memsize    memfree    distances\n' +
    `${String(0).padStart(4)}:    ${String(h.totalMemoryMiB).padStart(6)}     ${String(h.freeMemoryMiB).padStart(6)}      10\n`
  );
}
