// Transactions (overlay, EAGAIN on conflict, events only at commit) and watches (Xen's
// matching rule, relative paths, special @introduceDomain/@releaseDomain, permissions).
import { describe, expect, it } from 'vitest';
import { expectCode, recorder, server, settle } from './helpers.js';

describe('transactions', () => {
  it('writes stay private until commit; abort discards them', async () => {
    const { dom0 } = server();
    const t = await dom0.transactionStart();
    await dom0.write('/t/x', 'in tx', t);
    expect(await dom0.read('/t/x', t)).toBe('in tx');
    await expectCode(dom0.read('/t/x'), 'ENOENT');
    await dom0.transactionEnd(t, true);
    expect(await dom0.read('/t/x')).toBe('in tx');

    const t2 = await dom0.transactionStart();
    await dom0.rm('/t/x', t2);
    await dom0.transactionEnd(t2, false);
    expect(await dom0.read('/t/x')).toBe('in tx');
  });

  it('commit answers EAGAIN when a node the transaction read changed meanwhile', async () => {
    const { dom0 } = server();
    await dom0.write('/t/a', '1');
    const t = await dom0.transactionStart();
    expect(await dom0.read('/t/a', t)).toBe('1');
    await dom0.write('/t/a', '2'); // outside the transaction
    expect(await dom0.read('/t/a', t)).toBe('1'); // the transaction keeps its view
    await dom0.write('/t/b', 'from tx', t);
    await expectCode(dom0.transactionEnd(t, true), 'EAGAIN');
    await expectCode(dom0.read('/t/b'), 'ENOENT');
    await expectCode(dom0.transactionEnd(t, true), 'ENOENT'); // it ended anyway
  });

  it('commit answers EAGAIN when a node it wrote changed or vanished meanwhile', async () => {
    const { dom0 } = server();
    await dom0.write('/t/c', '1');
    const t = await dom0.transactionStart();
    await dom0.write('/t/c', 'tx', t);
    await dom0.rm('/t/c');
    await expectCode(dom0.transactionEnd(t, true), 'EAGAIN');
  });

  it('unrelated changes do not conflict', async () => {
    const { dom0 } = server();
    await dom0.write('/t/a', '1');
    await dom0.write('/u/z', '1');
    const t = await dom0.transactionStart();
    await dom0.read('/t/a', t);
    await dom0.write('/t/b', '2', t);
    await dom0.write('/u/z', '2');
    await dom0.transactionEnd(t, true);
    expect(await dom0.read('/t/b')).toBe('2');
  });

  it('transaction() reruns the body after EAGAIN', async () => {
    const { dom0 } = server();
    await dom0.write('/ctr', '0');
    let runs = 0;
    await dom0.transaction(async (t) => {
      runs++;
      const v = Number(await t.read('/ctr'));
      if (runs === 1) await dom0.write('/ctr', '10'); // someone else bumps it mid-way
      await t.write('/ctr', String(v + 1));
    });
    expect(runs).toBe(2);
    expect(await dom0.read('/ctr')).toBe('11');
  });

  it('rejects unknown ids (ENOENT), nesting (EBUSY) and bad END arguments (EINVAL)', async () => {
    const { dom0 } = server();
    await expectCode(dom0.read('/', 999), 'ENOENT');
    const t = await dom0.transactionStart();
    await expectCode(dom0.request(6 /* TRANSACTION_START */, [''], t), 'EBUSY');
    await expectCode(dom0.request(7 /* TRANSACTION_END */, ['X'], t), 'EINVAL');
    await expectCode(dom0.transactionEnd(0, true), 'ENOENT');
    await dom0.transactionEnd(t, false);
  });

  it('limits a domU to 10 open transactions (ENOSPC); dom0 is exempt', async () => {
    const { dom0, as } = server();
    const d5 = as(5);
    for (let i = 0; i < 10; i++) await d5.transactionStart();
    await expectCode(d5.transactionStart(), 'ENOSPC');
    for (let i = 0; i < 12; i++) await dom0.transactionStart();
  });
});

describe('watches', () => {
  it('fire once at registration, then for the path and everything below it', async () => {
    const { dom0 } = server();
    const r = recorder();
    await dom0.watch('/w/a', 'tok', r.cb);
    expect(r.events).toEqual(['/w/a tok']);
    await dom0.write('/w/a/b/c', '1'); // descendant: fires with the changed path
    await dom0.write('/w/ab', '1'); // sibling with a common prefix: no
    await dom0.write('/w', 'x'); // parent: no
    await dom0.write('/w/a', 'y');
    await settle();
    expect(r.events).toEqual(['/w/a tok', '/w/a/b/c tok', '/w/a tok']);
  });

  it('a watch on / sees every change; unwatch stops events', async () => {
    const { dom0 } = server();
    const r = recorder();
    await dom0.watch('/', 'all', r.cb);
    await dom0.write('/x/y', '1');
    await dom0.setPerms('/x', ['n0', 'r1']);
    await dom0.unwatch('/', 'all');
    await dom0.write('/x/z', '1');
    await settle();
    expect(r.events).toEqual(['/ all', '/x/y all', '/x all']);
    await expectCode(dom0.unwatch('/', 'all'), 'ENOENT');
  });

  it('duplicate (path, token) is EEXIST', async () => {
    const { dom0 } = server();
    await dom0.watch('/d', 't', () => {});
    await expectCode(dom0.watch('/d', 't', () => {}), 'EEXIST');
    await dom0.watch('/d', 't2', () => {});
  });

  it('removing a subtree fires watches on the root and on each removed watched node', async () => {
    const { dom0 } = server();
    await dom0.write('/r/a/b/c', '1');
    const above = recorder();
    const below = recorder();
    await dom0.watch('/r', 'above', above.cb);
    await dom0.watch('/r/a/b', 'below', below.cb);
    await dom0.rm('/r/a');
    await settle();
    expect(above.events).toEqual(['/r above', '/r/a above']);
    expect(below.events).toEqual(['/r/a/b below', '/r/a/b below']);
  });

  it('events for a transaction fire only at commit, and not at all on abort', async () => {
    const { dom0, as } = server();
    const watcher = as(0);
    const r = recorder();
    await watcher.watch('/tx', 'w', r.cb);
    const t = await dom0.transactionStart();
    await dom0.write('/tx/a', '1', t);
    await settle();
    expect(r.events).toEqual(['/tx w']);
    await dom0.transactionEnd(t, true);
    await settle();
    expect(r.events).toEqual(['/tx w', '/tx/a w']);
    const t2 = await dom0.transactionStart();
    await dom0.write('/tx/b', '1', t2);
    await dom0.transactionEnd(t2, false);
    await settle();
    expect(r.events).toEqual(['/tx w', '/tx/a w']);
  });

  it('a relative watch reports relative paths', async () => {
    const { dom0, as } = server();
    await dom0.mkdir('/local/domain/5');
    await dom0.setPerms('/local/domain/5', ['n5']);
    const d5 = as(5);
    const r = recorder();
    await d5.watch('device', 'dev', r.cb);
    await dom0.write('/local/domain/5/device/vif/0/state', '1');
    await settle();
    expect(r.events).toEqual(['device dev', 'device/vif/0/state dev']);
  });

  it('a domU hears only of nodes it may read (or whose parent it may read)', async () => {
    const { dom0, as } = server();
    await dom0.write('/priv/secret', 's');
    const r = recorder();
    await as(5).watch('/priv', 'p', r.cb);
    await dom0.write('/priv/secret', 't');
    await dom0.write('/priv/open', 'o');
    await dom0.setPerms('/priv/open', ['n0', 'r5']);
    await dom0.write('/priv/open', 'o2');
    await settle();
    expect(r.events).toEqual(['/priv p', '/priv/open p', '/priv/open p']);
  });

  it('fires @introduceDomain and @releaseDomain', async () => {
    const { xs, dom0 } = server();
    const r = recorder();
    await dom0.watch('@introduceDomain', 'in', r.cb);
    await dom0.watch('@releaseDomain', 'out', r.cb);
    const page = new Uint8Array(new SharedArrayBuffer(4096));
    xs.introduceDomain(9, { page, notify: () => {} });
    expect(await dom0.isDomainIntroduced(9)).toBe(true);
    xs.releaseDomain(9);
    await settle();
    expect(r.events).toEqual(['@introduceDomain in', '@releaseDomain out', '@introduceDomain in', '@releaseDomain out']);
    expect(await dom0.isDomainIntroduced(9)).toBe(false);
  });

  it('limits a domU to 128 watches (E2BIG); dom0 is exempt', async () => {
    const { dom0, as } = server();
    const d5 = as(5);
    for (let i = 0; i < 128; i++) await d5.watch(`/w${i}`, 't', () => {});
    await expectCode(d5.watch('/w128', 't', () => {}), 'E2BIG');
    for (let i = 0; i < 130; i++) await dom0.watch(`/w${i}`, 't', () => {});
  });
});
