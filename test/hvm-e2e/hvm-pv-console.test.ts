// `xl console -t pv` of a PV-on-HVM guest (an HVM guest with PV drivers): the guest runs the PV
// console frontend on its console ring (hvc0, as Linux's hvc_xen does for HVM guests, the ring
// and event channel from its HVM params) with a login shell on it, while `-t serial` keeps the
// serial line; an HVM guest without PV drivers has nothing on its PV console, and xl says so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';

describe.skipIf(shouldSkip())('xl console -t pv of an HVM guest', () => {
  const xn = new Instance('hvmpvcon');
  const consoles: XlConsole[] = [];
  const start = async (name: string, extra: string) => {
    await xn.xlOk('create', xn.config(name, [
      `builder = 'hvm'`, `name = '${name}'`, `memory = 128`, `serial = 'pty'`, `vnc = 0`, `extra = '${extra}'`, '',
    ].join('\n')));
    await xn.waitFor(`${name}'s init`, () => /Run .* as init process/.test(xn.consoleLog(name)), 60_000);
  };
  const attach = async (dom: string, opts: string[]) => {
    const c = new XlConsole(xn, dom, opts).attach();
    consoles.push(c);
    c.type('');
    await c.waitFor(new RegExp(`${dom}:/# $`, 'm'));
    return c;
  };

  beforeAll(async () => {
    await xn.start();
    await start('pvonhvm', 'xen_pvhvm=1');
    await start('plainhvm', '');
  }, 120_000);

  afterAll(async () => {
    for (const c of consoles) c.close();
    await xn.stop();
  }, 60_000);

  it('-t pv reaches a shell on hvc0 while -t serial keeps the serial line', async () => {
    const pv = await attach('pvonhvm', ['-t', 'pv']);
    // The shell's terminal is hvc0's pty, not the serial console's.
    const a = await pv.run('echo pv-$((40+2)) $(hostname)');
    expect(a).toContain('pv-42 pvonhvm');
    const serial = await attach('pvonhvm', ['-t', 'serial']);
    expect(await serial.run('echo serial-$((40+3)) $(hostname)')).toContain('serial-43 pvonhvm');
    // Two shells, one per console: the PV one did not see the serial one's command.
    expect(pv.screen()).not.toContain('serial-43');
    expect(xn.consoleLog('pvonhvm')).toMatch(/hvc0: Xen console ring at frame \d+, event channel \d+/);
    expect(xn.consoleLog('pvonhvm')).toMatch(/hvc0: login shell on the Xen PV console/);
    // And the PV console still answers after the serial session.
    expect(await pv.run('echo again-$((1+1))')).toContain('again-2');
  }, 60_000);

  it('-t pv on an HVM guest without PV drivers says there is nothing there', async () => {
    const r = await xn.xl('console', '-t', 'pv', 'plainhvm');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/has no PV drivers running: nothing is on its PV console/);
    expect(r.stderr).toMatch(/\nUnable to attach console\n$/);
    // Its serial console is there.
    const serial = await attach('plainhvm', ['-t', 'serial']);
    expect(await serial.run('echo ok-$((2*3))')).toContain('ok-6');
  }, 60_000);
});
