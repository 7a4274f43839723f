// The backend interface of a vif: a TAP in dom0's network namespace named vif<domid>.<devid>
// (or the vif's vifname=), with a vnet header so checksum and segmentation offloads cross it.
// Non-persistent: closing the fd removes the interface (and so unplugs it from its bridge).
// Offloads start off and are set when the frontend says what it can take (interface.ts).
// netback sees it only as a FramePort (net/frame-port.ts): tests give it a socketpair instead.
import { native } from '../../../native/index.js';
import { ip, linkExists, validIfname } from '../../../net/ip.js';
import { tapPort, type FramePort } from '../../../net/frame-port.js';

/** Linux netback's dummy address: the numerically largest non-broadcast MAC, so a bridge never
 * takes the vif's address as its own (the guest's MAC is on the other side). */
export const VIF_DUMMY_MAC = 'fe:ff:ff:ff:ff:ff';

export function defaultVifName(domid: number, devid: number): string {
  return `vif${domid}.${devid}`;
}

/** Creates the TAP `name` with Xen's dummy MAC; `warn` hears of a MAC that could not be set. */
export async function openVifTap(name: string, warn: (msg: string) => void): Promise<FramePort> {
  if (!validIfname(name)) throw new Error(`"${name}" is not a valid interface name`);
  if (linkExists(name)) throw new Error(`an interface named ${name} already exists`);
  const port = tapPort(native().tapOpen(name, true, 0));
  await ip(['link', 'set', 'dev', port.name, 'address', VIF_DUMMY_MAC]).catch((e) => warn(`${port.name}: ${(e as Error).message}`));
  return port;
}
