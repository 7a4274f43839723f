// The PV guest kernel. It runs as PID 1 of its domain (inside the sandbox the jailer built)
// and does what a Linux PV kernel does at boot: read start_info, map its shared pages,
// connect hvc0 and xenbus over their rings and event channels, then start init. It answers
// dom0's shutdown requests through control/shutdown, and asks the hypervisor to shut the
// domain down (SCHEDOP_shutdown) before it exits. Built into one file (/boot/kernel.mjs).
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
import { killAllProcesses, initExitVerdict, signalAllBut, startInit, type Userland } from './userland.js';
import { connectConsolePty } from './console-pty.js';
import { handleSysrq } from './sysrq.js';
import { rootParams } from './boot/root-params.js';
import { bootOwnRootOrPanic, stopOwnRoot, type OwnRoot } from './boot/own-root.js';
import type { PtyPair } from '../../native/index.js';
import { startProcViews } from './proc/proc-views.js';
import { startOomKiller } from './oom-killer.js';
import { makeKernelUndumpable } from './kernel-undumpable.js';
import { lockupLine, setKernelPhase, startLockupWatchdog } from './lockup-watchdog.js';

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
  // A stuck event loop is said at once, on the console and in xl dmesg (lockup-watchdog.ts).
  startLockupWatchdog((r) => {
    const line = lockupLine(r);
    printk(line);
    void hc.invoke('console.write', { text: line }).catch(() => {});
  });
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

  // lo is up already: the jailer brought it up in the domain's network namespace before it
  // started us (native/jailer.c, loopback_up), as a Linux guest's early userspace does. (A
  // second time here, with `ip`, cost a fork of this process on the way to init.)
  // The guest's /proc views (below) need only the hypervisor and xenstore: set up while the
  // frontends connect.
  const procViewsReady = startProcViews({ hc, xenstore: { xs, home }, cmdline: si.cmdLine, nrPages: si.nrPages, pages, log: printk }).then(
    (v) => v,
    (e: Error) => e,
  );

  // xenbus: probe the devices the toolstack gave us (netfront, blkfront ...) before init runs.
  setKernelPhase('xenbus: probing devices');
  const frontends = new FrontendBus({ domid, xs, evtchn, hc, grants, pages, memory, printk, cmdline: si.cmdLine });
  registerFrontends(frontends);
  await frontends.start();
  setKernelPhase('xenbus: waiting for devices to settle');
  await frontends.settle(10_000); // disks and NICs are there when init starts
  // ip= on the command line, or the vifs' own ip=: addresses before init (Linux's ipconfig).
  const vifs = (await xs.directory(`${home}/device/vif`).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).map(Number);
  const backendIp = async (id: number) => xs.read(`${await xs.read(`${home}/device/vif/${id}/backend`)}/ip`);
  const ipParam = parseCmdline(si.cmdLine).params.ip;
  setKernelPhase('IP-Config');
  await ipAutoconfig({ ipParam, vifs, backendIp, printk });
  if (ipParam !== 'off' && ipParam !== 'none') configureHotplugged(printk);

  let userland: Userland | null = null;
  let ownRoot: OwnRoot | null = null;
  let consolePty: PtyPair | null = null;
  let stopping = false;
  const shutdown = async (reason: ShutdownReason, why: string) => {
    if (stopping) return;
    stopping = true;
    printk(why);
    // A panic is also the hypervisor's business: it goes to its log (xl dmesg), as Linux's
    // panic reaches Xen's console through HYPERVISOR_console_io.
    if (reason === 'crash') await hc.invoke('console.write', { text: why }).catch(() => {});
    if (ownRoot) await stopOwnRoot(ownRoot, printk);
    await killAllProcesses(1500);
    await frontends.removeAll();
    printk(reason === 'reboot' ? 'reboot: Restarting system' : reason === 'crash' ? 'Kernel panic - not syncing: Fatal exception' : 'reboot: Power down');
    // Give hvc0 a moment to drain, then tell the hypervisor and stop.
    await new Promise((r) => setTimeout(r, 50));
    await hc.invoke('sched.shutdown', { reason }).catch(() => {});
    process.exit(0);
  };
  // dom0 asks through xenstore (xl shutdown / reboot); we acknowledge by clearing the node.
  // A guest with its own init is asked the way Linux's Xen PV kernel asks it
  // (boot/own-init.ts); the minimal userland is simply stopped.
  // The control nodes' watches and features are set up together (each was a round trip to
  // dom0 on the way to init), and are all in place before init runs.
  const controlReady: Promise<unknown>[] = [];
  const setUpControl = (p: Promise<void>) => controlReady.push(p);
  setUpControl(xs.watch(`${home}/control/shutdown`, 'shutdown', () => {
    void xs.read(`${home}/control/shutdown`).then(async (req) => {
      if (!req) return;
      await xs.write(`${home}/control/shutdown`, '');
      if (ownRoot && (req === 'poweroff' || req === 'halt')) return ownRoot.init.poweroff(printk);
      if (ownRoot && req === 'reboot') return ownRoot.init.ctrlAltDel();
      if (req === 'poweroff' || req === 'halt') await shutdown('poweroff', 'xenbus: shutdown requested: poweroff');
      else if (req === 'reboot') await shutdown('reboot', 'xenbus: shutdown requested: reboot');
      else if (req === 'crash') await shutdown('crash', 'sysrq: Trigger a crash');
      else printk(`xenbus: ignoring unknown shutdown request "${req}"`);
    }, () => {});
  }));

  // Linux's Xen PV kernel says what it answers (drivers/xen/manage.c), and takes sysrq keys.
  for (const f of ['feature-poweroff', 'feature-reboot']) setUpControl(xs.write(`${home}/control/${f}`, '1').catch(() => {}));
  setUpControl(xs.watch(`${home}/control/sysrq`, 'sysrq', () => {
    void xs.read(`${home}/control/sysrq`).then(async (key) => {
      if (!key || key === '\0') return;
      // Linux writes "%c" of '\0': an empty value.
      await xs.write(`${home}/control/sysrq`, '');
      await handleSysrq(key[0]!, {
        reboot: () => void shutdown('reboot', 'sysrq: emergency restart'),
        poweroff: () => void shutdown('poweroff', 'sysrq: emergency power off'),
        crash: () => void shutdown('crash', 'Kernel panic - not syncing: sysrq triggered crash'),
        sync: async () => {
          if (ownRoot) await ownRoot.init.run(['/bin/sync']).catch(() => {});
        },
        signalAll: (sig) => {
          if (ownRoot) void ownRoot.init.run(['/bin/kill', sig === 'SIGKILL' ? '-KILL' : '-TERM', '-1']).catch(() => {});
          else if (userland?.init.pid) signalAllBut(userland.init.pid, sig);
        },
      }, printk);
    }, () => {});
  }));

  // The guest's own poweroff/reboot (/usr/local/sbin scripts) signal PID 1, busybox-style.
  process.on('SIGUSR2', () => (ownRoot ? ownRoot.init.poweroff(printk) : void shutdown('poweroff', 'init: poweroff requested')));
  process.on('SIGTERM', () => (ownRoot ? ownRoot.init.ctrlAltDel() : void shutdown('reboot', 'init: reboot requested')));
  process.on('SIGINT', () => (ownRoot ? ownRoot.init.ctrlAltDel() : void shutdown('reboot', 'init: ctrl-alt-del')));

  // Window size from `xl console` (xenode's console/rows and console/cols nodes).
  const resize = async () => {
    if (!consolePty) return;
    const rows = Number(await xs.read(`${home}/console/rows`).catch(() => '0'));
    const cols = Number(await xs.read(`${home}/console/cols`).catch(() => '0'));
    if (rows > 0 && cols > 0 && rows < 10000 && cols < 10000) native().setWinsize(consolePty.master, rows, cols);
  };
  setUpControl(xs.watch(`${home}/console/cols`, 'winsize', () => void resize()));
  await Promise.all(controlReady);

  // The guest's /proc describes the domain (proc/proc-views.ts): bound over the kernel's own
  // /proc, which the minimal userland shares, and over the fresh /proc of a guest's own OS.
  let procBinds: { source: string; name: string }[] = [];
  setKernelPhase('/proc views');
  try {
    const procViews = await procViewsReady;
    if (procViews instanceof Error) throw procViews;
    procViews.overmount('/proc');
    procBinds = procViews.files.map((f) => ({ source: f.source, name: f.name }));
  } catch (e) {
    printk(`proc: /proc shows the host, not this domain: ${(e as Error).message}`);
  }
  const spec = parseCmdline(si.cmdLine);
  const root = rootParams(si.cmdLine);
  // Before any userland exists: out of its reach, and its OOM killer (a guest with its own root
  // sees pids of its own pid namespace: the second NSpid entry).
  makeKernelUndumpable(printk);
  startOomKiller({ log: printk, pidLevel: root ? 1 : 0 });
  if (root) {
    // root= on the command line: the guest is the OS on that disk (boot/own-root.ts).
    ownRoot = await bootOwnRootOrPanic(root, spec, { log: printk, memoryBytes: si.nrPages * PAGE, procBinds }, shutdown);
    if (!ownRoot) return;
    consolePty = ownRoot.init.pty;
  } else {
    userland = startInit(spec, (code, signal) => {
      if (stopping) return;
      const verdict = initExitVerdict(code, signal);
      void shutdown(verdict.reason, verdict.message);
    });
    consolePty = userland.pty;
  }
  hvc.input = connectConsolePty(consolePty.master, (b) => hvc.write(b), hvc);
  setKernelPhase('running');
  await resize();
}

boot().catch((e) => {
  printk(`Kernel panic - not syncing: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
