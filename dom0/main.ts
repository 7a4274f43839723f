// dom0, the control domain: xenstored, the console daemon, the toolstack service behind xl,
// and (in later issues) the netback/blkback backends. Started by the hypervisor with its
// hypercall channel on fd 3.
import { HypercallClient } from '../drivers/hypercall/channel.js';
import { VIRQ } from '../drivers/hypercall/ops.js';
import { EventChannels } from '../drivers/evtchn/event-channels.js';
import { XsClient } from '../drivers/xenstore/client.js';
import { Xenstored } from './xenstored/xenstored.js';
import { ForeignMemory } from './foreign-memory.js';
import { ConsoleDaemon } from './console/console-daemon.js';
import { Toolstack } from './toolstack/toolstack.js';
import { serveRpc } from './toolstack/rpc.js';
import { xlService } from './toolstack/xl-service.js';
import { toolstackSocket, xenstoredSocket } from '../common/paths.js';
import { logger } from '../common/log.js';
import { rmSync } from 'node:fs';
import { BackendBus } from './backends/backend-bus.js';
import { StubdomHost } from './stubdom-host.js';
import { HvmBuilder } from './toolstack/hvm-builder.js';
import { registerBackends } from './backends/registry.js';

const log = logger('dom0');

async function main(): Promise<void> {
  const hc = new HypercallClient(3);
  const evtchn = new EventChannels(hc);
  const foreign = new ForeignMemory(hc);

  const xenstored = new Xenstored();
  await xenstored.listen(xenstoredSocket());
  const xs = new XsClient(xenstored.connectLocal(0));
  await xs.write('/local/domain/0/name', 'Domain-0');
  await xs.write('/local/domain/0/domid', '0');
  log.info(`xenstored listening on ${xenstoredSocket()}`);

  const consoles = new ConsoleDaemon(evtchn, xs, log);
  // HVM guests' device models live in the stub domain; one that dies takes only its guest.
  const stubdom = new StubdomHost(log, (e) => {
    log.warn(`device model of domain ${e.domid} ended: ${e.message}`);
    void hc.invoke('domctl.shutdown', { domid: e.domid, reason: e.reason === 'reset' ? 'reboot' : 'crash' }).catch(() => {});
  });
  const hvm = new HvmBuilder(hc, evtchn, xs, stubdom, log, consoles);
  const toolstack = new Toolstack(hc, xs, xenstored, evtchn, foreign, consoles, log, hvm);

  // Backends: every device the toolstack writes under /local/domain/0/backend gets its driver.
  const backends = new BackendBus({ xs, evtchn, hc, foreign, log });
  registerBackends(backends);
  await backends.start();

  // VIRQ_DOM_EXC: the hypervisor tells us a domain shut down or crashed.
  const domExc = await evtchn.bindVirq(VIRQ.DOM_EXC);
  let busy: Promise<void> = Promise.resolve();
  evtchn.on(domExc, () => {
    busy = busy.then(() => toolstack.onDomainException()).catch((e) => log.error(`DOM_EXC: ${(e as Error).message}`));
  });

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
    await xenstored.close();
    process.exit(0);
  };
  const server = serveRpc(toolstackSocket(), xlService({ toolstack, consoles, hc, xs, stop: () => void stop(), deviceStats: () => backends.stats(), dmMetrics: async (domid) => ({ pid: stubdom.pid, metrics: await stubdom.metrics(domid) }), dmFault: (domid) => stubdom.injectFault(domid), hvm }));
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
