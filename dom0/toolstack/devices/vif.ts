// The vif device kind: a NIC spec (libxl_device_nic, with libxl's defaults applied) as the
// xenstore entries libxl writes for it (libxl_nic.c, libxl__set_xenstore_nic), for every
// `vif = [...]` entry at create time and for `xl network-attach`.
//
//   backend  script (absolute path, as libxl writes it), mac, bridge, handle, type, mtu,
//            ip, vifname (ifname), gatewaydev, rate ("<bytes per interval>,<usecs>")
//   frontend handle, mac, mtu
import type { BuildSpec } from '../build-spec.js';
import type { DomainConfig } from '../config/domain-config-types.js';
import type { ResolvedNic } from '../config/vif-spec.js';
import { resolveHotplugScript } from '../../../net/hotplug.js';
import type { DeviceEntries } from './device-store.js';
import { registerDeviceKind } from './device-kinds.js';

export function vifDeviceEntries(nic: ResolvedNic): DeviceEntries {
  const backend: Record<string, string> = {
    script: resolveHotplugScript(nic.script),
    mac: nic.mac,
    bridge: nic.bridge,
    handle: String(nic.devid),
    type: nic.nictype,
    mtu: String(nic.mtu),
  };
  if (nic.ip) backend.ip = nic.ip;
  if (nic.ifname) backend.vifname = nic.ifname;
  if (nic.gatewaydev) backend.gatewaydev = nic.gatewaydev;
  if (nic.rate_interval_usecs && nic.rate_bytes_per_interval) {
    backend.rate = `${nic.rate_bytes_per_interval},${nic.rate_interval_usecs}`;
  }
  return {
    type: 'vif',
    devid: nic.devid,
    backend,
    frontend: { handle: String(nic.devid), mac: nic.mac, mtu: String(nic.mtu) },
  };
}

registerDeviceKind({
  type: 'vif',
  fromSpec(spec: BuildSpec): DeviceEntries[] {
    const c = spec.config as Partial<DomainConfig> | undefined;
    // As libxl: every NIC gets its PV backend; a type=ioemu NIC of an HVM guest also gets an
    // emulated NIC (dom0/toolstack/hvm-builder.ts), and PV drivers in the guest pick one.
    return (c?.nics ?? []).map((n) => vifDeviceEntries(n.resolved));
  },
});
