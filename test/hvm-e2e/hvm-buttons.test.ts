// The HVM power button as Xen administrators press it: `xl shutdown` of an HVM guest without
// PV drivers fails at once with Xen's lines; `xl shutdown -F`, `xl trigger DOM power` and the
// deprecated `xl button-press` raise an ACPI power-button event (PM1a_STS in the stub domain's
// PIIX4 PM block, the SCI on IRQ 9) that the guest's OS handles as a PC's would (acpid: an
// orderly poweroff), and the domain goes as on_poweroff says. Triggers the guest cannot be
// given fail with the reason and exit 1.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { XlConsole } from '../helpers/xl-console.js';

describe.skipIf(shouldSkip())('HVM power and sleep buttons (xl shutdown -F, trigger, button-press)', () => {
  const xn = new Instance('hvmbtn');
  const consoles: XlConsole[] = [];

  const start = async (name: string, extra = '') => {
    const cfg = xn.config(name, [
      `builder = 'hvm'`, `name = '${name}'`, `memory = 128`, `serial = 'pty'`, `vnc = 0`,
      `on_poweroff = 'destroy'`, `on_reboot = 'destroy'`, extra ? `extra = '${extra}'` : '', '',
    ].join('\n'));
    const before = xn.consoleLog(name).length;
    await xn.xlOk('create', cfg);
    await xn.waitFor(`${name}'s init`, () => /Run .* as init process/.test(xn.consoleLog(name).slice(before)), 60_000);
    return before;
  };
  const gone = (name: string) => xn.waitFor(`${name} to go away`, async () => !(await xn.list()).some((d) => d.name === name), 20_000);

  beforeAll(async () => {
    await xn.start();
  }, 60_000);

  afterAll(async () => {
    for (const c of consoles) c.close();
    await xn.stop();
  }, 60_000);

  it('xl shutdown without PV drivers fails at once with Xen\'s lines; -F presses the power button and the guest powers off', async () => {
    const from = await start('btn1');
    const t0 = Date.now();
    const r = await xn.xl('shutdown', 'btn1');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'Shutting down domain ' + (await xn.xlOk('domid', 'btn1')).trim() + '\n' +
        'PV control interface not available: external graceful shutdown not possible.\n' +
        'Use "-F" to fallback to ACPI power event.\n' +
        'shutdown failed (rc=-8)\n',
    );
    // The guest found the PM block and enabled its buttons at boot, as Linux's button driver does.
    expect(xn.consoleLog('btn1').slice(from)).toMatch(/ACPI: PM1a_EVT_BLK 0xb000, PM1a_CNT_BLK 0xb004, SCI IRQ 9/);
    expect(xn.consoleLog('btn1').slice(from)).toMatch(/ACPI: button: Power Button \[PWRF\]/);

    const f = await xn.xl('shutdown', '-F', 'btn1');
    expect(f.stderr).toContain('PV control interface not available: sending ACPI power button event.\n');
    expect(f.code).toBe(0);
    await gone('btn1');
    const log = xn.consoleLog('btn1').slice(from);
    expect(log).toMatch(/acpid: received event "button\/power PWRF 00000080 00000001"/);
    expect(log).toMatch(/reboot: Power down/);
    // It went through its orderly shutdown (disks flushed) before S5, not a destroy.
    expect(log.indexOf('acpid: received event')).toBeLessThan(log.indexOf('reboot: Power down'));
  }, 90_000);

  it('xl trigger DOM power powers the guest off; on_poweroff is honoured', async () => {
    const from = await start('btn2');
    const r = await xn.xl('trigger', 'btn2', 'power');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    await gone('btn2');
    expect(xn.consoleLog('btn2').slice(from)).toMatch(/acpid: executing action .*shutdown -h now/);
    // A poweroff the toolstack saw as such (not a crash), so on_poweroff was the action taken.
    expect(xn.log()).toMatch(/"btn2" shut down \(poweroff\); action destroy/);
  }, 90_000);

  it('xl button-press prints xl\'s deprecation line and presses the button; a bad button is refused', async () => {
    const from = await start('btn3');
    const bad = await xn.xl('button-press', 'btn3', 'reset');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('WARNING: "button-press" is deprecated. Please use "trigger"\nreset is an invalid button identifier\n');
    const r = await xn.xl('button-press', 'btn3', 'power');
    expect(r.stderr).toBe('WARNING: "button-press" is deprecated. Please use "trigger"\n');
    expect(r.code).toBe(0);
    await gone('btn3');
    expect(xn.consoleLog('btn3').slice(from)).toMatch(/button\/power PWRF/);
  }, 90_000);

  it('sleep and nmi are handled and logged, the guest keeps running; what cannot be honoured fails with its reason', async () => {
    const from = await start('btn4');
    const domid = (await xn.xlOk('domid', 'btn4')).trim();
    const kernelLog = () => readFileSync(join(xn.dir, 'log', `kernel-${domid}.log`), 'utf8');
    const s = await xn.xl('trigger', 'btn4', 'sleep');
    expect(s.code).toBe(0);
    await xn.waitFor('the sleep button in the guest', () => /acpid: received event "button\/sleep SLPF/.test(xn.consoleLog('btn4').slice(from)), 10_000);
    // The next line may reach the console log a moment later.
    await xn.waitFor('acpid to say what it does with it', () => /acpid: no rule for the sleep button/.test(xn.consoleLog('btn4').slice(from)), 5_000);

    // An NMI reaches the guest's OS, which reports it as Linux does one nobody claims.
    const nmi = await xn.xl('trigger', 'btn4', 'nmi');
    expect(nmi.code).toBe(0);
    await xn.waitFor('the NMI in the guest', () => kernelLog().includes('Dazed and confused, but trying to continue'), 10_000);
    expect(kernelLog()).toContain('Uhhuh. NMI received for unknown reason 00 on CPU 0.');

    // Xen's hypervisor refuses init and reset (ENOSYS); no guest here is ever in S3.
    for (const [t, why] of [['reset', 'Function not implemented'], ['init', 'Function not implemented'], ['s3resume', 'not suspended']]) {
      const r = await xn.xl('trigger', 'btn4', t!);
      expect(r.code, t).toBe(1);
      expect(r.stderr).toContain(`libxl: error: libxl_domain.c: Domain ${domid}:Send trigger '${t}' failed`);
      expect(r.stderr).toContain(why);
    }
    // xl reboot -F sends the reset trigger, as Xen's does, and fails as Xen's does.
    const rb = await xn.xl('reboot', '-F', 'btn4');
    expect(rb.code).toBe(1);
    expect(rb.stderr).toContain('PV control interface not available: sending ACPI reset button event.\n');
    expect(rb.stderr).toMatch(/Send trigger 'reset' failed: Function not implemented[^]*\nreboot failed \(rc=-3\)\n$/);

    const bad = await xn.xl('trigger', 'btn4', 'bogus');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('Invalid trigger "bogus"\n');
    const vcpu = await xn.xl('trigger', 'btn4', 'power', '7');
    expect(vcpu.code).toBe(1);
    expect(vcpu.stderr).toContain("Send trigger 'power' failed: No such process");
    const usage = await xn.xl('trigger', 'btn4');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("'xl trigger' requires at least 2 arguments.");

    // Still running, and still answering on its console after all that.
    expect((await xn.list()).find((d) => d.name === 'btn4')?.state).not.toMatch(/s/);
    const con = new XlConsole(xn, 'btn4').attach();
    consoles.push(con);
    con.type('');
    await con.waitFor(/btn4:\/# $/m);
    expect(await con.run('echo alive-$((6*7))')).toContain('alive-42');
    con.close();
    await xn.xlOk('destroy', 'btn4');
  }, 90_000);

  it('a PV guest has no ACPI buttons; with PV drivers xl shutdown works without -F', async () => {
    await xn.create('pvbtn');
    await xn.waitForShell('pvbtn', 30_000);
    const domid = (await xn.xlOk('domid', 'pvbtn')).trim();
    const r = await xn.xl('trigger', 'pvbtn', 'power');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`libxl: error: libxl_domain.c: Domain ${domid}:Send trigger 'power' failed: Invalid argument (triggers are for HVM guests)\n`);
    await xn.xlOk('destroy', 'pvbtn');

    await start('btn5', 'xen_pvhvm=1');
    await xn.waitFor('the PV drivers', async () => (await xn.xenstore('xenstore-read', `/local/domain/${(await xn.xlOk('domid', 'btn5')).trim()}/control/feature-poweroff`)).stdout.trim() === '1', 30_000);
    const s = await xn.xl('shutdown', 'btn5');
    expect(s.code).toBe(0);
    await gone('btn5');
  }, 120_000);
});
