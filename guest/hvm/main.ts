// The HVM guest OS: firmware and a kernel with native drivers for emulated PC hardware,
// bundled to /boot/hvm-kernel.mjs and run as PID 1 of an HVM domain, in the same jailer sandbox
// as a PV kernel (docs/hvm.md). It makes no hypercall and reads no xenstore: everything it
// knows comes from PCI, the devices' registers and its command line. Only the vCPU runtime
// underneath it (cpu/runtime.ts) talks to the hypervisor, and, with PV drivers enabled
// (`xen_pvhvm=1`, pvhvm.ts), the PV frontends.
//
// Boot:
//   runtime     hvm.platform + ioreq pages, RAM, the irq event channel
//   COM1        the 16550A found by probing 0x3F8; early output is polled
//   firmware    hvmloader's PCI setup, the BIOS's disk probe and `boot=` order
//   kernel      PCI scan (after the PV-on-HVM unplug, if any), 8250 on IRQ 4, ata_piix
//               (/dev/hda..hdd as FUSE files), 8139too (ethN on TAPs), PV frontends, ip=
//   init        a login shell (or init=) on a pty whose master the kernel bridges to COM1,
//               so `xl console` (the stub domain's pty behind the UART) reaches it
// Shutdown: `poweroff`/`reboot` inside the guest signal PID 1 (SIGUSR2 / SIGTERM, as with the
// PV kernel), init exiting powers off (status 0) or panics; with PV drivers, dom0's
// control/shutdown too, and the ACPI power button (drivers/acpi-button.ts, acpid.ts). Disks are
// flushed (FLUSH CACHE), then reboot goes through 0xCF9 and poweroff enters S5 through the
// ACPI PM block and the runtime reports it (cpu/runtime.ts).
import { execFileSync } from 'node:child_process';
import { native } from '../../native/index.js';
import { HypercallClient } from '../../drivers/hypercall/channel.js';
import type { ShutdownReason } from '../../drivers/hypercall/ops.js';
import { parseCmdline } from '../kernel/cmdline.js';
import { ipAutoconfig } from '../kernel/net/ipconfig.js';
import { printk, setConsoleSink } from '../kernel/printk.js';
import { killAllProcesses, initExitVerdict, startInit, type Userland } from '../kernel/userland.js';
import { startOomKiller } from '../kernel/oom-killer.js';
import { makeKernelUndumpable } from '../kernel/kernel-undumpable.js';
import { connectConsolePty } from '../kernel/console-pty.js';
import { bootOwnRootOrPanic, stopOwnRoot, type OwnRoot } from '../kernel/boot/own-root.js';
import { startProcViews } from '../kernel/proc/proc-views.js';
import { hvmRoot } from './boot-root.js';
import { DiskFiles } from '../kernel/block/disk-files.js';
import { VcpuRuntime } from './cpu/runtime.js';
import { PhysicalMemory } from './cpu/ram.js';
import { runFirmware } from './firmware/firmware.js';
import { describe, pciScan, PCI_VENDOR_INTEL, PIIX3_IDE_DEVICE } from './firmware/pci.js';
import { Serial8250 } from './drivers/serial8250.js';
import { AtaPiix, type IdeDevice } from './drivers/ata-piix.js';
import { watchCdroms } from './drivers/cdrom-events.js';
import { IdeBlockDevice } from './drivers/ide-blockdev.js';
import { Rtl8139 } from './drivers/rtl8139.js';
import { EthTap } from './net/eth-tap.js';
import { TapPool } from './net/tap-pool.js';
import { pvhvmRequested, readPvParams, startPvStack, unplugMask, watchConsoleSize, watchShutdownRequests, xenUnplugEmulated, type PvStack } from './pvhvm.js';
import { StatsWriter } from './stats.js';
import { VgaTextConsole } from './drivers/vga-text.js';
import { I8042Keyboard } from './drivers/i8042-kbd.js';
import { startHvcLogin, startVtLogin } from './vt-login.js';
import { AcpiButtons } from './drivers/acpi-button.js';
import { acpid } from './acpid.js';

const HYPERCALL_FD = 3;
const COM1 = { base: 0x3f8, irq: 4 };
/** FUSE receive pages per IDE device (two 1 MiB windows). */
const IDE_POOL_PAGES = 512;

async function boot(): Promise<void> {
  const hc = new HypercallClient(HYPERCALL_FD);
  hc.onClose(() => process.exit(1)); // the hypervisor is gone: no CPU left to run on
  const rt = await VcpuRuntime.boot(hc, (m) => printk(m));
  const { cpu, intc } = rt;
  const cmdline = rt.info.cmdline ?? '';
  const spec = parseCmdline(cmdline);
  const params = spec.params;
  const ram = new PhysicalMemory(rt.ram);
  const pvhvm = pvhvmRequested(params);
  // PV drivers read their HVM params first, so their special pages never become DMA buffers.
  const pvParams = pvhvm ? await readPvParams(rt, ram).catch(() => null) : null;

  // The console: COM1, polled until the kernel takes its interrupt.
  const com1 = Serial8250.probe(cpu, COM1.base, COM1.irq, ram.alloc(4096), 'serial8250');
  const raw = (line: string) => com1?.write(Buffer.from(line + '\r\n'));
  // The screen too (VGA text at 0xB8000), when the PC has one: the kernel log goes to both.
  const vga = VgaTextConsole.probe(cpu, ram.alloc(8192));
  if (com1 || vga) setConsoleSink((b) => (com1?.write(b), vga?.write(b)));

  // ---- firmware
  const fw = await runFirmware({ cpu, ram: rt.ram, bootOrder: params['xenode.boot'], log: raw });
  raw(fw.boot ? `Booting the kernel from ${fw.boot.device}` : 'Booting the built-in kernel (direct kernel boot)');

  // ---- kernel
  printk(`Linux version 6.1.0-xenode (xenode HVM kernel on Node ${process.version})`);
  printk(`Command line: ${cmdline}`);
  if (pvhvm) printk('Hypervisor detected: Xen HVM');
  printk(`Memory: ${Math.floor(ram.sizeBytes / 1024)}K, ${rt.info.vcpus} CPU(s)`);
  printk('PCI: Using configuration type 1 for base access');
  let unplugged = 0;
  let platform = false;
  if (pvhvm) ({ mask: unplugged, platform } = xenUnplugEmulated(cpu, fw.devices, unplugMask(params['xen_emul_unplug']), printk));
  const devices = pciScan(fw.cfg); // the kernel's own scan: unplugged devices are gone
  for (const d of devices) printk(`pci ${describe(d)}${d.irq !== null ? ` IRQ ${d.irq}` : ''}`);

  if (com1) {
    com1.enableInterrupts();
    intc.request(COM1.irq, 'serial', () => com1.handleIrq());
    printk(com1.describe());
  }
  if (vga) printk(vga.describe());
  const kbd = vga ? I8042Keyboard.probe(cpu) : null;
  if (kbd) {
    intc.request(kbd.irq, 'i8042', () => kbd.handleIrq());
    printk(kbd.describe());
  }

  // ACPI: the power and sleep buttons on the SCI, and soft-off at the end of poweroff.
  const acpi = AcpiButtons.probe(cpu, fw.cfg, devices, printk);
  if (acpi) intc.request(acpi.irq, 'acpi', () => acpi.handleIrq());
  // An NMI nobody claims (no watchdog, no perf), as Linux's unknown_nmi_error reports it.
  rt.onNmi = (vcpu) => {
    printk(`Uhhuh. NMI received for unknown reason 00 on CPU ${vcpu}.`);
    printk('Dazed and confused, but trying to continue');
  };

  // IDE disks and CD-ROMs: /dev/hdX and the partitions of each disk, served like blkfront's.
  const disks: DiskFiles[] = [];
  const blockdevs: IdeBlockDevice[] = [];
  let ata: AtaPiix | null = null;
  let stopCdromWatch = () => {};
  const ide = devices.find((d) => d.vendor === PCI_VENDOR_INTEL && d.device === PIIX3_IDE_DEVICE);
  if (ide) {
    printk(`ata_piix ${describe(ide).split(' ')[0]}: version 2.13 (xenode)`);
    ata = await AtaPiix.probe({ cpu, cfg: fw.cfg, pci: ide, ram, log: printk, dma: params['libata.dma'] !== '0' });
    ata.attachIrq(intc);
    const exposed = new Map<string, { bd: IdeBlockDevice; files: DiskFiles }>();
    const expose = (dev: IdeDevice, bd: IdeBlockDevice) =>
      DiskFiles.expose({
        name: dev.name,
        ops: bd,
        sectors: (dev.blocks * dev.blockSize) / 512,
        readonly: dev.kind === 'atapi',
        subtype: 'ata_piix',
        read: dev.kind === 'ata' ? (lba, n) => bd.readSectors(lba, n) : undefined,
        forceGpt: params.gpt !== undefined,
        printk,
      });
    for (const dev of ata.devices) {
      const pool = ram.pagePool(IDE_POOL_PAGES);
      const bd = new IdeBlockDevice(ata, dev, pool, printk);
      printk(ata.describe(dev));
      try {
        const files = await expose(dev, bd);
        exposed.set(dev.name, { bd, files });
        // A FUSE reader out of receive pages pauses (large writes in flight hold them): let it
        // go on whenever pages come back, as blkfront does (onFree fires once: re-arm it).
        const resumeOnFree = (): void => pool.onFree(() => (exposed.get(dev.name)?.files.resume(), resumeOnFree()));
        resumeOnFree();
        disks.push(files);
        blockdevs.push(bd);
      } catch (e) {
        printk(`${dev.name}: cannot create /dev/${dev.name}: ${(e as Error).message}`);
      }
    }
    // A new disc (xl cd-insert) or none (cd-eject): /dev/hdX again at the medium's size.
    const ideAta = ata;
    stopCdromWatch = watchCdroms(ideAta, async (dev, oldBlocks) => {
      const cur = exposed.get(dev.name);
      if (!cur) return;
      printk(`${dev.name}: detected capacity change from ${(oldBlocks * dev.blockSize) / 512} to ${(dev.blocks * dev.blockSize) / 512}`);
      printk(ideAta.describe(dev));
      cur.files.close();
      disks.splice(disks.indexOf(cur.files), 1);
      const files = await expose(dev, cur.bd);
      exposed.set(dev.name, { bd: cur.bd, files });
      disks.push(files);
    }, printk);
  }

  // Ethernet: 8139too, each NIC as ethN on a TAP of the guest's namespace.
  const tapPool = new TapPool();
  const eths: EthTap[] = [];
  const nics: Rtl8139[] = [];
  const rtls = devices.filter((d) => d.vendor === 0x10ec && d.device === 0x8139);
  for (let i = 0; i < rtls.length; i++) {
    const name = `eth${i}`;
    try {
      const nic = new Rtl8139({ cpu, cfg: fw.cfg, pci: rtls[i]!, ram, name, mmio: params['8139too.use_io'] === '0', log: printk });
      printk(`8139too: ${nic.describe()}`);
      nic.open();
      if (nic.irq !== null) intc.request(nic.irq, name, () => nic.handleIrq());
      const tap = tapPool.attach(name, false);
      const eth = new EthTap(nic, tap, i, params[`xenode.nic${i}.ip`], printk);
      await eth.start();
      eths.push(eth);
      nics.push(nic);
    } catch (e) {
      printk(`8139too: ${name}: ${(e as Error).message}`);
    }
  }

  // PV drivers for HVM.
  let pv: PvStack | null = null;
  if (pvhvm && platform) {
    try {
      if (!pvParams) throw new Error('cannot read the HVM params');
      pv = await startPvStack({ rt, ram, params: pvParams, cmdline, unplugged, tapPool, printk });
    } catch (e) {
      printk(`xen: PV drivers unavailable: ${(e as Error).message}`);
    }
  }

  try {
    execFileSync('/usr/sbin/ip', ['link', 'set', 'lo', 'up'], { stdio: 'ignore' });
  } catch (e) {
    printk(`lo: could not bring up loopback: ${(e as Error).message}`);
  }
  await ipAutoconfig({ ipParam: params.ip, vifs: [...eths.map((e) => e.devid), ...(pv?.vifs ?? [])], printk });

  const stats = new StatsWriter(() => ({
    exits: cpu.exitCounters(),
    interrupts: intc.counters(),
    serial: com1?.counters,
    ata: ata?.counters,
    nics: nics.map((n, i) => ({ name: `eth${i}`, ...n.counters, eth: eths[i]?.counters })),
    boot: fw.boot,
    pvhvm: { enabled: pvhvm, unplugged },
  }));
  stats.start(StatsWriter.interval(params['xenode.hvm_stats']));

  // ---- shutdown
  let userland: Userland | null = null;
  let ownRoot: OwnRoot | null = null;
  let stopping = false;
  const shutdown = async (reason: ShutdownReason, why: string) => {
    if (stopping) return;
    stopping = true;
    printk(why);
    if (ownRoot) await stopOwnRoot(ownRoot, printk);
    await killAllProcesses(1500);
    await pv?.frontends.removeAll().catch(() => {});
    stopCdromWatch();
    for (const d of disks) d.close();
    for (const bd of blockdevs) bd.detach();
    if (ata) {
      for (const d of ata.devices) if (d.kind === 'ata') await ata.flush(d).catch((e) => printk(`${d.name}: flush: ${(e as Error).message}`));
      printk('sd: Synchronizing SCSI cache');
    }
    for (const e of eths) e.stop();
    for (const n of nics) n.close();
    stats.write();
    stats.stop();
    printk(reason === 'reboot' ? 'reboot: Restarting system' : reason === 'crash' ? 'Kernel panic - not syncing: Fatal exception' : 'reboot: Power down');
    com1?.flush();
    if (reason === 'reboot') await rt.reset();
    else if (reason === 'crash') await rt.shutdown('crash');
    else {
      acpi?.softOff();
      await rt.powerOff();
    }
  };
  // A guest running its own init is asked as Linux asks it (kernel/boot/own-init.ts).
  const request = (req: ShutdownReason, why: string) => {
    if (ownRoot && req === 'poweroff') return ownRoot.init.poweroff(printk);
    if (ownRoot && req === 'reboot') return ownRoot.init.ctrlAltDel();
    void shutdown(req, why);
  };
  process.on('SIGUSR2', () => request('poweroff', 'init: poweroff requested'));
  if (acpi) acpi.onEvent = acpid((why) => request('poweroff', why), printk);
  process.on('SIGTERM', () => request('reboot', 'init: reboot requested'));
  process.on('SIGINT', () => request('reboot', 'init: ctrl-alt-del'));
  if (pv) {
    await watchShutdownRequests(pv, (req) => request(req, `xenbus: shutdown requested: ${req === 'crash' ? 'crash' : req}`), printk);
  }

  // The guest's /proc describes the domain, as a PV guest's does (kernel/proc/proc-views.ts):
  // its vCPUs are the firmware's count, its free RAM what this kernel has not allocated.
  let procBinds: { source: string; name: string }[] = [];
  try {
    const procViews = await startProcViews({ hc, vcpus: rt.info.vcpus, cmdline, nrPages: ram.nrPages, pages: { get available() { return ram.freePages; } }, log: printk });
    procViews.overmount('/proc');
    procBinds = procViews.files;
  } catch (e) {
    printk(`proc: /proc shows the host, not this domain: ${(e as Error).message}`);
  }

  // ---- init on ttyS0: the OS on the boot device, or the built-in kernel's userland
  const root = await hvmRoot(cmdline, fw.boot, printk);
  makeKernelUndumpable(printk); // before any userland: out of its reach (kernel/kernel-undumpable.ts)
  startOomKiller({ log: printk, pidLevel: root ? 1 : 0 });
  let master: number;
  if (root) {
    ownRoot = await bootOwnRootOrPanic(root, spec, { log: printk, memoryBytes: ram.sizeBytes, procBinds }, shutdown);
    if (!ownRoot) return;
    master = ownRoot.init.pty.master;
  } else {
    userland = startInit(spec, (code, signal) => {
      if (stopping) return;
      const verdict = initExitVerdict(code, signal);
      void shutdown(verdict.reason, verdict.message);
    });
    master = userland.pty.master;
  }
  try {
    native().setWinsize(master, 24, 80);
  } catch {
    /* a pty without a size: programs assume 80x24 anyway */
  }
  if (com1) com1.onInput = connectConsolePty(master, (b) => com1.write(b));
  // With PV drivers, `xl console`'s window size reaches the serial console's tty too.
  if (pv) await watchConsoleSize(pv, master).catch(() => {});
  // tty1: a login shell on the screen and keyboard, as the default init's getty would give
  // (with init= a program of the user's, the screen shows the console only, as on a PC).
  if (vga && (spec.init === null || spec.init === '/sbin/init')) startVtLogin(vga, kbd, spec.env, () => stopping, printk);
  // hvc0: with PV drivers, a getty on the PV console too (`xl console -t pv`).
  if (pv?.hvc && (spec.init === null || spec.init === '/sbin/init')) startHvcLogin(pv.hvc, spec.env, () => stopping, printk);
}

boot().catch((e) => {
  printk(`Kernel panic - not syncing: ${(e as Error).stack ?? e}`);
  setTimeout(() => process.exit(1), 50);
});
