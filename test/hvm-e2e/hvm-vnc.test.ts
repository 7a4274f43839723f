// The display of an HVM guest as Xen users reach it: a classic HVM config with vnc=1 gets the
// standard VGA and a VNC server in the stub domain; stock Debian clients (gvnccapture, RFB 3.8;
// vncsnapshot, RFB 3.3) connect and see the boot log and the shell prompt on the text screen;
// keys typed through RFB key events reach the guest's shell through the i8042; vncpasswd is
// enforced; vncunused gives two guests two displays; and hostile viewers are cut off alone
// while the guest and a good viewer carry on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { decodePng, RfbClient, screenText } from '../helpers/rfb-client.js';

const run = (cmd: string, args: string[], timeoutMs = 30_000) =>
  new Promise<{ code: number; out: string }>((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }));
  });

/** A vncpasswd file: the password DES-encrypted with the fixed d3des key (bits reversed). */
function vncPasswdFile(path: string, password: string): void {
  const key = Buffer.from('e84ad660c4721ae0', 'hex');
  const des = createCipheriv('des-ede-ecb', Buffer.concat([key, key]), null);
  des.setAutoPadding(false);
  const pw = Buffer.alloc(8);
  pw.write(password.slice(0, 8), 'latin1');
  writeFileSync(path, Buffer.concat([des.update(pw), des.final()]));
}

/** Width and height from a JPEG's SOF0 marker. */
function jpegSize(b: Buffer): { w: number; h: number } {
  let o = 2;
  while (o < b.length) {
    const marker = b[o + 1]!;
    const len = b.readUInt16BE(o + 2);
    if (marker >= 0xc0 && marker <= 0xc2) return { h: b.readUInt16BE(o + 5), w: b.readUInt16BE(o + 7) };
    o += 2 + len;
  }
  throw new Error('no SOF in JPEG');
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(shouldSkip())('HVM display: VGA, i8042 and VNC', () => {
  const xn = new Instance('hvmvnc');
  const ports: Record<string, number> = {};
  const hvm = (name: string, extra: string[] = []) =>
    xn.config(name, [`builder = 'hvm'`, `name = '${name}'`, `memory = '128'`, `serial = 'pty'`, `vnc = 1`, `on_poweroff = 'destroy'`, ...extra, ''].join('\n'));
  const vncPort = async (name: string) => {
    const domid = (await xn.xlOk('domid', name)).trim();
    const port = await xn.xenstore('xenstore-read', `/local/domain/${domid}/console/vnc-port`);
    const listen = await xn.xenstore('xenstore-read', `/local/domain/${domid}/console/vnc-listen`);
    expect(listen.stdout.trim()).toBe('127.0.0.1');
    return Number(port.stdout.trim());
  };
  const boot = async (name: string, extra: string[] = []) => {
    await xn.xlOk('create', hvm(name, extra));
    await xn.waitFor(`${name}'s tty1`, () => /tty1: login shell/.test(xn.consoleLog(name)), 60_000);
    ports[name] = await vncPort(name);
  };

  beforeAll(async () => {
    for (const tool of ['gvnccapture', 'vncsnapshot']) if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is not installed (scripts/setup.sh installs it)`);
    await xn.start();
    await boot('vnc1');
    await boot('vnc2', [`vncpasswd = 's3cret'`]);
  }, 120_000);

  afterAll(async () => {
    await xn.stop();
  }, 60_000);

  it('serves the text screen to gvnccapture (RFB 3.8): boot log and the shell prompt', async () => {
    const png = join(xn.dir, 'vnc1.png');
    const r = await run('gvnccapture', [`127.0.0.1:${ports.vnc1! - 5900}`, png]);
    expect(r.code, r.out).toBe(0);
    const img = decodePng(readFileSync(png));
    expect([img.width, img.height]).toEqual([720, 400]);
    const text = screenText(img.data, img.width, img.height, img.channels);
    expect(text).toMatch(/Console: colour VGA\+ 80x25/);
    expect(text).toMatch(/vnc1:\/# *$/m);
  });

  it('serves vncsnapshot (RFB 3.3, its own pixel format)', async () => {
    const jpg = join(xn.dir, 'vnc1.jpg');
    const r = await run('vncsnapshot', ['-allowblank', '-quiet', `127.0.0.1:${ports.vnc1! - 5900}`, jpg]);
    expect(r.code, r.out).toBe(0);
    expect(jpegSize(readFileSync(jpg))).toEqual({ w: 720, h: 400 });
  });

  it('types a command through RFB key events; the guest runs it and the screen shows it', async () => {
    const c = await RfbClient.connect(ports.vnc1!);
    try {
      expect(c.name).toBe('vnc1');
      await c.waitForText(/vnc1:\/#/);
      c.type('echo typed-$((6*7)) | tee /tmp/from-vnc\n');
      const text = await c.waitForText(/^typed-42$/m);
      expect(text).toMatch(/echo typed-\$\(\(6\*7\)\) \| tee \/tmp\/from-vnc/);
      // The same file, read over the serial console: the keys reached the guest's shell.
      expect(await xn.consoleRun('vnc1', 'cat /tmp/from-vnc')).toContain('typed-42');
    } finally {
      c.close();
    }
  });

  it('asks for vncpasswd: the right password is accepted, a wrong one refused', async () => {
    const good = await RfbClient.connect(ports.vnc2!, { password: 's3cret' });
    await good.waitForText(/vnc2:\/#/);
    good.close();
    await expect(RfbClient.connect(ports.vnc2!, { password: 'wrong' })).rejects.toThrow(/authentication failed: Authentication failed/);
    const okFile = join(xn.dir, 'ok.passwd');
    const badFile = join(xn.dir, 'bad.passwd');
    vncPasswdFile(okFile, 's3cret');
    vncPasswdFile(badFile, 'nope');
    const ok = await run('vncsnapshot', ['-allowblank', '-quiet', '-passwd', okFile, `127.0.0.1:${ports.vnc2! - 5900}`, join(xn.dir, 'vnc2.jpg')]);
    expect(ok.code, ok.out).toBe(0);
    const bad = await run('vncsnapshot', ['-allowblank', '-quiet', '-passwd', badFile, `127.0.0.1:${ports.vnc2! - 5900}`, join(xn.dir, 'bad.jpg')]);
    expect(bad.code).not.toBe(0);
  });

  it('gives two guests with vncunused two displays, each its own screen', async () => {
    expect(ports.vnc1).not.toBe(ports.vnc2);
    const a = await RfbClient.connect(ports.vnc1!);
    const b = await RfbClient.connect(ports.vnc2!, { password: 's3cret' });
    expect([a.name, b.name]).toEqual(['vnc1', 'vnc2']);
    a.close();
    b.close();
  });

  it('fails the create, naming the port, when vncdisplay is taken and vncunused = 0', async () => {
    const taken = ports.vnc1! - 5900;
    const r = await xn.xl('create', hvm('vnc3', [`vncdisplay = ${taken}`, 'vncunused = 0']));
    expect(r.code).toBe(3); // xl create exits -ERROR_FAIL when libxl fails the create
    expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${ports.vnc1} (display :${taken}): EADDRINUSE`);
    expect((await xn.list()).map((d) => d.name)).not.toContain('vnc3');
  });

  it('xl vncviewer runs $VNCVIEWER with host:display, or says where to connect', async () => {
    xn.env.VNCVIEWER = 'echo';
    expect((await xn.xlOk('vncviewer', 'vnc1')).trim()).toBe(`127.0.0.1:${ports.vnc1! - 5900}`);
    xn.env.VNCVIEWER = 'no-such-vncviewer';
    expect(await xn.xlOk('vncviewer', 'vnc1')).toContain(`connect one to: 127.0.0.1:${ports.vnc1! - 5900} (port ${ports.vnc1})`);
    delete xn.env.VNCVIEWER;
    const none = await xn.xl('vncviewer', 'nosuchguest');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/nosuchguest is an invalid domain identifier/);
  });

  it('warns that a PV guest with vnc=1 gets no framebuffer', async () => {
    const cfg = xn.config('pvfb', ['name = "pvfb"', 'type = "pv"', 'memory = 128', 'vnc = 1', ''].join('\n'));
    const r = await xn.xl('create', '-n', cfg);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/vnc: the PV framebuffer \(vfb\/vkb\) is not supported/);
  });

  it('cuts off hostile viewers alone; the guest and a good viewer carry on', async () => {
    const port = ports.vnc1!;
    const good = await RfbClient.connect(port);
    await good.waitForText(/vnc1:\/#/);
    const raw = (bytes: Buffer[]): Promise<Socket> =>
      new Promise((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => {
          for (const b of bytes) s.write(b);
          resolve(s);
        });
        s.resume(); // read (and drop) what the server says, so its close is seen
        s.on('error', () => {});
      });
    const closedSoon = (s: Socket, ms: number) => new Promise<boolean>((r) => (s.destroyed ? r(true) : (s.once('close', () => r(true)), setTimeout(() => r(false), ms))));
    const hello = Buffer.from('RFB 003.008\n');
    // Garbage instead of a version.
    const garbage = await raw([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    expect(await closedSoon(garbage, 3000)).toBe(true);
    // A cut text claiming 4 GiB ("negative" length), and a SetEncodings of 65535 entries.
    const cut = Buffer.alloc(8);
    cut[0] = 6;
    cut.writeUInt32BE(0xffffffff, 4);
    const huge = await raw([hello, Buffer.from([1]), Buffer.from([1]), cut]);
    expect(await closedSoon(huge, 3000)).toBe(true);
    const enc = Buffer.from([2, 0, 0xff, 0xff]);
    const many = await raw([hello, Buffer.from([1]), Buffer.from([1]), enc]);
    expect(await closedSoon(many, 3000)).toBe(true);
    // ClientInit, then silence: it stays (a viewer may idle), and costs nobody anything.
    const silent = await raw([hello, Buffer.from([1]), Buffer.from([1])]);
    // A hundred connections at once.
    const crowd = await Promise.all(Array.from({ length: 100 }, () => raw([])));
    // Ten wrong passwords in a row on the protected display: each refused, later ones slower.
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) await expect(RfbClient.connect(ports.vnc2!, { password: `guess${i}` })).rejects.toThrow(/Authentication failed/);
    expect(Date.now() - t0).toBeGreaterThan(10 * 250);
    for (const s of crowd) s.destroy();
    // Meanwhile: the good viewer still gets the screen, and typed keys still work.
    good.type('echo still-$((40+2))\n');
    await good.waitForText(/^still-42$/m);
    expect(silent.destroyed).toBe(false);
    silent.destroy();
    good.close();
    expect(await xn.consoleRun('vnc1', 'echo serial-fine')).toContain('serial-fine');
    expect((await xn.list()).map((d) => d.name)).toEqual(expect.arrayContaining(['vnc1', 'vnc2']));
    await tick(10);
  }, 90_000);
});
