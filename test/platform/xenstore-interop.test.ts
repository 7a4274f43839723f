// Debian's stock xenstore-utils (libxenstore 4.17) against a running xenode's xenstored,
// as an administrator uses them: reading a guest's tree as libxl lays it out, writing and
// removing nodes, watching domains come and go, and driving the PV shutdown protocol.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { waitGone } from '../helpers/platform.js';

describe.skipIf(shouldSkip())('stock xenstore-utils against a running xenode', () => {
  const xn = new Instance('xsinterop');
  let domid = 0;
  beforeAll(async () => {
    await xn.start();
    domid = await xn.create('xs1', { memory: 64 });
    await xn.waitForShell('xs1');
  });
  afterAll(() => xn.stop());

  const xs = async (tool: string, ...args: string[]) => {
    const r = await xn.xenstore(tool, ...args);
    if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('xenstore-read / -ls / -list show the guest as libxl lays it out', async () => {
    expect(await xs('xenstore-read', '/local/domain/0/name')).toBe('Domain-0\n');
    expect((await xs('xenstore-list', '/local/domain')).trim().split('\n').sort()).toEqual(['0', String(domid)]);
    const tree = await xs('xenstore-ls', '-f', `/local/domain/${domid}`);
    const node = (p: string) => new RegExp(`^/local/domain/${domid}/${p} = "(.*)"$`, 'm').exec(tree)?.[1];
    expect(node('name')).toBe('xs1');
    expect(node('domid')).toBe(String(domid));
    expect(node('memory/target')).toBe(String(64 * 1024));
    expect(node('memory/static-max')).toBe(String(64 * 1024));
    expect(node('console/tty')).toMatch(/^\/dev\/pts\/\d+$/);
    expect(node('console/type')).toBe('xenconsoled');
    // libxl makes control/feature-* empty and guest-writable; the guest's kernel fills them in.
    expect(node('control/feature-poweroff')).toBeDefined();
    expect(node('control/sysrq')).toBe('');
    expect(node('control/platform-feature-xs_reset_watches')).toBe('1');
    expect(Number(node('store/port'))).toBeGreaterThan(0);
    expect(Number(node('store/ring-ref'))).toBeGreaterThan(0);
    expect(node('cpu/0/availability')).toBe('online');
    const vm = node('vm')!;
    expect(vm).toMatch(/^\/vm\/[0-9a-f-]{36}$/);
    expect(await xs('xenstore-read', `${vm}/name`, `${vm}/on_crash`)).toBe('xs1\ndestroy\n');
    // The same uuid xl list -l reports.
    const long = JSON.parse(await xn.xlOk('list', '-l', 'xs1'));
    expect(vm).toBe(`/vm/${long[0].config.c_info.uuid}`);
  });

  it('xenstore-ls -p shows the guest owning its writable nodes and only reading the rest', async () => {
    const perms = await xs('xenstore-ls', '-p', `/local/domain/${domid}`);
    expect(perms).toMatch(new RegExp(`^name = "xs1".*\\(n0,r${domid}\\)$`, 'm'));
    expect(perms).toMatch(new RegExp(`^ target = "\\d+".*\\(n${domid}\\)$`, 'm'));
    expect(perms).toMatch(new RegExp(`^data = "".*\\(n${domid}\\)$`, 'm'));
  });

  it('xenstore-write / -exists / -rm work in the running store, and xl sees what they change', async () => {
    await xs('xenstore-write', `/local/domain/${domid}/data/greeting`, 'hello guest', '/tool/xenode-test/a', '1');
    expect(await xs('xenstore-read', `/local/domain/${domid}/data/greeting`)).toBe('hello guest\n');
    expect((await xn.xenstore('xenstore-exists', '/tool/xenode-test/a')).code).toBe(0);
    await xs('xenstore-rm', '/tool/xenode-test');
    expect((await xn.xenstore('xenstore-exists', '/tool/xenode-test/a')).code).not.toBe(0);
    // xl changes show up for the stock tools at once.
    await xn.xlOk('mem-set', 'xs1', '48');
    expect(await xs('xenstore-read', `/local/domain/${domid}/memory/target`)).toBe(`${48 * 1024}\n`);
    // A missing node is an error, as with Xen's xenstored.
    const miss = await xn.xenstore('xenstore-read', '/local/domain/12345/name');
    expect(miss.code).not.toBe(0);
    expect(miss.stderr).toMatch(/couldn't read path/);
  });

  /** Start xenstore-watch -n N on a path; resolves with its output when it exits. */
  function watch(path: string, n: number): { out: Promise<string>; ready: Promise<void> } {
    const child = spawn('xenstore-watch', ['-n', String(n), path], { env: xn.env });
    let buf = '';
    let readyResolve!: () => void;
    const ready = new Promise<void>((r) => (readyResolve = r));
    child.stdout.on('data', (d) => {
      buf += String(d);
      if (buf.includes(path)) readyResolve(); // the initial event: the watch is registered
    });
    const out = new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => (child.kill(), reject(new Error(`xenstore-watch ${path} got only: ${buf}`))), 15_000);
      child.on('exit', () => (clearTimeout(t), resolve(buf)));
    });
    return { out, ready };
  }

  it('xenstore-watch sees @introduceDomain and @releaseDomain as guests come and go', async () => {
    const intro = watch('@introduceDomain', 2);
    const rel = watch('@releaseDomain', 2);
    await Promise.all([intro.ready, rel.ready]);
    const id = await xn.create('xs2');
    expect(await intro.out).toBe('@introduceDomain\n@introduceDomain\n');
    await xn.xlOk('destroy', 'xs2');
    expect(await rel.out).toBe('@releaseDomain\n@releaseDomain\n');
    expect((await xn.xenstore('xenstore-exists', `/local/domain/${id}`)).code).not.toBe(0);
  });

  it('writing control/shutdown with xenstore-write powers the guest off (the PV protocol)', async () => {
    const w = watch(`/local/domain/${domid}/control/shutdown`, 3);
    await w.ready;
    await xs('xenstore-write', `/local/domain/${domid}/control/shutdown`, 'poweroff');
    // Our write, then the guest's acknowledgement (it clears the node).
    expect((await w.out).trim().split('\n')).toHaveLength(3);
    await waitGone(xn, 'xs1');
    expect(xn.consoleLog('xs1')).toContain('xenbus: shutdown requested: poweroff');
    expect((await xs('xenstore-list', '/local/domain')).trim()).toBe('0');
    expect((await xs('xenstore-ls', '/vm')).trim()).toBe('');
  });
});
