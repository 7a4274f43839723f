// Which root filesystem an HVM guest boots, from what its BIOS chose (firmware/boot-order.ts)
// or its command line. Linux on a PC learns its root from the bootloader's command line; a
// xenode HVM guest has its kernel built into the firmware, so the firmware's choice stands in
// for the bootloader on that device:
//   root= given           that device (/dev/hda1, LABEL=..., or a PV disk after the unplug)
//   booted a hard disk    its first Linux partition (MBR type 0x83, GPT's Linux filesystem),
//                         when it holds a filesystem (else, a data disk: as nothing bootable)
//   booted a CD           the disc itself, ISO 9660, read-only: a live CD (when it has an El
//                         Torito boot record; a data disc is as nothing bootable)
//   nothing bootable      no root: the built-in kernel's own minimal userland, as before
import { open } from 'node:fs/promises';
import { GPT_TYPE, scanPartitions } from '../../common/disk/partition-table.js';
import { rootParams, type RootParams } from '../kernel/boot/root-params.js';
import { readExtSuperblock } from '../kernel/boot/root-device.js';
import type { BootChoice } from './firmware/boot-order.js';

const MBR_LINUX = 0x83;

async function firstLinuxPartition(disk: string): Promise<number | null> {
  const fh = await open(`/dev/${disk}`, 'r').catch(() => null);
  if (!fh) return null;
  try {
    const sectors = Math.floor((await fh.stat()).size / 512);
    const scan = await scanPartitions({ name: disk, sectors }, async (lba, count) => {
      const b = new Uint8Array(count * 512);
      await fh.read(b, 0, b.length, lba * 512);
      return b;
    });
    const p = scan.partitions.find((x) => x.type === MBR_LINUX || x.type === GPT_TYPE.linux);
    return p?.number ?? null;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** ISO 9660's boot record volume descriptor (sector 17 of 2 KiB: type 0, "CD001", version 1,
 * "EL TORITO SPECIFICATION"): what makes a CD bootable to a PC BIOS. */
async function hasElTorito(dev: string): Promise<boolean> {
  const fh = await open(`/dev/${dev}`, 'r').catch(() => null);
  if (!fh) return false;
  try {
    const b = new Uint8Array(32);
    const { bytesRead } = await fh.read(b, 0, 32, 17 * 2048);
    const text = Buffer.from(b).toString('latin1');
    return bytesRead === 32 && b[0] === 0 && text.slice(1, 6) === 'CD001' && b[6] === 1 && text.slice(7, 30) === 'EL TORITO SPECIFICATION';
  } catch {
    return false;
  } finally {
    await fh.close().catch(() => {});
  }
}

export async function hvmRoot(cmdline: string, boot: BootChoice | null, log: (m: string) => void): Promise<RootParams | null> {
  const given = rootParams(cmdline);
  if (given) return given;
  if (!boot) return null;
  const base = rootParams(`${cmdline} root=/dev/${boot.device}`)!;
  if (boot.letter === 'd') {
    // A live CD is a bootable disc: El Torito says so. A data disc (an ISO without a boot
    // record) is not an OS to run, whatever files it holds.
    if (!(await hasElTorito(boot.device))) {
      log(`${boot.device}: not a bootable disc (no El Torito boot record); running the built-in kernel's userland`);
      return null;
    }
    return { ...base, fstypes: ['iso9660'], readonly: true };
  }
  if (boot.letter === 'c') {
    const n = await firstLinuxPartition(boot.device);
    if (n === null) {
      log(`${boot.device}: no Linux partition to boot; running the built-in kernel's userland`);
      return null;
    }
    // A partition with no filesystem is a data disk, not an OS: like a bootloader that finds
    // nothing to load, fall back instead of panicking (a root= given by the user still panics).
    if (!(await readExtSuperblock(`/dev/${boot.device}${n}`))) {
      log(`${boot.device}${n}: no filesystem to boot; running the built-in kernel's userland`);
      return null;
    }
    return { ...base, root: `/dev/${boot.device}${n}` };
  }
  return null;
}
