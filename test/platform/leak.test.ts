// A leak check in the spirit of Xen's osstest: 100 create/destroy cycles of a guest with a vif
// (on a bridge of this suite's own) and a disk, ending by xl destroy, by xl shutdown, and by a
// crash, must leave no process, fd, cgroup, memfd (open or mapped), xenstore node, network
// link, mount, namespace, directory or run-dir file behind, and dom0's and the hypervisor's
// RSS must stay flat after warm-up.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { TestLan } from '../helpers/lan.js';
import {
  childrenOf, dom0Pid, fdTargets, foreignNamespaces, hypervisorPid, instanceCgroups, instanceMemfds, instanceMounts,
  instanceProcesses, kernelPid, memfdHolders, GUEST_MEMORY_FILE,
} from '../helpers/platform.js';

/** 100 in every run; XENODE_LEAK_CYCLES=1000 runs the long check by hand (about ten
 * times as long: 25-60 min by load). */
const CYCLES = leakCycles(process.env.XENODE_LEAK_CYCLES);
/** Cycles before the RSS baseline: the JIT, heap sizing and first-use caches settle. */
const WARMUP = 10;
/** "Flat": the anonymous RSS floor (lowest of 10 cycles: garbage collection makes single
 * samples swing) may not rise by this much from just after warm-up to the last 10 cycles;
 * leaking ~100 KiB per cycle would. */
const RSS_SLACK_KIB = 8 * 1024;
const VIFNAME = 'xnlkvif0';

function leakCycles(env: string | undefined): number {
  if (env === undefined || env === '') return 100;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 20 || n > 10_000) throw new Error(`XENODE_LEAK_CYCLES=${env}: want a whole number of cycles from 20 to 10000`);
  return n;
}

describe.skipIf(shouldSkip())('leak check', () => {
  const xn = new Instance('leak');
  // The LAN's state (and its dnsmasq) lives outside the instance's dir: it is not the instance's.
  const lanDir = mkdtempSync(join(tmpdir(), 'xenode-test-leak-lan-'));
  const lan = new TestLan('leak', lanDir);
  let hv = 0;
  let d0 = 0;
  let image = '';
  beforeAll(async () => {
    await xn.start();
    hv = hypervisorPid(xn);
    d0 = dom0Pid(xn);
    await lan.up();
    image = join(xn.dir, 'leak-disk.img');
    writeFileSync(image, Buffer.alloc(8 << 20));
  });
  afterAll(async () => {
    await xn.stop();
    lan.down();
    rmSync(lanDir, { recursive: true, force: true });
  });

  /** A guest with a vif on the suite's bridge and a disk, as the cycles create it. */
  const config = (name: string) =>
    xn.config(
      name,
      [`name = "${name}"`, 'type = "pv"', 'memory = 32', 'vcpus = 1', 'extra = "console=hvc0"',
        `vif = [ 'bridge=${lan.bridge},vifname=${VIFNAME}' ]`, `disk = [ 'file:${image},xvda,w' ]`, ''].join('\n'),
    );

  /** Links of this suite in the host namespace: the bridge's ports and anything named like our vif. */
  const links = () =>
    spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map((line) => ({ name: line.split(': ')[1]?.split('@')[0] ?? '', line }))
      .filter((l) => l.name.startsWith('xnlk') || l.line.includes(` master ${lan.bridge} `))
      .map((l) => l.name)
      .sort();

  /** Every file under the run dir (sockets, pid files, domain dirs), not the logs. */
  const runFiles = (dir = join(xn.dir, 'run')): string[] =>
    existsSync(dir)
      ? readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
          e.isDirectory() ? [`${relative(xn.dir, join(dir, e.name))}/`, ...runFiles(join(dir, e.name))] : [relative(xn.dir, join(dir, e.name))],
        ).sort()
      : [];

  /** Anonymous RSS (heap, native allocations): what a leak grows. dom0's RSS also counts the
   * guest RAM it maps (RssShmem), which comes and goes with each guest and with GC. */
  const rssKiB = (pid: number) => Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

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
      links: links(),
      runFiles: runFiles(),
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

  /** One cycle: xl create, boot to init (or not), then xl shutdown -w, a crash, or xl destroy. The
   * stock xenstore tools (not xl, a node process each) do the polling, to keep cycles quick. */
  async function cycle(i: number): Promise<void> {
    const name = `leak${i}`;
    await xn.xlOk('create', config(name));
    const [domid] = await guestDomids();
    if (domid === undefined) throw new Error(`${name} has no xenstore home`);
    // Every fifth guest is destroyed while it boots (its devices still connecting).
    if (i % 5 !== 4) {
      await xn.waitFor(`${name} to boot`, () => {
        const log = xn.consoleLog(name);
        return /Run .* as init process/.test(log.slice(log.lastIndexOf(`(domain ${domid})`)));
      }, 15_000);
    }
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

  it('sees a running guest\'s processes, namespaces, memfds, cgroups, links and devices (the detector works)', async () => {
    await xn.xlOk('create', config('probe'));
    const domid = Number((await xn.xlOk('domid', 'probe')).trim());
    await xn.waitForShell('probe');
    await xn.waitFor('the probe\'s vif and disk to connect', async () =>
      (await xn.xenstore('xenstore-read', `/local/domain/0/backend/vif/${domid}/0/state`)).stdout.trim() === '4' &&
      (await xn.xenstore('xenstore-read', `/local/domain/0/backend/vbd/${domid}/51712/state`)).stdout.trim() === '4');
    const s = await state();
    expect(s.links).toContain(VIFNAME);
    expect(s.xenstore.some((l) => l.startsWith(`/local/domain/0/backend/vbd/${domid}/51712/`))).toBe(true);
    expect(s.guestProcesses.some((p) => p.includes('/boot/kernel.mjs'))).toBe(true);
    expect(s.namespaces.length).toBeGreaterThanOrEqual(6); // user, pid, mnt, net, uts, ipc
    expect(s.memfds.some((m) => m.includes(`xenode-d${domid}-ram`))).toBe(true);
    expect(s.memfdMappings.length).toBeGreaterThan(0); // dom0 maps the guest's pages
    expect(s.cgroups.filter((c) => c.endsWith(`/d${domid}`))).toHaveLength(6);
    expect(s.xenstore.some((l) => l.startsWith(`/local/domain/${domid}/`))).toBe(true);
    expect(s.domainDirs).toContain(String(domid));
    await xn.xlOk('destroy', 'probe');
    // Not one node of the domain's devices stays, nor the per-domain directories above them.
    const after = (await xn.xenstore('xenstore-ls', '-f', '/local/domain/0/backend')).stdout;
    expect(after).not.toMatch(new RegExp(`/backend/(vif|vbd)/${domid}\\b`));
  });

  it(`${CYCLES} create/destroy cycles leave nothing behind`, async () => {
    // One warm-up cycle: first-use state (log files, the boot image) is not a leak.
    await cycle(0);
    const before = await settled();
    expect(before.guestProcesses).toEqual([]);
    expect(before.cgroups).toEqual([]);
    expect(before.memfds).toEqual([]);
    const started = Date.now();
    const rss: { hv: number; d0: number }[] = [];
    for (let i = 1; i <= CYCLES; i++) {
      await cycle(i);
      rss.push({ hv: rssKiB(hv), d0: rssKiB(d0) });
    }
    const elapsed = Date.now() - started;
    const floor = (from: number) => {
      const w = rss.slice(from, from + 10);
      return { hv: Math.min(...w.map((r) => r.hv)), d0: Math.min(...w.map((r) => r.d0)) };
    };
    const rssBase = floor(WARMUP);
    const rssEnd = floor(CYCLES - 10);
    console.log(
      `leak check: ${CYCLES} cycles with a vif and a disk in ${(elapsed / 1000).toFixed(1)} s (${Math.round(elapsed / CYCLES)} ms each); ` +
        `anonymous RSS floor, cycles ${WARMUP + 1}-${WARMUP + 10} -> last 10: hypervisor ${rssBase.hv} -> ${rssEnd.hv} KiB, dom0 ${rssBase.d0} -> ${rssEnd.d0} KiB; ` +
        `${before.xenstore.length} xenstore nodes`,
    );
    // Teardown is synchronous with destroy; allow a moment for asynchronous closes anyway.
    let after = await state();
    const deadline = Date.now() + 5000;
    while (JSON.stringify(after) !== JSON.stringify(before) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await state();
    }
    expect(after).toEqual(before);
    expect(after.xenstore.length).toBe(before.xenstore.length);
    expect(rssEnd.hv - rssBase.hv, 'hypervisor RSS growth (KiB)').toBeLessThan(RSS_SLACK_KIB);
    expect(rssEnd.d0 - rssBase.d0, 'dom0 RSS growth (KiB)').toBeLessThan(RSS_SLACK_KIB);
    // Nothing anywhere on the host still holds one of this instance's guests' memfds.
    expect(memfdHolders().filter((l) => [hv, d0].includes(Number(l.split(':')[0])))).toEqual([]);
    expect((await xn.list()).map((r) => r.name)).toEqual(['Domain-0']);
  }, Math.max(600_000, CYCLES * 6_000));
});
