// blkback against a hostile frontend: every kind of bad request the issue lists, written as raw
// ring slots into "guest" memory the test owns, against the real backend on a real xenstored.
// Bad requests get an error answer and touch nothing; protocol violations halt only that
// ring; responses never carry stale bytes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  blkifSegment,
} from '../../../drivers/wire/blkif.js';
import { Dom0, HostileDevice, PAGE, rawIndirect, rawRequest } from './harness.js';
import { DEFAULT_BURST, DEFAULT_INTERVAL_MS } from '../../../common/log-ratelimit.js';

let dom0: Dom0;
const devices: HostileDevice[] = [];

beforeEach(() => {
  dom0 = new Dom0();
});

afterEach(async () => {
  for (const d of devices.splice(0)) await d.backend.remove().catch(() => {});
  await dom0.close();
});

async function device(o: Partial<Parameters<typeof HostileDevice.create>[1]> = {}): Promise<HostileDevice> {
  const d = await HostileDevice.create(dom0, { domid: 5, port: 9, ...o });
  devices.push(d);
  await d.connect();
  return d;
}

/** A page granted to dom0 (read-write unless `ro`). */
function page(d: HostileDevice, ro = false): { pfn: number; gref: number; bytes: Uint8Array } {
  const pfn = d.allocPage();
  return { pfn, gref: d.grant(pfn, ro), bytes: d.page(pfn) };
}

/** The sector number stamped at the start of each 512-byte sector of `bytes`. */
function stamps(bytes: Uint8Array, n: number): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [...Array(n).keys()].map((i) => v.getUint32(i * 512, true));
}

async function one(d: HostileDevice, r: Parameters<typeof rawRequest>[2]): Promise<number> {
  d.put((v, off) => rawRequest(v, off, r));
  d.kick();
  const [rsp] = await d.responses(1);
  expect(rsp!.id).toBe(r.id);
  expect(rsp!.operation).toBe(r.op);
  return rsp!.status;
}

describe('blkback: well-formed requests', () => {
  it('reads, writes, flushes, and serves indirect requests straight to and from granted frames', async () => {
    const d = await device();
    const a = page(d);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 1n, sector: 40, segs: [{ gref: a.gref, first: 0, last: 7 }] })).toBe(BLKIF_RSP_OKAY);
    expect(stamps(a.bytes, 8)).toEqual([40, 41, 42, 43, 44, 45, 46, 47]);

    const b = page(d, true); // the backend only reads a write's data: a read-only grant does
    b.bytes.fill(0x5a, 512, 1024);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 1, id: 2n, sector: 100, segs: [{ gref: b.gref, first: 1, last: 1 }] })).toBe(BLKIF_RSP_OKAY);
    const img = d.imageBytes();
    expect([...img.subarray(100 * 512, 101 * 512)].every((x) => x === 0x5a)).toBe(true);
    expect(img.readUInt32LE(101 * 512)).toBe(101);

    expect(await one(d, { op: BLKIF_OP_FLUSH_DISKCACHE, nseg: 0, id: 3n, sector: 0 })).toBe(BLKIF_RSP_OKAY);

    // 64 segments through one indirect descriptor page.
    const ind = page(d, true);
    const data = [...Array(64)].map(() => page(d));
    const dv = new DataView(ind.bytes.buffer, ind.bytes.byteOffset, PAGE);
    data.forEach((p, i) => blkifSegment.encode(dv, i * 8, { gref: p.gref, firstSect: 0, lastSect: 7 }));
    d.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_READ, nseg: 64, id: 4n, sector: 512, indirectGrefs: [ind.gref] }));
    d.kick();
    const [r] = await d.responses(1);
    expect(r).toMatchObject({ id: 4n, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY }); // answered with its own operation, as Linux blkback does
    expect(stamps(data[63]!.bytes, 8)).toEqual([1016, 1017, 1018, 1019, 1020, 1021, 1022, 1023]);

    const st = d.backend.stats!();
    expect(st).toMatchObject({ rd_req: 2, wr_req: 1, f_req: 1, indirect_req: 1, wr_sect: 1, errors: 0, halted: 0 });
    // No grant is still pinned once its request is answered.
    for (const p of [a, b, ind, ...data]) expect(d.gt.isInUse(p.gref)).toBe(false);
  });
});

describe('blkback: bad requests are refused and touch nothing', () => {
  it('nr_segments 0 or above 11', async () => {
    const d = await device();
    const before = d.imageBytes();
    const p = page(d);
    const segs = [...Array(11)].map(() => ({ gref: p.gref, first: 0, last: 0 }));
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 0, id: 10n, sector: 0 })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 0, id: 11n, sector: 0 })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 12, id: 12n, sector: 0, segs })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 255, id: 13n, sector: 0, segs })).toBe(BLKIF_RSP_ERROR);
    expect(d.imageBytes().equals(before)).toBe(true);
    // The ring still works.
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 14n, sector: 3, segs: [{ gref: p.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
    expect(d.backend.stats!()).toMatchObject({ invalid: 4, errors: 4, halted: 0 });
  });

  it('indirect requests with 0 segments, more than advertised, or when indirect is not offered', async () => {
    const d = await device({ opts: { maxIndirectSegments: 32 } });
    const ind = page(d, true);
    for (const [nseg, id] of [[0, 20n], [33, 21n], [4096, 22n]] as const) {
      d.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_READ, nseg, id, sector: 0, indirectGrefs: [ind.gref, ind.gref, ind.gref, ind.gref, ind.gref, ind.gref, ind.gref, ind.gref] }));
    }
    d.kick();
    expect((await d.responses(3)).map((r) => r.status)).toEqual([BLKIF_RSP_ERROR, BLKIF_RSP_ERROR, BLKIF_RSP_ERROR]);
    expect(await dom0.xs.read(`${d.be}/feature-max-indirect-segments`)).toBe('32');

    const plain = await device({ domid: 6, port: 10, opts: { maxIndirectSegments: 0 } });
    const ind2 = page(plain, true);
    plain.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 23n, sector: 0, indirectGrefs: [ind2.gref] }));
    plain.kick();
    expect((await plain.responses(1))[0]!.status).toBe(BLKIF_RSP_EOPNOTSUPP);
    expect(await dom0.xs.read(`${plain.be}/feature-max-indirect-segments`).catch(() => 'absent')).toBe('absent');
  });

  it('last_sect >= 8 or below first_sect, directly and inside indirect descriptors', async () => {
    const d = await device();
    const before = d.imageBytes();
    const p = page(d);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 1, id: 30n, sector: 0, segs: [{ gref: p.gref, first: 0, last: 8 }] })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 31n, sector: 0, segs: [{ gref: p.gref, first: 0, last: 255 }] })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 2, id: 32n, sector: 0, segs: [{ gref: p.gref, first: 0, last: 1 }, { gref: p.gref, first: 5, last: 4 }] })).toBe(BLKIF_RSP_ERROR);
    const ind = page(d, true);
    const dv = new DataView(ind.bytes.buffer, ind.bytes.byteOffset, PAGE);
    blkifSegment.encode(dv, 0, { gref: p.gref, firstSect: 0, lastSect: 7 });
    blkifSegment.encode(dv, 8, { gref: p.gref, firstSect: 3, lastSect: 9 });
    d.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_WRITE, nseg: 2, id: 33n, sector: 0, indirectGrefs: [ind.gref] }));
    d.kick();
    expect((await d.responses(1))[0]!.status).toBe(BLKIF_RSP_ERROR);
    expect(d.imageBytes().equals(before)).toBe(true);
  });

  it('sectors past the end of the disk, including a sector number that wraps u64', async () => {
    const d = await device({ sectors: 2048 });
    const p = page(d);
    const seg = [{ gref: p.gref, first: 0, last: 1 }];
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 40n, sector: 2047, segs: seg })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 1, id: 41n, sector: 4096, segs: seg })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 42n, sector: 0xffff_ffff_ffff_ffffn, segs: seg })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 43n, sector: 2046, segs: seg })).toBe(BLKIF_RSP_OKAY);
    expect(d.imageBytes().length).toBe(2048 * 512);
  });

  it('writes (and flushes) to a read-only disk', async () => {
    const d = await device({ readonly: true });
    expect(await dom0.xs.read(`${d.be}/info`)).toBe('4'); // VDISK_READONLY
    const before = d.imageBytes();
    const p = page(d);
    p.bytes.fill(0xee);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 1, id: 50n, sector: 0, segs: [{ gref: p.gref, first: 0, last: 7 }] })).toBe(BLKIF_RSP_ERROR);
    expect(await one(d, { op: BLKIF_OP_FLUSH_DISKCACHE, nseg: 1, id: 51n, sector: 0, segs: [{ gref: p.gref, first: 0, last: 7 }] })).toBe(BLKIF_RSP_ERROR);
    const ind = page(d, true);
    blkifSegment.encode(new DataView(ind.bytes.buffer, ind.bytes.byteOffset, PAGE), 0, { gref: p.gref, firstSect: 0, lastSect: 7 });
    d.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_WRITE, nseg: 1, id: 52n, sector: 0, indirectGrefs: [ind.gref] }));
    d.kick();
    expect((await d.responses(1))[0]!.status).toBe(BLKIF_RSP_ERROR);
    expect(d.imageBytes().equals(before)).toBe(true);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 53n, sector: 9, segs: [{ gref: p.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
    expect(stamps(p.bytes, 1)).toEqual([9]);
  });

  it('invalid, revoked, foreign and read-only grant refs; nothing stays pinned', async () => {
    const d = await device();
    const before = d.imageBytes();
    const seg = (gref: number) => [{ gref, first: 0, last: 7 }];
    // Out of the grant table's range.
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 60n, sector: 0, segs: seg(0xfffffff0) })).toBe(BLKIF_RSP_ERROR);
    // Never granted.
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 61n, sector: 0, segs: seg(900) })).toBe(BLKIF_RSP_ERROR);
    // Granted, then revoked before the request.
    const r = page(d);
    expect(d.gt.endAccess(r.gref)).toBe(true);
    expect(await one(d, { op: BLKIF_OP_WRITE, nseg: 1, id: 62n, sector: 0, segs: seg(r.gref) })).toBe(BLKIF_RSP_ERROR);
    // Granted to some other domain, not dom0.
    const pfn = d.allocPage();
    const other = d.gt.grantAccess(7, pfn, false);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 63n, sector: 0, segs: seg(other) })).toBe(BLKIF_RSP_ERROR);
    // A read would write into a read-only grant.
    const ro = page(d, true);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 64n, sector: 0, segs: seg(ro.gref) })).toBe(BLKIF_RSP_ERROR);
    expect([...ro.bytes].every((x) => x === 0)).toBe(true);
    // A good segment followed by a bad one: the good one's pin is dropped too.
    const good = page(d);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 2, id: 65n, sector: 0, segs: [...seg(good.gref), ...seg(901)] })).toBe(BLKIF_RSP_ERROR);
    for (const g of [good.gref, ro.gref, other]) expect(d.gt.isInUse(g)).toBe(false);
    expect(d.gt.endAccess(good.gref)).toBe(true); // the guest can take its page back
    expect(d.imageBytes().equals(before)).toBe(true);
    expect(d.backend.stats!()).toMatchObject({ halted: 0, errors: 6 });
  });

  it('unknown operations, write barriers and discards get EOPNOTSUPP', async () => {
    const d = await device();
    expect(await one(d, { op: BLKIF_OP_WRITE_BARRIER, nseg: 0, id: 70n, sector: 0 })).toBe(BLKIF_RSP_EOPNOTSUPP);
    expect(await one(d, { op: BLKIF_OP_DISCARD, nseg: 0, id: 71n, sector: 0 })).toBe(BLKIF_RSP_EOPNOTSUPP);
    expect(await one(d, { op: 4, nseg: 0, id: 72n, sector: 0 })).toBe(BLKIF_RSP_EOPNOTSUPP);
    expect(await one(d, { op: 0xff, nseg: 1, id: 73n, sector: 0 })).toBe(BLKIF_RSP_EOPNOTSUPP);
  });

  it('responses never leak bytes: the whole slot is zeroed before the response goes in', async () => {
    const d = await device();
    const p = page(d);
    // Garbage everywhere in the request slots, then a refused and a good request on top.
    const slots: number[] = [];
    for (const [id, good] of [[80n, false], [81n, true]] as const) {
      d.put((v, off) => {
        slots.push(off);
        for (let i = 0; i < 112; i++) v.setUint8(off + i, 0xaa);
        rawRequest(v, off, good ? { op: BLKIF_OP_READ, nseg: 1, id, sector: 0, segs: [{ gref: p.gref, first: 0, last: 7 }] } : { op: BLKIF_OP_READ, nseg: 0, id, sector: 0 });
        if (good) for (let i = 32; i < 112; i++) v.setUint8(off + i, 0xaa); // unused segment slots
      });
    }
    d.kick();
    const rs = await d.responses(2);
    const bytes = d.ring.ring.bytes;
    for (const r of rs) {
      const slot = bytes.subarray(r.off, r.off + 112);
      expect(slot[9]).toBe(0);
      expect([...slot.subarray(12, 112)].every((x) => x === 0)).toBe(true);
    }
    expect(rs.map((r) => r.status).sort()).toEqual([BLKIF_RSP_ERROR, BLKIF_RSP_OKAY].sort());
  });
});

describe('blkback: protocol violations halt only that ring', () => {
  it('req_prod claiming more requests than the ring holds disconnects that disk; another carries on', async () => {
    const bad = await device({ domid: 5, port: 9 });
    const good = await device({ domid: 6, port: 10 });
    const bp = page(bad);
    bad.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 1n, sector: 0, segs: [{ gref: bp.gref, first: 0, last: 0 }] }));
    bad.kick();
    await bad.responses(1);
    // rsp_prod is 1: claim 33 more requests in a 32-slot ring.
    Atomics.store(bad.ring.ring.idx, 0, 1 + 33);
    bad.ringBackend();
    await bad.waitFor('the bad disk to close', async () => (await bad.backendState()) === 5);
    expect(await dom0.xs.read(`${bad.be}/error`)).toMatch(/bogus ring requests/);
    expect(bad.backend.stats!()).toMatchObject({ halted: 1 });
    expect(bad.ring.unconsumedResponses()).toBe(0); // nothing answered from the garbage
    expect(bad.gt.isInUse(bp.gref)).toBe(false);

    const gp = page(good);
    expect(await one(good, { op: BLKIF_OP_READ, nseg: 1, id: 7n, sector: 77, segs: [{ gref: gp.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
    expect(stamps(gp.bytes, 1)).toEqual([77]);
    expect(await good.backendState()).toBe(4);
  });

  it('a request id reused while still in flight halts the ring', async () => {
    const d = await device();
    const other = await device({ domid: 6, port: 10 });
    const a = page(d);
    const b = page(d);
    // Two requests in one batch with the same id: the first is still at the disk when the
    // second is read.
    d.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 99n, sector: 0, segs: [{ gref: a.gref, first: 0, last: 7 }] }));
    d.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 99n, sector: 8, segs: [{ gref: b.gref, first: 0, last: 7 }] }));
    d.kick();
    await d.waitFor('the disk to close', async () => (await d.backendState()) === 5);
    expect(await dom0.xs.read(`${d.be}/error`)).toMatch(/reused while still in flight/);
    await d.waitFor('pins dropped', () => !d.gt.isInUse(a.gref) && !d.gt.isInUse(b.gref));
    const op = page(other);
    expect(await one(other, { op: BLKIF_OP_READ, nseg: 1, id: 99n, sector: 1, segs: [{ gref: op.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
  });
});

describe('blkback: persistent grants', () => {
  it('pins a frame once and keeps it until the disk disconnects', async () => {
    const d = await device({ persistent: true, opts: { persistent: true } });
    expect(await dom0.xs.read(`${d.be}/feature-persistent`)).toBe('1');
    const p = page(d);
    for (let i = 0n; i < 5n; i++) {
      expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: i, sector: Number(i), segs: [{ gref: p.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
    }
    expect(d.backend.stats!()).toMatchObject({ grant_maps: 1, persistent_grants: 1, rd_req: 5 });
    expect(d.gt.isInUse(p.gref)).toBe(true); // held, as Xen's persistent grants are
    expect(d.gt.endAccess(p.gref)).toBe(false); // so the guest cannot reuse the frame under it
    await d.detach();
    expect(d.gt.isInUse(p.gref)).toBe(false);
  });

  it('without persistent grants every request pins and unpins', async () => {
    const d = await device({ persistent: true, opts: { persistent: false } });
    const p = page(d);
    for (let i = 0n; i < 3n; i++) await one(d, { op: BLKIF_OP_READ, nseg: 1, id: i, sector: 0, segs: [{ gref: p.gref, first: 0, last: 0 }] });
    expect(d.backend.stats!()).toMatchObject({ grant_maps: 3, persistent_grants: 0 });
    expect(d.gt.isInUse(p.gref)).toBe(false);
  });
});

describe('blkback: event storms (XSA-332)', () => {
  it('a frontend ringing for nothing is held off, longer each time; its disk and the others keep working', async () => {
    const d = await device();
    const other = await device({ domid: 6, port: 10 });
    const port = dom0.bound.get(9)!;
    const op = page(other);
    let rings = 0;
    let otherServed = 0;
    const end = Date.now() + 1500;
    while (Date.now() < end) {
      for (let i = 0; i < 2000; i++, rings++) d.ringBackend(); // nothing on the ring
      // The other guest's disk meanwhile.
      expect(await one(other, { op: BLKIF_OP_READ, nseg: 1, id: BigInt(otherServed), sector: 3, segs: [{ gref: op.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
      otherServed++;
    }
    const st = d.stats();
    console.log(`blkback storm: ${rings} rings, ${st.notify_in} handled, ${st.events_spurious} spurious, ${st.event_throttles} hold-offs; other disk served ${otherServed} reads meanwhile`);
    const mine = dom0.holdOffs.filter((h) => h.port === port);
    expect(mine.length).toBeGreaterThan(3);
    expect(mine.slice(0, 4).map((h) => h.ms)).toEqual([1, 2, 4, 8]);
    expect(Math.max(...mine.map((h) => h.ms))).toBeLessThanOrEqual(100);
    expect(st.event_throttles).toBe(mine.length);
    expect(st.notify_in).toBeLessThan(rings / 10); // held off: most rings cost nothing
    expect(otherServed).toBeGreaterThan(5);
    expect(dom0.holdOffs.some((h) => h.port === dom0.bound.get(10))).toBe(false); // only the stormer
    // A storm is not fatal: the stormer's disk still answers, once it rings for real work.
    await new Promise((r) => setTimeout(r, 120));
    const p = page(d);
    expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: 1n, sector: 2, segs: [{ gref: p.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
    expect(stamps(p.bytes, 1)).toEqual([2]);
    expect(await d.backendState()).toBe(4);
  });

  it('a busy frontend is never held off', async () => {
    const d = await device();
    const p = page(d);
    for (let i = 0n; i < 200n; i++) {
      expect(await one(d, { op: BLKIF_OP_READ, nseg: 1, id: i, sector: Number(i % 8n), segs: [{ gref: p.gref, first: 0, last: 0 }] })).toBe(BLKIF_RSP_OKAY);
    }
    expect(d.stats().event_throttles).toBe(0);
  });
});

describe('blkback: bounded logs', () => {
  it('500 bad requests: every one answered, at most 10 log lines about them', async () => {
    const d = await device();
    const t0 = Date.now();
    for (let i = 0n; i < 500n; i++) expect(await one(d, { op: BLKIF_OP_READ, nseg: 0, id: i, sector: 0 })).toBe(BLKIF_RSP_ERROR);
    // 10 lines per 5 s window (printk_ratelimit's defaults): a slow, loaded run spans more windows.
    const windows = 1 + Math.floor((Date.now() - t0) / DEFAULT_INTERVAL_MS);
    const lines = dom0.logs.filter((l) => /refused request/.test(l)).length;
    expect(lines).toBeGreaterThanOrEqual(10);
    expect(lines).toBeLessThanOrEqual(DEFAULT_BURST * windows);
    expect(d.stats()).toMatchObject({ invalid: 500, req_bad_segments: 500 });
  });
});

describe('blkback: indirect descriptor pages behind bad grants', () => {
  it('invalid, never granted, revoked and foreign indirect pages: refused, nothing written, nothing pinned', async () => {
    const d = await device();
    const before = d.imageBytes();
    const data = page(d);
    data.bytes.fill(0x5a);
    /** An indirect page with one good descriptor (data page, sectors 0-7). */
    const descriptors = () => {
      const ind = page(d, true);
      blkifSegment.encode(new DataView(ind.bytes.buffer, ind.bytes.byteOffset, PAGE), 0, { gref: data.gref, firstSect: 0, lastSect: 7 });
      return ind;
    };
    const write = async (id: bigint, indirectGrefs: number[], nseg = 1) => {
      d.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_WRITE, nseg, id, sector: 0, indirectGrefs }));
      d.kick();
      const [r] = await d.responses(1);
      expect(r!.id).toBe(id);
      return r!.status;
    };
    expect(await write(100n, [0xfffffff0])).toBe(BLKIF_RSP_ERROR); // out of the table
    expect(await write(101n, [950])).toBe(BLKIF_RSP_ERROR); // never granted
    const revoked = descriptors();
    expect(d.gt.endAccess(revoked.gref)).toBe(true);
    expect(await write(102n, [revoked.gref])).toBe(BLKIF_RSP_ERROR);
    const foreignPfn = d.allocPage();
    const foreign = d.gt.grantAccess(7, foreignPfn, true); // granted, but to domain 7
    expect(await write(103n, [foreign])).toBe(BLKIF_RSP_ERROR);
    // 600 segments need two descriptor pages: a good first page and a bad second one.
    const first = descriptors();
    expect(await write(104n, [first.gref, 951], 600)).toBe(BLKIF_RSP_ERROR);
    expect(d.imageBytes().equals(before)).toBe(true);
    for (const g of [first.gref, foreign, data.gref]) expect(d.gt.isInUse(g)).toBe(false);
    // The same request with a good page goes through.
    expect(await write(105n, [descriptors().gref])).toBe(BLKIF_RSP_OKAY);
    expect(d.imageBytes().subarray(0, 4096).every((x) => x === 0x5a)).toBe(true);
    expect(d.stats()).toMatchObject({ halted: 0, errors: 5 });
  });
});

describe('blkback: double fetches (a frontend rewriting what the backend already took)', () => {
  /** Two writes published together, so both go to the disk asynchronously and are in flight
   * when the test rewrites their slots. */
  it('rewriting ring slots while their requests are in flight changes nothing', async () => {
    const d = await device();
    const a = page(d);
    const b = page(d);
    const decoy = page(d);
    a.bytes.fill(0xa1);
    b.bytes.fill(0xb2);
    decoy.bytes.fill(0xdd);
    const slots: number[] = [];
    for (const [id, p, sector] of [[200n, a, 16], [201n, b, 24]] as const) {
      d.put((v, off) => {
        slots.push(off);
        rawRequest(v, off, { op: BLKIF_OP_WRITE, nseg: 1, id, sector, segs: [{ gref: p.gref, first: 0, last: 7 }] });
      });
    }
    d.kick();
    // The backend has taken both: now the frontend rewrites every field of both slots.
    const v = d.ring.ring.view;
    for (const off of slots) {
      rawRequest(v, off, {
        op: BLKIF_OP_READ, nseg: 11, id: 999n, sector: 0,
        segs: [...Array(11)].map(() => ({ gref: decoy.gref, first: 0, last: 7 })),
      });
    }
    const rs = await d.responses(2);
    expect(rs.map((r) => [r.id, r.operation, r.status]).sort()).toEqual([[200n, BLKIF_OP_WRITE, BLKIF_RSP_OKAY], [201n, BLKIF_OP_WRITE, BLKIF_RSP_OKAY]]);
    const img = d.imageBytes();
    expect(img.subarray(16 * 512, 24 * 512).every((x) => x === 0xa1)).toBe(true);
    expect(img.subarray(24 * 512, 32 * 512).every((x) => x === 0xb2)).toBe(true);
    expect(stamps(img.subarray(0, 4096), 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]); // sector 0 untouched
    expect(decoy.bytes.every((x) => x === 0xdd)).toBe(true); // no read landed in the decoy
    expect(d.gt.isInUse(decoy.gref)).toBe(false);
  });

  it('rewriting an indirect descriptor page after the backend took it changes nothing', async () => {
    const d = await device();
    const data = page(d);
    const decoy = page(d);
    data.bytes.fill(0x77);
    decoy.bytes.fill(0xdd);
    const ind = page(d, true);
    const dv = new DataView(ind.bytes.buffer, ind.bytes.byteOffset, PAGE);
    blkifSegment.encode(dv, 0, { gref: data.gref, firstSect: 0, lastSect: 7 });
    const other = page(d);
    d.put((v, off) => rawIndirect(v, off, { op: BLKIF_OP_WRITE, nseg: 1, id: 300n, sector: 40, indirectGrefs: [ind.gref] }));
    d.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 301n, sector: 1, segs: [{ gref: other.gref, first: 0, last: 0 }] }));
    d.kick();
    // Now: point the descriptor at the decoy, and make it one the checks would refuse.
    blkifSegment.encode(dv, 0, { gref: decoy.gref, firstSect: 3, lastSect: 200 });
    const rs = await d.responses(2);
    expect(rs.map((r) => [r.id, r.status]).sort()).toEqual([[300n, BLKIF_RSP_OKAY], [301n, BLKIF_RSP_OKAY]]);
    const img = d.imageBytes();
    expect(img.subarray(40 * 512, 48 * 512).every((x) => x === 0x77)).toBe(true); // the data page, as validated
    expect(decoy.bytes.every((x) => x === 0xdd)).toBe(true);
    expect(d.gt.isInUse(decoy.gref) || d.gt.isInUse(ind.gref)).toBe(false);
    expect(d.stats()).toMatchObject({ halted: 0, errors: 0, indirect_req: 1 });
  });
});
