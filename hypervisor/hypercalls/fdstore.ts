// The fd store (dom0 only, hypervisor/fd-store.ts): descriptors dom0 leaves with the
// hypervisor for a domain, so that the next dom0 finds them if this one dies.
//   fdstore.put {domid, name, meta} + fds   keep them (replacing an entry of that name)
//   fdstore.get {domid, name}               -> {meta} + copies of the fds
//   fdstore.remove {domid, name}            close the hypervisor's copies
import { FdStore } from '../fd-store.js';
import { native } from '../../native/index.js';
import { fault, priv, type HypercallContext, type HypercallTable } from './context.js';

export function fdStoreHypercalls(hv: HypercallContext): HypercallTable {
  const guestDomain = (domid: unknown) => {
    const d = hv.domain(domid);
    if (d.domid === 0) throw fault('EINVAL', "dom0's own descriptors die with it: the fd store keeps guests' only");
    if (d.dying) throw fault('ESRCH', `domain ${d.domid} is being destroyed`);
    return d;
  };
  return {
    'fdstore.put': priv((_c, a, fds) => {
      const meta = a.meta ?? '';
      try {
        const d = guestDomain(a.domid);
        const why = FdStore.refusal(a.name, fds, meta);
        if (why) throw fault('EINVAL', why);
        if (!d.fdStore.has(a.name) && d.fdStore.full) throw fault('ENOSPC', `domain ${d.domid}'s fd store is full`);
        d.fdStore.put(a.name, fds, meta);
      } catch (e) {
        for (const fd of fds) native().close(fd);
        throw e;
      }
      return { result: null };
    }),
    'fdstore.get': priv((_c, a) => {
      const e = typeof a.name === 'string' ? guestDomain(a.domid).fdStore.get(a.name) : undefined;
      if (!e) throw fault('ENOENT', `domain ${String(a.domid)} has no fd store entry ${JSON.stringify(String(a.name).slice(0, 40))}`);
      return { result: { meta: e.meta }, fds: e.fds };
    }),
    'fdstore.remove': priv((_c, a) => {
      const d = hv.domain(a.domid);
      return { result: { removed: typeof a.name === 'string' && d.fdStore.remove(a.name) } };
    }),
  };
}
