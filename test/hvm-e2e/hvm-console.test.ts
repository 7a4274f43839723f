// `xl console` for an HVM guest, as a user runs it: a classic HVM config (builder='hvm',
// serial='pty', vnc=1) and `xl console` in a terminal (tmux) reaching the guest's shell over
// its emulated 16550, detached with Ctrl-]; and the errors a user gets when there is no such
// domain or the guest has no console.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { Tmux } from '../helpers/platform.js';

describe.skipIf(shouldSkip())('xl console of an HVM guest', () => {
  const xn = new Instance('hvmcon');
  const tmux = new Tmux();
  const hvmConfig = (name: string, serial: string, extra: string[] = []) =>
    xn.config(name, [
      `builder = 'hvm'`,
      `name    = '${name}'`,
      `memory  = '128'`,
      `vcpus   = '1'`,
      `serial  = '${serial}'`,
      `vnc     = 1`,
      `on_poweroff = 'destroy'`,
      ...extra,
      '',
    ].join('\n'));

  beforeAll(async () => {
    await xn.start();
    await xn.xlOk('create', hvmConfig('hvmc1', 'pty'));
    await xn.waitFor("hvmc1's init", () => /Run .* as init process/.test(xn.consoleLog('hvmc1')), 60_000);
  }, 90_000);

  afterAll(async () => {
    tmux.kill();
    await xn.stop();
  }, 60_000);

  it('reaches the shell on the serial line from a terminal; Ctrl-] detaches', async () => {
    if (!Tmux.available()) throw new Error('tmux is not installed');
    for (const [session, args] of [['plain', ['console', 'hvmc1']], ['typed', ['console', '-t', 'serial', 'hvmc1']]] as const) {
      tmux.startXl(xn, session, ...args);
      // The prompt shows once the shell gets a newline (the boot log was written before we attached).
      tmux.sendKeys(session, '', 'Enter');
      await xn.waitFor('the prompt in the pane', () => tmux.capture(session).includes('hvmc1:/#'), 10_000);
      tmux.sendKeys(session, `echo ${session}-sum=$((40+2)) on $(hostname)`, 'Enter');
      await xn.waitFor('the command output in the pane', () => tmux.capture(session).includes(`${session}-sum=42 on hvmc1`), 10_000);
      tmux.sendKeys(session, 'C-]');
      await xn.waitFor('xl console to detach', () => tmux.capture(session).includes('xl exited with 0'), 5_000);
    }
    // The guest is still there after the detaches.
    expect((await xn.list()).find((d) => d.name === 'hvmc1')).toBeDefined();
  });

  it('passes the window size on to a guest with PV drivers (xen_pvhvm=1)', async () => {
    if (!Tmux.available()) throw new Error('tmux is not installed');
    await xn.xlOk('create', hvmConfig('hvmc3', 'pty', [`extra = 'xen_pvhvm=1'`]));
    await xn.waitFor("hvmc3's init", () => /Run .* as init process/.test(xn.consoleLog('hvmc3')), 60_000);
    tmux.startXl(xn, 'size', 'console', 'hvmc3');
    tmux.sendKeys('size', '', 'Enter');
    await xn.waitFor('the prompt in the pane', () => tmux.capture('size').includes('hvmc3:/#'), 10_000);
    // The size travels xl -> xenstore -> the guest's watch: ask until it has arrived.
    let asked = 0;
    await xn.waitFor('the window size in the guest', () => {
      if (asked++ % 20 === 0) tmux.sendKeys('size', 'stty size', 'Enter');
      return /^40 160$/m.test(tmux.capture('size'));
    }, 15_000).catch((e: Error) => {
      throw new Error(`${e.message.split('\n')[0]}; the pane shows:\n${tmux.capture('size')}`);
    });
    tmux.sendKeys('size', 'C-]');
    await xn.xlOk('destroy', 'hvmc3');
  });

  it('says there is no such domain, and only that', async () => {
    const r = await xn.xl('console', 'nosuchguest');
    expect(r.code).toBe(1);
    // xl's find_domain(): "<name> is an invalid domain identifier (rc=-6)".
    expect(r.stderr).toMatch(/^nosuchguest is an invalid domain identifier \(rc=-6\)$/m);
    expect(r.stderr).not.toMatch(/not running/);
  });

  it("says a guest with serial='none' has no console", async () => {
    await xn.xlOk('create', hvmConfig('hvmc2', 'none'));
    const r = await xn.xl('console', 'hvmc2');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/domain \d+ \(hvmc2\) has no console/);
    expect(r.stderr).not.toMatch(/not running/);
    await xn.xlOk('destroy', 'hvmc2');
  });
});
