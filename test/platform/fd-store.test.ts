// The hypervisor's fd store (hypervisor/fd-store.ts): what dom0 leaves there for a domain (an
// HVM guest's stub domain channel, its log readers ...) outlives dom0's own copies, comes back
// as working copies, and closes when dom0 removes it or the domain is destroyed, which is what
// ends a stub domain whose guest went while no dom0 ran. Guests cannot reach it; it is bounded.
import { describe, expect, it } from 'vitest';
import type { HypercallClient, HypercallError } from '../../drivers/hypercall/channel.js';
import { native } from '../../native/index.js';
import { shouldSkip } from '../helpers/instance.js';
import { inProcessHypervisorSuite } from '../helpers/in-process-hypervisor.js';

async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as HypercallError).errno ?? String(e);
  }
  return 'resolved';
}

/** A socket pair: `kept` goes into the store (and is closed here), `peer` stays to see whether
 * anyone still holds the other end. */
async function deposit(dom0: HypercallClient, domid: number, name: string): Promise<number> {
  const [kept, peer] = native().seqpacketPair();
  try {
    await dom0.call('fdstore.put', { domid, name, meta: JSON.stringify({ n: 1 }) }, [kept]);
  } finally {
    native().close(kept);
  }
  return peer;
}

/** The peer's view: true once nobody holds the other end (poll says readable: EOF). */
const hungUp = (peer: number) => native().pollReadable(peer, 200) && native().recvMsg(peer, new Uint8Array(64))?.bytes === 0;

describe.skipIf(shouldSkip())('the hypervisor fd store', () => {
  const h = inProcessHypervisorSuite('fdstore');

  it('keeps what dom0 left after dom0 closed its copies, and hands back working copies', async () => {
    const { dom0, domid } = h();
    const peer = await deposit(dom0, domid, 'stubdom');
    expect(hungUp(peer)).toBe(false);
    const { result, fds } = await dom0.call<{ meta: string }>('fdstore.get', { domid, name: 'stubdom' });
    expect(JSON.parse(result.meta)).toEqual({ n: 1 });
    expect(fds).toHaveLength(1);
    native().sendMsg(fds[0]!, Buffer.from('hello'), []);
    const buf = new Uint8Array(64);
    const got = native().recvMsg(peer, buf);
    expect(Buffer.from(buf.subarray(0, got!.bytes)).toString()).toBe('hello');
    native().close(fds[0]!);
    // Removing it closes the hypervisor's copy: the peer sees the hang-up.
    expect(await dom0.invoke('fdstore.remove', { domid, name: 'stubdom' })).toEqual({ removed: true });
    expect(hungUp(peer)).toBe(true);
    native().close(peer);
    expect(await errno(dom0.invoke('fdstore.get', { domid, name: 'stubdom' }))).toBe('ENOENT');
  });

  it('is dom0 only, for guests only, and bounded', async () => {
    const { dom0, guest, domid } = h();
    expect(await errno(guest.invoke('fdstore.get', { domid, name: 'stubdom' }))).toBe('EPERM');
    expect(await errno(guest.invoke('fdstore.put', { domid, name: 'x' }))).toBe('EPERM');
    expect(await errno(dom0.invoke('fdstore.put', { domid: 0, name: 'x' }))).toBe('EINVAL');
    for (const bad of ['', 'Upper', '../x', '__proto__', 'x'.repeat(33)]) expect(await errno(dom0.invoke('fdstore.put', { domid, name: bad })), bad).toBe('EINVAL');
    expect(await errno(dom0.invoke('fdstore.put', { domid, name: 'big', meta: 'm'.repeat(5000) }))).toBe('EINVAL');
    const nine = Array.from({ length: 9 }, () => native().eventfdCreate());
    expect(await errno(dom0.call('fdstore.put', { domid, name: 'many' }, nine))).toBe('EINVAL');
    for (const fd of nine) native().close(fd);
    for (let i = 0; i < 8; i++) await dom0.invoke('fdstore.put', { domid, name: `e${i}` });
    expect(await errno(dom0.invoke('fdstore.put', { domid, name: 'e8' }))).toBe('ENOSPC');
    // Replacing a name that is there is fine.
    await dom0.invoke('fdstore.put', { domid, name: 'e0', meta: 'again' });
    for (let i = 0; i < 8; i++) await dom0.invoke('fdstore.remove', { domid, name: `e${i}` });
  });

  // Last: it destroys the suite's domain.
  it('closes what it keeps for a domain when the domain is destroyed', async () => {
    const { dom0, domid } = h();
    const peer = await deposit(dom0, domid, 'stubdom');
    expect(hungUp(peer)).toBe(false);
    await dom0.invoke('domctl.destroydomain', { domid });
    expect(hungUp(peer)).toBe(true);
    native().close(peer);
  });
});
