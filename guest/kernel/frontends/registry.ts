// The frontend drivers the guest kernel has, by xenstore device type. One line per driver.
import type { FrontendBus } from '../xenbus-frontends.js';

export function registerFrontends(_bus: FrontendBus): void {
  // netfront (vif) and blkfront (vbd) register here.
}
