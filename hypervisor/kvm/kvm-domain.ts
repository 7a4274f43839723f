// An HVM domain whose CPUs are KVM's (docs/kvm.md): what the hypervisor runs instead of a guest
// kernel process when an HVM config names a Linux `kernel`. The VM's RAM is the domain's memfd
// and its exits go to the same ioreq page the stub domain's device model serves for every HVM
// guest (drivers/hypercall/hvm-platform-page.ts), so dom0 builds the device model exactly as
// for xenode's own HVM guest OS; only the CPU differs. Interrupt lines come back through the
// platform page and the guest's irq event channel (irq-mirror.ts).
import { native, type FdWatcher } from '../../native/index.js';
import { HVM_IOREQ_PAGES, IOREQ_PAGE_OFFSET, PlatformWord } from '../../drivers/hypercall/hvm-platform-page.js';
import { bootLinux, type LinuxBootInfo } from './boot-linux.js';
import type { HvmLinuxBoot } from '../../drivers/hypercall/ops.js';
import { SPECIAL_PAGES } from '../../drivers/hypercall/start-info.js';
import { KvmVm, type KvmExitStats, type KvmVmEvent, type VcpuInfo } from './vm.js';

export interface KvmDomainConfig {
  domid: number;
  name: string;
  memfd: number;
  memoryBytes: number;
  vcpus: number;
  /** The domain's ioreq memfd (HVM_IOREQ_PAGES pages). */
  ioreqFd: number;
  linux: HvmLinuxBoot;
  /** A restore: the VM is made but no kernel is loaded; its RAM and state come from a save
   * (loadState before the first unpause). */
  restore?: boolean;
  /** A vCPU crashed (triple fault, emulation failure), or the guest reset / powered off. */
  onEvent: (e: KvmVmEvent) => void;
}

export class KvmDomain {
  readonly vm: KvmVm;
  /** How the kernel was loaded; null for a restored VM. */
  readonly boot: LinuxBootInfo | null;
  private irqWatcher: FdWatcher | null = null;
  /** memfds handed to dom0 (saved state, dirty bitmaps), by kind: the reply that carries one
   * may still be queued when the handler returns, so each is closed when the next of its kind
   * replaces it, or at destroy. */
  private readonly lent = new Map<string, number>();
  private started = false;

  private constructor(vm: KvmVm, boot: LinuxBootInfo | null) {
    this.vm = vm;
    this.boot = boot;
  }

  /** Create the VM on the domain's memory and load the kernel; the vCPUs start on unpause.
   * Throws with a plain reason (no KVM here, not a bzImage, too big for `memory` ...). */
  static create(cfg: KvmDomainConfig): KvmDomain {
    const pages = native().mapShared(cfg.ioreqFd, HVM_IOREQ_PAGES * 4096);
    const vm = KvmVm.create({
      name: cfg.name,
      memfd: cfg.memfd,
      memoryBytes: cfg.memoryBytes,
      vcpus: cfg.vcpus,
      ioreq: {
        page: pages,
        pageOffset: IOREQ_PAGE_OFFSET,
        // The stub domain's device model sleeps on the platform page's doorbell, whoever the CPU.
        notify: { futex: pages, index: PlatformWord.DOORBELL },
        stringIo: 'bounce',
      },
      irqMirror: { platform: pages },
    });
    try {
      const boot = cfg.restore ? null : bootLinux(vm, {
        kernel: cfg.linux.kernel,
        initrd: cfg.linux.ramdisk ?? null,
        cmdline: cfg.linux.cmdline,
        pciIrqs: cfg.linux.pciIrqs,
        // The toolstack's pages at the top of every domain's RAM (drivers/hypercall/start-info.ts
        // specialPages: start_info, xenstore and console rings, shared_info), as Xen's hvmloader
        // keeps its special pfns out of the guest's e820.
        reservedTopPages: SPECIAL_PAGES,
      });
      const d = new KvmDomain(vm, boot);
      vm.on('event', (e: KvmVmEvent) => cfg.onEvent(e));
      return d;
    } catch (e) {
      void vm.destroy();
      throw e;
    }
  }

  /** The guest's irq event channel: the device model rings it after raising a line. */
  watchIrq(eventfd: number): void {
    this.irqWatcher?.close();
    const n = native();
    this.irqWatcher = n.watchFd(eventfd, () => {
      try {
        n.eventfdRead(eventfd);
      } catch {
        /* EAGAIN: another reader drained it */
      }
      this.vm.syncIrqLines();
    });
    this.irqWatcher.start(n.READABLE);
  }

  /** First unpause: the vCPU threads start (vCPU 0 at the kernel's entry), and each is put in
   * the domain's scheduling cgroups (`placeThread`), so `cap`, weight, `vcpus` and vcpu-pin
   * apply to them as to any domain's processes. */
  async unpause(placeThread?: (tid: number) => void): Promise<void> {
    if (!this.started) {
      this.started = true;
      await this.vm.start();
      if (placeThread) await this.placeThreads(placeThread);
      return;
    }
    if (this.vm.state === 'paused') this.vm.unpause();
  }

  /** A vCPU thread's id is known once it has entered the guest (within moments of start). */
  private async placeThreads(place: (tid: number) => void): Promise<void> {
    const placed = new Set<number>();
    const deadline = Date.now() + 2000;
    while (placed.size < this.vm.vcpus && Date.now() < deadline) {
      for (const v of this.vm.vcpuInfo()) {
        if (v.tid > 0 && !placed.has(v.id)) {
          placed.add(v.id);
          place(v.tid);
        }
      }
      if (placed.size < this.vm.vcpus) await new Promise((r) => setTimeout(r, 5));
    }
  }

  async pause(): Promise<void> {
    if (this.vm.state === 'running') await this.vm.pause();
  }

  vcpuInfo(): VcpuInfo[] {
    return this.vm.vcpuInfo();
  }

  exitStats(): KvmExitStats {
    return this.vm.exitStats();
  }

  /** Keeps `fd` open for dom0 until the next fd of the same kind (or destroy). */
  lend(kind: string, fd: number): number {
    const old = this.lent.get(kind);
    if (old !== undefined) native().close(old);
    this.lent.set(kind, fd);
    return fd;
  }

  async destroy(): Promise<void> {
    for (const fd of this.lent.values()) native().close(fd);
    this.lent.clear();
    this.irqWatcher?.close();
    this.irqWatcher = null;
    await this.vm.destroy();
  }
}
