// The backend drivers dom0 runs, by xenstore device type. One line per driver.
import type { BackendBus } from './backend-bus.js';

export function registerBackends(_bus: BackendBus): void {
  // netback (vif) and blkback (vbd) register here.
}
