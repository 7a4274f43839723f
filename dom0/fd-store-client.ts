// dom0's side of the hypervisor's fd store (hypervisor/fd-store.ts): descriptors left with the
// hypervisor for a domain so that the next dom0 finds them if this one dies (an HVM guest's
// stub domain channel, its log readers, its uid claim, the guest's serial pty).
import { native } from '../native/index.js';
import type { HypercallClient } from '../drivers/hypercall/channel.js';

export interface FdStoreClient {
  /** Leave copies of `fds` (the caller keeps its own) with `meta` under `name`. */
  put(domid: number, name: string, fds: number[], meta: object): Promise<void>;
  /** Copies of what is stored (the caller's to close), or null when nothing is. */
  get(domid: number, name: string): Promise<{ meta: unknown; fds: number[] } | null>;
  remove(domid: number, name: string): Promise<void>;
}

export function hypervisorFdStore(hc: HypercallClient): FdStoreClient {
  return {
    async put(domid, name, fds, meta) {
      const copies = fds.map((fd) => native().dup(fd));
      try {
        await hc.call('fdstore.put', { domid, name, meta: JSON.stringify(meta) }, copies);
      } finally {
        for (const fd of copies) native().close(fd);
      }
    },
    async get(domid, name) {
      try {
        const { result, fds } = await hc.call<{ meta: string }>('fdstore.get', { domid, name });
        let meta: unknown = null;
        try {
          meta = JSON.parse(result.meta);
        } catch {
          /* the caller checks what it needs */
        }
        return { meta, fds };
      } catch (e) {
        if ((e as { errno?: string }).errno === 'ENOENT') return null;
        throw e;
      }
    },
    async remove(domid, name) {
      await hc.invoke('fdstore.remove', { domid, name }).catch((e: { errno?: string }) => {
        if (e.errno !== 'ESRCH') throw e;
      });
    },
  };
}
