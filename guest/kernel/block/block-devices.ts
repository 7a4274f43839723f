// The guest kernel's table of block devices: every disk and partition its drivers expose in
// /dev (blkfront's /dev/xvda, /dev/xvda1 ...; the HVM IDE driver's /dev/hda ...), with Linux's
// device numbers. Linux keeps the same table (block/genhd.c); it is what /proc/partitions
// lists, and what `root=/dev/...`, `root=LABEL=` and `root=UUID=` are resolved against.
//
// Drivers register a device once its FUSE file is mounted and unregister it before the file
// goes; readers get a snapshot in registration order (disks before their partitions).

export interface BlockDevice {
  /** Name under /dev: "xvda", "xvda1", "hda2". */
  name: string;
  /** Linux's numbers: xvd* major 202 (16 minors per disk), hd* majors 3/22/33..., sd* 8. */
  major: number;
  minor: number;
  /** Size in 512-byte sectors. */
  sectors: number;
  readonly: boolean;
  /** The whole disk's name for a partition; undefined for a whole disk. */
  parent?: string;
  /** Path of the device file in the guest kernel's own mount namespace. */
  path: string;
  /** A partition's PARTUUID and PARTLABEL (root=PARTUUID=...), as Linux forms them: the GPT
   * entry's unique GUID and name, or "<MBR disk signature>-<NN>". */
  partUuid?: string;
  partLabel?: string;
  /** A second file over the same bytes for the kernel's own filesystem driver (the root's
   * fuse2fs), with the page cache in write-back mode (disk-files.ts says why): made on the
   * first call, its path returned. Absent where the driver offers none. */
  driverFile?: () => Promise<string>;
}

const devices = new Map<string, BlockDevice>();
const listeners = new Set<() => void>();

export function registerBlockDevice(d: BlockDevice): void {
  devices.set(d.name, { ...d });
  for (const l of listeners) l();
}

export function unregisterBlockDevice(name: string): void {
  if (devices.delete(name)) for (const l of listeners) l();
}

export function blockDevices(): BlockDevice[] {
  return [...devices.values()].map((d) => ({ ...d }));
}

export function blockDevice(name: string): BlockDevice | undefined {
  const d = devices.get(name);
  return d ? { ...d } : undefined;
}

/** Called after every change (a disk or partition came or went). Returns an unsubscribe. */
export function onBlockDevicesChanged(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The lowest minor of major 259 (BLOCK_EXT_MAJOR) no registered device has: Linux's
 * blk_alloc_ext_minor(), for partitions numbered past their disk's own minors. */
export function freeExtMinor(extMajor: number): number {
  const used = new Set([...devices.values()].filter((d) => d.major === extMajor).map((d) => d.minor));
  let m = 0;
  while (used.has(m)) m++;
  return m;
}
