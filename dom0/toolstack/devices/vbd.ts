// The vbd device kind: a parsed disk spec (libxl_device_disk) as the xenstore entries libxl
// writes for it (libxl_disk.c, device_disk_add), for every `disk = [...]` entry at create time
// and for `xl block-attach`.
//
// Backend type as libxl chooses it: "phy" for raw images and block devices (Xen runs them
// through blkback; a file goes through a loop device there, here blkback opens it itself),
// "qdisk" for other formats, whose params are then "<format>:<path>". blkback refuses formats
// it cannot serve, with a hotplug error xl reports.
import type { BuildSpec } from '../build-spec.js';
import type { DomainConfig } from '../config/domain-config-types.js';
import type { LibxlDeviceDisk } from '../config/disk-spec.js';
import type { DeviceEntries } from './device-store.js';
import { registerDeviceKind } from './device-kinds.js';

export function diskDeviceEntries(disk: LibxlDeviceDisk, devid: number): DeviceEntries {
  const path = disk.pdev_path ?? '';
  const backendType = disk.backend !== 'unknown' ? disk.backend : disk.format === 'raw' || disk.format === 'empty' ? 'phy' : 'qdisk';
  const params = backendType === 'phy' || path === '' ? path : `${disk.format}:${path}`;
  const deviceType = disk.is_cdrom ? 'cdrom' : 'disk';
  const backend: Record<string, string> = {
    removable: String(disk.removable),
    bootable: '1',
    dev: disk.vdev,
    type: backendType,
    mode: disk.readwrite ? 'w' : 'r',
    'device-type': deviceType,
    'discard-enable': disk.discard_enable === false ? '0' : '1',
    params,
  };
  if (disk.direct_io_safe) backend['direct-io-safe'] = '1';
  return {
    type: 'vbd',
    devid,
    backend,
    frontend: { 'virtual-device': String(devid), 'device-type': deviceType, trusted: disk.trusted === false ? '0' : '1' },
  };
}

registerDeviceKind({
  type: 'vbd',
  fromSpec(spec: BuildSpec): DeviceEntries[] {
    const c = spec.config as Partial<DomainConfig> | undefined;
    return (c?.disks ?? []).map((d) => diskDeviceEntries(d.disk, d.devid));
  },
});
