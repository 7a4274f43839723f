// A guest floods the watchers of its own nodes: one transaction of 700 nodes with ~2,000-byte
// paths under the frontend `state` node dom0's backend watches. xenstored must not drop dom0
// for it (that would cut every backend off xenstore), dom0 gets at most one event waiting per
// watch (Linux's xenbus rule since XSA-349), and no other domain's connection is flooded or
// dropped either. (A peer that stops reading events dom0 causes is still dropped: ring.test.ts.)
import { describe, expect, it } from 'vitest';
import { XENSTORE_ERROR_NONE, XS_RING_OFF } from '../../drivers/xenstore/xs-ring.js';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport } from '../../drivers/xenstore/ring-transport.js';
import { XenbusDevice } from '../../drivers/xenbus/xenbus-device.js';
import { floodTransaction } from '../helpers/xenstore-flood.js';
import { onCleanup, recorder, server, settle } from './helpers.js';

const GUEST = 5;
const FE = `/local/domain/${GUEST}/device/vif/0`;

async function frontendDir(dom0: XsClient): Promise<void> {
  await dom0.mkdir(`/local/domain/${GUEST}`);
  await dom0.setPerms(`/local/domain/${GUEST}`, [`n${GUEST}`]);
  await dom0.write(`${FE}/state`, '1');
  await dom0.setPerms(FE, [`n${GUEST}`, 'r0']);
  await dom0.setPerms(`${FE}/state`, [`n${GUEST}`, 'r0']);
}

const u32 = (page: Uint8Array, off: number) => new DataView(page.buffer, page.byteOffset).getUint32(off, true);

describe("a guest's flood of the nodes dom0 watches", () => {
  it('leaves dom0 connected, with at most one event per watch waiting', async () => {
    const { xs, dom0, as, logs } = server();
    await frontendDir(dom0);
    const r = recorder();
    await dom0.watch(`${FE}/state`, 'backend', r.cb);
    await settle(5);
    r.events.length = 0;
    const bytes = await floodTransaction(as(GUEST), GUEST, `${FE}/state`);
    expect(bytes).toBeGreaterThan(1 << 20); // more than the whole output bound, in one commit
    await settle(20);
    expect(logs.filter((l) => l.includes('dropping connection'))).toEqual([]);
    // 700 changes, one event: the watcher re-reads what it watches anyway.
    expect(r.events.length).toBe(1);
    expect(await dom0.read(`${FE}/state`)).toBe('1');
    // Events after the merged one still arrive.
    await as(GUEST).write(`${FE}/state`, '4');
    await settle(5);
    expect(r.events).toHaveLength(2);
    expect(r.events[1]).toBe(`${FE}/state backend`);
    void xs;
  });

  it('a backend reading the frontend state reads it once or twice, not 700 times', async () => {
    const { dom0, as } = server();
    await frontendDir(dom0);
    const seen: number[] = [];
    const dev = new XenbusDevice(dom0, `/local/domain/0/backend/vif/${GUEST}/0`, FE);
    onCleanup(() => dev.close());
    await dev.watchOtherEnd((s) => seen.push(s));
    await settle(5);
    const guest = as(GUEST);
    // Also as separate writes, each its own event: one read in flight, one more queued.
    for (let i = 0; i < 200; i++) void guest.write(`${FE}/state/n${i}`, '');
    await floodTransaction(guest, GUEST, `${FE}/state`, 600);
    await guest.write(`${FE}/state`, '3');
    await settle(50);
    expect(seen.length).toBeLessThanOrEqual(6);
    expect(seen.at(-1)).toBe(3);
  });

  it("does not flood or drop another domain that watches the guest's nodes", async () => {
    const { xs, dom0, as, logs } = server({ maxOutputBytes: 64 * 1024 });
    await frontendDir(dom0);
    // Domain 6 may read the guest's state node (the guest granted it), and watches it over
    // its ring - but has stopped reading that ring.
    await as(GUEST).setPerms(`${FE}/state`, [`n${GUEST}`, 'r6']);
    await dom0.mkdir('/local/domain/6');
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    let end: { onEvent(): void } | undefined;
    let drain = true;
    const t = ringTransport(page, () => queueMicrotask(() => end?.onEvent()));
    end = xs.introduceDomain(6, { page, notify: () => drain && queueMicrotask(() => t.onEvent()) });
    const other = new XsClient(t);
    onCleanup(() => other.close());
    await other.watch(`${FE}/state`, 'peek', () => {});
    drain = false;
    await floodTransaction(as(GUEST), GUEST, `${FE}/state`);
    await floodTransaction(as(GUEST), GUEST, `${FE}/state`, 60); // again, while the first waits
    await settle(10);
    expect(logs.filter((l) => l.includes('dropping connection'))).toEqual([]);
    expect(u32(page, XS_RING_OFF.error)).toBe(XENSTORE_ERROR_NONE);
    // It reads again and carries on.
    drain = true;
    t.onEvent();
    expect(await other.read(`${FE}/state`)).toBe('1');
  });
});
