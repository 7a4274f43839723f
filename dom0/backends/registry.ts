// The backend drivers dom0 runs, by xenstore device type. One line per driver.
import type { BackendBus } from './backend-bus.js';
import { netbackBackend } from './netback/xenbus.js';
import { evtchnEchoBackend } from './evtchn-echo.js';
import { blkbackBackend } from './blkback/xenbus.js';

export function registerBackends(bus: BackendBus): void {
  // netback (vif) and blkback (vbd) register here.
  bus.register('vif', netbackBackend); // PV network (dom0/backends/netback/, docs/networking.md)
  bus.register('vbd', blkbackBackend); // PV block (dom0/backends/blkback/, docs/block.md)
  bus.register('echo', evtchnEchoBackend); // diagnostic: event-channel round trips (bench/platform.ts)
}
