// Which devices a domain config asks for, per kind (vif, vbd ...): each kind turns its part
// of the parsed config into xenstore entries for the toolstack to add at create time. A
// kind registers here once (netback's vif, blkback's vbd).
import type { BuildSpec } from '../build-spec.js';
import type { DeviceEntries } from './device-store.js';

export interface DeviceKind {
  /** xenstore device type this kind creates. */
  type: string;
  /** The devices of this kind a new domain gets, from its spec. */
  fromSpec(spec: BuildSpec, domid: number): DeviceEntries[];
}

export const deviceKinds: DeviceKind[] = [];

export function registerDeviceKind(kind: DeviceKind): void {
  if (!deviceKinds.some((k) => k.type === kind.type)) deviceKinds.push(kind);
}
