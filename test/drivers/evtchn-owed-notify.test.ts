// A frontend's notification sent before the hypervisor's "bound" message has brought it the
// backend's doorbell: the backend may already be bound and waiting (xenstore told the frontend
// it is connected on another channel), so the notification is owed and rung when the doorbell
// arrives, never dropped. Dropping it left a guest's first disk request unseen for good.
// The "hypervisor" here is the other end of a real seqpacket hypercall channel, the doorbells
// real eventfds.
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import { HypercallClient, MessageSocket, type Received } from '../../drivers/hypercall/channel.js';
import { EventChannels } from '../../drivers/evtchn/event-channels.js';

const PORT = 3;

describe('event channels: a notification before the peer has bound', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0).reverse()) c();
  });

  /** A guest's EventChannels with one port allocated for dom0 (alloc_unbound answered by
   * our end of the channel), and a way to send it the "bound" upcall with a doorbell. */
  async function setUp() {
    const [guestFd, hvFd] = native().seqpacketPair();
    const recvFd = native().eventfdCreate(0);
    const backendDoorbell = native().eventfdCreate(0);
    cleanup.push(() => native().close(backendDoorbell));
    let hv!: MessageSocket;
    hv = new MessageSocket(
      hvFd,
      ({ message }: Received) => {
        const m = message as { id: number; op: string };
        if (m.op === 'evtchn.alloc_unbound') hv.send({ id: m.id, result: { port: PORT } }, [recvFd]);
      },
      () => {},
    );
    cleanup.push(() => hv.close());
    const hc = new HypercallClient(guestFd);
    cleanup.push(() => hc.close());
    const evtchn = new EventChannels(hc);
    cleanup.push(() => evtchn.closeAll());
    expect(await evtchn.allocUnbound(0)).toBe(PORT);
    const bind = () => hv.send({ upcall: 'evtchn.bound', args: { port: PORT } }, [native().dup(backendDoorbell)]);
    const rung = () => native().eventfdRead(backendDoorbell);
    return { evtchn, bind, rung };
  }

  const settle = () => new Promise((r) => setTimeout(r, 50));

  it('is rung once the doorbell arrives', async () => {
    const { evtchn, bind, rung } = await setUp();
    evtchn.notify(PORT);
    expect(evtchn.describe(PORT)).toContain('a notification owed');
    bind();
    await settle();
    expect(rung()).toBe(1);
    expect(evtchn.counters(PORT).sent).toBe(1);
    expect(evtchn.describe(PORT)).toContain("the peer's doorbell known");
  });

  it('after the doorbell, each notification rings it at once; none is owed', async () => {
    const { evtchn, bind, rung } = await setUp();
    bind();
    await settle();
    expect(rung()).toBe(0);
    evtchn.notify(PORT);
    evtchn.notify(PORT);
    expect(rung()).toBe(2);
    expect(evtchn.describe(PORT)).not.toContain('owed');
  });
});
