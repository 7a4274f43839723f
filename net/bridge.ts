// Linux bridges for guests' vifs. xenode creates a bridge only on demand (a vif or the test
// LAN asks for one that does not exist), marks it with an interface alias, and removes only
// bridges carrying that mark once nothing is plugged into them. A bridge is never given an
// address and never joined to the machine's own uplink: that is a user's explicit action
// (`xenode uplink`, docs/networking.md). The hotplug script net/scripts/vif-bridge applies
// the same rules in shell.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { ipSync, linkExists, validIfname } from './ip.js';

/** The alias (IFLA_IFALIAS) that marks a bridge as created on demand by xenode. */
export const ON_DEMAND_ALIAS = 'xenode: created on demand';

export function isBridge(name: string): boolean {
  return existsSync(`/sys/class/net/${name}/bridge`);
}

export function alias(name: string): string {
  try {
    return readFileSync(`/sys/class/net/${name}/ifalias`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Interfaces enslaved to the bridge. */
export function bridgePorts(name: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${name}/brif`);
  } catch {
    return [];
  }
}

/** Make sure bridge `name` exists and is up; returns true when we had to create it. */
export function ensureBridge(name: string): boolean {
  if (!validIfname(name)) throw new Error(`"${name}" is not a valid bridge name`);
  if (linkExists(name)) {
    if (!isBridge(name)) throw new Error(`${name} exists and is not a bridge`);
    ipSync(['link', 'set', 'dev', name, 'up']);
    return false;
  }
  try {
    ipSync(['link', 'add', 'name', name, 'type', 'bridge']);
  } catch (e) {
    if (!isBridge(name)) throw e; // a concurrent creator won the race: fine
    return false;
  }
  ipSync(['link', 'set', 'dev', name, 'alias', ON_DEMAND_ALIAS]);
  ipSync(['link', 'set', 'dev', name, 'up']);
  return true;
}

/** Remove the bridge if xenode created it and nothing is plugged in any more. */
export function removeBridgeIfUnused(name: string): boolean {
  if (!isBridge(name) || alias(name) !== ON_DEMAND_ALIAS || bridgePorts(name).length > 0) return false;
  try {
    ipSync(['link', 'del', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}
