// on_crash=coredump-*: write the guest's memory to a file, as `xl dump-core` does, keeping it
// sparse (untouched pages stay holes), so a 1 GiB guest that used 40 MiB costs 40 MiB of disk.
import { closeSync, mkdirSync, openSync, ftruncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { libDir } from '../../common/paths.js';

const PAGE = 4096;

function pageIsZero(mem: Uint8Array, off: number): boolean {
  const words = new BigUint64Array(mem.buffer, mem.byteOffset + off, PAGE / 8);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  return true;
}

export function dumpCore(name: string, domid: number, memory: SharedArrayBuffer): string {
  const dir = join(libDir(), 'dump');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const path = join(dir, `${stamp}-${name}.${domid}.core`);
  dumpCoreTo(path, memory);
  return path;
}

/** The guest's memory, page for page from guest-physical address 0 (a raw image, not Xen's
 * ELF core format), to `path`. */
export function dumpCoreTo(path: string, memory: SharedArrayBuffer): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    const mem = new Uint8Array(memory);
    ftruncateSync(fd, mem.length);
    for (let off = 0; off < mem.length; off += PAGE) {
      if (!pageIsZero(mem, off)) writeSync(fd, mem, off, PAGE, off);
    }
  } finally {
    closeSync(fd);
  }
}
