// When a guest crashes (its kernel is killed: kill -9 of the host pid, or its init dies),
// dom0 applies the config's on_crash action, as libxl does: destroy, restart,
// rename-restart, preserve, coredump-destroy, coredump-restart.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { cgPath, cmdline, domainPids, domidOf, kernelPid, waitGone } from '../helpers/platform.js';

describe.skipIf(shouldSkip())('on_crash actions', () => {
  const xn = new Instance('oncrash');
  beforeAll(() => xn.start());
  afterAll(() => xn.stop());

  const dumpDir = () => join(xn.dir, 'lib', 'dump');
  const dumps = (name: string) => (existsSync(dumpDir()) ? readdirSync(dumpDir()).filter((f) => f.includes(`-${name}.`)) : []);

  /** Boot a guest with this on_crash, then kill -9 its kernel from the host. */
  async function crash(name: string, onCrash?: string): Promise<number> {
    const domid = await xn.create(name, onCrash ? { on_crash: onCrash } : {});
    await xn.waitForShell(name);
    process.kill(kernelPid(xn, domid), 'SIGKILL');
    return domid;
  }

  async function restarted(name: string, old: number): Promise<number> {
    await xn.waitFor(`${name} to restart`, async () => {
      const id = await domidOf(xn, name);
      return id !== null && id !== old;
    });
    await xn.waitFor(`${name} to boot again`, () => xn.consoleLog(name).split('Run /bin/sh as init process').length > 2, 15_000);
    return (await domidOf(xn, name))!;
  }

  it('destroy (the default): the crashed guest is gone and the hypervisor log says it crashed', async () => {
    const domid = await crash('cr-default');
    await waitGone(xn, 'cr-default');
    expect(await xn.xlOk('dmesg')).toMatch(new RegExp(`d${domid}: crashed \\(kernel (killed by SIGKILL|exited with 137)\\)`));
    expect((await xn.xenstore('xenstore-exists', `/local/domain/${domid}`)).code).not.toBe(0);
    expect(existsSync(cgPath(xn, 'pids', domid))).toBe(false);
    expect(dumps('cr-default')).toEqual([]);
  });

  it('restart: the guest comes back under its name with a new domid and a working shell', async () => {
    const old = await crash('cr-restart', 'restart');
    const now = await restarted('cr-restart', old);
    expect(now).not.toBe(old);
    expect(await xn.consoleRun('cr-restart', 'echo back')).toContain('back');
    expect((await xn.xenstore('xenstore-exists', `/local/domain/${old}`)).code).not.toBe(0);
    await xn.xlOk('destroy', 'cr-restart');
  });

  it('rename-restart: the crashed domain is kept under a new name and a fresh one takes the name', async () => {
    const old = await crash('cr-rename', 'rename-restart');
    const now = await restarted('cr-rename', old);
    const rows = await xn.list();
    const kept = rows.find((r) => r.id === old);
    expect(kept, JSON.stringify(rows)).toBeDefined();
    expect(kept!.name).not.toBe('cr-rename');
    expect(kept!.name).toContain('cr-rename');
    expect(kept!.state).toBe('---sc-');
    expect((await xn.xenstore('xenstore-read', `/local/domain/${old}/name`)).stdout.trim()).toBe(kept!.name);
    expect(rows.find((r) => r.id === now)?.name).toBe('cr-rename');
    expect(await xn.consoleRun('cr-rename', 'echo fresh')).toContain('fresh');
    await xn.xlOk('destroy', kept!.name);
    await xn.xlOk('destroy', 'cr-rename');
    expect((await xn.list()).filter((r) => r.name.includes('cr-rename'))).toEqual([]);
  });

  it('preserve: the crashed domain stays listed as crashed, with no process left, until xl destroy', async () => {
    const domid = await crash('cr-preserve', 'preserve');
    await xn.waitFor('the crash to show', async () => (await xn.list()).find((r) => r.id === domid)?.state === '---sc-');
    expect(domainPids(xn, domid)).toEqual([]);
    // Its xenstore record stays for inspection, as Xen keeps a preserved domain's.
    expect((await xn.xenstore('xenstore-read', `/local/domain/${domid}/name`)).stdout.trim()).toBe('cr-preserve');
    await xn.xlOk('destroy', 'cr-preserve');
    expect((await xn.list()).some((r) => r.id === domid)).toBe(false);
    expect(existsSync(cgPath(xn, 'pids', domid))).toBe(false);
  });

  it('coredump-destroy: the guest\'s memory is written to $XENODE_LIB_DIR/dump/ and the domain goes', async () => {
    const domid = await crash('cr-dump', 'coredump-destroy');
    await waitGone(xn, 'cr-dump');
    const files = dumps('cr-dump');
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`-cr-dump\\.${domid}\\.core$`));
    const path = join(dumpDir(), files[0]!);
    const st = statSync(path);
    expect(st.size).toBe(128 * 1024 * 1024); // all of its RAM, pfn n at offset n*4096
    expect(st.blocks * 512).toBeLessThan(st.size / 4); // sparse: untouched pages are holes
    expect(st.mode & 0o077).toBe(0); // guest memory is private to root
    // The start_info page the builder wrote (top of RAM) is in the dump, magic first.
    const startInfo = readFileSync(path).subarray(st.size - 4096, st.size - 4096 + 14).toString('latin1');
    expect(startInfo).toBe('xen-3.0-x86_64');
  });

  it('coredump-restart: a dump is written and the guest comes back', async () => {
    const old = await crash('cr-dumprs', 'coredump-restart');
    const now = await restarted('cr-dumprs', old);
    expect(now).not.toBe(old);
    expect(dumps('cr-dumprs')).toHaveLength(1);
    expect(dumps('cr-dumprs')[0]).toMatch(new RegExp(`\\.${old}\\.core$`));
    expect(await xn.consoleRun('cr-dumprs', 'echo alive')).toContain('alive');
    await xn.xlOk('destroy', 'cr-dumprs');
  });

  it('a guest whose init is killed panics, and on_crash applies (restart)', async () => {
    const domid = await xn.create('cr-init', { on_crash: 'restart' });
    await xn.waitForShell('cr-init');
    const init = domainPids(xn, domid).find((p) => cmdline(p) === '/bin/sh -l');
    expect(init).toBeDefined();
    process.kill(init!, 'SIGKILL');
    await restarted('cr-init', domid);
    expect(xn.consoleLog('cr-init')).toContain('Kernel panic - not syncing: Attempted to kill init!');
    await xn.xlOk('destroy', 'cr-init');
  });
});
