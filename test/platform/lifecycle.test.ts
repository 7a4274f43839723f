// A person's first session: create a PV guest, see it in xl list, run a command on its
// console, shut it down; then reboots (from dom0 and from inside), `xl console` in a real
// terminal (tmux), a paused create, a service as init, and destroy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { Tmux, cgPath, consoleType, domainPids, cmdline, sleep, waitGone } from '../helpers/platform.js';
import { existsSync } from 'node:fs';

describe.skipIf(shouldSkip())('domain lifecycle', () => {
  const xn = new Instance('lifecycle');
  const tmux = new Tmux();
  beforeAll(() => xn.start());
  afterAll(async () => {
    tmux.kill();
    await xn.stop();
  });

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
    expect(rows[0]).toMatchObject({ name: 'Domain-0', id: 0 });
    await xn.waitForShell('web1');
    const out = await xn.consoleRun('web1', 'echo hello from $(hostname)');
    expect(out).toContain('hello from web1');
  });

  it('shuts the guest down with xl shutdown -w and removes it (on_poweroff=destroy)', async () => {
    await xn.xlOk('shutdown', '-w', 'web1');
    // -w waited: the guest has powered off by the time xl returns (it may be still going away).
    expect(xn.consoleLog('web1')).toContain('reboot: Power down');
    expect((await xn.list()).find((r) => r.name === 'web1')?.state ?? '---s--').toMatch(/^---s/);
    await xn.waitFor('web1 to go', async () => !(await xn.list()).some((r) => r.name === 'web1'));
    const gone = await xn.xenstore('xenstore-exists', '/local/domain/1');
    expect(gone.code).not.toBe(0);
  });

  it('says plainly that an unknown domain does not exist', async () => {
    const r = await xn.xl('destroy', 'nosuchguest');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('nosuchguest is an invalid domain identifier (rc=-6)');
  });

  it('xl reboot brings the guest back under the same name with a new domid (on_reboot=restart)', async () => {
    const before = await xn.create('rb1');
    await xn.waitForShell('rb1');
    await xn.consoleRun('rb1', 'echo first boot > /tmp/marker');
    await xn.xlOk('reboot', 'rb1');
    await xn.waitFor('rb1 to come back with a new domid', async () => {
      const r = (await xn.list()).find((x) => x.name === 'rb1');
      return r !== undefined && r.id !== before;
    });
    const after = Number((await xn.xlOk('domid', 'rb1')).trim());
    expect(after).not.toBe(before);
    expect(xn.consoleLog('rb1')).toContain('reboot: Restarting system');
    // The old domain is gone everywhere; the new one is a fresh boot with a working shell.
    expect((await xn.xenstore('xenstore-exists', `/local/domain/${before}`)).code).not.toBe(0);
    expect(existsSync(cgPath(xn, 'pids', before))).toBe(false);
    await xn.waitFor('rb1 to boot again', () => xn.consoleLog('rb1').split('Run /bin/sh as init process').length > 2, 15_000);
    const out = await xn.consoleRun('rb1', 'cat /tmp/marker 2>&1; hostname');
    expect(out).toContain('No such file');
    expect(out).toContain('rb1');
  });

  it('the guest\'s own `reboot` command restarts it too', async () => {
    const before = Number((await xn.xlOk('domid', 'rb1')).trim());
    const boots = xn.consoleLog('rb1').split('Run /bin/sh as init process').length;
    await consoleType(xn, 'rb1', 'reboot');
    await xn.waitFor('rb1 to reboot from inside', async () => {
      const r = (await xn.list()).find((x) => x.name === 'rb1');
      return r !== undefined && r.id !== before;
    });
    await xn.waitFor('rb1 to boot again', () => xn.consoleLog('rb1').split('Run /bin/sh as init process').length > boots, 15_000);
    expect(await xn.consoleRun('rb1', 'echo up again')).toContain('up again');
    await xn.xlOk('destroy', 'rb1');
    await waitGone(xn, 'rb1');
  });

  it('xl console works in a terminal (tmux): typed commands run, Ctrl-] detaches', async () => {
    if (!Tmux.available()) throw new Error('tmux is not installed');
    await xn.create('con1');
    await xn.waitForShell('con1');
    tmux.startXl(xn, 'con', 'console', 'con1');
    await xn.waitFor('xl console to attach', () => tmux.capture('con').includes('Run /bin/sh as init process') || tmux.capture('con').includes('$'), 5_000);
    tmux.sendKeys('con', 'echo sum=$((40+2)) on $(hostname)', 'Enter');
    await xn.waitFor('the command output in the pane', () => tmux.capture('con').includes('sum=42 on con1'), 5_000);
    // The terminal's size reached the guest (xl console passes it on).
    tmux.sendKeys('con', 'stty size', 'Enter');
    await xn.waitFor('the window size in the guest', () => /^40 160$/m.test(tmux.capture('con')), 5_000);
    tmux.sendKeys('con', 'C-]');
    await xn.waitFor('xl console to detach', () => tmux.capture('con').includes('xl exited with 0'), 5_000);
    // Detaching leaves the guest running.
    expect((await xn.list()).some((r) => r.name === 'con1')).toBe(true);
    expect(await xn.consoleRun('con1', 'echo still running')).toContain('still running');
    await xn.xlOk('destroy', 'con1');
  });

  it('xl create -p makes a paused domain with no process running until unpause', async () => {
    await xn.xlOk('create', '-p', xn.guestConfig('paused1'));
    const row = (await xn.list()).find((r) => r.name === 'paused1');
    expect(row?.state).toBe('--p---');
    expect(domainPids(xn, row!.id)).toEqual([]);
    await xn.xlOk('unpause', 'paused1');
    await xn.waitForShell('paused1');
    expect(await xn.consoleRun('paused1', 'echo running')).toContain('running');
    await xn.xlOk('destroy', 'paused1');
  });

  it('runs a service as init (extra = "init=/usr/bin/python3 -m http.server 80") and stops it with xl shutdown', async () => {
    const domid = await xn.create('svc1', { extra: 'init=/usr/bin/python3 -m http.server 80' });
    await xn.waitFor('python to run as init', () => domainPids(xn, domid).some((p) => cmdline(p) === '/usr/bin/python3 -m http.server 80'), 10_000);
    expect(xn.consoleLog('svc1')).toContain('Run /usr/bin/python3 as init process');
    await xn.waitFor('the server to listen', () => xn.consoleLog('svc1').includes('Serving HTTP on'), 10_000);
    await xn.xlOk('shutdown', '-w', 'svc1');
    await waitGone(xn, 'svc1');
    expect(xn.consoleLog('svc1')).toContain('reboot: Power down');
  });

  it('xl destroy removes a running guest at once: processes, cgroups, xenstore, console', async () => {
    const domid = await xn.create('gone1');
    await xn.waitForShell('gone1');
    const pids = domainPids(xn, domid);
    expect(pids.length).toBeGreaterThan(0);
    await xn.xlOk('destroy', 'gone1');
    expect((await xn.list()).some((r) => r.name === 'gone1')).toBe(false);
    await sleep(100);
    for (const p of pids) expect(existsSync(`/proc/${p}`), `pid ${p} survived destroy`).toBe(false);
    for (const c of ['pids', 'memory', 'cpu', 'cpuset', 'freezer', 'cpuacct']) expect(existsSync(cgPath(xn, c, domid))).toBe(false);
    expect((await xn.xenstore('xenstore-exists', `/local/domain/${domid}`)).code).not.toBe(0);
    expect((await xn.xl('console', 'gone1')).stderr).toContain('gone1 is an invalid domain identifier (rc=-6)');
  });
});
