// xenstored's live state (dom0/xenstored/live-state.ts): a xenstored that dies and a successor
// started from the state it saved. The guest's ring is the same page throughout, as a guest's
// is when dom0 restarts: the successor carries on with its nodes and watches, serves a
// request the guest wrote while no xenstored ran, and answers a transaction that was open
// with EAGAIN (the guest retries, as after a live update).
import { join } from 'node:path';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport } from '../../drivers/xenstore/ring-transport.js';
import { Xenstored } from '../../dom0/xenstored/index.js';
import { readLiveState } from '../../dom0/xenstored/live-state.js';
import { expectCode, onCleanup, recorder, settle } from './helpers.js';

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-xs-live-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'xenstored.state');
}

/** A guest's ring page and client, whose events go to whichever xenstored serves it now. */
function guestRing() {
  const page = new Uint8Array(new SharedArrayBuffer(4096));
  const g: { server?: { onEvent(): void } } = {};
  const transport = ringTransport(page, () => queueMicrotask(() => g.server?.onEvent()));
  const ring = { page, notify: () => queueMicrotask(() => transport.onEvent()) };
  const client = new XsClient(transport);
  onCleanup(() => client.close());
  return { g, ring, client };
}

function xenstored(statePath: string, restore = false): { xs: Xenstored; dom0: XsClient; logs: string[] } {
  const logs: string[] = [];
  const xs = new Xenstored({ statePath, restore: restore ? readLiveState(statePath) : undefined, log: (l) => logs.push(l) });
  onCleanup(() => xs.close());
  const dom0 = new XsClient(xs.connectLocal(0));
  onCleanup(() => dom0.close());
  return { xs, dom0, logs };
}

describe('xenstored live state', () => {
  it('a successor carries on with the nodes, the guest ring, its watches and a request sent meanwhile', async () => {
    const path = stateDir();
    const first = xenstored(path);
    const guest = guestRing();
    guest.g.server = first.xs.introduceDomain(5, guest.ring);
    await first.dom0.write('/local/domain/5/data', '');
    await first.dom0.setPerms('/local/domain/5/data', ['b5']);
    await guest.client.write('/local/domain/5/data/x', 'one');
    const ev = recorder();
    await guest.client.watch('/local/domain/5/data', 'w', ev.cb);
    const tx = await guest.client.transactionStart();
    await guest.client.write('/local/domain/5/data/t', 'in-tx', tx);
    await first.dom0.write('/local/domain/5/data/y', 'two');
    await settle(10);
    expect(ev.events).toContain('/local/domain/5/data/y w');

    // xenstored dies: nothing of it runs again. The guest writes meanwhile.
    guest.g.server = undefined;
    const during = guest.client.write('/local/domain/5/data/z', 'during');
    await settle(10);

    const second = xenstored(path, true);
    expect(second.xs.savedDomains()).toEqual([5]);
    guest.g.server = second.xs.resumeDomain(5, guest.ring);
    expect(guest.g.server).toBeDefined();
    await during;
    expect(await second.dom0.read('/local/domain/5/data/x')).toBe('one');
    expect(await second.dom0.read('/local/domain/5/data/z')).toBe('during');
    expect(await guest.client.read('/local/domain/5/data/y')).toBe('two');
    // Its watch is still there.
    ev.events.length = 0;
    await second.dom0.write('/local/domain/5/data/after', '3');
    await guest.client.read('/local/domain/5/data/after');
    await settle(10);
    expect(ev.events).toContain('/local/domain/5/data/after w');
    // The transaction open at the death is gone: EAGAIN, and a retry commits.
    await expectCode(guest.client.transactionEnd(tx, true), 'EAGAIN');
    expect(await second.dom0.exists('/local/domain/5/data/t')).toBe(false);
    const tx2 = await guest.client.transactionStart();
    expect(tx2).not.toBe(tx);
    await guest.client.write('/local/domain/5/data/t', 'retried', tx2);
    await guest.client.transactionEnd(tx2, true);
    expect(await second.dom0.read('/local/domain/5/data/t')).toBe('retried');
  });

  it('nothing reaches the guest before it is saved: a reply is in the state file before it is in the ring', async () => {
    const path = stateDir();
    const first = xenstored(path);
    const guest = guestRing();
    guest.g.server = first.xs.introduceDomain(6, guest.ring);
    await first.dom0.write('/local/domain/6', '');
    await first.dom0.setPerms('/local/domain/6', ['b6']);
    await guest.client.write('/local/domain/6/k', 'v');
    // The guest has its answer: the state saved by then has the node, and the ring consumed.
    const saved = readLiveState(path)!;
    expect(saved.nodes.some((n) => n.path === '/local/domain/6/k')).toBe(true);
    const ring = saved.rings.find((r) => r.domid === 6)!;
    expect(ring.reqCons).toBe(new Int32Array(guest.ring.page.buffer, 1024 * 2, 2)[1]); // req_prod
  });

  it('two deaths in a row: what the second xenstored read (a read changes only the ring) is not read again', async () => {
    const path = stateDir();
    const first = xenstored(path);
    const guest = guestRing();
    guest.g.server = first.xs.introduceDomain(9, guest.ring);
    await first.dom0.write('/local/domain/9/k', 'v');
    await first.dom0.setPerms('/local/domain/9', ['b9']);
    guest.g.server = undefined;
    const second = xenstored(path, true);
    guest.g.server = second.xs.resumeDomain(9, guest.ring);
    await expectCode(guest.client.read('/local/domain/9/k'), 'EACCES');
    expect(await guest.client.read('/local/domain/9')).toBe('');
    guest.g.server = undefined;
    const reqProd = new Int32Array(guest.ring.page.buffer, 2048, 2)[1];
    expect(readLiveState(path)!.rings.find((r) => r.domid === 9)!.reqCons).toBe(reqProd);
    const third = xenstored(path, true);
    guest.g.server = third.xs.resumeDomain(9, guest.ring);
    expect(await guest.client.read('/local/domain/9')).toBe('');
  });

  it('a record torn by a kill in the middle of its write is ignored; the ones before it count', async () => {
    const path = stateDir();
    const first = xenstored(path);
    await first.dom0.write('/tool/a', '1');
    await first.dom0.write('/tool/b', '2');
    appendFileSync(`${path}.log`, '{"seq":999999,"generation":999999,"nodes":[["/tool/a",{"value":"OQ==","perms":[{"id":0,"access":"none"}],"children":[]}]],"ri');
    const second = xenstored(path, true);
    expect(await second.dom0.read('/tool/a')).toBe('1');
    expect(await second.dom0.read('/tool/b')).toBe('2');
  });

  it('domains in the state that do not come back are released', async () => {
    const path = stateDir();
    const first = xenstored(path);
    const guest = guestRing();
    guest.g.server = first.xs.introduceDomain(7, guest.ring);
    await first.dom0.write('/local/domain/7/name', 'gone');
    const second = xenstored(path, true);
    expect(second.xs.savedDomains()).toEqual([7]);
    second.xs.releaseDomain(7);
    expect(second.xs.savedDomains()).toEqual([]);
    expect(await second.dom0.exists('/local/domain/7')).toBe(false);
  });
});
