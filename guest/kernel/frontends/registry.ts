// The frontend drivers the guest kernel has, by xenstore device type. One line per driver.
import type { FrontendBus } from '../xenbus-frontends.js';
import { evtchnEchoFrontend } from './evtchn-echo.js';
import { blkfrontFactory } from './blkfront/blkfront.js';
import { netfrontFrontend } from './netfront/netfront.js';

export function registerFrontends(bus: FrontendBus): void {
  // netfront (vif) and blkfront (vbd) register here.
  bus.register('vif', netfrontFrontend); // PV network: eth<N> (netfront/, docs/networking.md)
  bus.register('vbd', blkfrontFactory); // PV block: /dev/<vdev> (blkfront/, docs/block.md)
  bus.register('echo', evtchnEchoFrontend); // diagnostic: event-channel echo (bench/platform.ts)
}
