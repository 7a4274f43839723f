// dom0 can die and come back (docs/architecture.md, "dom0 restarts"): kill -9 of dom0 while a
// guest moves network traffic and fsyncs disk records does not take the guest down. The
// hypervisor starts a new dom0, which carries on from xenstored's live state, takes the guest
// over and reconnects its vif and its disk: pings from the LAN are answered again within
// seconds, every record the guest saw fsync'ed is in the image, `xl list` and `xl console`
// work, and a guest created afterwards works; an HVM guest, whose stub domain outlives dom0,
// is taken over too (test/hvm-e2e/hvm-dom0-restart.test.ts shows it at work). dom0 dying in a
// loop stops everything, with a message, as before.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { TestLan, netShouldSkip } from '../helpers/lan.js';
import { dom0Pid, killDom0UntilStopped, sleep } from '../helpers/platform.js';
import { XlConsole } from '../helpers/xl-console.js';

const GUEST_IP = '198.18.1.40';
const RECORDS = 300;
const BLOBS = 60;

describe.skipIf(shouldSkip() || netShouldSkip())('dom0 restart', () => {
  const xn = new Instance('d0live');
  const lanDir = mkdtempSync(join(tmpdir(), 'xenode-test-d0live-lan-'));
  const lan = new TestLan('d0live', lanDir);
  const image = join(xn.dir, 'records.img');
  let domid = 0;

  beforeAll(async () => {
    await lan.up();
    await xn.start();
    writeFileSync(image, '');
    truncateSync(image, 8 << 20);
    const cfg = xn.config('dl', [
      'name = "dl"', 'type = "pv"', 'memory = 128', 'vcpus = 1', 'extra = "console=hvc0"',
      `vif = [ 'bridge=${lan.bridge},ip=${GUEST_IP}/15,vifname=xndl0' ]`,
      `disk = [ 'file:${image},xvda,w' ]`, '',
    ].join('\n'));
    await xn.xlOk('create', cfg);
    domid = Number((await xn.xlOk('domid', 'dl')).trim());
    await xn.waitForShell('dl');
    await xn.waitFor('the guest to answer pings', () => lan.ping(GUEST_IP, 1), 15_000);
    // An HVM guest: its device models run in its stub domain, which outlives dom0.
    await xn.xlOk('create', xn.config('dlh', ["builder = 'hvm'", "name = 'dlh'", "memory = '128'", "vcpus = '1'", "serial = 'pty'", ''].join('\n')));
  }, 90_000);

  afterAll(async () => {
    await xn.stop();
    lan.down();
    rmSync(lanDir, { recursive: true, force: true });
  });

  it('kill -9 of dom0 mid-traffic and mid-write: the guest stays, its network and disk carry on, nothing it saw synced is lost', async () => {
    // Numbered records, one per sector, each fsync'ed; the guest notes each one dd reported
    // synced. Bounded: RECORDS writes.
    await xn.consoleRun('dl', `(i=0; while [ $i -lt ${RECORDS} ]; do printf 'REC%06d\\n' $i | dd of=/dev/xvda bs=512 seek=$i conv=fsync,notrunc 2>/dev/null && echo $i >> /tmp/synced; i=$((i+1)); done; echo done > /tmp/writer) >/dev/null 2>&1 & true`);
    // Beside it, 1 MiB writes (several requests in flight at once, answered out of order),
    // each fsync'ed, over four 1 MiB regions from 2 MiB on.
    const blobSum = /([0-9a-f]{32})/.exec(await xn.consoleRun('dl', 'head -c 1048576 /dev/urandom > /tmp/blob && md5sum < /tmp/blob'))![1]!;
    await xn.consoleRun('dl', `(j=0; while [ $j -lt ${BLOBS} ]; do dd if=/tmp/blob of=/dev/xvda bs=1M seek=$((2 + j % 4)) conv=fsync,notrunc 2>/dev/null || echo $j >> /tmp/blobfail; j=$((j+1)); done; echo done > /tmp/blobw) >/dev/null 2>&1 & true`);
    // Pings from the LAN every 50 ms (bounded), each reply with its time (-D).
    const pinger = lan.spawn(['timeout', '40', 'ping', '-D', '-n', '-i', '0.05', '-W', '1', '-c', '600', GUEST_IP]);
    let pings = '';
    pinger.stdout?.on('data', (b: Buffer) => (pings += b.toString()));
    const pingerDone = new Promise<void>((r) => pinger.on('exit', () => r()));
    try {
      await sleep(1500);
      await xn.waitFor('pings answered before the kill', () => replyTimes(pings).length >= 5, 15_000);
      const oldDom0 = dom0Pid(xn);
      const killedAt = Date.now() / 1000;
      process.kill(oldDom0, 'SIGKILL');
      await xn.waitFor('a new dom0', () => {
        try {
          return dom0Pid(xn) !== oldDom0;
        } catch {
          return false;
        }
      }, 10_000);
      // The guest never stopped: same domain, running.
      await xn.waitFor('xl list to answer', async () => (await xn.xl('list')).code === 0, 15_000);
      const row = (await xn.list()).find((r) => r.name === 'dl');
      expect(row?.id).toBe(domid);
      expect(row?.state).toMatch(/^[rb-]+$/);

      // Traffic resumes: replies after the kill, within a few seconds of the last before it.
      await xn.waitFor('pings answered again', () => replyTimes(pings).some((t) => t > killedAt + 0.2), 15_000);
      await sleep(1000);
      // The outage: the longest silence between two replies that spans the kill's aftermath
      // (a reply already on its way may still arrive just after the kill).
      const times = replyTimes(pings).sort((a, b) => a - b);
      let before = killedAt;
      let after = killedAt;
      for (let i = 1; i < times.length; i++) {
        if (times[i]! > killedAt && times[i - 1]! < killedAt + 5 && times[i]! - times[i - 1]! > after - before) {
          before = times[i - 1]!;
          after = times[i]!;
        }
      }
      const outage = after - before;
      console.log(`dom0 restart: last reply ${((before - killedAt) * 1000).toFixed(0)} ms after the kill, then none for ${(outage * 1000).toFixed(0)} ms (first again ${((after - killedAt) * 1000).toFixed(0)} ms after it)`);
      expect(outage).toBeLessThan(8);
    } finally {
      pinger.kill('SIGINT');
      await pingerDone;
    }

    // The writer finishes (its requests in flight at the kill were answered), and every
    // record it saw synced is in the image.
    await xn.waitFor('the guest writer to finish', async () => (await xn.consoleRun('dl', 'cat /tmp/writer 2>/dev/null || true')).includes('done'), 60_000);
    const synced = (await xn.consoleRun('dl', 'cat /tmp/synced')).split('\n').map((l) => l.trim()).filter((l) => /^\d+$/.test(l)).map(Number);
    expect(synced.length).toBe(RECORDS);
    const img = readFileSync(image);
    const missing = synced.filter((i) => img.subarray(i * 512, i * 512 + 9).toString('latin1') !== `REC${String(i).padStart(6, '0')}`);
    expect(missing).toEqual([]);
    await xn.waitFor('the guest blob writer to finish', async () => (await xn.consoleRun('dl', 'cat /tmp/blobw 2>/dev/null || true')).includes('done'), 60_000);
    expect(await xn.consoleRun('dl', 'cat /tmp/blobfail 2>/dev/null || true')).toBe('');
    for (let k = 2; k < 6; k++) expect(createHash('md5').update(img.subarray(k << 20, (k + 1) << 20)).digest('hex'), `region ${k} MiB`).toBe(blobSum);

    // xl console on a terminal reaches the same shell.
    const con = new XlConsole(xn, 'dl').attach();
    try {
      expect(await con.run('echo still-$((6*7))')).toContain('still-42');
    } finally {
      con.close();
    }
    expect(await xn.xlOk('dmesg')).toMatch(/starting dom0 again \(restart 1\); the guests keep running/);
    expect(xn.log()).toMatch(/took over domain \d+ "dl" after dom0 restarted/);
    // The HVM guest was taken over with its stub domain, and goes when asked.
    expect(xn.log()).toMatch(/took over domain \d+ "dlh" after dom0 restarted/);
    expect((await xn.list()).some((r) => r.name === 'dlh')).toBe(true);
    await xn.xlOk('destroy', 'dlh');
    console.log(xn.log().split('\n').filter((l) => /restart|took over|reconnect|previous dom0|owed/.test(l)).join('\n'));

    // A guest created after the restart works.
    await xn.create('dl2');
    await xn.waitForShell('dl2');
    expect(await xn.consoleRun('dl2', 'echo fresh')).toContain('fresh');
    await xn.xlOk('destroy', 'dl2');
  }, 180_000);

  it('kill -9 of dom0 in the middle of xl create: the create fails and its half-built domain goes', async () => {
    const records = join(xn.dir, 'run', 'toolstack');
    const before = existsSync(records) ? readdirSync(records) : [];
    const create = xn.xl('create', xn.config('dlhalf', ['name = "dlhalf"', 'type = "pv"', 'memory = 128', `vif = [ 'bridge=${lan.bridge},vifname=xndl1' ]`, ''].join('\n')));
    // A record is written as d<N>.json.new, then renamed: wait for the record itself.
    const saved = () => (existsSync(records) ? readdirSync(records).filter((n) => n.endsWith('.json')) : []);
    await xn.waitFor('the toolstack to record the new domain', () => saved().length > before.filter((n) => n.endsWith('.json')).length, 15_000);
    const old = dom0Pid(xn);
    process.kill(old, 'SIGKILL');
    expect((await create).code).not.toBe(0);
    await xn.waitFor('a new dom0 answering xl list', async () => (await xn.xl('list')).code === 0, 15_000);
    await xn.waitFor('the half-built domain to go', async () => !(await xn.list()).some((r) => r.name === 'dlhalf'), 15_000);
    expect(xn.log()).toMatch(/"dlhalf" was still being built when dom0 died; destroying it/);
    expect(readdirSync(records).sort()).toEqual([...before].sort());
  }, 60_000);

  it('with no guests, dom0 comes back too; dying in a loop stops xenode, with a message', async () => {
    await xn.xlOk('destroy', 'dl');
    const before = dom0Pid(xn);
    process.kill(before, 'SIGKILL');
    await xn.waitFor('a new dom0 answering xl list', async () => (await xn.xl('list')).code === 0, 15_000);
    expect((await xn.list()).map((r) => r.name)).toEqual(['Domain-0']);
    expect(dom0Pid(xn)).not.toBe(before);

    await killDom0UntilStopped(xn);
    expect(xn.log()).toMatch(/dom0 died 4 times within 60 s: not restarting it again/);
  }, 60_000);
});

/** The times (epoch seconds) of ping's replies, from its -D output. */
function replyTimes(out: string): number[] {
  const t: number[] = [];
  for (const m of out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)) t.push(Number(m[1]));
  return t;
}
