// dom0, the control domain: xenstored, the console daemon, the toolstack service behind xl,
// and (in later issues) the netback/blkback backends. Started by the hypervisor with its
// hypercall channel on fd 3.
import { HypercallClient } from '../drivers/hypercall/channel.js';
import { VIRQ } from '../drivers/hypercall/ops.js';
import { EventChannels } from '../drivers/evtchn/event-channels.js';
import { XsClient } from '../drivers/xenstore/client.js';
import { Xenstored } from './xenstored/xenstored.js';
import { readLiveState, type LiveState } from './xenstored/live-state.js';
import { ForeignMemory } from './foreign-memory.js';
import { ConsoleDaemon } from './console/console-daemon.js';
import { Toolstack } from './toolstack/toolstack.js';
import { serveRpc } from './toolstack/rpc.js';
import { xlService } from './toolstack/xl-service.js';
import { toolstackSocket, xenstoredSocket, xenstoredStateFile } from '../common/paths.js';
import { logger } from '../common/log.js';
import { rmSync } from 'node:fs';
import { BackendBus } from './backends/backend-bus.js';
import { StubdomHost } from './stubdom-host.js';
import { hypervisorFdStore } from './fd-store-client.js';
import { HvmBuilder } from './toolstack/hvm-builder.js';
import { registerBackends } from './backends/registry.js';

const log = logger('dom0');

async function main(): Promise<void> {
  const hc = new HypercallClient(3);
  const evtchn = new EventChannels(hc);
  const foreign = new ForeignMemory(hc);

  // A dom0 started after its predecessor died carries on from xenstored's live state and
  // takes the guests over (docs/architecture.md, "dom0 restarts"); the first starts afresh.
  const generation = Number(process.env.XENODE_DOM0_GENERATION ?? 0);
  const restarting = generation > 0;
  let restore: LiveState | undefined;
  try {
    restore = restarting ? readLiveState(xenstoredStateFile()) : undefined;
  } catch (e) {
    log.error(`xenstored's live state is unreadable, starting without it: ${(e as Error).message}`);
  }
  if (restarting) log.warn(`dom0 restart ${generation}: ${restore ? 'xenstored carries on from its live state' : 'no xenstored live state found'}`);
  const xenstored = new Xenstored({ statePath: xenstoredStateFile(), restore });
  await xenstored.listen(xenstoredSocket());
  const xs = new XsClient(xenstored.connectLocal(0));
  await xs.write('/local/domain/0/name', 'Domain-0');
  await xs.write('/local/domain/0/domid', '0');
  log.info(`xenstored listening on ${xenstoredSocket()}`);

  const consoles = new ConsoleDaemon(evtchn, xs, log);
  // HVM guests' device models live in the stub domain; one that dies takes only its guest.
  // A stub domain outlives dom0 (its fds are left with the hypervisor) and the next takes it over.
  const stubdom = new StubdomHost(log, (e) => {
    log.warn(`device model of domain ${e.domid} ended: ${e.message}`);
    // In the hypervisor's log too (`xl dmesg`), as the reason the domain crashed.
    if (e.reason === 'crash') void hc.invoke('console.write', { text: `device model of domain ${e.domid} ended: ${e.message}; the domain crashed` }).catch(() => {});
    void hc.invoke('domctl.shutdown', { domid: e.domid, reason: e.reason === 'reset' ? 'reboot' : 'crash' }).catch(() => {});
  }, hypervisorFdStore(hc), generation);
  const hvm = new HvmBuilder(hc, evtchn, xs, stubdom, log, consoles);
  const toolstack = new Toolstack(hc, xs, xenstored, evtchn, foreign, consoles, log, hvm);

  // VIRQ_DOM_EXC: the hypervisor tells us a domain shut down or crashed.
  const domExc = await evtchn.bindVirq(VIRQ.DOM_EXC);
  let busy: Promise<void> = Promise.resolve();
  const onDomExc = () => {
    busy = busy.then(() => toolstack.onDomainException()).catch((e) => log.error(`DOM_EXC: ${(e as Error).message}`));
  };
  evtchn.on(domExc, onDomExc);
  if (restarting) {
    const t0 = Date.now();
    const live = await toolstack.adopt();
    // Domains the live state knows that are gone now (destroyed while no dom0 ran).
    for (const domid of xenstored.savedDomains()) if (!live.has(domid)) await toolstack.forgetGone(domid);
    // Some may have stopped while no dom0 was there to hear it.
    onDomExc();
    log.info(`dom0 restart ${generation}: guests taken over in ${Date.now() - t0} ms`);
  }
  // Stub domains nobody took over (their guest is gone, or could not be adopted) go.
  stubdom.reclaimLeftovers();

  // Backends: every device the toolstack writes under /local/domain/0/backend gets its driver
  // (after a restart, the devices already there reconnect to their running frontends).
  const backends = new BackendBus({ xs, evtchn, hc, foreign, log });
  registerBackends(backends);
  await backends.start();

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping: destroying all guests');
    await busy;
    await toolstack.destroyAll();
    await backends.removeAll();
    stubdom.shutdown();
    server.close();
    rmSync(toolstackSocket(), { force: true });
    await xenstored.close(true);
    process.exit(0);
  };
  const server = serveRpc(toolstackSocket(), xlService({ toolstack, consoles, hc, xs, stop: () => void stop(), deviceStats: () => backends.stats(), dmMetrics: async (domid) => ({ pid: stubdom.pidOf(domid), metrics: await stubdom.metrics(domid) }), dmFault: (domid, f) => stubdom.injectFault(domid, f), hvm }));
  hc.onClose(() => {
    log.error('hypervisor went away');
    process.exit(1);
  });
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  log.info(`toolstack listening on ${toolstackSocket()}`);
}

main().catch((e) => {
  log.error(`failed to start: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
