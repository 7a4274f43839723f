// A netfront that plays by no rules, written by hand: its ring pages, grants and raw ring
// entries. What it writes is the same whichever dom0 it faces; how it publishes its keys and
// rings the backend is up to the harness (in process: loopback event channels; as root: the
// real hypervisor's).
import { FrontRing, SharedRing } from '../../../drivers/ring/shared-ring.js';
import { NETIF_RX_SLOT_SIZE, NETIF_TX_SLOT_SIZE, netifRxRequest, netifTxRequest, netifTxResponse, type NetifTxRequest } from '../../../drivers/wire/netif.js';
import { XenbusState } from '../../../drivers/xenstore/xenbus-state.js';
import type { GrantTable } from '../../../drivers/grant/grant-table.js';
import type { PageAllocator } from '../../../guest/kernel/page-allocator.js';
import type { XsClient } from '../../../drivers/xenstore/client.js';
import { until } from './wait.js';

const PAGE = 4096;

/** What a hand-written frontend needs of its domain. */
export interface RawGuest {
  domid: number;
  memory: SharedArrayBuffer;
  grants: GrantTable;
  pages: PageAllocator;
  xs: XsClient;
}

export abstract class RawNetFront {
  tx!: FrontRing;
  rx!: FrontRing;
  /** Our event channel port (unbound until the backend binds it). */
  port = 0;
  readonly mac: string;

  constructor(
    readonly g: RawGuest,
    readonly devid: number,
  ) {
    this.mac = `00:16:3e:7f:${g.domid.toString(16).padStart(2, '0')}:${devid.toString(16).padStart(2, '0')}`;
  }

  get fe(): string {
    return `/local/domain/${this.g.domid}/device/vif/${this.devid}`;
  }

  /** Rings the backend's event channel. */
  abstract notify(): void;

  /** Two ring pages, granted, and our keys as a well-behaved netfront writes them (`keys`
   * override), published with state Connected. `port` must be allocated first. */
  protected async publish(keys: Record<string, string | number>): Promise<void> {
    const txPfn = this.g.pages.alloc();
    const rxPfn = this.g.pages.alloc();
    this.tx = new FrontRing(new SharedRing(this.g.memory, txPfn * PAGE, NETIF_TX_SLOT_SIZE));
    this.rx = new FrontRing(new SharedRing(this.g.memory, rxPfn * PAGE, NETIF_RX_SLOT_SIZE));
    const all: Record<string, string | number> = {
      'tx-ring-ref': this.g.grants.grantAccess(0, txPfn, false),
      'rx-ring-ref': this.g.grants.grantAccess(0, rxPfn, false),
      'event-channel': this.port,
      'request-rx-copy': 1,
      'feature-rx-notify': 1,
      'feature-sg': 1,
      'feature-gso-tcpv4': 1,
      'feature-gso-tcpv6': 1,
      ...keys,
    };
    for (const [k, v] of Object.entries(all)) await this.g.xs.write(`${this.fe}/${k}`, String(v));
    await this.g.xs.write(`${this.fe}/state`, String(XenbusState.Connected));
  }

  /** A page granted to the backend holding a broadcast frame of `len` bytes from our MAC
   * (a local experimental ethertype: nobody on a LAN answers it). */
  framePage(len = 60, readonly = true): { pfn: number; gref: number; bytes: Uint8Array } {
    const pfn = this.g.pages.alloc();
    const p = this.g.pages.page(pfn);
    p.fill(0xff, 0, 6);
    p.set(this.mac.split(':').map((h) => parseInt(h, 16)), 6);
    p[12] = 0x88;
    p[13] = 0xb5;
    for (let i = 14; i < len && i < PAGE; i++) p[i] = i & 0xff;
    return { pfn, gref: this.g.grants.grantAccess(0, pfn, readonly), bytes: p };
  }

  /** Writes request slots as given (a Uint8Array is written raw: extra info), publishes and
   * rings unless `publish` is false. Returns the slots' offsets in the ring page. */
  pushTx(slots: (NetifTxRequest | Uint8Array)[], publish = true): number[] {
    const view = this.tx.ring.view;
    const offs: number[] = [];
    for (const s of slots) {
      const off = this.tx.nextRequestSlot();
      offs.push(off);
      if (s instanceof Uint8Array) this.tx.ring.bytes.set(s, off);
      else netifTxRequest.encode(view, off, s);
    }
    if (publish) {
      this.tx.pushRequests();
      this.notify();
    }
    return offs;
  }

  /** Waits for `n` TX responses and returns them (in ring order). */
  async txResponses(n: number, timeoutMs = 5000): Promise<{ id: number; status: number }[]> {
    await until(`${n} TX responses`, () => {
      const u = this.tx.unconsumedResponses();
      return u < 0 || u >= n;
    }, timeoutMs);
    const out: { id: number; status: number }[] = [];
    for (let i = 0; i < n && this.tx.unconsumedResponses() > 0; i++) {
      const r = netifTxResponse.decode(this.tx.takeResponse(), 0);
      out.push({ id: r.id, status: r.status });
    }
    return out;
  }

  /** The statuses of the next `n` TX responses. */
  async txStatuses(n: number): Promise<number[]> {
    return (await this.txResponses(n)).map((r) => r.status);
  }

  /** Posts `n` RX buffers (or the given grant refs). */
  postRx(n: number, gref?: (i: number) => number): number[] {
    const refs: number[] = [];
    for (let i = 0; i < n; i++) {
      const ref = gref ? gref(i) : this.g.grants.grantAccess(0, this.g.pages.alloc(), false);
      refs.push(ref);
      netifRxRequest.encode(this.rx.ring.view, this.rx.nextRequestSlot(), { id: (this.rx.reqProdPvt - 1) & 0xffff, gref: ref });
    }
    this.rx.pushRequests();
    this.notify();
    return refs;
  }

  /** Sets req_prod of a ring to anything at all, and rings. */
  scribbleReqProd(ring: 'tx' | 'rx', value: number): void {
    const r = ring === 'tx' ? this.tx : this.rx;
    Atomics.store(r.ring.idx, 0, value >>> 0);
    this.notify();
  }
}
