// The KVM engine's shared vocabulary: the exit record native/kvm.cc fills, the per-vCPU
// control block its worker thread obeys, and the "is KVM usable here" answer that the
// toolstack and the tests print as-is. See docs/kvm.md.
import { existsSync } from 'node:fs';
import { native, type KvmAddon } from '../../native/index.js';

export * from './kvm-abi.js';

export interface KvmAvailability {
  ok: boolean;
  /** Empty when ok; otherwise one plain sentence, e.g. "/dev/kvm does not exist (...)". */
  reason: string;
  maxVcpus: number;
}

export interface KvmHostInfo {
  /** Which KVM: hardware-assisted (Intel VMX, AMD SVM) or PVM (pagetable-based, for hosts
   * without nested virtualization: guest user mode runs natively, guest kernel mode is
   * emulated unless the guest kernel is PVM-enabled). */
  flavor: 'vmx' | 'svm' | 'pvm' | 'unknown';
  /** Does an unmodified guest's kernel mode run at native speed? False on PVM, where the
   * instruction emulator runs it at roughly a million instructions per second. */
  guestKernelNative: boolean;
}

/** What kind of KVM this is (from the loaded vendor module). */
export function kvmHostInfo(): KvmHostInfo {
  if (existsSync('/sys/module/kvm_intel')) return { flavor: 'vmx', guestKernelNative: true };
  if (existsSync('/sys/module/kvm_amd')) return { flavor: 'svm', guestKernelNative: true };
  if (existsSync('/sys/module/kvm_pvm')) return { flavor: 'pvm', guestKernelNative: false };
  return { flavor: 'unknown', guestKernelNative: true };
}

const EAX = 0;
const EBX = 1;
const ECX = 2;
const EDX = 3;
const bits = (...b: number[]) => b.reduce((m, x) => (m | (1 << x)) >>> 0, 0);

/** CPUID bits to hide from guests on this host: (leaf, index, register 0-3 = eax..edx, bits).
 * Where guest ring 0 runs in KVM's instruction emulator (PVM), a guest kernel must not be told
 * about instructions the emulator cannot execute, or it dies on the first one ("KVM internal
 * error, suberror 1"): Linux picks CMPXCHG16B (SLUB), XSAVE/XRSTOR (FPU), FSGSBASE, POPCNT,
 * RDTSCP, PCID/INVPCID, SMAP's STAC/CLAC, AES-NI/PCLMUL/SHA/AVX (crypto self-tests) ... from
 * CPUID through its alternatives. Hidden, Linux falls back to the plain instructions. */
export function defaultCpuidClear(host = kvmHostInfo()): Array<[number, number, number, number]> {
  if (host.guestKernelNative) return [];
  return [
    // leaf 1 ECX: PCLMULQDQ 1, FMA 12, CX16 13, PCID 17, SSE4.1 19, SSE4.2 20, MOVBE 22,
    // POPCNT 23, AES 25, XSAVE 26, OSXSAVE 27, AVX 28, F16C 29, RDRAND 30
    [1, 0, ECX, bits(1, 12, 13, 17, 19, 20, 22, 23, 25, 26, 27, 28, 29, 30)],
    // leaf 7 EBX: FSGSBASE 0, BMI1 3, AVX2 5, SMEP 7, BMI2 8, ERMS 9, INVPCID 10, RTM 11,
    // AVX512F 16, RDSEED 18, ADX 19, SMAP 20, CLFLUSHOPT 23, CLWB 24, SHA 29
    [7, 0, EBX, bits(0, 3, 5, 7, 8, 9, 10, 11, 16, 18, 19, 20, 23, 24, 29)],
    // leaf 7 ECX: UMIP 2, PKU 3, VAES 9, VPCLMULQDQ 10, RDPID 22
    [7, 0, ECX, bits(2, 3, 9, 10, 22)],
    // leaf 7 EDX: FSRM 4
    [7, 0, EDX, bits(4)],
    // leaf 0x80000001 EDX: RDTSCP 27; ECX: ABM/LZCNT 5
    [0x80000001, 0, EDX, bits(27)],
    [0x80000001, 0, ECX, bits(5)],
    // leaf 0xD: no XSAVE state components at all
    [0xd, 0, EAX, 0xffffffff],
    [0xd, 1, EAX, 0xffffffff],
  ];
}
void EAX;

/** Kernel command-line words a Linux guest needs on this host. Where guest ring 0 is emulated
 * (PVM), CPUID hiding does not reach the guest for every bit (PVM passes most of the host's
 * CPUID through), so Linux is also told on its command line not to use what the emulator
 * cannot run: `noxsave`, and `clearcpuid=` with the feature numbers of
 * arch/x86/include/asm/cpufeatures.h (word * 32 + bit) for the bits defaultCpuidClear() hides. */
export function guestCmdlineQuirks(host = kvmHostInfo()): string[] {
  if (host.guestKernelNative) return [];
  const w = (word: number, ...b: number[]) => b.map((x) => word * 32 + x);
  const ids = [
    ...w(1, 27), // RDTSCP
    ...w(4, 1, 12, 13, 19, 20, 22, 23, 25, 26, 28, 29, 30), // PCLMUL FMA CX16 SSE4.1 SSE4.2 MOVBE POPCNT AES XSAVE AVX F16C RDRAND
    ...w(6, 5), // ABM
    ...w(9, 0, 3, 5, 7, 8, 9, 10, 11, 16, 18, 19, 20, 23, 24, 29), // FSGSBASE ... SHA
    ...w(16, 2, 3, 9, 10, 22), // UMIP PKU VAES VPCLMULQDQ RDPID
    ...w(18, 4), // FSRM
  ];
  return ['noxsave', `clearcpuid=${ids.join(',')}`];
}

let cachedAvail: KvmAvailability | undefined;

/** Is an HVM-on-KVM domain possible here? Never throws. */
export function kvmAvailable(): KvmAvailability {
  if (cachedAvail) return cachedAvail;
  // An administrator's switch (and how tests show what a host without KVM does).
  if (process.env.XENODE_KVM === 'off') {
    cachedAvail = { ok: false, reason: 'KVM use is switched off on this host (XENODE_KVM=off)', maxVcpus: 0 };
    return cachedAvail;
  }
  if (!existsSync('/dev/kvm')) {
    cachedAvail = {
      ok: false,
      reason: '/dev/kvm does not exist: this host offers no KVM (enable virtualization, or nested virtualization for a VM)',
      maxVcpus: 0,
    };
    return cachedAvail;
  }
  try {
    const a = native().kvm.available();
    cachedAvail = { ok: a.ok, reason: a.reason, maxVcpus: a.maxVcpus ?? 0 };
  } catch (e) {
    cachedAvail = { ok: false, reason: `the native addon cannot use KVM: ${(e as Error).message}`, maxVcpus: 0 };
  }
  return cachedAvail;
}

export function kvm(): KvmAddon {
  return native().kvm;
}
