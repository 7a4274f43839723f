// Finding the device root= names, as Linux's name_to_dev_t does: "/dev/xvda1" or "xvda1" by
// name, "LABEL=" and "UUID=" by reading each block device's ext superblock, "MAJ:MIN" by
// number. The candidates are the guest kernel's block devices (block/block-devices.ts), or,
// for a disk its driver has not registered, the FUSE file its driver mounted under /dev.
//
// Reads go through fs.promises (libuv's thread pool), never a synchronous read: the kernel's
// own event loop serves these device files (blkfront's FUSE server), and a synchronous read
// from it would wait for itself forever.
import { open, readdir, stat } from 'node:fs/promises';
import { blockDevices, type BlockDevice } from '../block/block-devices.js';
import { checkGroupDescriptors, EXT_SUPERBLOCK_OFFSET, groupDescriptorSpan, parseExtSuperblock, type ExtSuperblock } from './ext-superblock.js';

export interface RootDevice {
  /** Linux's name: "xvda1". */
  name: string;
  /** The device file in the kernel's namespace. */
  path: string;
  major: number;
  minor: number;
  readonly: boolean;
  /** The write-back file for the filesystem driver (block-devices.ts), where there is one. */
  driverFile?: () => Promise<string>;
}

/** Block device names Linux's Xen, IDE and SCSI drivers make. */
const DEVICE_NAME = /^(xvd[a-z]+|hd[a-z]|sd[a-z]+)(\d*)$/;

/** Linux's numbers for a name the table does not know (xvd: 202, 16 minors per disk). */
function linuxNumbers(name: string): { major: number; minor: number } {
  const m = DEVICE_NAME.exec(name);
  if (!m) return { major: 0, minor: 0 };
  const letters = m[1]!.replace(/^(xvd|hd|sd)/, '');
  let disk = 0;
  for (const ch of letters) disk = disk * 26 + (ch.charCodeAt(0) - 96);
  disk -= 1;
  const part = Number(m[2] || 0);
  if (m[1]!.startsWith('xvd')) return { major: 202, minor: disk * 16 + part };
  if (m[1]!.startsWith('sd')) return { major: 8, minor: disk * 16 + part };
  const ideMajors = [3, 22, 33, 34];
  return { major: ideMajors[Math.floor(disk / 2)] ?? 0, minor: (disk % 2) * 64 + part };
}

/** Every block device the guest has: the table first, then device files under /dev. */
export async function candidateDevices(devDir = '/dev'): Promise<RootDevice[]> {
  const out: RootDevice[] = blockDevices().map((d: BlockDevice) => ({ name: d.name, path: d.path, major: d.major, minor: d.minor, readonly: d.readonly, driverFile: d.driverFile }));
  const known = new Set(out.map((d) => d.name));
  for (const name of (await readdir(devDir).catch(() => [] as string[])).sort()) {
    if (known.has(name) || !DEVICE_NAME.test(name)) continue;
    const path = `${devDir}/${name}`;
    const st = await stat(path).catch(() => null);
    if (!st || !st.isFile()) continue;
    out.push({ name, path, ...linuxNumbers(name), readonly: (st.mode & 0o222) === 0 });
  }
  return out;
}

/** The ext superblock of a device, or null (too small, unreadable, not ext). */
export async function readExtSuperblock(path: string): Promise<ExtSuperblock | null> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return null;
  try {
    const buf = new Uint8Array(1024);
    const { bytesRead } = await fh.read(buf, 0, 1024, EXT_SUPERBLOCK_OFFSET);
    return bytesRead === 1024 ? parseExtSuperblock(buf) : null;
  } catch {
    return null;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** An ISO 9660 primary volume descriptor at 32 KiB (sector 16 of 2 KiB): a CD's filesystem. */
export async function isIso9660(path: string): Promise<boolean> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return false;
  try {
    const b = new Uint8Array(6);
    const { bytesRead } = await fh.read(b, 0, 6, 16 * 2048);
    return bytesRead === 6 && b[0] === 1 && Buffer.from(b.subarray(1, 6)).toString('latin1') === 'CD001';
  } catch {
    return false;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Linux's complaint about an ext filesystem's group descriptors, or null when they are sane. */
export async function checkExtDescriptors(path: string): Promise<string | null> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return 'cannot open the device';
  try {
    const sb = new Uint8Array(1024);
    await fh.read(sb, 0, 1024, EXT_SUPERBLOCK_OFFSET);
    const span = groupDescriptorSpan(sb);
    if (!span) return 'unsupported block or descriptor size in the superblock';
    const gdt = new Uint8Array(span.bytes);
    const { bytesRead } = await fh.read(gdt, 0, span.bytes, span.offset);
    return checkGroupDescriptors(sb, gdt.subarray(0, bytesRead));
  } catch (e) {
    return (e as Error).message;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** The device `root` names, or null when none matches (yet). */
export async function findRootDevice(root: string, devDir = '/dev'): Promise<RootDevice | null> {
  const devices = await candidateDevices(devDir);
  const byLabel = /^LABEL=(.+)$/.exec(root);
  const byUuid = /^UUID=([0-9a-fA-F-]+)$/.exec(root);
  if (byLabel || byUuid) {
    for (const d of devices) {
      const sb = await readExtSuperblock(d.path);
      if (!sb) continue;
      if (byLabel && sb.label === byLabel[1]) return d;
      if (byUuid && sb.uuid.toLowerCase() === byUuid[1]!.toLowerCase()) return d;
    }
    return null;
  }
  const byNumber = /^([0-9]+):([0-9]+)$/.exec(root);
  if (byNumber) return devices.find((d) => d.major === Number(byNumber[1]) && d.minor === Number(byNumber[2])) ?? null;
  const name = root.replace(/^\/dev\//, '');
  return devices.find((d) => d.name === name) ?? null;
}

/** Linux's "List of all partitions" lines (major/minor in hex, size in 1K blocks). */
export async function partitionListing(devDir = '/dev'): Promise<string[]> {
  const lines: string[] = [];
  for (const d of await candidateDevices(devDir)) {
    const st = await stat(d.path).catch(() => null);
    const kb = st ? Math.floor(st.size / 1024) : 0;
    const num = ((d.major << 8) | (d.minor & 0xff)).toString(16).padStart(4, '0');
    lines.push(`${num} ${String(kb).padStart(14)} ${d.name} ${DEVICE_NAME.exec(d.name)?.[2] ? '' : ` driver: ${d.name.startsWith('xvd') ? 'vbd' : d.name.startsWith('hd') ? 'ide-disk' : 'sd'}`}`.trimEnd());
  }
  return lines;
}
