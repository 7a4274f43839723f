// The backend interface of a vif: a TAP in dom0's network namespace named vif<domid>.<devid>
// (or the vif's vifname=), with a vnet header so checksum and segmentation offloads cross it.
// Non-persistent: closing the fd removes the interface (and so unplugs it from its bridge).
// Offloads start off and are set when the frontend says what it can take (interface.ts).
import { native } from '../../../native/index.js';
import { linkExists, validIfname } from '../../../net/ip.js';

export function defaultVifName(domid: number, devid: number): string {
  return `vif${domid}.${devid}`;
}

export function openVifTap(name: string): { fd: number; name: string } {
  if (!validIfname(name)) throw new Error(`"${name}" is not a valid interface name`);
  if (linkExists(name)) throw new Error(`an interface named ${name} already exists`);
  return native().tapOpen(name, true, 0);
}

export function closeVifTap(fd: number): void {
  try {
    native().close(fd);
  } catch {
    /* already closed */
  }
}
