// Event channels as a domain sees them (Xen's evtchn_op plus the upcall dispatch a PV kernel
// does). The hypervisor owns the port table; each port has an eventfd that is its "pending"
// doorbell. Binding an interdomain channel hands each end the other end's doorbell, so
// EVTCHNOP_send is a single eventfd write with no trip through the hypervisor (the capability
// model is in docs/hypercalls.md). Delivery follows Xen: set the port's pending bit in
// shared_info; if it was already set, stop; if the port is masked, leave it pending until
// unmask; otherwise clear it and run the handler.
import { native, type FdWatcher } from '../../native/index.js';
import type { HypercallClient } from '../hypercall/channel.js';
import { SharedInfo } from '../hypercall/shared-info.js';
import type { EvtchnStatus } from '../hypercall/ops.js';

export type EventHandler = (port: number) => void;

interface LocalPort {
  port: number;
  recvFd: number;
  /** The remote end's doorbell, present while the channel is interdomain-bound. */
  sendFd: number;
  watcher: FdWatcher | null;
  handler: EventHandler | null;
  /** holdOff() timer while we are deliberately not listening. */
  holdTimer: NodeJS.Timeout | null;
  /** Events seen (for per-device notification counters). */
  received: number;
  sent: number;
  /** A notification sent before the peer's doorbell reached us: rung when it arrives. */
  owed: boolean;
}

export class EventChannels {
  private readonly ports = new Map<number, LocalPort>();
  private readonly shared: SharedInfo;

  constructor(
    private readonly hc: HypercallClient,
    sharedInfoPage?: Uint8Array,
  ) {
    // dom0 has no shared_info in guest memory: it keeps its bitmaps in a private page.
    this.shared = new SharedInfo(sharedInfoPage ?? new Uint8Array(new SharedArrayBuffer(4096)));
    hc.onUpcall('evtchn.bound', (args: { port: number }, fds) => this.onBound(args.port, fds));
    hc.onUpcall('evtchn.unbound', (args: { port: number }, fds) => {
      for (const fd of fds) native().close(fd);
      const p = this.ports.get(args.port);
      if (p && p.sendFd >= 0) {
        native().close(p.sendFd);
        p.sendFd = -1;
      }
    });
  }

  /** EVTCHNOP_alloc_unbound for this domain: a port that `remoteDom` may bind to. */
  async allocUnbound(remoteDom: number): Promise<number> {
    const { result, fds } = await this.hc.call<{ port: number }>('evtchn.alloc_unbound', { dom: 'self', remote_dom: remoteDom });
    this.adopt(result.port, fds);
    return result.port;
  }

  /** EVTCHNOP_bind_interdomain: returns the local port, already connected. */
  async bindInterdomain(remoteDom: number, remotePort: number): Promise<number> {
    const { result, fds } = await this.hc.call<{ local_port: number }>('evtchn.bind_interdomain', {
      remote_dom: remoteDom,
      remote_port: remotePort,
    });
    this.adopt(result.local_port, fds);
    return result.local_port;
  }

  /**
   * bindInterdomain, or, when the remote port is already bound to a port of ours that this
   * process has not opened (a predecessor of ours bound it and died: dom0 restarted), open
   * that port again. A port this process has open is never handed out twice.
   */
  async bindOrReattach(remoteDom: number, remotePort: number, selfDomid = 0): Promise<number> {
    const st = await this.hc.invoke<EvtchnStatus>('evtchn.status', { dom: remoteDom, port: remotePort });
    if (st.state === 'interdomain' && st.remoteDom === selfDomid && st.remotePort !== undefined && !this.ports.has(st.remotePort)) {
      await this.open(st.remotePort);
      return st.remotePort;
    }
    return this.bindInterdomain(remoteDom, remotePort);
  }

  /** EVTCHNOP_bind_virq. */
  async bindVirq(virq: number, vcpu = 0): Promise<number> {
    const { result, fds } = await this.hc.call<{ port: number }>('evtchn.bind_virq', { virq, vcpu });
    this.adopt(result.port, fds);
    return result.port;
  }

  /** Take up a port the domain builder allocated for us (xenstore, console). */
  async open(port: number): Promise<void> {
    const { fds } = await this.hc.call('evtchn.open', { port });
    this.adopt(port, fds);
  }

  /** Install the handler and start listening. */
  on(port: number, handler: EventHandler): void {
    const p = this.get(port);
    p.handler = handler;
    if (!p.watcher) {
      p.watcher = native().watchFd(p.recvFd, () => this.onDoorbell(p));
      p.watcher.start(native().READABLE);
    }
  }

  /** EVTCHNOP_send. Silently dropped when the remote end is gone, as Xen does for unbound ports. */
  notify(port: number): void {
    const p = this.ports.get(port);
    if (!p) return;
    if (p.sendFd < 0) {
      // The peer may have bound the port already: the hypervisor's "bound" message (with its
      // doorbell) and the xenstore state that told our driver the backend is connected come
      // on different channels, in either order. Dropping the notification here left the
      // frontend's first request unseen by the backend, for good (a boot stuck on its
      // partition-table read, now and then). So it is owed, and rung when the doorbell comes;
      // at worst a peer gets one spurious event, which drivers tolerate.
      p.owed = true;
      return;
    }
    p.sent++;
    native().eventfdWrite(p.sendFd, 1);
  }

  /** Stop listening on `port` for `ms` (Xen's lateeoi answer to event storms, XSA-332): a
   * peer ringing meanwhile costs nothing; what it rang is delivered once when we listen
   * again, since the eventfd keeps counting. */
  holdOff(port: number, ms: number): void {
    const p = this.ports.get(port);
    if (!p?.watcher || p.holdTimer) return;
    p.watcher.stop();
    p.holdTimer = setTimeout(() => {
      p.holdTimer = null;
      if (this.ports.get(port) === p) p.watcher?.start(native().READABLE);
    }, ms);
  }

  /** A duplicate of the remote end's doorbell, for a helper that must ring it from elsewhere
   * (dom0 hands an HVM guest's interrupt doorbell to its device model this way). */
  dupSendFd(port: number): number {
    const p = this.get(port);
    if (p.sendFd < 0) throw new Error(`event channel port ${port} is not connected`);
    return native().dup(p.sendFd);
  }

  mask(port: number): void {
    this.shared.setMask(port, true);
  }

  /** EVTCHNOP_unmask: an event that arrived while masked is delivered now. */
  unmask(port: number): void {
    this.shared.setMask(port, false);
    const p = this.ports.get(port);
    if (p && this.shared.testAndClearPending(port)) this.deliver(p);
  }

  isConnected(port: number): boolean {
    const p = this.ports.get(port);
    return !!p && p.sendFd >= 0;
  }

  /** A port as a driver whose peer went quiet needs to see it: whether we can ring the peer
   * (its doorbell arrived), what went each way, and the shared_info bits that gate delivery. */
  describe(port: number): string {
    const p = this.ports.get(port);
    if (!p) return `event channel ${port}: not open`;
    const bits = [this.shared.isPending(port) && 'pending', this.shared.isMasked(port) && 'masked', p.holdTimer && 'held off'].filter(Boolean);
    return (
      `event channel ${port}: ${p.sendFd >= 0 ? "the peer's doorbell known" : `no doorbell for the peer yet${p.owed ? ' (a notification owed)' : ''}`}, ` +
      `${p.sent} sent, ${p.received} received${bits.length ? `, ${bits.join(', ')}` : ''}`
    );
  }

  counters(port: number): { received: number; sent: number } {
    const p = this.get(port);
    return { received: p.received, sent: p.sent };
  }

  /** EVTCHNOP_close. */
  async close(port: number): Promise<void> {
    const p = this.ports.get(port);
    if (!p) return;
    this.forget(p);
    await this.hc.invoke('evtchn.close', { port });
  }

  /** Drop every port locally (process teardown); the hypervisor cleans up its side. */
  closeAll(): void {
    for (const p of [...this.ports.values()]) this.forget(p);
  }

  private forget(p: LocalPort): void {
    this.ports.delete(p.port);
    if (p.holdTimer) clearTimeout(p.holdTimer);
    p.watcher?.close();
    native().close(p.recvFd);
    if (p.sendFd >= 0) native().close(p.sendFd);
    this.shared.setMask(p.port, false);
    this.shared.testAndClearPending(p.port);
  }

  private get(port: number): LocalPort {
    const p = this.ports.get(port);
    if (!p) throw new Error(`event channel port ${port} is not open in this domain`);
    return p;
  }

  private adopt(port: number, fds: number[]): void {
    const [recvFd, sendFd = -1] = fds;
    if (recvFd === undefined) throw new Error(`hypervisor returned no doorbell for port ${port}`);
    const old = this.ports.get(port);
    if (old) this.forget(old);
    this.ports.set(port, { port, recvFd, sendFd, watcher: null, handler: null, holdTimer: null, received: 0, sent: 0, owed: false });
  }

  private onBound(port: number, fds: number[]): void {
    const p = this.ports.get(port);
    const [sendFd] = fds;
    if (!p || sendFd === undefined) {
      for (const fd of fds) native().close(fd);
      return;
    }
    if (p.sendFd >= 0) native().close(p.sendFd);
    p.sendFd = sendFd;
    if (p.owed) {
      p.owed = false;
      this.notify(port);
    }
  }

  private onDoorbell(p: LocalPort): void {
    // One read drains any number of sends: an event storm from a peer costs one wake-up.
    if (native().eventfdRead(p.recvFd) === 0) return;
    if (!this.shared.setPending(p.port)) return;
    if (this.shared.isMasked(p.port)) return;
    this.shared.testAndClearPending(p.port);
    this.deliver(p);
  }

  private deliver(p: LocalPort): void {
    p.received++;
    p.handler?.(p.port);
  }
}
