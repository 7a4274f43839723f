// A leak check in the spirit of Xen's osstest: 50 create/destroy cycles (ending by xl
// destroy, by xl shutdown, and by a crash) must leave no process, fd, cgroup, memfd (open or
// mapped), xenstore node, mount, namespace or directory behind.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import {
  childrenOf, dom0Pid, fdTargets, foreignNamespaces, hypervisorPid, instanceCgroups, instanceMemfds, instanceMounts,
  instanceProcesses, kernelPid, memfdHolders, GUEST_MEMORY_FILE,
} from '../helpers/platform.js';

const CYCLES = 50;

describe.skipIf(shouldSkip())('leak check', () => {
  const xn = new Instance('leak');
  let hv = 0;
  let d0 = 0;
  beforeAll(async () => {
    await xn.start();
    hv = hypervisorPid(xn);
    d0 = dom0Pid(xn);
  });
  afterAll(() => xn.stop());

  /** fd targets with the kernel-assigned numbers of pipes/sockets/anon inodes left out: kinds only. */
  const fdKinds = (pid: number) =>
    fdTargets(pid)
      .map((l) => l.replace(/^\d+ -> /, '').replace(/\[\d+\]$/, '[]'))
      .sort();
  const memfdMappings = (pid: number) => readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => GUEST_MEMORY_FILE.test(l));

  async function state() {
    return {
      hypervisorFds: fdKinds(hv),
      dom0Fds: fdKinds(d0),
      hypervisorChildren: childrenOf(hv).length, // dom0 only
      dom0Children: childrenOf(d0).length,
      guestProcesses: instanceProcesses(xn).map((p) => `${p.pid} ${p.cmd}`),
      namespaces: [...new Set(instanceProcesses(xn).flatMap((p) => p.ns))].filter((n) => [hv, d0].every((q) => !foreignNamespaces(q).includes(n))),
      memfds: instanceMemfds(xn),
      memfdMappings: [...memfdMappings(hv), ...memfdMappings(d0)],
      cgroups: instanceCgroups(xn).filter((d) => /\/d\d+$/.test(d)),
      xenstore: (await xn.xenstore('xenstore-ls', '-f', '/')).stdout.split('\n').filter(Boolean).sort(),
      mounts: instanceMounts(xn),
      domainDirs: existsSync(join(xn.dir, 'run', 'domains')) ? readdirSync(join(xn.dir, 'run', 'domains')) : [],
    };
  }

  /** The state once it holds still (an xl client's socket may still be closing in dom0). */
  async function settled() {
    let prev = await state();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await state();
      if (JSON.stringify(now) === JSON.stringify(prev)) return now;
      prev = now;
    }
    return prev;
  }

  const guestDomids = async () =>
    (await xn.xenstore('xenstore-list', '/local/domain')).stdout.split('\n').filter((d) => d && d !== '0').map(Number);

  /** One cycle: xl create, boot to init, then xl shutdown -w, a crash, or xl destroy. The
   * stock xenstore tools (not xl, a node process each) do the polling, to keep cycles quick. */
  async function cycle(i: number): Promise<void> {
    const name = `leak${i}`;
    await xn.xlOk('create', xn.guestConfig(name, { memory: 32 }));
    const [domid] = await guestDomids();
    if (domid === undefined) throw new Error(`${name} has no xenstore home`);
    await xn.waitFor(`${name} to boot`, () => {
      const log = xn.consoleLog(name);
      return /Run .* as init process/.test(log.slice(log.lastIndexOf(`(domain ${domid})`)));
    }, 15_000);
    switch (i % 5) {
      case 0:
        await xn.xlOk('shutdown', '-w', name);
        break;
      case 1:
        process.kill(kernelPid(xn, domid), 'SIGKILL'); // crash; on_crash = destroy
        break;
      default:
        await xn.xlOk('destroy', name);
    }
    await xn.waitFor(`${name} to go`, async () => (await guestDomids()).length === 0);
  }

  it('sees a running guest\'s processes, namespaces, memfds and cgroups (the detector works)', async () => {
    const domid = await xn.create('probe', { memory: 32 });
    await xn.waitForShell('probe');
    const s = await state();
    expect(s.guestProcesses.some((p) => p.includes('/boot/kernel.mjs'))).toBe(true);
    expect(s.namespaces.length).toBeGreaterThanOrEqual(6); // user, pid, mnt, net, uts, ipc
    expect(s.memfds.some((m) => m.includes(`xenode-d${domid}-ram`))).toBe(true);
    expect(s.memfdMappings.length).toBeGreaterThan(0); // dom0 maps the guest's pages
    expect(s.cgroups.filter((c) => c.endsWith(`/d${domid}`))).toHaveLength(6);
    expect(s.xenstore.some((l) => l.startsWith(`/local/domain/${domid}/`))).toBe(true);
    expect(s.domainDirs).toContain(String(domid));
    await xn.xlOk('destroy', 'probe');
  });

  it(`${CYCLES} create/destroy cycles leave nothing behind`, async () => {
    // One warm-up cycle: first-use state (log files, the boot image) is not a leak.
    await cycle(0);
    const before = await settled();
    expect(before.guestProcesses).toEqual([]);
    expect(before.cgroups).toEqual([]);
    expect(before.memfds).toEqual([]);
    const started = Date.now();
    for (let i = 1; i <= CYCLES; i++) await cycle(i);
    const elapsed = Date.now() - started;
    console.log(`leak check: ${CYCLES} cycles in ${(elapsed / 1000).toFixed(1)} s (${Math.round(elapsed / CYCLES)} ms each)`);
    // Teardown is synchronous with destroy; allow a moment for asynchronous closes anyway.
    let after = await state();
    const deadline = Date.now() + 5000;
    while (JSON.stringify(after) !== JSON.stringify(before) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await state();
    }
    expect(after).toEqual(before);
    // Nothing anywhere on the host still holds one of this instance's guests' memfds.
    expect(memfdHolders().filter((l) => [hv, d0].includes(Number(l.split(':')[0])))).toEqual([]);
    expect((await xn.list()).map((r) => r.name)).toEqual(['Domain-0']);
  }, 300_000);
});
