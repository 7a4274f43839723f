// Scheduling and memory as a user checks them: pause really stops CPU time, mem-set moves
// the cgroup limit and memory/target, vcpu-pin moves the domain's cpuset, vcpu-set the
// online vCPUs, and sched-credit's weight and cap land in cpu.shares and the CFS quota (and
// the cap really holds a spinning guest down).
import { cpus } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { cgRead, cpuUsageNs, domainPids, listTime, sleep } from '../helpers/platform.js';
import { readFileSync } from 'node:fs';
import { rpcCall } from '../../dom0/toolstack/rpc.js';

/** 64 MiB: the guest kernel's own runtime, accounted beyond the guest's RAM. */
const OVERHEAD = 64 * 1024 * 1024;

/** The CFS quota of a 1-vCPU domain without a cap: one CPU per 100 ms period. */
const ONE_VCPU_QUOTA = cpus().length > 1 ? '100000' : '-1';

describe.skipIf(shouldSkip())('scheduling and memory', () => {
  const xn = new Instance('sched');
  let spin = 0;
  let calm = 0;
  beforeAll(async () => {
    await xn.start();
    spin = await xn.create('spin', { maxvcpus: 2, vcpus: 1, maxmem: 256 });
    calm = await xn.create('calm');
    await xn.waitForShell('spin');
    await xn.waitForShell('calm');
  });
  afterAll(() => xn.stop());

  const cpuSecondsOver = async (domid: number, ms: number) => {
    const a = cpuUsageNs(xn, domid);
    await sleep(ms);
    return (cpuUsageNs(xn, domid) - a) / 1e9;
  };

  it('a busy guest accrues CPU time; paused it accrues none and shows "p"; unpaused it runs again', async () => {
    await xn.consoleRun('spin', 'while :; do :; done >/dev/null 2>&1 & echo spinning');
    // (Thresholds leave room for a loaded host: the point is running vs. not at all.)
    expect(await cpuSecondsOver(spin, 1000)).toBeGreaterThan(0.15);
    await xn.xlOk('pause', 'spin');
    expect((await xn.list()).find((r) => r.name === 'spin')?.state).toBe('--p---');
    expect(cgRead(xn, 'freezer', spin, 'freezer.state')).toBe('FROZEN');
    const t0 = await listTime(xn, 'spin');
    expect(await cpuSecondsOver(spin, 1000)).toBeLessThan(0.02);
    // xl list's Time(s) stands still too.
    expect(await listTime(xn, 'spin')).toBe(t0);
    // Every task of the domain is stopped, not merely deprioritised.
    for (const pid of domainPids(xn, spin)) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      expect(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3), `pid ${pid}`).not.toBe('R');
    }
    // The other guest is not affected.
    expect(await xn.consoleRun('calm', 'echo unaffected')).toContain('unaffected');
    await xn.xlOk('unpause', 'spin');
    expect(await cpuSecondsOver(spin, 1000)).toBeGreaterThan(0.15);
    expect((await xn.list()).find((r) => r.name === 'spin')?.state).toBe('r-----');
    expect(await listTime(xn, 'spin')).toBeGreaterThan(t0 + 0.1);
  });

  it('sched-credit -w/-c sets cpu.shares = 4 x weight and the CFS quota, and the cap holds a spinner down', async () => {
    expect(cgRead(xn, 'cpu', spin, 'cpu.shares')).toBe(String(4 * 256)); // credit's default weight 256
    // No cap, but one vCPU: the domain gets at most one CPU's worth of time (none on a 1-CPU host).
    expect(cgRead(xn, 'cpu', spin, 'cpu.cfs_quota_us')).toBe(ONE_VCPU_QUOTA);
    await xn.xlOk('sched-credit', '-d', 'spin', '-w', '512', '-c', '25');
    expect(cgRead(xn, 'cpu', spin, 'cpu.shares')).toBe('2048');
    expect(cgRead(xn, 'cpu', spin, 'cpu.cfs_period_us')).toBe('100000');
    expect(cgRead(xn, 'cpu', spin, 'cpu.cfs_quota_us')).toBe('25000');
    const out = await xn.xlOk('sched-credit', '-d', 'spin');
    expect(out).toMatch(/^spin\s+\d+\s+512\s+25$/m);
    // Capped at 25% of a CPU, the spinner gets about a quarter second per second.
    await sleep(300);
    const used = await cpuSecondsOver(spin, 1500);
    expect(used).toBeGreaterThan(0.02);
    expect(used).toBeLessThan(0.5);
    // Weight alone leaves the cap; cap 0 removes it.
    await xn.xlOk('sched-credit', '-d', 'spin', '-w', '128');
    expect(cgRead(xn, 'cpu', spin, 'cpu.shares')).toBe('512');
    expect(cgRead(xn, 'cpu', spin, 'cpu.cfs_quota_us')).toBe('25000');
    await xn.xlOk('sched-credit', '-d', 'spin', '-c', '0');
    expect(cgRead(xn, 'cpu', spin, 'cpu.cfs_quota_us')).toBe(ONE_VCPU_QUOTA);
    // The listing shows every domain with its parameters.
    const all = await xn.xlOk('sched-credit');
    expect(all).toMatch(/^Name\s+ID\s+Weight\s+Cap$/m);
    expect(all).toMatch(/^spin\s+\d+\s+128\s+0$/m);
    expect(all).toMatch(/^calm\s+\d+\s+256\s+0$/m);
    await xn.consoleRun('spin', 'kill %1; echo stopped');
  });

  it('mem-set changes the cgroup limit, memory/target and xl list; mem-max raises the ceiling', async () => {
    expect(Number(cgRead(xn, 'memory', calm, 'memory.limit_in_bytes'))).toBe(128 * 1048576 + OVERHEAD);
    await xn.xlOk('mem-set', 'calm', '96m');
    expect(Number(cgRead(xn, 'memory', calm, 'memory.limit_in_bytes'))).toBe(96 * 1048576 + OVERHEAD);
    expect((await xn.xenstore('xenstore-read', `/local/domain/${calm}/memory/target`)).stdout.trim()).toBe(String(96 * 1024));
    expect((await xn.list()).find((r) => r.name === 'calm')?.mem).toBe(96);
    // The toolstack's own view agrees (cgroup-info is what tools and tests use).
    const info = JSON.parse(await cgroupInfo('calm'));
    expect(info.memoryLimit).toBe(96 * 1048576 + OVERHEAD);
    // Above maxmem is refused and changes nothing.
    const r = await xn.xl('mem-set', 'calm', '512');
    expect(r.code).not.toBe(0);
    expect(Number(cgRead(xn, 'memory', calm, 'memory.limit_in_bytes'))).toBe(96 * 1048576 + OVERHEAD);
    // A guest with maxmem = 256 can be given more than its initial 128.
    await xn.xlOk('mem-set', 'spin', '200');
    expect(Number(cgRead(xn, 'memory', spin, 'memory.limit_in_bytes'))).toBe(200 * 1048576 + OVERHEAD);
    await xn.xlOk('mem-max', 'calm', '160');
    expect((await xn.xenstore('xenstore-read', `/local/domain/${calm}/memory/static-max`)).stdout.trim()).toBe(String(160 * 1024));
    // The guest still works after its limit moved.
    expect(await xn.consoleRun('calm', 'echo ok')).toContain('ok');
  });

  /** `xl`'s internal toolstack command, through the same socket xl uses. */
  async function cgroupInfo(dom: string): Promise<string> {
    const r = await rpcCall(`${xn.env.XENODE_RUN_DIR}/toolstack.sock`, 'cgroup-info', { dom });
    return JSON.stringify(r);
  }

  it('vcpu-pin moves the domain\'s cpuset, and vcpu-list shows the affinity', async () => {
    const host = (await xn.xlOk('info')).match(/^nr_cpus\s+:\s+(\d+)$/m);
    const nr = Number(host?.[1]);
    expect(nr).toBeGreaterThanOrEqual(1);
    const all = nr === 1 ? '0' : `0-${nr - 1}`;
    expect(cgRead(xn, 'cpuset', calm, 'cpuset.cpus')).toBe(all);
    const last = nr - 1;
    await xn.xlOk('vcpu-pin', 'calm', '0', String(last));
    expect(cgRead(xn, 'cpuset', calm, 'cpuset.cpus')).toBe(String(last));
    expect(JSON.parse(await cgroupInfo('calm')).cpus).toEqual([last]);
    // Every task of the domain is now confined to that CPU.
    for (const pid of domainPids(xn, calm)) {
      expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(new RegExp(`^Cpus_allowed_list:\\s+${last}$`, 'm'));
    }
    const list = await xn.xlOk('vcpu-list', 'calm');
    expect(list).toMatch(new RegExp(`^calm\\s+${calm}\\s+0\\s+${last}\\s+\\S+\\s+[\\d.]+\\s+${nr === 1 ? 'all' : last} / all$`, 'm'));
    await xn.xlOk('vcpu-pin', 'calm', 'all', 'all');
    expect(cgRead(xn, 'cpuset', calm, 'cpuset.cpus')).toBe(all);
    // A CPU the host does not have is refused and the cpuset is unchanged.
    const bad = await xn.xl('vcpu-pin', 'calm', '0', String(nr + 7));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/CPU/);
    expect(cgRead(xn, 'cpuset', calm, 'cpuset.cpus')).toBe(all);
  });

  it('vcpu-set changes the online vCPUs in xl list and cpu/N/availability', async () => {
    await xn.xlOk('vcpu-set', 'spin', '2');
    expect((await xn.list()).find((r) => r.name === 'spin')?.vcpus).toBe(2);
    expect((await xn.xenstore('xenstore-read', `/local/domain/${spin}/cpu/1/availability`)).stdout.trim()).toBe('online');
    await xn.xlOk('vcpu-set', 'spin', '1');
    expect((await xn.list()).find((r) => r.name === 'spin')?.vcpus).toBe(1);
    expect((await xn.xenstore('xenstore-read', `/local/domain/${spin}/cpu/1/availability`)).stdout.trim()).toBe('offline');
    const list = await xn.xlOk('vcpu-list', 'spin');
    expect(list.trim().split('\n')).toHaveLength(3); // header + 2 vCPUs, one offline
    expect(list).toMatch(/^spin\s+\d+\s+1\s+-\s+--p\s/m);
    expect((await xn.xl('vcpu-set', 'spin', '3')).code).not.toBe(0); // above maxvcpus
  });
});
