// Virtual disk names <-> the device numbers written to xenstore (device/vbd/<devid>), as libxl's
// libxl__device_disk_dev_number() computes them (docs/man/xen-vbd-interface.7):
//   xvd<disk><part>  (202 << 8) | disk << 4 | part        for disk <= 15 and part <= 15
//                    (1 << 28) | disk << 8 | part         otherwise ("extended": disk < 2^20, part <= 255)
//   d<disk>p<part>   the same numbers, written as numbers
//   hd<disk><part>   (3 << 8 for hda/hdb, 22 << 8 for hdc/hdd) | (disk & 1) << 6 | part, part <= 63
//   sd<disk><part>   (8 << 8) | disk << 4 | part, disk and part <= 15
//   a plain number   itself (strtoul base 0, up to INT_MAX)
// Disk letters count like spreadsheet columns: a..z, aa..zz, aaa... (xvdaa is disk 26).

import { cStrto } from './c-strtol.js';

export type VdevKind = 'xvd' | 'hd' | 'sd';

export interface VdevInfo {
  devid: number;
  /** Unknown (undefined) when the vdev was given as a raw number, as in libxl. */
  kind?: VdevKind;
  disk?: number;
  partition?: number;
}

const XVD_MAJOR = 202;
const EXTENDED = 1 << 28;
const INT_MAX = 0x7fffffff;

/** device_virtdisk_matches(): `<prefix><letters>[<partition without leading zero>]`. */
function matchLettered(vdev: string, prefix: string, maxDisk: number, maxPart: number):
    { disk: number; partition: number } | undefined {
  if (!vdev.startsWith(prefix)) return undefined;
  let p = prefix.length;
  let disk = -1;
  while (p < vdev.length && vdev[p]! >= 'a' && vdev[p]! <= 'z') {
    disk = (disk + 1) * 26 + (vdev.charCodeAt(p) - 97);
    if (disk > maxDisk) return undefined;
    p++;
  }
  const rest = vdev.slice(p);
  // libxl accepts "xvd" alone as disk -1; nobody means that, and its number would be garbage.
  if (disk < 0) return undefined;
  if (rest === '') return { disk, partition: 0 };
  if (!/^[1-9][0-9]*$/.test(rest)) return undefined;
  const partition = Number(rest);
  return partition <= maxPart ? { disk, partition } : undefined;
}

function xvdNumber(disk: number, partition: number): number {
  return disk <= 15 && partition <= 15
    ? (XVD_MAJOR << 8) | (disk << 4) | partition
    : EXTENDED | (disk << 8) | partition;
}

/** Decodes a vdev; undefined when libxl would reject it ("Invalid or unsupported virtual disk identifier"). */
export function parseVdev(vdev: string): VdevInfo | undefined {
  const dp = /^d(\d+)p(\d+)$/.exec(vdev);
  if (dp) {
    const disk = Number(dp[1]);
    const partition = Number(dp[2]);
    if (disk < (1 << 20) && partition < 256) return { devid: xvdNumber(disk, partition), kind: 'xvd', disk, partition };
  }
  const xvd = matchLettered(vdev, 'xvd', (1 << 20) - 1, 255);
  if (xvd) return { devid: xvdNumber(xvd.disk, xvd.partition), kind: 'xvd', ...xvd };
  const n = cStrto(vdev, 0, true);
  if (n.end === vdev.length && n.end > 0 && !n.overflow && n.value <= BigInt(INT_MAX)) {
    return { devid: Number(n.value) };
  }
  const hd = matchLettered(vdev, 'hd', 3, 63);
  if (hd) {
    return { devid: ((hd.disk < 2 ? 3 : 22) << 8) | ((hd.disk & 1) << 6) | hd.partition, kind: 'hd', ...hd };
  }
  const sd = matchLettered(vdev, 'sd', 15, 15);
  if (sd) return { devid: (8 << 8) | (sd.disk << 4) | sd.partition, kind: 'sd', ...sd };
  return undefined;
}

/** vdevToDevid('xvda') = 51712, 'hda' = 768, 'hdc' = 5632, 'sda' = 2048, 'xvde' = 51776; -1 if invalid. */
export function vdevToDevid(vdev: string): number {
  return parseVdev(vdev)?.devid ?? -1;
}

function diskLetters(n: number): string {
  // encode_disk_name(): bijective base 26.
  return (n >= 26 ? diskLetters(Math.floor(n / 26) - 1) : '') + String.fromCharCode(97 + (n % 26));
}

/**
 * The name for a device number. Unlike libxl__devid_to_vdev(), which always answers "xvd..." and
 * looks only at the minor number, this reads the major too, so 768 is "hda" and 2048 is "sda".
 * Undefined for numbers that no name produces.
 */
export function devidToVdev(devid: number): string | undefined {
  if (!Number.isInteger(devid) || devid < 0 || devid > INT_MAX) return undefined;
  const part = (p: number) => (p === 0 ? '' : String(p));
  if (devid & EXTENDED) {
    const minor = devid & ~EXTENDED;
    const disk = minor >>> 8;
    if (disk >= 1 << 20) return undefined;
    return `xvd${diskLetters(disk)}${part(minor & 0xff)}`;
  }
  const major = devid >>> 8;
  const minor = devid & 0xff;
  if (major === XVD_MAJOR) return `xvd${diskLetters(minor >>> 4)}${part(minor & 15)}`;
  if (major === 8) return `sd${diskLetters(minor >>> 4)}${part(minor & 15)}`;
  if (major === 3 || major === 22) {
    const disk = (major === 3 ? 0 : 2) + (minor >>> 6);
    return `hd${diskLetters(disk)}${part(minor & 63)}`;
  }
  return undefined;
}
