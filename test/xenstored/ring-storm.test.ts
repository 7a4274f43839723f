// A guest ringing its xenstore event channel for nothing (XSA-332): xenstored stops listening
// for a moment, longer each time the storm goes on, as netback and blkback do; the guest's
// requests are still served, and a guest that merely talks a lot is never held off.
import { describe, expect, it } from 'vitest';
import { XsClient } from '../../drivers/xenstore/client.js';
import { ringTransport } from '../../drivers/xenstore/ring-transport.js';
import { onCleanup, server, settle } from './helpers.js';

function stormyGuest(domid: number) {
  const f = server();
  const holdOffs: number[] = [];
  const page = new Uint8Array(new SharedArrayBuffer(4096));
  let end: { onEvent(): void } | undefined;
  // The guest's doorbell as an eventfd behaves: any number of rings before xenstored wakes
  // up are one wake-up.
  let rung = false;
  const doorbell = () => {
    if (rung) return;
    rung = true;
    queueMicrotask(() => {
      rung = false;
      end?.onEvent();
    });
  };
  const t = ringTransport(page, doorbell);
  end = f.xs.introduceDomain(domid, { page, notify: () => queueMicrotask(() => t.onEvent()), holdOff: (ms) => holdOffs.push(ms) });
  const client = new XsClient(t);
  onCleanup(() => client.close());
  return { ...f, holdOffs, end, client };
}

describe('xenstore ring: event storms', () => {
  it('holds off a guest that rings for nothing, longer each time, and still serves it', async () => {
    const { end, holdOffs, client, dom0 } = stormyGuest(21);
    await dom0.mkdir('/local/domain/21');
    await dom0.setPerms('/local/domain/21', ['n21']);
    for (let i = 0; i < 16 * 10; i++) end.onEvent(); // each as one wake-up of the event channel
    expect(holdOffs).toEqual([1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
    // Real work resets the back-off and is served.
    await client.write('x', 'y');
    expect(await client.read('x')).toBe('y');
    for (let i = 0; i < 16; i++) end.onEvent();
    expect(holdOffs.at(-1)).toBe(1);
  });

  it('never holds off a guest that only talks a lot', async () => {
    const { holdOffs, client, dom0 } = stormyGuest(22);
    await dom0.mkdir('/local/domain/22');
    await dom0.setPerms('/local/domain/22', ['n22']);
    await client.watch('w', 'tok', () => {});
    for (let i = 0; i < 300; i++) await client.write(`w/n${i % 50}`, String(i));
    await Promise.all(Array.from({ length: 200 }, (_, i) => client.read(`w/n${i % 50}`)));
    await settle(10);
    expect(holdOffs).toEqual([]);
  });
});
