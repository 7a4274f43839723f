// dom0's privileged mappings of a guest's memory and grant table (Xen's privcmd /
// xenforeignmemory). xenstored, the console daemon and the backends use these views; each
// domain is mapped once and unmapped when it is destroyed.
import { native } from '../native/index.js';
import type { HypercallClient } from '../drivers/hypercall/channel.js';
import { collectSoon } from '../common/collect-soon.js';

export const PAGE = 4096;

export interface ForeignDomain {
  domid: number;
  /** The whole pseudo-physical memory of the guest (sparse, shared). */
  memory: SharedArrayBuffer;
  grantTable: SharedArrayBuffer;
  page(pfn: number): Uint8Array;
}

export class ForeignMemory {
  private readonly mapped = new Map<number, ForeignDomain>();

  constructor(private readonly hc: HypercallClient) {}

  async map(domid: number): Promise<ForeignDomain> {
    const have = this.mapped.get(domid);
    if (have) return have;
    const n = native();
    const mem = await this.hc.call<{ bytes: number }>('domctl.map_foreign_memory', { domid });
    const memFd = mem.fds[0]!;
    const memory = n.mapShared(memFd, mem.result.bytes);
    n.close(memFd);
    const gt = await this.hc.call<{ frames: number }>('domctl.map_grant_table', { domid });
    const gtFd = gt.fds[0]!;
    const grantTable = n.mapShared(gtFd, gt.result.frames * PAGE);
    n.close(gtFd);
    const nrPages = mem.result.bytes / PAGE;
    const fd: ForeignDomain = {
      domid,
      memory,
      grantTable,
      page(pfn: number) {
        if (!Number.isInteger(pfn) || pfn < 0 || pfn >= nrPages) {
          throw new RangeError(`frame ${pfn} is outside domain ${domid}'s ${nrPages} pages`);
        }
        return new Uint8Array(memory, pfn * PAGE, PAGE);
      },
    };
    this.mapped.set(domid, fd);
    return fd;
  }

  get(domid: number): ForeignDomain | undefined {
    return this.mapped.get(domid);
  }

  /** Forget the mapping; the memory is unmapped when the last view is collected, which
   * collectSoon makes prompt once the teardown has dropped its views. */
  unmap(domid: number): void {
    this.mapped.delete(domid);
    collectSoon();
  }
}
