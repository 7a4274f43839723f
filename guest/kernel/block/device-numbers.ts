// Linux's device numbers for the disks the guest's drivers expose, so /proc/partitions and
// `ls -l /dev` agree with what a Linux guest shows:
//   xvd<disk>      major 202, 16 minors per disk (disk*16 + partition); from xvdq on (disk 16+,
//                  Xen's "extended" numbers) 256 minors per disk (disk << 8), as xen-blkfront.c
//   xvd<disk><N>   a disk given under a partition's name: that partition's number, one minor
//   hd<disk>       majors 3 (hda, hdb) and 22 (hdc, hdd), 64 minors per disk (ide_major)
//   sd<disk>       major 8, 16 minors per disk
// A partition numbered past its disk's minors gets major 259 (BLOCK_EXT_MAJOR) and the lowest
// free minor there (block/partitions/core.c, add_partition()).
import { parseVdev } from '../../../common/vdev-number.js';

export const XENVBD_MAJOR = 202;
export const BLOCK_EXT_MAJOR = 259;

export interface DiskNumbers {
  major: number;
  firstMinor: number;
  /** Minors the disk owns: the whole disk and partitions 1..minors-1. */
  minors: number;
}

/** Numbers for a disk named `name` (xvda, xvda2, hdc, sdb); undefined for other names. */
export function diskNumbers(name: string): DiskNumbers | undefined {
  const v = parseVdev(name);
  if (!v?.kind || v.disk === undefined || v.partition === undefined) return undefined;
  const { disk, partition } = v;
  switch (v.kind) {
    case 'xvd': {
      const extended = disk > 15 || partition > 15;
      const first = extended ? disk * 256 : disk * 16;
      return partition ? { major: XENVBD_MAJOR, firstMinor: first + partition, minors: 1 } : { major: XENVBD_MAJOR, firstMinor: first, minors: extended ? 256 : 16 };
    }
    case 'hd':
      return { major: disk < 2 ? 3 : 22, firstMinor: (disk & 1) * 64 + partition, minors: partition ? 1 : 64 };
    case 'sd':
      return { major: 8, firstMinor: disk * 16 + partition, minors: partition ? 1 : 16 };
  }
}
