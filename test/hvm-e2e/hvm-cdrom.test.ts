// xl cd-insert / cd-eject as a Xen administrator changes an HVM guest's disc: the ATAPI drive in
// the stub domain sees the media change as a real drive reports it, the guest's OS notices it
// (GET EVENT STATUS NOTIFICATION / UNIT ATTENTION, as Linux's sr polls), /dev/hdc is the new
// disc's bytes, and the vbd's backend params name it as libxl writes them. Bad input gets xl's
// and libxl's lines and exit 1.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe.skipIf(shouldSkip())('xl cd-insert / cd-eject of an HVM guest', () => {
  const xn = new Instance('hvmcd');
  let con: XlConsole;
  let domid = '';
  const isos: { path: string; bytes: Buffer }[] = [];

  const backendParams = async () => (await xn.xenstore('xenstore-read', `/local/domain/0/backend/vbd/${domid}/5632/params`)).stdout.trim();
  const kernelLog = () => readFileSync(join(xn.dir, 'log', `kernel-${domid}.log`), 'utf8');

  beforeAll(async () => {
    for (const [i, label] of ['FIRST', 'SECOND'].entries()) {
      const dir = join(xn.dir, `iso${i}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'HELLO.TXT'), `disc ${label}\n`.repeat(2000 * (i + 1)));
      const path = join(xn.dir, `disc${i}.iso`);
      execFileSync('genisoimage', ['-quiet', '-o', path, '-V', label, dir]);
      isos.push({ path, bytes: readFileSync(path) });
    }
    await xn.start();
    const cfg = xn.config('cdguest', [
      `builder = 'hvm'`, `name = 'cdguest'`, `memory = 128`, `serial = 'pty'`, `vnc = 0`,
      `disk = [ ',hdc:cdrom,r' ]`, `on_poweroff = 'destroy'`, '',
    ].join('\n'));
    await xn.xlOk('create', cfg);
    await xn.waitFor("cdguest's init", () => /Run .* as init process/.test(xn.consoleLog('cdguest')), 60_000);
    domid = (await xn.xlOk('domid', 'cdguest')).trim();
    con = new XlConsole(xn, 'cdguest').attach();
    con.type('');
    await con.waitFor(/cdguest:\/# $/m);
  }, 90_000);

  afterAll(async () => {
    con?.close();
    await xn.stop();
  }, 60_000);

  it('an empty drive: the guest sees no medium', async () => {
    expect(kernelLog()).toMatch(/hdc: ATAPI CD\/DVD-ROM .*no medium/);
    expect(await con.run('dd if=/dev/hdc bs=2048 count=1 2>&1 >/dev/null | head -1')).toMatch(/No medium found/);
  });

  it('cd-insert: the guest notices the new disc and reads its bytes; params names it', async () => {
    const disc = isos[0]!;
    // A dry run says what it would do and changes nothing.
    const dry = await xn.xl('-N', 'cd-insert', 'cdguest', 'hdc', disc.path);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(`would insert ${disc.path} into hdc of domain ${domid}\n`);
    expect(await backendParams()).toBe('');
    const r = await xn.xl('cd-insert', 'cdguest', 'hdc', disc.path);
    expect(r.code).toBe(0);
    expect(await backendParams()).toBe(disc.path);
    const blocks = disc.bytes.length / 2048;
    await xn.waitFor('the guest to see the new disc', () => kernelLog().includes(`hdc: ATAPI CD/DVD-ROM XENODE DVD-ROM, ${blocks} 2048-byte blocks`), 15_000);
    expect(kernelLog()).toMatch(/hdc: detected capacity change from 0 to \d+/);
    expect(await con.run(`dd if=/dev/hdc bs=2048 count=${blocks} 2>/dev/null | md5sum`)).toContain(md5(disc.bytes));
    // The volume descriptor and the file on it, as the guest reads them.
    expect(await con.run('dd if=/dev/hdc bs=2048 skip=16 count=1 2>/dev/null | head -c 48 | tr -c "A-Z0-9" " "')).toMatch(/CD001.*FIRST/);
    expect(await con.run('grep -a -c "disc FIRST" /dev/hdc')).toMatch(/^2000$/m);
  }, 60_000);

  it('a second cd-insert changes the disc under the guest (a different size too)', async () => {
    const disc = isos[1]!;
    await xn.xlOk('cd-insert', 'cdguest', 'hdc', disc.path);
    const blocks = disc.bytes.length / 2048;
    await xn.waitFor('the guest to see the second disc', () => kernelLog().includes(`${blocks} 2048-byte blocks`), 15_000);
    expect(await con.run(`dd if=/dev/hdc bs=2048 count=${blocks} 2>/dev/null | md5sum`)).toContain(md5(disc.bytes));
    expect(await con.run('dd if=/dev/hdc bs=2048 skip=16 count=1 2>/dev/null | head -c 48 | tr -c "A-Z0-9" " "')).toMatch(/CD001.*SECOND/);
  }, 60_000);

  it('cd-eject: the guest sees no medium; params is empty', async () => {
    const r = await xn.xl('cd-eject', 'cdguest', 'hdc');
    expect(r.code).toBe(0);
    expect(await backendParams()).toBe('');
    await xn.waitFor('the guest to see the eject', () => /hdc: detected capacity change from \d+ to 0/.test(kernelLog()), 15_000);
    expect(await con.run('dd if=/dev/hdc bs=2048 count=1 2>&1 >/dev/null | head -1')).toMatch(/No medium found/);
  }, 60_000);

  it("bad input gets xl's and libxl's lines and exit 1", async () => {
    const missing = await xn.xl('cd-insert', 'cdguest', 'hdc', '/nonexistent/disc.iso');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('Cannot stat file: /nonexistent/disc.iso\n');
    const notCd = await xn.xl('cd-insert', 'cdguest', 'hda', isos[0]!.path);
    expect(notCd.code).toBe(1);
    expect(notCd.stderr).toBe(`libxl: error: libxl_disk.c: Domain ${domid}:Virtual device not found\n`);
    const usage = await xn.xl('cd-insert', 'cdguest', 'hdc');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("'xl cd-insert' requires at least 3 arguments.");
    const noDom = await xn.xl('cd-eject', 'nosuchguest', 'hdc');
    expect(noDom.code).toBe(1);
    expect(noDom.stderr).toMatch(/^nosuchguest is an invalid domain identifier \(rc=-6\)$/m);

    const pv = await xn.create('pvcd');
    const r = await xn.xl('cd-insert', 'pvcd', 'xvdc', isos[0]!.path);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`libxl: error: libxl_disk.c: Domain ${pv}:cdrom-insert requires an HVM domain\n`);
    await xn.xlOk('destroy', 'pvcd');
    // The guest is unharmed by all of it.
    expect(await con.run('echo still-$((6*7))')).toContain('still-42');
  }, 60_000);
});
