// sysctl (dom0 only): the host, the hypervisor's console ring, every domain at once.
import { priv, type HypercallContext, type HypercallTable } from './context.js';

export function sysctlHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'sysctl.physinfo': priv(() => ({ result: hv.hostInfo() })),
    'sysctl.readconsole': priv((_c, a) => ({ result: { text: hv.log.read(a.clear === true) } })),
    'sysctl.getdomaininfolist': priv(() => ({ result: [...hv.domains.values()].map((d) => hv.info(d)) })),
  };
}
