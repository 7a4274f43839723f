// The hypercall interface: every operation a domain can ask of the hypervisor, with its
// arguments and results. Names follow Xen's (domctl, sysctl, evtchn_op, grant_table_op,
// sched_op, memory_op); docs/hypercalls.md describes each. Only dom0 (the privileged
// domain) may use domctl/sysctl and act on another domain.

export type ShutdownReason = 'poweroff' | 'reboot' | 'suspend' | 'crash' | 'watchdog' | 'soft_reset';
/** Xen's SHUTDOWN_* codes, as sched_op(SCHEDOP_shutdown) takes them. */
export const SHUTDOWN_CODES: Record<ShutdownReason, number> = {
  poweroff: 0,
  reboot: 1,
  suspend: 2,
  crash: 3,
  watchdog: 4,
  soft_reset: 5,
};

export const VIRQ = { TIMER: 0, DEBUG: 1, CONSOLE: 2, DOM_EXC: 3 } as const;

export interface CreateDomainArgs {
  /** A label for logs; the domain's name lives in xenstore as in Xen. */
  label: string;
  uuid: string;
  memoryMiB: number;
  maxMemMiB: number;
  vcpus: number;
  maxVcpus: number;
  /** Host CPUs the domain may run on ("all" or a list). */
  cpus?: number[];
  /** Grant table size in frames (512 entries each). */
  grantFrames?: number;
  /** What the domain runs: the PV guest kernel (told its start-info frame), or an HVM guest
   * (firmware and native drivers behind emulated devices; docs/hvm.md). */
  kernel: { kind: 'pv'; startInfoPfn: number } | { kind: 'hvm'; cmdline: string; linux?: HvmLinuxBoot };
}

/** An HVM domain that boots a Linux kernel directly on KVM (docs/kvm.md): the config's
 * `kernel` (a bzImage), `ramdisk` and `extra`, plus the device model's PCI INTx routes for the
 * MP table. The hypervisor reads the files. */
export interface HvmLinuxBoot {
  kernel: string;
  ramdisk?: string;
  cmdline: string;
  pciIrqs: { dev: number; pin: number; gsi: number }[];
  /** A restore or an incoming migration: make the VM, load no kernel (its RAM and CPU state
   * come from the image). */
  restore?: boolean;
}

export interface DomainInfo {
  domid: number;
  uuid: string;
  label: string;
  running: boolean;
  blocked: boolean;
  paused: boolean;
  shutdown: boolean;
  crashed: boolean;
  dying: boolean;
  shutdownReason: ShutdownReason | null;
  /** Pages in use by the domain (cgroup usage for guests), KiB. */
  memKiB: number;
  maxMemKiB: number;
  targetKiB: number;
  vcpus: number;
  onlineVcpus: number;
  cpuTimeNs: number;
  startTimeMs: number;
  /** The domain's kernel process (host pid), 0 if not started. */
  pid: number;
  weight: number;
  cap: number;
  vcpuAffinity: number[][];
  /** Per-vCPU state where the hypervisor knows it (HVM on KVM: real vCPU threads). */
  vcpuInfo?: { state: 'r' | 'b' | 'p' | '-'; cpu: number; timeSec: number }[];
}

export interface EvtchnStatus {
  port: number;
  state: 'closed' | 'unbound' | 'interdomain' | 'virq' | 'ipi';
  remoteDom?: number;
  remotePort?: number;
  virq?: number;
  vcpu: number;
}

export interface HostInfo {
  hostname: string;
  release: string;
  version: string;
  machine: string;
  nrCpus: number;
  totalMemoryMiB: number;
  freeMemoryMiB: number;
  xenMajor: number;
  xenMinor: number;
  xenExtra: string;
  xenCaps: string;
  scheduler: string;
  commandLine: string;
  uptimeSec: number;
}

/** HVM params (xen/include/public/hvm/params.h) the builder sets for PV-on-HVM drivers. */
export const HVM_PARAM = {
  CALLBACK_IRQ: 0,
  STORE_PFN: 1,
  STORE_EVTCHN: 2,
  CONSOLE_PFN: 17,
  CONSOLE_EVTCHN: 18,
} as const;

/** What an HVM domain's vCPU runtime gets from `hvm.platform` (with the ioreq memfd). */
export interface HvmPlatformInfo {
  vcpus: number;
  memoryBytes: number;
  /** The event channel on which the device model raises interrupts (docs/hvm.md). */
  irqPort: number;
  /** The command line the "bootloader" hands the guest kernel (xl.cfg extra/cmdline). */
  cmdline: string;
}

/** `memory.stat`: the caller's own memory, for its /proc/meminfo. The reservation is the
 * balloon target (`xl mem-set`), as XENMEM_current_reservation tells a Xen guest; the rest is
 * what its memory cgroup holds (bytes; memory.stat's keys as the host kernel names them). */
export interface DomainMemoryStat {
  reservationKiB: number;
  /** The domain's RAM, as it booted (start_info nr_pages). */
  nrPages: number;
  /** Bytes of the domain's RAM that its own memory cgroup pays for (pages its kernel touched
   * first): memory.stat counts them as shmem, cache and mapped_file. */
  ramChargedBytes: number;
  usageBytes: number;
  stat: Record<string, number>;
}

/** `vcpu.runstate`: the caller's own CPU time, for its /proc/stat and /proc/uptime
 * (VCPUOP_get_runstate_info's "running" time), and where its vCPUs are. */
export interface DomainCpuStat {
  /** Running time of each online vCPU (ns): the domain's time shared out evenly. */
  runningNs: number[];
  /** The host CPUs of its vCPUs (one per online vCPU unless pinned): the CPUs its kernel
   * lets its userland run on, so sched_getaffinity (nproc) counts the vCPUs. */
  cpus: number[];
  /** The domain's user and system time, USER_HZ ticks. */
  userTicks: number;
  systemTicks: number;
}
