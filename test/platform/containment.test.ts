// A misbehaving guest is contained by its cgroups, and nothing it does (or that happens to
// it) takes down the hypervisor, dom0 or another guest: it spins, forks without end,
// allocates without end, and gets kill -9 from the host, while a neighbour keeps answering.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { alive, cgRead, cmdline, consoleType, cpuUsageNs, dom0Pid, domainPids, hypervisorPid, kernelPid, sleep, waitGone } from '../helpers/platform.js';
import { existsSync } from 'node:fs';

describe.skipIf(shouldSkip())('containment', () => {
  const xn = new Instance('contain');
  let hv = 0;
  let d0 = 0;
  beforeAll(async () => {
    await xn.start();
    hv = hypervisorPid(xn);
    d0 = dom0Pid(xn);
    await xn.create('good');
    await xn.waitForShell('good');
  });
  afterAll(() => xn.stop());

  /** The neighbour answers on its console, promptly, and the services are all there. */
  async function othersFine(maxMs = 5000): Promise<void> {
    const t = Date.now();
    expect(await xn.consoleRun('good', 'echo good is fine')).toContain('good is fine');
    expect(Date.now() - t).toBeLessThan(maxMs);
    expect(alive(hv), 'hypervisor').toBe(true);
    expect(alive(d0), 'dom0').toBe(true);
    expect((await xn.list()).some((r) => r.name === 'good')).toBe(true);
  }

  it('a guest that spins on every CPU is charged for it and its neighbour still answers', async () => {
    const id = await xn.create('spinner');
    await xn.waitForShell('spinner');
    await xn.consoleRun('spinner', 'for i in 1 2 3 4; do (while :; do :; done) & done; echo spinning');
    await sleep(300);
    const a = cpuUsageNs(xn, id);
    await sleep(1000);
    const used = (cpuUsageNs(xn, id) - a) / 1e9;
    // The spinners run in its cgroups and are charged there...
    expect(used).toBeGreaterThan(0.3);
    expect(domainPids(xn, id).filter((p) => cmdline(p) === '/bin/sh -l').length).toBeGreaterThanOrEqual(5);
    await othersFine(); // ...and the neighbour is scheduled all the same
    // A cap holds it to what dom0 allows: 20% of one CPU.
    await xn.xlOk('sched-credit', '-d', 'spinner', '-c', '20');
    await sleep(300);
    const b = cpuUsageNs(xn, id);
    await sleep(1000);
    expect((cpuUsageNs(xn, id) - b) / 1e9).toBeLessThan(0.3);
    await xn.xlOk('destroy', 'spinner');
  });

  it('a fork bomb stops at pids.max, and xl destroy still clears it', async () => {
    const id = await xn.create('forker');
    await xn.waitForShell('forker');
    const max = Number(cgRead(xn, 'pids', id, 'pids.max'));
    expect(max).toBe(512);
    await consoleType(xn, 'forker', 'f(){ f|f& }; f');
    await xn.waitFor('the bomb to hit pids.max', () => /^max [1-9]/m.test(cgRead(xn, 'pids', id, 'pids.events')), 10_000);
    expect(Number(cgRead(xn, 'pids', id, 'pids.current'))).toBeLessThanOrEqual(max);
    await othersFine();
    const pids = domainPids(xn, id);
    if (existsSync(`/sys/fs/cgroup/pids/${xn.cgroup}/d${id}/pids.peak`)) expect(Number(cgRead(xn, 'pids', id, 'pids.peak'))).toBeLessThanOrEqual(max);
    const t = Date.now();
    await xn.xlOk('destroy', 'forker');
    expect(Date.now() - t).toBeLessThan(5000);
    await xn.waitFor('every bomb process to be gone', () => pids.every((p) => !existsSync(`/proc/${p}`) || !cmdline(p).includes('sh')), 5000);
    expect(existsSync(`/sys/fs/cgroup/pids/${xn.cgroup}/d${id}`)).toBe(false);
    await othersFine();
  });

  it('an allocation bomb is killed inside its memory cgroup; the guest and its neighbour live on', async () => {
    const id = await xn.create('hog', { memory: 64 });
    await xn.waitForShell('hog');
    const limit = Number(cgRead(xn, 'memory', id, 'memory.limit_in_bytes'));
    const out = await xn.consoleRun('hog', `python3 -c 'exec("a=[]\\nwhile 1: a.append(bytearray(10**7))")'; echo status=$?`, 30_000);
    expect(out).toContain('status=137'); // SIGKILL from the OOM killer: the guest kernel's, as Linux's
    expect(xn.consoleLog('hog')).toMatch(/Memory cgroup out of memory: Killed process \d+ \(python3\)/);
    expect(Number(cgRead(xn, 'memory', id, 'memory.max_usage_in_bytes'))).toBeLessThanOrEqual(limit);
    // The guest's kernel survived: its shell still works.
    expect(await xn.consoleRun('hog', 'echo survived')).toContain('survived');
    expect((await xn.list()).find((r) => r.name === 'hog')?.state).toMatch(/^[r-][b-]----$/);
    await othersFine();
    await xn.xlOk('destroy', 'hog');
  });

  const victims: [string, (id: number) => number[]][] = [
    ['its kernel', (id) => [kernelPid(xn, id)]],
    ['its jailer (the kernel\'s host parent)', (id) => domainPids(xn, id).filter((p) => cmdline(p).includes('xenode-jailer'))],
    ['its init', (id) => domainPids(xn, id).filter((p) => cmdline(p) === '/bin/sh -l')],
    ['every process it has, at once', (id) => domainPids(xn, id)],
  ];

  let n = 0;
  it.each(victims)('kill -9 of %s crashes only that guest', async (_what, pick) => {
    const name = `victim${++n}`;
    const id = await xn.create(name);
    await xn.waitForShell(name);
    const targets = pick(id);
    expect(targets.length).toBeGreaterThan(0);
    for (const p of targets) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already died with an earlier one */
      }
    }
    await waitGone(xn, name); // on_crash = destroy
    expect(await xn.xlOk("dmesg")).toMatch(new RegExp(`d${id}: (crashed|requested shutdown \\(crash\\))`));
    expect(existsSync(`/sys/fs/cgroup/pids/${xn.cgroup}/d${id}`)).toBe(false);
    await othersFine();
    // And the host can start another guest right away.
    await xn.create('victim2');
    await xn.waitForShell('victim2');
    expect(await xn.consoleRun('victim2', 'echo next')).toContain('next');
    await xn.xlOk('destroy', 'victim2');
  });
});
