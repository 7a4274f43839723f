// evtchn-echo, the guest half of a diagnostic split device (xenstore type "echo"): the smallest
// complete example of the split-driver pattern. The frontend allocates an unbound event
// channel for its backend, publishes it in its directory (`event-channel`), moves to
// Initialised, and from then on answers every event with an event. dom0's half
// (dom0/backends/evtchn-echo.ts) binds to the port and times round trips (bench/platform.ts).
//
// Lifecycle, as a Linux frontend does it: backend Connected -> we are Connected; backend
// Closing or Closed (xl device-detach, dom0 going away) -> close our port and go Closed.
import type { FrontendDriver, FrontendFactory } from '../xenbus-frontends.js';
import { XenbusState } from '../../../drivers/xenbus/xenbus-device.js';

export const evtchnEchoFrontend: FrontendFactory = async (dev, devid, k) => {
  const backendId = await dev.readInt('backend-id', 0, 0x7fef, dev.path);
  if (backendId === undefined) throw new Error('echo: no valid backend-id');
  const port = await k.evtchn.allocUnbound(backendId);
  // Echo: one event in, one event out. A peer that rings in a loop costs us one wake-up per
  // drained doorbell (the eventfd coalesces), never a queue.
  k.evtchn.on(port, () => k.evtchn.notify(port));
  let open = true;
  const closePort = async () => {
    if (!open) return;
    open = false;
    await k.evtchn.close(port).catch(() => {});
  };

  await dev.writeKeys({ 'event-channel': port });
  await dev.switchState(XenbusState.Initialised);
  await dev.watchOtherEnd((state) => {
    if (state === XenbusState.Connected && open) {
      void dev.switchState(XenbusState.Connected).catch(() => {});
    } else if (state === XenbusState.Closing || state === XenbusState.Closed) {
      void closePort().then(() => dev.switchState(XenbusState.Closed)).catch(() => {});
    }
  });
  k.printk(`echo${devid}: event channel ${port} for domain ${backendId}`);

  const driver: FrontendDriver = {
    async remove() {
      await dev.close();
      await closePort();
    },
  };
  return driver;
};
