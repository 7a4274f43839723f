// blkback taking a disk over from a dom0 that died (docs/architecture.md, "dom0 restarts"):
// the requests the dead one took and had not answered where the frontend can see them are
// answered, once; the ones it had answered are not answered again, though it answered out of
// order; the ring then carries on. The dead backend's journal is written here as a dom0 killed
// at that moment leaves it.
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, BLKIF_SLOT_SIZE, blkifResponse } from '../../drivers/wire/blkif.js';
import { InflightJournal, journalPath } from '../../dom0/backends/blkback/inflight-journal.js';
import { Dom0, HostileDevice, rawRequest } from './hostile/harness.js';

let dom0: Dom0;
const devices: HostileDevice[] = [];
const savedRunDir = process.env.XENODE_RUN_DIR;

beforeEach(() => {
  dom0 = new Dom0();
  process.env.XENODE_RUN_DIR = dom0.dir;
});

afterEach(async () => {
  for (const d of devices.splice(0)) await d.backend.remove().catch(() => {});
  await dom0.close();
  if (savedRunDir === undefined) delete process.env.XENODE_RUN_DIR;
  else process.env.XENODE_RUN_DIR = savedRunDir;
});

const stamp = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);

describe('blkback after a dom0 restart', () => {
  it('answers exactly the requests the dead backend owed, then carries on', async () => {
    const d = await HostileDevice.create(dom0, { domid: 7, port: 11 });
    devices.push(d);
    await d.connect();
    const pa = d.allocPage();
    const pb = d.allocPage();
    const ga = d.grant(pa);
    const gb = d.grant(pb);

    // dom0 dies (nothing released) with two reads taken: B answered and pushed, A still at
    // the disk. B's answer sits at rsp_prod - 1, A's slot comes first in the ring.
    d.killBackend();
    const first = d.ring.reqProdPvt;
    d.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 0xaaan, sector: 40, segs: [{ gref: ga, first: 0, last: 0 }] }));
    d.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_READ, nseg: 1, id: 0xbbbn, sector: 50, segs: [{ gref: gb, first: 0, last: 0 }] }));
    d.ring.pushRequests();
    const view = d.ring.ring.view;
    const slot = (i: number) => new Uint8Array(view.buffer, view.byteOffset + d.ring.ring.slotOffset(i), BLKIF_SLOT_SIZE).slice();
    const j = new InflightJournal(journalPath(7, d.devid), d.ring.size);
    j.taken(first, slot(first));
    const eb = j.taken(first + 1, slot(first + 1));
    const rspAt = d.ring.ring.rspProd;
    j.answered(eb, rspAt);
    d.page(pb).set(new Uint8Array(new Uint32Array([50]).buffer)); // B's data, as the read left it
    blkifResponse.encode(view, d.ring.ring.slotOffset(rspAt), { id: 0xbbbn, operation: BLKIF_OP_READ, status: BLKIF_RSP_OKAY });
    Atomics.store(d.ring.ring.idx, 2, rspAt + 1); // RSP_PROD

    // The new dom0's blkback.
    await d.restartBackend();
    const got = await d.responses(2);
    expect(got.map((r) => r.id)).toEqual([0xbbbn, 0xaaan]);
    expect(got[1]!.status).toBe(BLKIF_RSP_OKAY);
    expect(stamp(d.page(pa))).toBe(40);
    expect(dom0.logs.join('\n')).toMatch(/answering 1 request\(s\) the previous dom0 took and did not answer/);
    await new Promise((r) => setTimeout(r, 100));
    expect(d.ring.unconsumedResponses()).toBe(0); // B was not answered twice

    // The ring carries on.
    const pc = d.allocPage();
    const gc = d.grant(pc, true);
    d.page(pc).fill(0x77, 0, 512);
    d.put((v, off) => rawRequest(v, off, { op: BLKIF_OP_WRITE, nseg: 1, id: 0xcccn, sector: 60, segs: [{ gref: gc, first: 0, last: 0 }] }));
    d.kick();
    const [c] = await d.responses(1);
    expect(c!.id).toBe(0xcccn);
    expect(c!.status).toBe(BLKIF_RSP_OKAY);
    expect(d.imageBytes()[60 * 512]).toBe(0x77);
  });

  it('with no journal to go by, the backend does not guess: the disk is closed and the guest crashed', async () => {
    const d = await HostileDevice.create(dom0, { domid: 8, port: 12 });
    devices.push(d);
    await d.connect();
    const crashed: unknown[] = [];
    (dom0.services as { hc: unknown }).hc = { invoke: async (op: string, args: unknown) => void crashed.push({ op, args }) };
    d.killBackend();
    rmSync(journalPath(8, d.devid), { force: true });
    await d.restartBackend();
    await d.waitFor('the guest crashed', () => crashed.length > 0);
    expect(crashed).toEqual([{ op: 'domctl.shutdown', args: { domid: 8, reason: 'crash' } }]);
    expect(dom0.logs.join('\n')).toMatch(/left no journal of the requests it owed/);
  });
});
