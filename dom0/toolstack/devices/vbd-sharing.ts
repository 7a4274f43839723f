// Who else uses a disk image: the check Xen's `block` hotplug script makes before it hands an
// image or block device to blkback (tools/hotplug/Linux/block, check_sharing), made here by
// the toolstack because xenode's blkback opens images itself. Modes as the script
// canonicalises them: 'w' (read-write: no other guest may have it at all), 'r' (read-only:
// no other guest may have it read-write), '!' (no checks). A block device mounted in dom0 is
// dom0's ("the privileged domain").
import { readFileSync, statSync } from 'node:fs';
import type { DeviceXs } from './device-store.js';
import { parseParams } from '../../backends/blkback/xenbus.js';

/** canonicalise_mode: r, w, ro, rw, w!, rw! ... -> 'r' | 'w' | '!'. */
export function canonicaliseMode(mode: string): 'r' | 'w' | '!' {
  if (!mode.includes('w')) return 'r';
  return mode.includes('!') ? '!' : 'w';
}

/** The file or device a vbd backend's params name, as blkback reads them (expand_dev). */
export function backingPath(type: string, params: string): string {
  const { path } = parseParams(type, params);
  return path === '' || path.startsWith('/') ? path : `/dev/${path}`;
}

function identity(path: string): string | null {
  try {
    const st = statSync(path);
    return st.isBlockDevice() ? `b${st.rdev}` : `f${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** do_ebusy's text. */
function ebusy(prefix: string, mode: 'r' | 'w', where: 'guest' | 'local'): string {
  const dom = where === 'guest' ? 'a guest ' : 'the privileged ';
  const when = where === 'guest' ? 'now' : 'by a guest';
  const [m1, m2] = mode === 'w' ? ['', ''] : ['read-write ', 'read-only '];
  return `${prefix}${m1}in ${dom}domain,\nand so cannot be mounted ${m2}${when}.`;
}

/**
 * Throws the block script's message when `domid` may not have the disk (`type`, `params`,
 * `mode` as its backend keys will say) because another guest, or dom0's own mounts, has it.
 */
export async function checkVbdSharing(xs: DeviceXs, domid: number, d: { type: string; params: string; mode: string }): Promise<void> {
  const mode = canonicaliseMode(d.mode);
  if (mode === '!') return;
  const path = backingPath(d.type, d.params);
  if (path === '') return; // an empty cdrom drive
  const id = identity(path);
  if (id === null) return; // blkback reports a path it cannot open, with its reason
  const block = id.startsWith('b');
  const prefix = block ? `Device ${path} is mounted ` : `File ${path} is mounted `;
  if (block) {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [dev, , , opts] = line.split(' ');
      if (!dev?.startsWith('/') || (mode === 'r' && /^ro(,|$)/.test(opts ?? ''))) continue;
      if (identity(dev) === id) throw new Error(ebusy(prefix, mode, 'local'));
    }
  }
  const base = '/local/domain/0/backend/vbd';
  for (const dom of await xs.directory(base).catch(() => [] as string[])) {
    if (Number(dom) === domid) continue; // same_vm: a domain may use its own disk twice
    for (const dev of await xs.directory(`${base}/${dom}`).catch(() => [] as string[])) {
      const read = (k: string) => xs.read(`${base}/${dom}/${dev}/${k}`).catch(() => '');
      const other = identity(backingPath(await read('type'), await read('params')));
      if (other !== id) continue;
      // A new writer tolerates no other user; a new reader no other writer ('w!' users
      // asked for no checks of their own, and are not counted as writers).
      if (mode === 'w' || canonicaliseMode(await read('mode')) === 'w') throw new Error(ebusy(prefix, mode, 'guest'));
    }
  }
}
