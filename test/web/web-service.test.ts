// `xenode web` against a running xenode, as a user (or an attacker) reaches it: HTTP and
// WebSocket clients on loopback. Access (token, Origin), path safety, oversized frames, a
// client that never takes its console output in while the guest floods, actions on a domain
// that is gone; and that the page's numbers and `xl top`'s are `xl list`'s. Nothing a client
// does may stop the service, dom0 or another client.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { request } from 'node:http';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { WebProcess, ConsoleReader, serviceStats } from './web-helper.js';

const skip = shouldSkip();

/** A GET with the path sent exactly as written (fetch would normalise `..` away). */
function rawGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** How a WebSocket upgrade ends: opened, or refused with an HTTP status. */
function upgradeOutcome(ws: import('ws').WebSocket): Promise<'open' | number> {
  return new Promise((resolve) => {
    ws.once('open', () => (ws.close(), resolve('open')));
    ws.once('unexpected-response', (_req, res) => (ws.terminate(), resolve(res.statusCode ?? 0)));
    ws.once('error', () => resolve(-1));
  });
}

function closeOf(ws: import('ws').WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe.skipIf(skip)('xenode web: the service', () => {
  const xn = new Instance('web-svc');
  const web = new WebProcess(xn);
  let domid = 0;

  beforeAll(async () => {
    await xn.start();
    domid = await xn.create('svc1');
    await xn.waitForShell('svc1');
    await web.start();
  });

  afterAll(async () => {
    await web.stop();
    await xn.stop();
  });

  it('refuses requests and upgrades without the token or with a wrong one', async () => {
    for (const path of ['/', '/app.js', '/api/bench', '/api/service']) {
      expect((await rawGet(web.port, path)).status).toBe(401);
      expect((await rawGet(web.port, `${path}?token=${web.token.slice(1)}x`)).status).toBe(401);
      expect((await rawGet(web.port, path, { authorization: 'token wrong' })).status).toBe(401);
    }
    const page = await rawGet(web.port, `/?token=${web.token}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>xenode</title>');
    expect(await upgradeOutcome(web.ws('/ws/live', {}, false))).toBe(401);
    expect(await upgradeOutcome(web.ws(`/ws/console/${domid}?token=nope`, {}, false))).toBe(401);
    expect(await upgradeOutcome(web.ws('/ws/live'))).toBe('open');
  });

  it('refuses a WebSocket from a foreign Origin even with the token (a forged cross-site socket)', async () => {
    const cookie = `xenode_token_${web.port}=${web.token}`;
    expect(await upgradeOutcome(web.ws(`/ws/console/${domid}`, { origin: 'http://evil.example', cookie }, false))).toBe(403);
    expect(await upgradeOutcome(web.ws('/ws/live', { origin: `http://127.0.0.1:${web.port}.evil.example` }))).toBe(403);
    expect(await upgradeOutcome(web.ws('/ws/live', { origin: `http://127.0.0.1:${web.port}`, cookie }, false))).toBe('open');
    expect(await upgradeOutcome(web.ws('/ws/live', { origin: `http://localhost:${web.port}` }))).toBe('open');
  });

  it('serves only the page and its libraries: `..` and encoded traversal are refused', async () => {
    const auth = web.auth();
    expect((await rawGet(web.port, '/vendor/xterm/lib/xterm.js', auth)).status).toBe(200);
    expect((await rawGet(web.port, '/vendor/novnc/core/rfb.js', auth)).status).toBe(200);
    const attempts = [
      '/../package.json',
      '/vendor/../../package.json',
      '/vendor/novnc/../../../package.json',
      '/vendor/novnc/%2e%2e/%2e%2e/%2e%2e/package.json',
      '/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '/vendor/xterm/..%2f..%2f..%2fpackage.json',
      '/vendor/xterm/%252e%252e/%252e%252e/package.json',
      '/..%5c..%5cpackage.json',
      '/app.js%00.html',
      '/vendor/xterm/package.json',
      '/vendor/novnc/./core/rfb.js',
      '/%E0%A4%A',
      '/etc/passwd',
    ];
    for (const path of attempts) {
      const r = await rawGet(web.port, path, auth);
      expect([400, 404], `${path} -> ${r.status}`).toContain(r.status);
      expect(r.body).not.toMatch(/"name": "xenode"|root:x:0:0|"name": "@xterm/);
      expect(r.body.length).toBeLessThan(300); // a sentence saying why, nothing else
    }
    expect((await rawGet(web.port, '/../package.json', auth)).body).toContain("'..' segment");
  });

  it('closes a socket that sends an oversized frame (1009) and goes on serving the others', async () => {
    const live = web.ws('/ws/live');
    let samples = 0;
    live.on('message', (d: Buffer) => {
      if (JSON.parse(d.toString()).type === 'sample') samples++;
    });
    await new Promise((r) => live.once('open', r));
    for (const path of ['/ws/live', `/ws/console/${domid}`]) {
      const big = web.ws(path);
      await new Promise((r) => big.once('open', r));
      const closed = closeOf(big);
      big.send(Buffer.alloc(200 * 1024, 0x41));
      expect((await closed).code).toBe(1009);
    }
    const before = samples;
    await xn.waitFor('the live client to keep getting samples', () => samples > before + 1, 5000);
    live.close();
    expect(web.alive).toBe(true);
    expect((await rawGet(web.port, '/', web.auth())).status).toBe(200);
  });

  it('a client that never takes output in while the guest floods: bounded, dropped, counted; the guest and another client go on', async () => {
    const reader = new ConsoleReader(web, domid);
    await reader.opened;
    // The stalled client: opens the console and never reads its socket nor acknowledges.
    const stalled = web.ws(`/ws/console/${domid}`);
    await new Promise((r) => stalled.once('open', r));
    (stalled as unknown as { _socket: { pause(): void } })._socket.pause();
    // ~5 MB: the guest's console waits for dom0 rather than dropping, so all of it reaches the
    // console log, which rotates at 1 MiB several times; the reading client follows each rotation.
    const marker = `FLOOD${Date.now() % 100000}`;
    const t0 = Date.now();
    reader.type(`for i in 1 2 3 4; do seq 1 200000; sleep 0.3; done; sleep 1; echo ${marker.slice(0, 3)}""${marker.slice(3)}`);
    // dom0 keeps answering while the flood runs.
    await new Promise((r) => setTimeout(r, 800));
    const list = await xn.list();
    expect(list.find((d) => d.name === 'svc1')).toBeTruthy();
    await xn
      .waitFor('the flood to end on the reading client', () => reader.text.includes(marker), 30_000)
      .catch((e: Error) => {
        throw new Error(`${e.message}\n--- the reader got ${reader.bytes} bytes, ending: ${JSON.stringify(reader.text.slice(-300))}\n--- console log ends: ${JSON.stringify(xn.consoleLog('svc1').slice(-300))}`);
      });
    const elapsed = Date.now() - t0;
    const stats = await serviceStats(web);
    const mine = stats.consoles.filter((c) => c.domid === domid);
    const slow = mine.find((c) => c.ackedBytes === 0 && c.droppedBytes > 0);
    expect(slow, JSON.stringify(mine)).toBeTruthy();
    // Bounded: what was handed to the stalled client's socket stays within the window (plus a chunk).
    expect(slow!.sentBytes).toBeLessThanOrEqual(512 * 1024 + 64 * 1024);
    const fast = mine.find((c) => c.ackedBytes > 0)!;
    expect(fast.droppedBytes).toBe(0);
    expect(fast.sentBytes).toBeGreaterThan(600_000);
    expect(elapsed).toBeLessThan(30_000);
    // The guest's shell still answers.
    reader.type('echo after-$((20+22))');
    await xn.waitFor('the shell to answer after the flood', () => reader.text.includes('after-42'), 5000);
    stalled.terminate();
    reader.ws.close();
  });

  it('actions: pause and unpause work; a domain that is gone is a 404 naming it; bad requests say what is wrong', async () => {
    const post = (path: string, headers: Record<string, string> = web.auth()) => fetch(`${web.base}${path}`, { method: 'POST', headers });
    let r = await post(`/api/domains/${domid}/pause`);
    expect(r.status).toBe(200);
    expect((await xn.list()).find((d) => d.name === 'svc1')!.state).toContain('p');
    r = await post(`/api/domains/${domid}/unpause`);
    expect(r.status).toBe(200);
    expect((await xn.list()).find((d) => d.name === 'svc1')!.state).not.toContain('p');

    const goneId = await xn.create('gone1');
    await xn.xlOk('destroy', 'gone1');
    for (const action of ['pause', 'destroy', 'shutdown']) {
      r = await post(`/api/domains/${goneId}/${action}`);
      expect(r.status).toBe(404);
      expect(await r.text()).toContain(`domain ${goneId}`);
    }
    r = await post(`/api/domains/${domid}/format-disk`);
    expect(r.status).toBe(400);
    expect(await r.text()).toContain('unknown action');
    expect((await post('/api/domains/svc1/pause')).status).toBe(400);
    expect((await post('/api/domains/0/destroy')).status).toBe(400);
    expect((await fetch(`${web.base}/api/domains/${domid}/pause`, { headers: web.auth() })).status).toBe(405);
    // A cookie alone (what a cross-site form would carry, were it sent) cannot act.
    expect((await post(`/api/domains/${domid}/pause`, { cookie: `xenode_token_${web.port}=${web.token}` })).status).toBe(403);
    expect((await xn.list()).find((d) => d.name === 'svc1')!.state).not.toContain('p');
    // The console of a domain that is gone is refused with the reason.
    const ws = web.ws(`/ws/console/${goneId}`);
    const c = await closeOf(ws);
    expect(c.code).toBe(4404);
    expect(c.reason).toContain(`domain ${goneId}`);
    expect(web.alive).toBe(true);
  });

  it('the live list and `xl top -b` show the numbers `xl list` prints', async () => {
    const live = web.ws('/ws/live');
    const sample = await new Promise<{ domains: { domid: number; name: string; memKiB: number; onlineVcpus: number; state: string; xentopState: string }[] }>((resolve) => {
      live.on('message', (d: Buffer) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'sample') resolve(m.sample);
      });
    });
    live.close();
    const row = (await xn.list()).find((d) => d.name === 'svc1')!;
    const d = sample.domains.find((x) => x.name === 'svc1')!;
    expect(d.domid).toBe(row.id);
    expect(Math.floor(d.memKiB / 1024)).toBe(row.mem);
    expect(d.onlineVcpus).toBe(row.vcpus);
    expect(d.state.replace('r', '-').replace('b', '-')).toBe(row.state.replace('r', '-').replace('b', '-'));

    const top = await xn.xlOk('top', '-b', '-i', '2', '-d', '1');
    const lines = top.trimEnd().split('\n');
    const header = '      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT SSID';
    expect(lines.filter((l) => l === header)).toHaveLength(2);
    const rows = lines.filter((l) => /^\s+svc1 /.test(l));
    expect(rows).toHaveLength(2);
    const f = rows[1]!.trim().split(/\s+/);
    expect(f[0]).toBe('svc1');
    expect(f[1]).toMatch(/^[-d][-s][-b][-c][-p][-r]$/);
    expect(Number(f[4])).toBe(row.mem * 1024); // MEM(k)
    expect(Number(f[8])).toBe(row.vcpus); // VCPUS
    expect(Number(f[3])).toBeGreaterThanOrEqual(0); // CPU(%), from two readings
    expect((await xn.xl('top', '-i', 'x')).stderr).toContain('-i');
  });

  it('keeps serving across a xenode restart: says dom0 is gone, then shows the new domains', async () => {
    await xn.xenode('stop');
    await xn.waitFor('the service to notice', async () => ((await (await fetch(`${web.base}/api/service`, { headers: web.auth() })).json()) as { sampleError: string | null }).sampleError !== null, 5000);
    expect(web.alive).toBe(true);
    await xn.start();
    const live = web.ws('/ws/live');
    const names = new Set<string>();
    live.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'sample') for (const x of m.sample.domains) names.add(x.name);
    });
    await xn.create('again1');
    await xn.waitFor('the new domain on the live channel', () => names.has('again1'), 5000);
    live.close();
  });
});
