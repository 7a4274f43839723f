// PV drivers for HVM ("PV-on-HVM", Xen's "PV drivers for HVM"): an HVM guest whose kernel
// carries Xen's PV frontends finds the Xen platform PCI device, asks the device model to unplug
// the emulated disks and NICs, and then drives the same vifs and vbds through netfront and
// blkfront, over xenstore and grant tables, exactly like a PV guest. The serial line stays
// the console; the PV console ring becomes hvc0, as Linux's hvc_xen does for HVM guests.
//
// xenode's switch is `xen_pvhvm=1` on the guest's command line (a Linux guest has PV drivers
// when its kernel was built with them; the one here has them when asked to). What gets unplugged
// follows Linux's `xen_emul_unplug=` (comma-separated): all (default), ide-disks,
// aux-ide-disks (all but the primary master), nics, never. CD-ROMs are never unplugged: they
// stay on the emulated IDE (Linux's blkfront ignores cdrom vbds in HVM guests, and so does
// this one).
//
// The unplug protocol is arch/x86/xen/platform-pci-unplug.c's: inw(0x10) == 0x49d2 (the magic;
// 0xd249 = drivers blacklisted by the host), inb(0x12) = protocol version 1, outw(0x12) <- 3
// (product: Linux), outl(0x10) <- driver build, magic again (the host may blacklist this
// product/build), then outw(0x10) <- the unplug mask. It runs before the kernel probes its
// native drivers, so they never see the unplugged devices.
//
// The PV stack then needs the toolstack's HVM params (hvm.get_param): STORE_PFN and
// STORE_EVTCHN (the xenstore ring in guest RAM and its event channel), and CONSOLE_PFN/EVTCHN:
// the PV console ring (hvc0: xen_hvm_console_init reads the same two params), where a login
// shell runs beside the serial console's, so `xl console -t pv` reaches the guest too.
import { native } from '../../native/index.js';
import type { Cpu } from './cpu/io.js';
import type { PhysicalMemory } from './cpu/ram.js';
import { PAGE_SIZE } from './cpu/ram.js';
import type { VcpuRuntime } from './cpu/runtime.js';
import type { PciDevice } from './firmware/pci.js';
import type { TapPool } from './net/tap-pool.js';
import { HVM_PARAM } from '../../drivers/hypercall/ops.js';
import { GrantTable } from '../../drivers/grant/grant-table.js';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport } from '../../drivers/xenstore/ring-transport.js';
import { FrontendBus, type FrontendDriver, type FrontendFactory } from '../kernel/xenbus-frontends.js';
import { registerFrontends } from '../kernel/frontends/registry.js';
import { netfrontFactory } from '../kernel/frontends/netfront/netfront.js';
import { blkfrontFactory } from '../kernel/frontends/blkfront/blkfront.js';
import { ConsoleFrontend } from '../kernel/console-frontend.js';

export const XEN_PLATFORM_VENDOR = 0x5853;
export const XEN_PLATFORM_DEVICE = 0x0001;
const XEN_IOPORT_MAGIC = 0x10;
const XEN_IOPORT_PROTOVER = 0x12;
const XEN_IOPORT_PRODNUM = 0x12;
const XEN_IOPORT_DRVVER = 0x10;
const XEN_IOPORT_UNPLUG = 0x10;
const XEN_IOPORT_MAGIC_VAL = 0x49d2;
const XEN_IOPORT_LINUX_PRODNUM = 3;
/** LINUX_VERSION_CODE of the kernel we pretend to be (6.1.0). */
const XEN_IOPORT_LINUX_DRVVER = 0x060100;
export const XEN_UNPLUG_ALL_IDE_DISKS = 1;
export const XEN_UNPLUG_ALL_NICS = 2;
export const XEN_UNPLUG_AUX_IDE_DISKS = 4;

/** True when the command line asks for the PV drivers (`xen_pvhvm=1`). */
export function pvhvmRequested(params: Record<string, string>): boolean {
  const v = params['xen_pvhvm'];
  return v !== undefined && v !== '0' && v !== 'n' && v !== 'N' && v !== 'off';
}

/** The unplug mask `xen_emul_unplug=` asks for. */
export function unplugMask(v: string | undefined): number {
  if (v === undefined || v === '') return XEN_UNPLUG_ALL_IDE_DISKS | XEN_UNPLUG_ALL_NICS;
  let mask = 0;
  for (const w of v.split(',')) {
    switch (w.trim()) {
      case 'all':
        mask |= XEN_UNPLUG_ALL_IDE_DISKS | XEN_UNPLUG_ALL_NICS;
        break;
      case 'ide-disks':
        mask |= XEN_UNPLUG_ALL_IDE_DISKS;
        break;
      case 'aux-ide-disks':
        mask |= XEN_UNPLUG_AUX_IDE_DISKS;
        break;
      case 'nics':
        mask |= XEN_UNPLUG_ALL_NICS;
        break;
      case 'never':
      case 'unnecessary':
        return 0;
    }
  }
  return mask;
}

export interface UnplugResult {
  /** The platform device answered and accepted us. */
  platform: boolean;
  /** What was unplugged (0 when nothing). */
  mask: number;
}

/** Finds the platform device, checks the protocol and unplugs (xen_unplug_emulated_devices). */
export function xenUnplugEmulated(cpu: Cpu, devices: PciDevice[], mask: number, log: (msg: string) => void): UnplugResult {
  const dev = devices.find((d) => d.vendor === XEN_PLATFORM_VENDOR && d.device === XEN_PLATFORM_DEVICE);
  if (!dev) {
    log('Xen Platform PCI: device not found: staying on emulated devices');
    return { platform: false, mask: 0 };
  }
  cpu.claimPorts('xen-platform', XEN_IOPORT_MAGIC, 16);
  const magic = cpu.inw(XEN_IOPORT_MAGIC);
  if (magic !== XEN_IOPORT_MAGIC_VAL) {
    log(`Xen Platform PCI: unrecognised magic value 0x${magic.toString(16)}`);
    return { platform: false, mask: 0 };
  }
  const protocol = cpu.inb(XEN_IOPORT_PROTOVER);
  log(`Xen Platform PCI: I/O protocol version ${protocol}`);
  if (protocol !== 1) {
    log('Xen Platform PCI: unknown I/O protocol version');
    return { platform: false, mask: 0 };
  }
  cpu.outw(XEN_IOPORT_PRODNUM, XEN_IOPORT_LINUX_PRODNUM);
  cpu.outl(XEN_IOPORT_DRVVER, XEN_IOPORT_LINUX_DRVVER);
  if (cpu.inw(XEN_IOPORT_MAGIC) !== XEN_IOPORT_MAGIC_VAL) {
    log('Xen Platform: blacklisted by host');
    return { platform: false, mask: 0 };
  }
  if (mask) {
    cpu.outw(XEN_IOPORT_UNPLUG, mask);
    const what = [mask & XEN_UNPLUG_ALL_IDE_DISKS ? 'IDE disks' : mask & XEN_UNPLUG_AUX_IDE_DISKS ? 'secondary IDE disks' : '', mask & XEN_UNPLUG_ALL_NICS ? 'NICs' : ''].filter(Boolean);
    log(`Xen Platform PCI: unplugging emulated ${what.join(' and ')}`);
  } else {
    log('Xen Platform PCI: emulated devices stay (xen_emul_unplug=never)');
  }
  return { platform: true, mask };
}

export interface PvStack {
  xs: XsClient;
  domid: number;
  frontends: FrontendBus;
  /** devids under device/vif (for ip autoconfiguration). */
  vifs: number[];
  /** hvc0: the PV console ring, when the toolstack gave one. */
  hvc: ConsoleFrontend | null;
}

/** The HVM params the toolstack set for the PV drivers. */
export interface PvParams {
  storePfn: number;
  storeEvtchn: number;
  consolePfn: number;
  consoleEvtchn: number;
}

/** Reads the params early, before the kernel allocates any memory, and keeps the special
 * pages they name out of the kernel's allocations (Linux reserves them the same way). */
export async function readPvParams(rt: VcpuRuntime, ram: PhysicalMemory): Promise<PvParams> {
  const param = async (index: number) => (await rt.hc.invoke<{ value: number }>('hvm.get_param', { index })).value;
  const p: PvParams = {
    storePfn: await param(HVM_PARAM.STORE_PFN),
    storeEvtchn: await param(HVM_PARAM.STORE_EVTCHN),
    consolePfn: await param(HVM_PARAM.CONSOLE_PFN).catch(() => 0),
    consoleEvtchn: await param(HVM_PARAM.CONSOLE_EVTCHN).catch(() => 0),
  };
  if (p.storePfn) ram.reserve(p.storePfn);
  if (p.consolePfn) ram.reserve(p.consolePfn);
  return p;
}

export interface PvStackOptions {
  rt: VcpuRuntime;
  ram: PhysicalMemory;
  params: PvParams;
  cmdline: string;
  unplugged: number;
  tapPool: TapPool;
  printk: (msg: string) => void;
}

const skip =
  (why: (devid: number) => string): FrontendFactory =>
  async (dev, devid, k) => {
    k.printk(why(devid));
    await dev.close();
    const d: FrontendDriver = { remove: async () => {} };
    return d;
  };

/** Connects xenstore and starts netfront/blkfront for the devices that were unplugged. */
export async function startPvStack(o: PvStackOptions): Promise<PvStack> {
  const { rt, printk } = o;
  const { storePfn, storeEvtchn, consolePfn, consoleEvtchn } = o.params;
  if (!storePfn || !storeEvtchn) throw new Error('the toolstack set no HVM_PARAM_STORE_PFN/STORE_EVTCHN: no xenstore for the PV drivers');
  const page = (pfn: number) => new Uint8Array(rt.ram, pfn * PAGE_SIZE, PAGE_SIZE);
  await rt.evtchn.open(storeEvtchn);
  const ring = ringTransport(page(storePfn), () => rt.evtchn.notify(storeEvtchn));
  rt.evtchn.on(storeEvtchn, () => ring.onEvent());
  const xs = new XsClient(ring);
  const domid = Number(await xs.read('domid'));
  printk(`xenbus: connected to xenstore at frame ${storePfn}, event channel ${storeEvtchn} (domain ${domid})`);
  let hvc: ConsoleFrontend | null = null;
  if (consolePfn && consoleEvtchn) {
    await rt.evtchn.open(consoleEvtchn);
    const console = new ConsoleFrontend(page(consolePfn), () => rt.evtchn.notify(consoleEvtchn));
    rt.evtchn.on(consoleEvtchn, () => console.onEvent());
    hvc = console;
    printk(`hvc0: Xen console ring at frame ${consolePfn}, event channel ${consoleEvtchn}`);
  }

  const gt = await rt.hc.call<{ frames: number }>('gnttab.setup_table');
  const grantFrames = native().mapShared(gt.fds[0]!, gt.result.frames * PAGE_SIZE);
  native().close(gt.fds[0]!);
  const grants = new GrantTable(grantFrames, { nrEntries: gt.result.frames * (PAGE_SIZE / 8) });
  const pages = o.ram.handOff();
  printk(`Grant table initialized: ${gt.result.frames} frames, ${grants.nrEntries} entries; ${pages.available} pages for the frontends`);

  const frontends = new FrontendBus({ domid, xs, evtchn: rt.evtchn, hc: rt.hc, grants, pages, memory: rt.ram, printk, cmdline: o.cmdline });
  registerFrontends(frontends);
  // Linux: netfront binds only when the emulated NICs were unplugged (xen_has_pv_nic_devices),
  // and uses the kernel's TAP handles, shared with the emulated NIC driver.
  if (o.unplugged & XEN_UNPLUG_ALL_NICS) frontends.register('vif', netfrontFactory({ provider: () => o.tapPool.provider() }));
  else frontends.register('vif', skip((id) => `netfront: vif/${id}: the emulated NIC is in use (not unplugged): skipping`));
  const disksUnplugged = (o.unplugged & (XEN_UNPLUG_ALL_IDE_DISKS | XEN_UNPLUG_AUX_IDE_DISKS)) !== 0;
  frontends.register('vbd', async (dev, devid, k) => {
    const type = (await dev.readKey('device-type', dev.path)) ?? (await dev.readKey('device-type'));
    if (type?.trim() === 'cdrom') return skip((id) => `blkfront: vbd/${id}: ignoring CD-ROM (it stays on the emulated IDE)`)(dev, devid, k);
    if (!disksUnplugged) return skip((id) => `blkfront: vbd/${id}: the emulated disk is in use (not unplugged): skipping`)(dev, devid, k);
    // aux-ide-disks keeps the primary master (hda, xvda: devid 768 / 51712) emulated.
    if (!(o.unplugged & XEN_UNPLUG_ALL_IDE_DISKS) && (devid === 768 || devid === 51712)) {
      return skip((id) => `blkfront: vbd/${id}: the primary master stays emulated (aux-ide-disks)`)(dev, devid, k);
    }
    return blkfrontFactory(dev, devid, k);
  });
  await frontends.start();
  await frontends.settle(10_000);

  const home = `/local/domain/${domid}`;
  const vifs = (await xs.directory(`${home}/device/vif`).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).map(Number);
  // Tell the toolstack this guest answers control/shutdown (Linux's manage.c).
  for (const f of ['feature-poweroff', 'feature-reboot']) await xs.write(`${home}/control/${f}`, '1').catch(() => {});
  return { xs, domid, frontends, vifs: o.unplugged & XEN_UNPLUG_ALL_NICS ? vifs : [], hvc };
}

/** dom0's shutdown requests through control/shutdown (xl shutdown / reboot). */
export async function watchShutdownRequests(pv: PvStack, act: (req: 'poweroff' | 'reboot' | 'crash') => void, printk: (msg: string) => void): Promise<void> {
  const node = `/local/domain/${pv.domid}/control/shutdown`;
  await pv.xs.watch(node, 'shutdown', () => {
    void pv.xs.read(node).then(async (req) => {
      if (!req) return;
      await pv.xs.write(node, '');
      if (req === 'poweroff' || req === 'halt') act('poweroff');
      else if (req === 'reboot') act('reboot');
      else if (req === 'crash') act('crash');
      else printk(`xenbus: ignoring unknown shutdown request "${req}"`);
    }, () => {});
  });
}

/** The serial console's window size from `xl console` (console/rows and console/cols, as the
 * PV kernel reads them): a serial line cannot carry it, the PV drivers' xenstore can. */
export async function watchConsoleSize(pv: PvStack, ptyMaster: number): Promise<void> {
  const home = `/local/domain/${pv.domid}/console`;
  const resize = async () => {
    const rows = Number(await pv.xs.read(`${home}/rows`).catch(() => '0'));
    const cols = Number(await pv.xs.read(`${home}/cols`).catch(() => '0'));
    if (rows > 0 && cols > 0 && rows < 10000 && cols < 10000) native().setWinsize(ptyMaster, rows, cols);
  };
  await pv.xs.watch(`${home}/cols`, 'winsize', () => void resize());
}
