// The vCPU runtime: the part of the guest process that plays the CPU and the hypervisor's HVM
// support, underneath an OS that believes it runs on a PC. It is the only code that makes the
// HVM hypercalls (docs/hvm.md): `hvm.platform` for the ioreq pages and the platform
// description, `memory.map_self` for RAM, `evtchn.open` for the interrupt doorbell. Above it,
// the guest OS sees port/MMIO I/O (cpu/io.ts), RAM (cpu/ram.ts) and interrupts
// (cpu/interrupts.ts), nothing else.
//
// Power, as a PC without ACPI does it, and what the runtime turns it into:
//   reboot    the OS writes 0x02 then 0x06 to the PIIX3 Reset Control Register (0xCF9, Linux's
//             reboot=pci); the device model sees the reset request (PcMachine.onReset) and the
//             runtime, which executed the OUT, reports SCHEDOP_shutdown(reboot) itself too (the
//             first report wins in the hypervisor)
//   poweroff  S5: the OS writes SLP_TYP/SLP_EN to the ACPI PM1a_CNT register (the device model
//             logs it) and the runtime, which executed the OUT, reports SCHEDOP_shutdown(poweroff)
//   NMI       xl trigger DOM nmi: the device model sets the platform page's NMI word and rings
//             the irq port; the runtime takes the word before the interrupt lines and calls the
//             OS's NMI handler
//   crash     a device model that stops answering (an exit times out) is a machine check; an
//             OS panic is a triple fault: SCHEDOP_shutdown(crash)
import { native } from '../../../native/index.js';
import type { HypercallClient } from '../../../drivers/hypercall/channel.js';
import type { HvmPlatformInfo, ShutdownReason } from '../../../drivers/hypercall/ops.js';
import { HVM_IOREQ_PAGES, IOREQ_PAGE_OFFSET, PlatformWord } from '../../../drivers/hypercall/hvm-platform-page.js';
import { EventChannels } from '../../../drivers/evtchn/event-channels.js';
import { IoreqVcpuPort } from '../../../drivers/ioreq/ioreq-vcpu.js';
import { nativeFutex } from '../../../drivers/ioreq/native-futex.js';
import { Cpu, type MachineCheck } from './io.js';
import { InterruptController } from './interrupts.js';

const PAGE = 4096;
/** How long one exit may take before the device model counts as gone. Generous: an exit can
 * carry a FLUSH CACHE (fsync of the image) on a slow host; the stub domain reports a dead
 * device model to dom0 long before this, so it is only a backstop. */
const EXIT_TIMEOUT_MS = 30_000;
/** Without an irq port (a broken build), interrupts are polled at this period. */
const IRQ_POLL_MS = 5;

export class VcpuRuntime {
  readonly cpu: Cpu;
  readonly intc: InterruptController;
  private stopping = false;

  private constructor(
    readonly hc: HypercallClient,
    readonly info: HvmPlatformInfo,
    /** The three ioreq/platform pages. */
    readonly pages: SharedArrayBuffer,
    /** Guest RAM: guest-physical address = offset. */
    readonly ram: SharedArrayBuffer,
    readonly evtchn: EventChannels,
    private readonly log: (msg: string) => void,
  ) {
    const words = new Int32Array(pages);
    const port = new IoreqVcpuPort(pages, IOREQ_PAGE_OFFSET, 0, { view: words, index: PlatformWord.DOORBELL }, nativeFutex());
    this.cpu = new Cpu(port, { timeoutMs: EXIT_TIMEOUT_MS, onMachineCheck: (e) => this.machineCheck(e) });
    this.intc = new InterruptController(words, PlatformWord.IRQ_LEVEL, PlatformWord.IRQ_RAISES, log);
  }

  /** Maps the platform and connects the interrupt doorbell. */
  static async boot(hc: HypercallClient, log: (msg: string) => void): Promise<VcpuRuntime> {
    const plat = await hc.call<HvmPlatformInfo>('hvm.platform');
    const ioreqFd = plat.fds[0];
    if (ioreqFd === undefined) throw new Error('hvm.platform returned no ioreq pages');
    const pages = native().mapShared(ioreqFd, HVM_IOREQ_PAGES * PAGE);
    native().close(ioreqFd);
    for (const fd of plat.fds.slice(1)) native().close(fd);
    const self = await hc.call<{ bytes: number; nrPages?: number }>('memory.map_self');
    const ram = native().mapShared(self.fds[0]!, self.result.bytes);
    native().close(self.fds[0]!);
    const evtchn = new EventChannels(hc);
    const rt = new VcpuRuntime(hc, plat.result, pages, ram, evtchn, log);
    const irqPort = plat.result.irqPort;
    if (irqPort > 0) {
      await evtchn.open(irqPort);
      evtchn.on(irqPort, () => (rt.takeNmi(), rt.intc.onEvent()));
    } else {
      log('hvm: no irq event channel: polling interrupt lines');
      setInterval(() => (rt.takeNmi(), rt.intc.dispatch()), IRQ_POLL_MS).unref();
    }
    return rt;
  }

  /** The OS's NMI handler (Linux: do_nmi -> unknown_nmi_error), given the vCPU. */
  onNmi: (vcpu: number) => void = () => {};

  /** An NMI the device model left in the platform page (xl trigger DOM nmi), taken once. */
  takeNmi(): void {
    const v = Atomics.exchange(new Int32Array(this.pages), PlatformWord.NMI_PENDING, 0);
    if (v > 0) this.onNmi(v - 1);
  }

  private machineCheck(e: MachineCheck): void {
    this.log(`mce: [Hardware Error]: ${e.message}`);
    void this.shutdown('crash');
  }

  /** Reports the shutdown and ends the process (the domain's "CPU" stops). */
  async shutdown(reason: ShutdownReason): Promise<never> {
    if (!this.stopping) {
      this.stopping = true;
      await this.hc.invoke('sched.shutdown', { reason }).catch(() => {});
    }
    process.exit(reason === 'crash' ? 1 : 0);
  }

  /** PCI reset through 0xCF9 (Linux reboot=pci), then the reboot report. */
  async reset(): Promise<never> {
    try {
      this.cpu.outb(0xcf9, 0x02);
      this.cpu.outb(0xcf9, 0x06);
    } catch {
      /* the device model may be gone already */
    }
    return this.shutdown('reboot');
  }

  /** The power button / S5. */
  powerOff(): Promise<never> {
    return this.shutdown('poweroff');
  }
}
