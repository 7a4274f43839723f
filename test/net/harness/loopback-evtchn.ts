// Interdomain event channels between "domains" that live in this one process, for tests that
// run a frontend and a backend side by side without a hypervisor (which needs root for its
// cgroups). Each port has an eventfd doorbell, watched on the event loop; notify writes the
// peer's doorbell; one read drains any number of rings: exactly the mechanism of
// drivers/evtchn/event-channels.ts, minus the hypercalls that set it up.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { native, nativeBuildDir, type FdWatcher } from '../../../native/index.js';

interface Port {
  dom: number;
  port: number;
  /** The domain allowed to bind this port (alloc_unbound's remote_dom). */
  remoteDom: number;
  recvFd: number;
  peer: Port | null;
  watcher: FdWatcher | null;
  handler: ((port: number) => void) | null;
  holdTimer: NodeJS.Timeout | null;
  /** Doorbell reads that found rings (what a handler was called for). */
  delivered: number;
}

/** The one table of ports every domain's view shares. */
export class EventChannelHub {
  private readonly ports = new Map<string, Port>();
  private readonly nextPort = new Map<number, number>();

  domain(dom: number): DomainEventChannels {
    return new DomainEventChannels(this, dom);
  }

  /** @internal */
  alloc(dom: number, remoteDom: number): Port {
    const port = this.nextPort.get(dom) ?? 1;
    this.nextPort.set(dom, port + 1);
    const p: Port = { dom, port, remoteDom, recvFd: native().eventfdCreate(0), peer: null, watcher: null, handler: null, holdTimer: null, delivered: 0 };
    this.ports.set(`${dom}:${port}`, p);
    return p;
  }

  /** @internal */
  get(dom: number, port: number): Port | undefined {
    return this.ports.get(`${dom}:${port}`);
  }

  /** @internal */
  drop(p: Port): void {
    this.ports.delete(`${p.dom}:${p.port}`);
    if (p.holdTimer) clearTimeout(p.holdTimer);
    p.watcher?.close();
    native().close(p.recvFd);
    if (p.peer) p.peer.peer = null;
    p.peer = null;
  }

  /** Closes every port (end of a test). */
  closeAll(): void {
    for (const p of [...this.ports.values()]) this.drop(p);
  }
}

/** One domain's view: the calls EventChannels offers a kernel or dom0. */
export class DomainEventChannels {
  constructor(
    private readonly hub: EventChannelHub,
    readonly dom: number,
  ) {}

  private get(port: number): Port {
    const p = this.hub.get(this.dom, port);
    if (!p) throw new Error(`event channel port ${port} is not open in domain ${this.dom}`);
    return p;
  }

  async allocUnbound(remoteDom: number): Promise<number> {
    return this.hub.alloc(this.dom, remoteDom).port;
  }

  async bindInterdomain(remoteDom: number, remotePort: number): Promise<number> {
    const remote = this.hub.get(remoteDom, remotePort);
    if (!remote || remote.peer || remote.remoteDom !== this.dom) throw new Error(`EINVAL: domain ${remoteDom} port ${remotePort} is not waiting for domain ${this.dom}`);
    const p = this.hub.alloc(this.dom, remoteDom);
    p.peer = remote;
    remote.peer = p;
    return p.port;
  }

  /** As EventChannels.bindOrReattach: a channel already bound to a port of ours that nobody
   * here listens on (a dom0 that died bound it) is taken up again. */
  async bindOrReattach(remoteDom: number, remotePort: number): Promise<number> {
    const mine = this.hub.get(remoteDom, remotePort)?.peer;
    if (mine && mine.dom === this.dom && !mine.handler) return mine.port;
    return this.bindInterdomain(remoteDom, remotePort);
  }

  on(port: number, handler: (port: number) => void): void {
    const p = this.get(port);
    p.handler = handler;
    if (!p.watcher) {
      p.watcher = native().watchFd(p.recvFd, () => {
        if (native().eventfdRead(p.recvFd) === 0) return;
        p.delivered++;
        p.handler?.(p.port);
      });
      p.watcher.start(native().READABLE);
    }
  }

  notify(port: number): void {
    const peer = this.hub.get(this.dom, port)?.peer;
    if (peer) native().eventfdWrite(peer.recvFd, 1);
  }

  holdOff(port: number, ms: number): void {
    const p = this.hub.get(this.dom, port);
    if (!p?.watcher || p.holdTimer) return;
    p.watcher.stop();
    p.holdTimer = setTimeout(() => {
      p.holdTimer = null;
      if (this.hub.get(this.dom, port) === p) p.watcher?.start(native().READABLE);
    }, ms);
  }

  async close(port: number): Promise<void> {
    const p = this.hub.get(this.dom, port);
    if (p) this.hub.drop(p);
  }

  isConnected(port: number): boolean {
    return !!this.hub.get(this.dom, port)?.peer;
  }

  /** The doorbell `port` rings (its peer's eventfd), for a test that rings from a worker. */
  peerDoorbell(port: number): number {
    const peer = this.get(port).peer;
    if (!peer) throw new Error(`port ${port} is not bound`);
    return peer.recvFd;
  }

  /** The doorbell of `port` itself: writing it is what the peer's notify does. */
  doorbell(port: number): number {
    return this.get(port).recvFd;
  }

  /** How many times the handler of `port` ran. */
  delivered(port: number): number {
    return this.get(port).delivered;
  }
}

/** Rings the doorbell `fd` from another thread for `ms` milliseconds, as fast as it can;
 * resolves with how many rings. */
export function ringStorm(fd: number, ms: number): Promise<number> {
  const w = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const n = require(workerData.addon);
     const end = Date.now() + workerData.ms;
     let count = 0;
     while (Date.now() < end) { for (let i = 0; i < 1000; i++) n.eventfdWrite(workerData.fd, 1); count += 1000; }
     parentPort.postMessage(count);`,
    { eval: true, workerData: { fd, ms, addon: join(nativeBuildDir(), 'xenode.node') } },
  );
  return new Promise((resolve, reject) => {
    w.once('message', (c: number) => resolve(c));
    w.once('error', reject);
  });
}
