// Host uid ranges for domains and stub domains: each gets 65536 uids (guest root is the first)
// that nothing else on the host uses. Two rules make that true:
//  - Ranges come from a pool that must not overlap /etc/subuid or /etc/subgid (what useradd
//    gives users for rootless containers): checked when the hypervisor starts, with an error
//    naming the entry.
//  - A range is held, host-wide, by whoever took it: a listening abstract unix socket named
//    after the range ("\0xenode-uid-range-<first uid>"). Binding a name is atomic, a second
//    binder gets EADDRINUSE, and the kernel drops the name when its holder closes it or dies,
//    so two xenode instances on one host never share a range and a crashed instance leaves
//    nothing stale to clean. (Abstract names belong to a network namespace: instances started
//    in different network namespaces do not see each other's claims.)
import { createServer, type Server } from 'node:net';
import { readFileSync } from 'node:fs';
import { native } from '../native/index.js';

/** uids per domain, as Linux container tools allocate them. */
export const UID_RANGE = 65_536;

/** The default pool, 0x70000000 up to 0x7FFE0000 (4094 ranges): above what useradd hands out
 * (SUB_UID_MIN 100000 to SUB_UID_MAX 600100000) and above the container ranges systemd-nspawn
 * picks from (0x00080000-0x6FFFFFFF), below 2^31 (signed uid_t bugs) and systemd's foreign
 * range at 0x7FFE0000. */
export const DEFAULT_POOL = { first: 0x7000_0000, last: 0x7ffd_ffff } as const;

export interface UidPool {
  /** First uid of the pool (a range starts there). */
  first: number;
  /** Last uid of the pool, inclusive. */
  last: number;
}

export interface UidRange {
  /** The range's first host uid (and gid): root of the domain's user namespace. */
  readonly base: number;
  readonly count: number;
  release(): void;
  /** A copy of the claim's socket: the range stays claimed while any copy is open (so a
   * holder can leave one with another process, as dom0 does with the hypervisor). */
  dupClaim(): number;
}

/** The pool `XENODE_GUEST_UIDS=FIRST-LAST` names, or the default. */
export function uidPoolFromEnv(env: NodeJS.ProcessEnv = process.env): UidPool {
  const v = env.XENODE_GUEST_UIDS;
  if (v === undefined || v === '') return { ...DEFAULT_POOL };
  const m = /^(\d+)-(\d+)$/.exec(v.trim());
  if (!m) throw new Error(`XENODE_GUEST_UIDS=${JSON.stringify(v)}: want FIRST-LAST (host uids, e.g. ${DEFAULT_POOL.first}-${DEFAULT_POOL.last})`);
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 65_536 || last > 0xfffffffd || last - first + 1 < UID_RANGE) {
    throw new Error(`XENODE_GUEST_UIDS=${v}: the pool must lie within 65536-4294967293 and hold at least one range of ${UID_RANGE} uids`);
  }
  return { first, last };
}

export interface SubordinateEntry {
  file: string;
  line: number;
  owner: string;
  first: number;
  count: number;
}

/** The entries of a subuid/subgid file (`owner:first:count`); a missing file has none. */
export function readSubordinateIds(file: string): SubordinateEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const out: SubordinateEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [owner, first, count] = line.split(':');
    if (owner === undefined || !/^\d+$/.test(first ?? '') || !/^\d+$/.test(count ?? '')) {
      throw new Error(`${file} line ${i + 1}: ${JSON.stringify(line.slice(0, 80))} is not owner:first:count`);
    }
    out.push({ file, line: i + 1, owner, first: Number(first), count: Number(count) });
  });
  return out;
}

/** Refuse a pool that overlaps a subordinate id range: a user's rootless containers would
 * share uids with guests. The files can be moved for tests (XENODE_SUBUID_FILE, _SUBGID_). */
export function checkPoolAgainstSubordinateIds(pool: UidPool, env: NodeJS.ProcessEnv = process.env): void {
  const files = [env.XENODE_SUBUID_FILE || '/etc/subuid', env.XENODE_SUBGID_FILE || '/etc/subgid'];
  for (const file of files) {
    for (const e of readSubordinateIds(file)) {
      const last = e.first + e.count - 1;
      if (e.count > 0 && e.first <= pool.last && last >= pool.first) {
        throw new Error(
          `guest uid pool ${pool.first}-${pool.last} overlaps ${e.file} line ${e.line} (${e.owner}: ${e.first}-${last}); ` +
            `choose another pool with XENODE_GUEST_UIDS=FIRST-LAST or move that entry`,
        );
      }
    }
  }
}

const held = new Set<number>();

function listenAbstract(name: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(null) : reject(e)));
    server.listen({ path: `\0${name}` }, () => {
      server.removeAllListeners('error');
      server.unref();
      resolve(server);
    });
  });
}

/** Takes a free range from the pool, host-wide; `release()` gives it back. */
export async function claimUidRange(pool: UidPool): Promise<UidRange> {
  const ranges = Math.floor((pool.last - pool.first + 1) / UID_RANGE);
  for (let i = 0; i < ranges; i++) {
    const base = pool.first + i * UID_RANGE;
    if (held.has(base)) continue;
    held.add(base);
    const server = await listenAbstract(`xenode-uid-range-${base}`).catch((e: Error) => {
      held.delete(base);
      throw new Error(`claiming host uids ${base}-${base + UID_RANGE - 1}: ${e.message}`);
    });
    if (!server) {
      held.delete(base);
      continue;
    }
    return heldRange(base, () => server.close(), () => {
      const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
      if (fd < 0) throw new Error(`the claim on host uids ${base}-${base + UID_RANGE - 1} has no descriptor`);
      return native().dup(fd);
    });
  }
  throw new Error(`no free uid range: all ${ranges} ranges of the pool ${pool.first}-${pool.last} are in use on this host`);
}

/** A range an earlier holder claimed, whose claim socket `fd` it left behind (a dom0 that died
 * left its stub domains' with the hypervisor): held here until `release()` closes it. */
export function adoptUidRange(base: number, fd: number): UidRange {
  held.add(base);
  return heldRange(base, () => native().close(fd), () => native().dup(fd));
}

/** A range held here (in `held`) through a claim that `close` gives up. */
function heldRange(base: number, close: () => void, dupClaim: () => number): UidRange {
  let released = false;
  return {
    base,
    count: UID_RANGE,
    release: () => {
      if (released) return;
      released = true;
      close();
      held.delete(base);
    },
    dupClaim,
  };
}
