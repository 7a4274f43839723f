// A person's first session: create a PV guest, see it in xl list, run a command on its
// console, shut it down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';

describe.skipIf(shouldSkip())('domain lifecycle', () => {
  const xn = new Instance('lifecycle');
  beforeAll(() => xn.start());
  afterAll(() => xn.stop());

  it('creates a guest that shows in xl list with Xen columns and runs commands on its console', async () => {
    const domid = await xn.create('web1', { memory: 128 });
    expect(domid).toBeGreaterThan(0);
    const listing = await xn.xlOk('list');
    expect(listing.split('\n')[0]).toBe('Name                                        ID   Mem VCPUs\tState\tTime(s)');
    const rows = await xn.list();
    const row = rows.find((r) => r.name === 'web1');
    if (!row) throw new Error(`web1 not listed: ${listing}`);
    expect(row).toMatchObject({ id: domid, mem: 128, vcpus: 1 });
    expect(row.state).toMatch(/^[r-][b-]----$/);
    await xn.waitForShell('web1');
    const out = await xn.consoleRun('web1', 'echo hello from $(hostname)');
    expect(out).toContain('hello from web1');
  });

  it('shuts the guest down with xl shutdown -w and removes it (on_poweroff=destroy)', async () => {
    await xn.xlOk('shutdown', '-w', 'web1');
    await xn.waitFor('web1 to go', async () => !(await xn.list()).some((r) => r.name === 'web1'));
    expect(xn.consoleLog('web1')).toContain('reboot: Power down');
    const gone = await xn.xenstore('xenstore-exists', '/local/domain/1');
    expect(gone.code).not.toBe(0);
  });

  it('says plainly that an unknown domain does not exist', async () => {
    const r = await xn.xl('destroy', 'nosuchguest');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid domain identifier "nosuchguest"');
  });
});
