// event_channel_op: ports between domains, VIRQs, and the doorbells (eventfds) behind them.
import { native } from '../../native/index.js';
import { VIRQ } from '../../drivers/hypercall/ops.js';
import { MAX_DOMID } from '../domain-limits.js';
import { guest, fault, type HypercallContext, type HypercallTable } from './context.js';

export function evtchnHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'evtchn.alloc_unbound': guest((c, a) => {
      const d = hv.target(c, a.dom);
      const remote = hv.int(a.remote_dom, 'remote_dom', 0, MAX_DOMID);
      const p = d.evtchn.allocate({ state: 'unbound', remoteDom: remote, remotePort: 0, virq: 0, vcpu: 0 });
      // The allocating domain gets the doorbell only when allocating for itself.
      return { result: { port: p.port }, fds: d === c ? [p.fd] : [] };
    }),
    'evtchn.bind_interdomain': guest((c, a) => {
      const remote = hv.domain(a.remote_dom);
      const rport = hv.int(a.remote_port, 'remote_port', 1, 4095);
      const rp = remote.evtchn.get(rport);
      if (!rp || rp.state !== 'unbound' || rp.remoteDom !== c.domid) {
        throw fault('EINVAL', `port ${rport} of domain ${remote.domid} is not waiting for domain ${c.domid}`);
      }
      const lp = c.evtchn.allocate({ state: 'interdomain', remoteDom: remote.domid, remotePort: rport, virq: 0, vcpu: 0 });
      rp.state = 'interdomain';
      rp.remotePort = lp.port;
      try {
        remote.channel?.send({ upcall: 'evtchn.bound', args: { port: rport, remoteDom: c.domid, remotePort: lp.port } }, [lp.fd]);
      } catch {
        /* the peer learns the binding when it opens the port */
      }
      // Xen sets the new local port pending so the binder looks at the ring at once.
      native().eventfdWrite(lp.fd, 1);
      return { result: { local_port: lp.port }, fds: [lp.fd, rp.fd] };
    }),
    'evtchn.bind_virq': guest((c, a) => {
      const virq = hv.int(a.virq, 'virq', 0, 23);
      if (virq === VIRQ.DOM_EXC && c.domid !== 0) throw fault('EPERM', 'VIRQ_DOM_EXC is global: dom0 only');
      if (c.evtchn.findVirq(virq)) throw fault('EEXIST', `VIRQ ${virq} is already bound`);
      const p = c.evtchn.allocate({ state: 'virq', remoteDom: 0, remotePort: 0, virq, vcpu: 0 });
      return { result: { port: p.port }, fds: [p.fd] };
    }),
    'evtchn.open': guest((c, a) => {
      const p = c.evtchn.get(a.port);
      if (!p) throw fault('EINVAL', `port ${String(a.port)} is not allocated in domain ${c.domid}`);
      const fds = [p.fd];
      if (p.state === 'interdomain') {
        const rp = hv.domains.get(p.remoteDom)?.evtchn.get(p.remotePort);
        if (rp) fds.push(rp.fd);
      }
      return { result: { state: p.state }, fds };
    }),
    'evtchn.send': guest((c, a) => {
      const p = c.evtchn.get(a.port);
      if (!p) throw fault('EINVAL', `port ${String(a.port)} is not allocated`);
      if (p.state === 'interdomain') hv.domains.get(p.remoteDom)?.evtchn.raise(p.remotePort);
      return { result: null };
    }),
    'evtchn.close': guest((c, a) => {
      const d = hv.target(c, a.dom);
      if (!d.evtchn.get(a.port)) throw fault('EINVAL', `port ${String(a.port)} is not allocated`);
      hv.closePort(d, a.port);
      return { result: null };
    }),
    'evtchn.status': guest((c, a) => ({ result: hv.target(c, a.dom).evtchn.status(a.port) })),
  };
}
