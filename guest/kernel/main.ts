// The PV guest kernel. It runs as PID 1 of its domain (inside the sandbox the jailer built)
// and does what a Linux PV kernel does at boot: read start_info, map its shared pages,
// connect hvc0 and xenbus over their rings and event channels, then start init. It answers
// dom0's shutdown requests through control/shutdown, and asks the hypervisor to shut the
// domain down (SCHEDOP_shutdown) before it exits. Built into one file (/boot/kernel.mjs).
import { execFileSync } from 'node:child_process';
import { native } from '../../native/index.js';
import { HypercallClient } from '../../drivers/hypercall/channel.js';
import { decodeStartInfo, specialPages, START_INFO_MAGIC } from '../../drivers/hypercall/start-info.js';
import { GrantTable } from '../../drivers/grant/grant-table.js';
import { PageAllocator } from './page-allocator.js';
import { FrontendBus } from './xenbus-frontends.js';
import { registerFrontends } from './frontends/registry.js';
import type { ShutdownReason } from '../../drivers/hypercall/ops.js';
import { EventChannels } from '../../drivers/evtchn/event-channels.js';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport } from '../../drivers/xenstore/ring-transport.js';
import { ConsoleFrontend } from './console-frontend.js';
import { parseCmdline } from './cmdline.js';
import { configureHotplugged, ipAutoconfig } from './net/ipconfig.js';
import { printk, setConsoleSink } from './printk.js';
import { killAllProcesses, initExitVerdict, startInit, type Userland } from './userland.js';
import { connectConsolePty } from './console-pty.js';
import { startProcViews } from './proc/proc-views.js';

const PAGE = 4096;
const HYPERCALL_FD = 3;

async function boot(): Promise<void> {
  const arg = process.argv.find((a) => a.startsWith('start_info='));
  const startInfoPfn = Number(arg?.slice('start_info='.length));
  if (!Number.isInteger(startInfoPfn)) throw new Error('no start_info=PFN on the kernel command line');

  const hc = new HypercallClient(HYPERCALL_FD);
  hc.onClose(() => process.exit(1)); // the hypervisor is gone: nothing left to run on
  const self = await hc.call<{ bytes: number }>('memory.map_self');
  const memory = native().mapShared(self.fds[0]!, self.result.bytes);
  native().close(self.fds[0]!);
  const page = (pfn: number) => new Uint8Array(memory, pfn * PAGE, PAGE);

  const si = decodeStartInfo(page(startInfoPfn));
  if (si.magic !== START_INFO_MAGIC) throw new Error(`bad start_info magic "${si.magic}"`);
  const evtchn = new EventChannels(hc, page(si.sharedInfoFrame));

  await evtchn.open(si.consoleEvtchn);
  const hvc = new ConsoleFrontend(page(si.consoleMfn), () => evtchn.notify(si.consoleEvtchn));
  evtchn.on(si.consoleEvtchn, () => hvc.onEvent());
  setConsoleSink((b) => hvc.write(b));
  const version = await hc.invoke<{ major: number; minor: number; extra: string }>('xen.version');
  printk(`Linux version 6.1.0-xenode (xenode PV kernel on Node ${process.version})`);
  printk('Booting paravirtualized kernel on Xen');
  printk(`Xen version: ${version.major}.${version.minor}${version.extra}`);
  printk(`Command line: ${si.cmdLine}`);
  printk(`Memory: ${si.nrPages * 4}K available (${si.nrPages} pages)`);
  printk(`hvc0: Xen console ring at frame ${si.consoleMfn}, event channel ${si.consoleEvtchn}`);

  await evtchn.open(si.storeEvtchn);
  const xsRing = ringTransport(page(si.storeMfn), () => evtchn.notify(si.storeEvtchn));
  evtchn.on(si.storeEvtchn, () => xsRing.onEvent());
  const xs = new XsClient(xsRing);
  const domid = Number(await xs.read('domid'));
  const home = `/local/domain/${domid}`;
  printk(`xenbus: connected to xenstore at frame ${si.storeMfn}, event channel ${si.storeEvtchn} (domain ${domid})`);

  // Grant table and free frames: what frontends share with their backends.
  const gt = await hc.call<{ frames: number }>('gnttab.setup_table');
  const grantFrames = native().mapShared(gt.fds[0]!, gt.result.frames * PAGE);
  native().close(gt.fds[0]!);
  const grants = new GrantTable(grantFrames, { nrEntries: gt.result.frames * (PAGE / 8) });
  const pages = new PageAllocator(memory, 1, specialPages(si.nrPages).firstReserved);
  printk(`Grant table initialized: ${gt.result.frames} frames, ${grants.nrEntries} entries`);

  // xenbus: probe the devices the toolstack gave us (netfront, blkfront ...) before init runs.
  const frontends = new FrontendBus({ domid, xs, evtchn, hc, grants, pages, memory, printk, cmdline: si.cmdLine });
  registerFrontends(frontends);
  await frontends.start();
  await frontends.settle(10_000); // disks and NICs are there when init starts

  // A fresh network namespace has lo down; a Linux guest brings it up in early userspace.
  try {
    execFileSync('/usr/sbin/ip', ['link', 'set', 'lo', 'up'], { stdio: 'ignore' });
  } catch (e) {
    printk(`lo: could not bring up loopback: ${(e as Error).message}`);
  }
  // ip= on the command line, or the vifs' own ip=: addresses before init (Linux's ipconfig).
  const vifs = (await xs.directory(`${home}/device/vif`).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).map(Number);
  const backendIp = async (id: number) => xs.read(`${await xs.read(`${home}/device/vif/${id}/backend`)}/ip`);
  const ipParam = parseCmdline(si.cmdLine).params.ip;
  await ipAutoconfig({ ipParam, vifs, backendIp, printk });
  if (ipParam !== 'off' && ipParam !== 'none') configureHotplugged(printk);

  let userland: Userland | null = null;
  let stopping = false;
  const shutdown = async (reason: ShutdownReason, why: string) => {
    if (stopping) return;
    stopping = true;
    printk(why);
    await killAllProcesses(1500);
    await frontends.removeAll();
    printk(reason === 'reboot' ? 'reboot: Restarting system' : reason === 'crash' ? 'Kernel panic - not syncing: Fatal exception' : 'reboot: Power down');
    // Give hvc0 a moment to drain, then tell the hypervisor and stop.
    await new Promise((r) => setTimeout(r, 50));
    await hc.invoke('sched.shutdown', { reason }).catch(() => {});
    process.exit(0);
  };

  // dom0 asks through xenstore (xl shutdown / reboot); we acknowledge by clearing the node.
  await xs.watch(`${home}/control/shutdown`, 'shutdown', () => {
    void xs.read(`${home}/control/shutdown`).then(async (req) => {
      if (!req) return;
      await xs.write(`${home}/control/shutdown`, '');
      if (req === 'poweroff' || req === 'halt') await shutdown('poweroff', 'xenbus: shutdown requested: poweroff');
      else if (req === 'reboot') await shutdown('reboot', 'xenbus: shutdown requested: reboot');
      else if (req === 'crash') await shutdown('crash', 'sysrq: Trigger a crash');
      else printk(`xenbus: ignoring unknown shutdown request "${req}"`);
    }, () => {});
  });

  // The guest's own poweroff/reboot (/usr/local/sbin scripts) signal PID 1, busybox-style.
  process.on('SIGUSR2', () => void shutdown('poweroff', 'init: poweroff requested'));
  process.on('SIGTERM', () => void shutdown('reboot', 'init: reboot requested'));
  process.on('SIGINT', () => void shutdown('reboot', 'init: ctrl-alt-del'));

  // Window size from `xl console` (xenode's console/rows and console/cols nodes).
  const resize = async () => {
    if (!userland) return;
    const rows = Number(await xs.read(`${home}/console/rows`).catch(() => '0'));
    const cols = Number(await xs.read(`${home}/console/cols`).catch(() => '0'));
    if (rows > 0 && cols > 0 && rows < 10000 && cols < 10000) native().setWinsize(userland.pty.master, rows, cols);
  };
  await xs.watch(`${home}/console/cols`, 'winsize', () => void resize());

  // >>> procview: the guest's /proc describes the domain (guest/kernel/proc/proc-views.ts)
  try {
    const procViews = await startProcViews({ hc, xs, home, cmdline: si.cmdLine, nrPages: si.nrPages, pages, log: printk });
    procViews.overmount('/proc');
  } catch (e) {
    printk(`proc: /proc shows the host, not this domain: ${(e as Error).message}`);
  }
  // <<< procview
  const spec = parseCmdline(si.cmdLine);
  userland = startInit(spec, (code, signal) => {
    if (stopping) return;
    const verdict = initExitVerdict(code, signal);
    void shutdown(verdict.reason, verdict.message);
  });
  hvc.input = connectConsolePty(userland.pty.master, (b) => hvc.write(b));
  await resize();
}

boot().catch((e) => {
  printk(`Kernel panic - not syncing: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
