// One domain as the hypervisor knows it: identity, memory (a sparse memfd of pseudo-physical
// frames), grant-table frames, event channels, cgroup, run state and shutdown reason.
import type { ChildProcess } from 'node:child_process';
import type { ShutdownReason } from '../drivers/hypercall/ops.js';
import type { MessageSocket } from '../drivers/hypercall/channel.js';
import type { DomainCgroup } from './cgroups.js';
import { EventChannelTable } from './event-channel-table.js';
import type { KvmDomain } from './kvm/kvm-domain.js';
import type { UidRange } from '../common/uid-ranges.js';
import { FdStore } from './fd-store.js';

export const GRANT_ENTRIES_PER_FRAME = 512;
export const DEFAULT_GRANT_FRAMES = 32;

export class Domain {
  readonly evtchn: EventChannelTable;
  memFd = -1;
  grantFd = -1;
  grantFrames = DEFAULT_GRANT_FRAMES;
  cgroup: DomainCgroup | null = null;
  process: ChildProcess | null = null;
  channel: MessageSocket | null = null;
  started = false;
  paused = true;
  dying = false;
  /** Set by SCHEDOP_shutdown (the guest asked) or by a crash (its kernel died). */
  shutdownReason: ShutdownReason | null = null;
  crashed = false;
  startTimeMs = Date.now();
  targetKiB: number;
  maxMemKiB: number;
  onlineVcpus: number;
  weight = 256;
  cap = 0;
  vcpuAffinity: number[][];
  /** True once the config's `cpus=` or `xl vcpu-pin` chose the vCPUs' CPUs; until then the
   * hypervisor places them (hypervisor/cpu-placement.ts). */
  affinityGiven = false;
  /** The host CPUs the domain's vCPUs are on: its userland's affinity. */
  vcpuCpus: number[] = [];
  /** The last count of its RAM its memory cgroup pays for (hypervisor.ts ramCharged). */
  ramCharge: { atMs: number; bytes: number } | null = null;
  timer: NodeJS.Timeout | null = null;
  /** 'pv' or 'hvm' (docs/hvm.md). */
  kind: 'pv' | 'hvm' = 'pv';
  /** PV: the start_info frame the kernel is told about. */
  startInfoPfn = 0;
  /** HVM: the ioreq/platform pages (drivers/hypercall/hvm-platform-page.ts), the interrupt
   * port, the guest's command line and HVM params (store/console for PV-on-HVM drivers). */
  ioreqFd = -1;
  irqPort = 0;
  cmdline = '';
  readonly hvmParams = new Map<number, number>();
  /** HVM on KVM: the VM whose vCPU threads run the guest (no kernel process). */
  kvm: KvmDomain | null = null;
  /** Its host uids (common/uid-ranges.ts): taken at create, given back at release. */
  uidRange: UidRange | null = null;
  /** Descriptors dom0 left here to outlive it (its stub domain's channel ...: fd-store.ts). */
  readonly fdStore = new FdStore();

  constructor(
    readonly domid: number,
    readonly uuid: string,
    public label: string,
    readonly memoryMiB: number,
    maxMemMiB: number,
    readonly maxVcpus: number,
    vcpus: number,
    hostCpus: number[],
  ) {
    this.evtchn = new EventChannelTable(domid);
    this.targetKiB = memoryMiB * 1024;
    this.maxMemKiB = maxMemMiB * 1024;
    this.onlineVcpus = vcpus;
    this.vcpuAffinity = Array.from({ length: maxVcpus }, () => [...hostCpus]);
  }

  get nrPages(): number {
    return (this.memoryMiB * 1024 * 1024) / 4096;
  }

  get isShutdown(): boolean {
    return this.shutdownReason !== null;
  }
}
