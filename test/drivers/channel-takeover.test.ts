// A channel taken over from a peer that died (a restarted dom0 and a stub domain: the dead
// dom0 left its end with the hypervisor, dom0/stubdom-host.ts): answers the other side still
// owes the dead caller arrive first, and must not be taken for the new caller's. The new
// client starts its call ids past the old one's (HypercallClient's firstId), so they are not;
// what the far side sent meanwhile unasked (a dm.exit upcall) is the new client's to act on.
import { describe, expect, it } from 'vitest';
import { HypercallClient, MessageSocket } from '../../drivers/hypercall/channel.js';
import { native } from '../../native/index.js';

describe('a hypercall channel taken over from a dead caller', () => {
  /** The far side (a stub domain): holds each request, then answers them all in order. */
  function farSide(fd: number) {
    const held: { id: unknown; op: unknown }[] = [];
    const sock = new MessageSocket(fd, ({ message }) => held.push({ id: message.id, op: message.op }), () => {});
    return {
      held,
      answerAll: () => {
        for (const r of held.splice(0)) sock.send({ id: r.id, result: `answer to ${String(r.op)}` });
      },
      close: () => sock.close(),
    };
  }
  const until = async (pred: () => boolean) => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
  };

  for (const [label, firstId, expected] of [
    ['with ids past the dead caller\'s, the new call gets its own answer', 2 ** 32 + 1, 'answer to fresh'],
    ['with ids starting where the dead caller\'s did, it would get the stale one', 1, 'answer to stale'],
  ] as const) {
    it(label, async () => {
      const [ours, theirs] = native().seqpacketPair();
      const kept = native().dup(ours); // what the hypervisor's fd store keeps
      const stub = farSide(theirs);
      const dead = new HypercallClient(ours);
      void dead.call('stale').catch(() => {});
      await until(() => stub.held.length === 1);
      dead.close(); // the old dom0 dies with its call unanswered
      const next = new HypercallClient(kept, { firstId });
      const fresh = next.call<string>('fresh');
      await until(() => stub.held.length === 2);
      stub.answerAll(); // the stale answer first
      expect((await fresh).result).toBe(expected);
      next.close();
      stub.close();
    });
  }

  it('an upcall sent while nobody read the channel reaches the client that takes it over', async () => {
    const [ours, theirs] = native().seqpacketPair();
    const kept = native().dup(ours);
    const stub = new MessageSocket(theirs, () => {}, () => {});
    const dead = new HypercallClient(ours);
    dead.close(); // the old dom0 is gone; the far side reports a device model that ended
    stub.send({ upcall: 'dm.exit', args: { domid: 7, reason: 'crash', message: 'device model exited (1)' } });
    const next = new HypercallClient(kept, { firstId: 2 ** 32 + 1 });
    const got = await new Promise<unknown>((resolve) => next.onUpcall('dm.exit', resolve));
    expect(got).toEqual({ domid: 7, reason: 'crash', message: 'device model exited (1)' });
    next.close();
    stub.close();
  });
});
