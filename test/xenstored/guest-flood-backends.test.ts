// The flood of guest-flood.test.ts against the real dom0 stack: the real hypervisor core,
// xenstored, backend bus, netback (a real TAP on a private bridge with a LAN host) and
// blkback (a real image file). A hostile guest commits 700 long-path nodes under the frontend
// `state` node of its own vif, then of its own vbd (both watched by dom0's backends), over its
// own unprivileged xenstore connection. Another guest's vif (the real netfront, its eth0 in a
// namespace of its own) and vbd (a plain blkif frontend over real grants and event channels)
// still carry data afterwards, and new devices still connect: dom0's xenstore connection,
// which every backend shares, was never dropped.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetHarness, until, type Guest } from '../net/hostile/harness.js';
import { netShouldSkip } from '../helpers/lan.js';
import { floodTransaction } from '../helpers/xenstore-flood.js';
import { EventChannels } from '../../drivers/evtchn/event-channels.js';
import { FrontRing, SharedRing } from '../../drivers/ring/shared-ring.js';
import { BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, BLKIF_SLOT_SIZE, blkifResponse } from '../../drivers/wire/blkif.js';
import { blkbackBackend } from '../../dom0/backends/blkback/xenbus.js';
import { addDevice } from '../../dom0/toolstack/devices/device-store.js';
import { diskDeviceEntries } from '../../dom0/toolstack/devices/vbd.js';
import { parseDiskSpec } from '../../dom0/toolstack/config/disk-spec.js';
import { vdevToDevid } from '../../common/vdev-number.js';
import { rawRequest } from '../block/hostile/harness.js';

const PAGE = 4096;
const GOOD_IP = '198.18.3.2/15';

/** A well-behaved blkif frontend, one request at a time. */
class SimpleBlkfront {
  ring!: FrontRing;
  port = 0;
  private nextId = 1n;
  readonly fe: string;
  readonly be: string;

  constructor(
    readonly h: NetHarness,
    readonly g: Guest,
    readonly evtchn: EventChannels,
    readonly vdev: string,
  ) {
    this.fe = `/local/domain/${g.domid}/device/vbd/${vdevToDevid(vdev)}`;
    this.be = `/local/domain/0/backend/vbd/${g.domid}/${vdevToDevid(vdev)}`;
  }

  async attach(image: string): Promise<void> {
    await addDevice(this.h.xs, this.g.domid, diskDeviceEntries(parseDiskSpec(`${image},raw,${this.vdev},w`), vdevToDevid(this.vdev)));
    await until(`${this.vdev} backend InitWait`, async () => (await this.h.xs.read(`${this.be}/state`).catch(() => '')) === '2');
    const pfn = this.g.pages.alloc();
    new Uint8Array(this.g.memory, pfn * PAGE, PAGE).fill(0);
    this.ring = new FrontRing(new SharedRing(this.g.memory, pfn * PAGE, BLKIF_SLOT_SIZE));
    const ref = this.g.grants.grantAccess(0, pfn, false);
    this.port = await this.evtchn.allocUnbound(0);
    this.evtchn.on(this.port, () => {});
    const xs = this.g.xs;
    await xs.write(`${this.fe}/ring-ref`, String(ref));
    await xs.write(`${this.fe}/event-channel`, String(this.port));
    await xs.write(`${this.fe}/protocol`, 'x86_64-abi');
    await xs.write(`${this.fe}/state`, '3');
    await until(`${this.vdev} backend Connected`, async () => (await this.h.xs.read(`${this.be}/state`).catch(() => '')) === '4');
    await xs.write(`${this.fe}/state`, '4');
  }

  /** One 4 KiB request at `sector` (8 sectors); resolves with the page's bytes. */
  async io(op: number, sector: number, fill?: Uint8Array): Promise<Uint8Array> {
    const pfn = this.g.pages.alloc();
    const page = new Uint8Array(this.g.memory, pfn * PAGE, PAGE);
    page.fill(0);
    if (fill) page.set(fill);
    const gref = this.g.grants.grantAccess(0, pfn, op === BLKIF_OP_WRITE);
    const id = this.nextId++;
    const off = this.ring.nextRequestSlot();
    rawRequest(this.ring.ring.view, off, { op, nseg: 1, id, sector, segs: [{ gref, first: 0, last: 7 }] });
    this.ring.pushRequests();
    this.evtchn.notify(this.port);
    await until(`${this.vdev} response`, () => this.ring.unconsumedResponses() > 0, 5000);
    const rsp = blkifResponse.decode(this.ring.takeResponse(), 0);
    expect(rsp.id).toBe(id);
    expect(rsp.status).toBe(BLKIF_RSP_OKAY);
    const out = page.slice();
    this.g.grants.endAccess(gref);
    this.g.pages.release(pfn);
    return out;
  }
}

describe.skipIf(netShouldSkip())("a guest's xenstore flood leaves every backend working", () => {
  const h = new NetHarness('xsflood');
  let good: Awaited<ReturnType<NetHarness['goodGuest']>>;
  let flooder: Guest;
  let disk: SimpleBlkfront;
  let image = '';

  beforeAll(async () => {
    await h.start();
    h.bus.register('vbd', blkbackBackend);
    good = await h.goodGuest('victim', GOOD_IP);
    flooder = await h.createGuest('flooder');
    image = join(h.dir, 'disk.img');
    const bytes = Buffer.alloc(4 << 20);
    for (let s = 0; s < bytes.length / 512; s++) bytes.writeUInt32LE(s, s * 512); // each sector starts with its number
    writeFileSync(image, bytes);
    disk = new SimpleBlkfront(h, good.guest, new EventChannels(good.guest.hc), 'xvda');
    await disk.attach(image);
    // The flooder's own devices: their backends wait in InitWait, watching its state nodes.
    await h.addVif(flooder.domid, 0);
    await addDevice(h.xs, flooder.domid, diskDeviceEntries(parseDiskSpec(`${image},raw,xvda,r`), vdevToDevid('xvda')));
    await until('the flooder\'s backends', async () => (await h.backendState(flooder.domid, 0)) === 2 && (await h.xs.read(`/local/domain/0/backend/vbd/${flooder.domid}/${vdevToDevid('xvda')}/state`).catch(() => '')) === '2');
  }, 60_000);

  afterAll(() => h.stop(), 60_000);

  it('before: the vif reaches the LAN and the vbd reads its image', async () => {
    const r = await good.exec(['ping', '-c', '2', '-i', '0.1', '-W', '2', h.lan.host]);
    expect(r.code, r.out).toBe(0);
    expect(Buffer.from(await disk.io(BLKIF_OP_READ, 16)).readUInt32LE(0)).toBe(16);
  });

  it("after 700 long-path nodes under the flooder's vif state, then its vbd state, the vif and vbd still carry data", async () => {
    const f = flooder;
    const vifState = `/local/domain/${f.domid}/device/vif/0/state`;
    expect(await floodTransaction(f.xs, f.domid, vifState)).toBeGreaterThan(1 << 20);
    await f.xs.rm(`${vifState}/${(await f.xs.directory(vifState))[0]}`); // its nodes quota holds one flood at a time
    const vbdState = `/local/domain/${f.domid}/device/vbd/${vdevToDevid('xvda')}/state`;
    expect(await floodTransaction(f.xs, f.domid, vbdState)).toBeGreaterThan(1 << 20);
    const g = good.guest;

    const r = await good.exec(['ping', '-c', '3', '-i', '0.1', '-W', '2', h.lan.host]);
    expect(r.code, `${r.out}\n${h.logs.join('\n')}`).toBe(0);
    const data = new Uint8Array(PAGE).fill(0xa5);
    await disk.io(BLKIF_OP_WRITE, 64, data);
    expect(await disk.io(BLKIF_OP_READ, 64)).toEqual(data);
    expect(Buffer.from(await disk.io(BLKIF_OP_READ, 8)).readUInt32LE(0)).toBe(8);
    // No backend state moved: the floods changed no state a backend acts on.
    expect(await h.backendState(g.domid, 0)).toBe(4);
    expect(await h.xs.read(`${disk.be}/state`)).toBe('4');
    expect(await h.backendState(f.domid, 0)).toBe(2);
  });

  it('after the flood, dom0 still serves new devices: a second disk connects and reads', async () => {
    const second = new SimpleBlkfront(h, good.guest, disk.evtchn, 'xvdb');
    await second.attach(image);
    expect(Buffer.from(await second.io(BLKIF_OP_READ, 24)).readUInt32LE(0)).toBe(24);
  });
});
