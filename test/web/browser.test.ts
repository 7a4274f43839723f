// The web console in a real browser: Debian's Chromium, headless, driven by playwright-core
// (which uses the system's browser and downloads none). One launch for the file. The page is
// refused without its token; with it, a guest appears within a second of `xl create`, a
// command typed into its console runs (while `xl console` is attached in a terminal too, and
// both see it), the pause button changes its state, and the Display tab shows a real VNC
// server's screen through the bridge. XENODE_WEB_SCREENSHOTS=DIR saves the page's pictures.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Instance, shouldSkip, inCI } from '../helpers/instance.js';
import { Tmux } from '../helpers/platform.js';
import { WebProcess } from './web-helper.js';

const CHROMIUM = '/usr/bin/chromium';
const XVNC = '/usr/bin/Xvnc';
/** The flags for a closed network and a throwaway profile (playwright gives a fresh one). */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function skipBrowser(): boolean {
  if (shouldSkip()) return true;
  if (existsSync(CHROMIUM)) return false;
  if (inCI) throw new Error(`CI requires this suite, but ${CHROMIUM} is missing (apt-get install chromium)`);
  console.warn(`skipping browser suite: ${CHROMIUM} is missing (apt-get install chromium)`);
  return true;
}
const skip = skipBrowser();
const shots = process.env.XENODE_WEB_SCREENSHOTS;

describe.skipIf(skip)('xenode web in a browser', () => {
  const xn = new Instance('web-browser');
  const web = new WebProcess(xn);
  const tmux = new Tmux();
  let browser: Browser;
  let page: Page;
  let xvnc: ChildProcess | null = null;

  const cell = (name: string, col: string) => page.locator(`#domains tr[data-name="${name}"] td.${col}`);
  const termText = () => page.evaluate(() => document.querySelector('#term .xterm-rows')?.textContent ?? '');

  beforeAll(async () => {
    await xn.start();
    await web.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    if (shots) mkdirSync(shots, { recursive: true });
  });

  afterAll(async () => {
    xvnc?.kill('SIGKILL');
    tmux.kill();
    await browser?.close();
    await web.stop();
    await xn.stop();
  });

  it('refuses the page without the token', async () => {
    const r = await page.goto(`${web.base}/`);
    expect(r!.status()).toBe(401);
    expect(await page.textContent('body')).toContain('token');
  });

  it('shows a guest within a second of `xl create`, and its console runs what is typed (with `xl console` attached too)', async () => {
    const r = await page.goto(web.url);
    expect(r!.status()).toBe(200);
    await page.waitForSelector('#domains tr[data-name="Domain-0"]');
    await xn.xlOk('create', xn.guestConfig('br1'));
    const t0 = Date.now();
    await page.waitForSelector('#domains tr[data-name="br1"]', { timeout: 1000 });
    expect(Date.now() - t0).toBeLessThan(1000);
    await xn.waitForShell('br1');

    // A terminal attached with `xl console` at the same time as the browser.
    tmux.startXl(xn, 'con', 'console', 'br1');
    await xn.waitFor('xl console to attach', () => tmux.capture('con').includes('xl console') || tmux.capture('con').length > 0, 5000);

    await page.click('#domains tr[data-name="br1"]');
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('Run /bin/sh'), null, { timeout: 5000 });
    await page.click('#term');
    await page.keyboard.type('echo web-$((6*7)) on $(hostname)\n');
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('web-42 on br1'), null, { timeout: 5000 });
    // The terminal's `xl console` saw the browser's command run ...
    await xn.waitFor('the browser command in the xl console pane', () => tmux.capture('con').includes('web-42 on br1'), 5000);
    // ... and the browser sees what is typed in the terminal.
    tmux.sendKeys('con', 'echo tty-$((5*5))', 'Enter');
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('tty-25'), null, { timeout: 5000 });
    expect(await termText()).toContain('tty-25');
  });

  it('the pause and unpause buttons change the state the page and `xl list` show', async () => {
    await page.click('#btn-pause');
    await expect.poll(() => cell('br1', 'state').textContent(), { timeout: 3000 }).toContain('p');
    expect((await xn.list()).find((d) => d.name === 'br1')!.state).toContain('p');
    await page.click('#btn-unpause');
    await expect.poll(() => cell('br1', 'state').textContent(), { timeout: 3000 }).not.toContain('p');
    expect((await xn.list()).find((d) => d.name === 'br1')!.state).not.toContain('p');
    // A state change by `xl` shows too.
    await xn.xlOk('pause', 'br1');
    await expect.poll(() => cell('br1', 'state').textContent(), { timeout: 3000 }).toContain('p');
    await xn.xlOk('unpause', 'br1');
  });

  it('a guest reading its disk: the page shows its vbd\'s counters (as `xl top -x` does) and the disk chart moves', async () => {
    const image = join(xn.dir, 'disk1.img');
    writeFileSync(image, '');
    truncateSync(image, 8 << 20);
    await xn.xlOk('create', xn.config('disk1', ['name = "disk1"', 'type = "pv"', 'memory = 128', 'vcpus = 1', 'extra = "console=hvc0"', `disk = [ 'file:${image},xvda,w' ]`, ''].join('\n')));
    await xn.waitForShell('disk1');
    await page.click('#domains tr[data-name="disk1"]');
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('disk1:/#'), null, { timeout: 5000 });
    await page.click('#term');
    await page.keyboard.type('for i in 1 2 3 4 5 6; do dd if=/dev/xvda of=/dev/null bs=1M iflag=direct 2>/dev/null; sleep 0.4; done; echo reads-""done\n');
    await expect.poll(() => cell('disk1', 'diskrd').textContent(), { timeout: 8000 }).toMatch(/[1-9][\d.]* (KiB|MiB|GiB)\/s/);
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('reads-done'), null, { timeout: 15_000 });
    await page.waitForTimeout(1500); // a sample after the last read
    const rd = Number(/RD (\d+)/.exec((await page.locator('#devices tbody').textContent()) ?? '')?.[1]);
    expect(rd).toBeGreaterThanOrEqual(6 * 8); // six passes over 8 MiB in requests of at most 1 MiB
    // The same counter `xl top` prints (VBD_RD, the 16th column).
    const top = (await xn.xlOk('top', '-b', '-i', '1')).split('\n').find((l) => /^\s+disk1 /.test(l))!;
    expect(Number(top.trim().split(/\s+/)[14])).toBe(rd);
    if (shots) await page.screenshot({ path: join(shots, 'web-console.png') });
  });

  it('draws the driver comparison\'s JSON (the shape `npm run bench` writes) as charts', async () => {
    // A fixture in compare-latest.json's shape: this checks the drawing, not a measurement.
    const doc = {
      when: 'fixture',
      machine: 'test fixture (not a measurement)',
      configs: [{ key: 'native', label: 'native' }, { key: 'emu', label: 'emulated' }, { key: 'pv', label: 'PV' }],
      workloads: [{ key: 'tcp', label: 'TCP bulk', unit: 'Gbit/s' }, { key: 'rand', label: '4 KiB random read QD32', unit: 'IOPS' }],
      results: {
        tcp: { native: { value: 30 }, emu: { value: 0.5 }, pv: { value: 12 } },
        rand: { native: { value: 80000 }, emu: { value: 3000 }, pv: { value: 25000 } },
      },
    };
    const file = join(xn.dir, 'compare-fixture.json');
    writeFileSync(file, JSON.stringify(doc));
    const web2 = new WebProcess(xn);
    await web2.start(['--port', '0', '--bench', file]);
    const p2 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await p2.goto(web2.url);
      await p2.waitForFunction(() => document.querySelectorAll('#bench-charts canvas').length === 2, null, { timeout: 5000 });
      expect(await p2.locator('#bench-charts h3').allTextContents()).toEqual(['TCP bulk (Gbit/s)', '4 KiB random read QD32 (IOPS)']);
      expect(await p2.locator('#bench-note').textContent()).toContain('test fixture (not a measurement)');
      // The bars are drawn: the tallest (native TCP, 30) fills its bar's middle with the bar colour.
      const painted = await p2.evaluate(() => {
        const c = document.querySelectorAll('#bench-charts canvas')[0] as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 0x2f && d[i + 1] === 0x6f && d[i + 2] === 0xd6) n++;
        return n;
      });
      expect(painted).toBeGreaterThan(1000);
    } finally {
      await p2.close();
      await web2.stop();
    }
  });

  it('the Display tab shows a real VNC server through the bridge (console/vnc-port in xenstore)', async () => {
    if (!existsSync(XVNC)) {
      if (inCI) throw new Error(`${XVNC} is missing (apt-get install tigervnc-standalone-server)`);
      return console.warn('skipping the VNC case: no Xvnc');
    }
    let display = 60 + (process.pid % 30);
    while (existsSync(`/tmp/.X11-unix/X${display}`) || existsSync(`/tmp/.X${display}-lock`)) display++;
    const port = 5900 + display;
    xvnc = spawn(XVNC, [`:${display}`, '-geometry', '640x480', '-depth', '24', '-SecurityTypes', 'None', '-localhost', '-rfbport', String(port), '-nolisten', 'tcp'], { stdio: 'ignore' });
    await xn.waitFor('Xvnc to listen', async () => (await fetch(`http://127.0.0.1:${port}/`).catch((e: { cause?: { code?: string } }) => e.cause?.code)) !== 'ECONNREFUSED', 5000);
    // A known colour on the server's screen, to find in the browser's canvas.
    const paint = spawnSync('xsetroot', ['-display', `:${display}`, '-solid', '#3a6ea5']);
    expect(paint.status, `xsetroot: ${paint.stderr}`).toBe(0);
    // Where libxl (and xenode's VNC server for HVM guests) publishes a display.
    const domid = (await xn.xlOk('domid', 'br1')).trim();
    expect((await xn.xenstore('xenstore-write', `/local/domain/${domid}/console/vnc-listen`, '127.0.0.1')).code).toBe(0);
    expect((await xn.xenstore('xenstore-write', `/local/domain/${domid}/console/vnc-port`, String(port))).code).toBe(0);
    await page.click('#domains tr[data-name="br1"]');
    // The sampler looks for displays every 5 s; the tab says when it has found one.
    await page.waitForSelector(`#tab-display[data-vnc="127.0.0.1:${port}"]`, { timeout: 8000 });
    await page.click('#tab-display');
    await page.waitForFunction(() => (document.querySelector('#vnc-note')?.textContent ?? '').startsWith('connected to'), null, { timeout: 10_000 });
    const size = await page.evaluate(() => {
      const c = document.querySelector('#vnc canvas') as HTMLCanvasElement | null;
      return c ? [c.width, c.height] : null;
    });
    expect(size).toEqual([640, 480]);
    // The framebuffer itself came through: the canvas shows the server's colour.
    await page.waitForFunction(() => {
      const c = document.querySelector('#vnc canvas') as HTMLCanvasElement;
      const [r, g, b] = c.getContext('2d')!.getImageData(320, 240, 1, 1).data;
      return r === 0x3a && g === 0x6e && b === 0xa5;
    }, null, { timeout: 5000 });
    if (shots) await page.screenshot({ path: join(shots, 'web-display.png') });
  });

  it("an HVM guest's serial console and its own VGA display (the stub domain's VNC server) in the page", async () => {
    const cfg = xn.config('brh', ['name = "brh"', 'builder = "hvm"', 'memory = 128', 'serial = "pty"', 'vnc = 1', ''].join('\n'));
    await page.goto(web.url);
    await xn.xlOk('create', cfg);
    await page.waitForSelector('#domains tr[data-name="brh"]', { timeout: 5000 });
    await page.click('#domains tr[data-name="brh"]');
    // The console tab is the serial line, as `xl console` picks it for an HVM guest.
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('Run /'), null, { timeout: 20_000 });
    await page.click('#term');
    await page.keyboard.type('echo hvm-web-$((6*7))\n');
    await page.waitForFunction(() => (document.querySelector('#term .xterm-rows')?.textContent ?? '').includes('hvm-web-42'), null, { timeout: 10_000 });
    // The display: the port the stub domain's VNC server published, its 720x400 text screen.
    await page.waitForSelector('#tab-display[data-vnc]', { timeout: 10_000 });
    await page.click('#tab-display');
    await page.waitForFunction(() => (document.querySelector('#vnc-note')?.textContent ?? '').startsWith('connected to'), null, { timeout: 10_000 });
    await page.waitForFunction(() => {
      const c = document.querySelector('#vnc canvas') as HTMLCanvasElement | null;
      return !!c && c.width === 720 && c.height === 400;
    }, null, { timeout: 10_000 });
    // Text is on it: some pixel of the top rows is lit (boot messages), not a blank screen.
    await page.waitForFunction(() => {
      const c = document.querySelector('#vnc canvas') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, 720, 64).data;
      for (let i = 0; i < d.length; i += 4) if (d[i]! + d[i + 1]! + d[i + 2]! > 200) return true;
      return false;
    }, null, { timeout: 10_000 });
    await xn.xlOk('destroy', 'brh');
  });
});
