// Guests' host uids (issue 19, item 8): each domain's 65536 uids are claimed host-wide from a
// pool, so two xenode instances on one host never share a guest uid, and a pool that overlaps
// /etc/subuid or /etc/subgid (users' rootless containers) is refused with the entry named.
// The subuid files are temporary ones (XENODE_SUBUID_FILE / _SUBGID_FILE): the host's are
// never touched.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Instance, ROOT, shouldSkip } from '../helpers/instance.js';
import { rpcCall } from '../../dom0/toolstack/rpc.js';
import { checkPoolAgainstSubordinateIds, claimUidRange, DEFAULT_POOL, readSubordinateIds, UID_RANGE, uidPoolFromEnv } from '../../common/uid-ranges.js';

const scratch = mkdtempSync(join(tmpdir(), 'xenode-uids-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(scratch, name);
  writeFileSync(p, text);
  return p;
}

/** A small pool of its own per test, far from the default, so no running xenode is in the way. */
const pool = (index: number, ranges: number) => ({ first: 0x6000_0000 + index * 16 * UID_RANGE, last: 0x6000_0000 + index * 16 * UID_RANGE + ranges * UID_RANGE - 1 });

describe('guest uid pool and subordinate ids', () => {
  it('refuses a pool overlapping /etc/subuid or /etc/subgid, naming the entry', () => {
    const subuid = file('subuid', `# users\nalice:100000:65536\nbob:${DEFAULT_POOL.first + 5 * UID_RANGE}:65536\n`);
    const subgid = file('subgid', 'alice:100000:65536\n');
    const env = { XENODE_SUBUID_FILE: subuid, XENODE_SUBGID_FILE: subgid };
    expect(() => checkPoolAgainstSubordinateIds(DEFAULT_POOL, env)).toThrow(
      `guest uid pool ${DEFAULT_POOL.first}-${DEFAULT_POOL.last} overlaps ${subuid} line 3 (bob: ${DEFAULT_POOL.first + 5 * UID_RANGE}-${DEFAULT_POOL.first + 6 * UID_RANGE - 1}); choose another pool with XENODE_GUEST_UIDS=FIRST-LAST or move that entry`,
    );
    // useradd's usual entries (from 100000 up) leave the default pool alone.
    expect(() => checkPoolAgainstSubordinateIds(DEFAULT_POOL, { XENODE_SUBUID_FILE: subgid, XENODE_SUBGID_FILE: subgid })).not.toThrow();
    // ... but not a pool someone set over them.
    expect(() => checkPoolAgainstSubordinateIds({ first: 65536, last: 65536 * 3 - 1 }, { XENODE_SUBUID_FILE: join(scratch, 'none'), XENODE_SUBGID_FILE: subgid })).toThrow(/overlaps .*subgid line 1 \(alice: 100000-165535\)/);
    // A file that is not a subuid file says where.
    expect(() => readSubordinateIds(file('bad', 'alice:100000:65536\nnot a line\n'))).toThrow(/bad line 2: "not a line" is not owner:first:count/);
  });

  it('reads XENODE_GUEST_UIDS, refusing what cannot be a pool', () => {
    expect(uidPoolFromEnv({})).toEqual(DEFAULT_POOL);
    expect(uidPoolFromEnv({ XENODE_GUEST_UIDS: '1000000-1131071' })).toEqual({ first: 1_000_000, last: 1_131_071 });
    expect(() => uidPoolFromEnv({ XENODE_GUEST_UIDS: '0-65535' })).toThrow(/must lie within 65536-4294967293/);
    expect(() => uidPoolFromEnv({ XENODE_GUEST_UIDS: 'lots' })).toThrow(/want FIRST-LAST/);
  });

  it('hands out each range once on this host, in this process and across processes', async () => {
    const p = pool(0, 3);
    // Another process (another xenode) holds the first range.
    const other = spawn(process.execPath, ['--input-type=module', '-e', `
      const { claimUidRange } = await import(${JSON.stringify(join(ROOT, 'dist', 'common', 'uid-ranges.js'))});
      const r = await claimUidRange(${JSON.stringify(p)});
      console.log(r.base);
      setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const theirs = await new Promise<number>((resolve) => other.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
      expect(theirs).toBe(p.first);
      const a = await claimUidRange(p);
      const b = await claimUidRange(p);
      expect([a.base, b.base]).toEqual([p.first + UID_RANGE, p.first + 2 * UID_RANGE]);
      await expect(claimUidRange(p)).rejects.toThrow(`no free uid range: all 3 ranges of the pool ${p.first}-${p.last} are in use on this host`);
      // Given back, a range is free again; so is one whose holder died.
      a.release();
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
      await new Promise((r) => setTimeout(r, 50));
      const c = await claimUidRange(p);
      const d = await claimUidRange(p);
      expect([c.base, d.base].sort()).toEqual([p.first, p.first + UID_RANGE]);
      for (const r of [b, c, d]) r.release();
    } finally {
      other.kill('SIGKILL');
    }
  });
});

describe.skipIf(shouldSkip())('guest uids across xenode instances', () => {
  const one = new Instance('uids-one');
  const two = new Instance('uids-two');
  const refused = new Instance('uids-overlap');
  afterAll(async () => {
    for (const xn of [one, two, refused]) await xn.stop();
  }, 60_000);

  /** The host uid of a domain's guest root: its kernel, the jailer's child. */
  const guestRootUid = async (xn: Instance, name: string) => {
    const infos = await rpcCall<{ name: string; pid: number }[]>(join(xn.dir, 'run', 'toolstack.sock'), 'list');
    const jailer = infos.find((i) => i.name === name)!.pid;
    const kernel = readFileSync(`/proc/${jailer}/task/${jailer}/children`, 'utf8').trim().split(/\s+/)[0];
    return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${kernel}/status`, 'utf8'))![1]);
  };

  it('gives the guests of two instances disjoint uid ranges, though both are domain 1', async () => {
    await one.start();
    await two.start();
    expect(await one.create('g')).toBe(1);
    expect(await two.create('g')).toBe(1);
    const [u1, u2] = [await guestRootUid(one, 'g'), await guestRootUid(two, 'g')];
    expect(Math.abs(u1 - u2)).toBeGreaterThanOrEqual(UID_RANGE);
    for (const u of [u1, u2]) {
      expect(u).toBeGreaterThanOrEqual(DEFAULT_POOL.first);
      expect(u + UID_RANGE - 1).toBeLessThanOrEqual(DEFAULT_POOL.last);
    }
  }, 60_000);

  it('refuses to start when the pool overlaps /etc/subuid, saying which entry', async () => {
    const subuid = file('subuid-overlap', `carol:${DEFAULT_POOL.first}:65536\n`);
    refused.env.XENODE_SUBUID_FILE = subuid;
    refused.env.XENODE_SUBGID_FILE = join(scratch, 'no-subgid');
    const r = await refused.xenode('start');
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain(`guest uid pool ${DEFAULT_POOL.first}-${DEFAULT_POOL.last} overlaps ${subuid} line 1 (carol: ${DEFAULT_POOL.first}-${DEFAULT_POOL.first + UID_RANGE - 1})`);
  }, 30_000);
});
