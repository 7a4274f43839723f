// A domain's event-channel ports as the hypervisor keeps them (Xen's struct evtchn). Each
// port owns an eventfd: writing it is how an event reaches the domain's process.
import { native } from '../native/index.js';
import type { EvtchnStatus } from '../drivers/hypercall/ops.js';

/** Xen's default per-domain limit (max_event_channels) keeps a guest from exhausting fds. */
export const MAX_PORTS_PER_DOMAIN = 1023;

export interface Port {
  port: number;
  state: 'unbound' | 'interdomain' | 'virq' | 'ipi';
  remoteDom: number;
  remotePort: number;
  virq: number;
  vcpu: number;
  /** The port's doorbell. */
  fd: number;
}

export class EventChannelTable {
  private readonly ports = new Map<number, Port>();

  constructor(readonly domid: number) {}

  allocate(init: Omit<Port, 'port' | 'fd'>): Port {
    let port = 1; // port 0 is never valid in Xen
    while (this.ports.has(port)) port++;
    if (port > MAX_PORTS_PER_DOMAIN) {
      const e = new Error(`domain ${this.domid} has no free event channel (limit ${MAX_PORTS_PER_DOMAIN})`);
      (e as any).errno = 'ENOSPC';
      throw e;
    }
    const p: Port = { ...init, port, fd: native().eventfdCreate(0) };
    this.ports.set(port, p);
    return p;
  }

  get(port: number): Port | undefined {
    return Number.isInteger(port) ? this.ports.get(port) : undefined;
  }

  remove(port: number): Port | undefined {
    const p = this.ports.get(port);
    if (!p) return undefined;
    this.ports.delete(port);
    native().close(p.fd);
    return p;
  }

  all(): Port[] {
    return [...this.ports.values()];
  }

  findVirq(virq: number): Port | undefined {
    for (const p of this.ports.values()) if (p.state === 'virq' && p.virq === virq) return p;
    return undefined;
  }

  /** Raise an event on a port of this domain. */
  raise(port: number): void {
    const p = this.ports.get(port);
    if (p) native().eventfdWrite(p.fd, 1);
  }

  status(port: number): EvtchnStatus {
    const p = this.ports.get(port);
    if (!p) return { port, state: 'closed', vcpu: 0 };
    return { port, state: p.state, remoteDom: p.remoteDom, remotePort: p.remotePort, virq: p.virq, vcpu: p.vcpu };
  }
}
