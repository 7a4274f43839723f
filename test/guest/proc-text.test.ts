// The text of the guest's /proc files, byte for byte in Linux's formats, and the numbers
// behind them: meminfo from a domain's cgroup, cpuinfo per vCPU, stat/uptime from vCPU time,
// Linux's load-average arithmetic, partitions from the block-device table; and where the
// hypervisor places an unpinned domain's vCPUs.
import { describe, expect, it } from 'vitest';
import {
  cmdlineText,
  cpuinfoText,
  domainMemInfo,
  firstCpuBlock,
  loadavgText,
  meminfoText,
  partitionsText,
  statText,
  uptimeText,
  vcpuTimes,
} from '../../guest/kernel/proc/proc-text.js';
import { LoadAverage } from '../../guest/kernel/proc/load-average.js';
import { placeVcpus } from '../../hypervisor/cpu-placement.js';
import { mappingsOf } from '../../hypervisor/ram-charge.js';
import { sumMemoryStats } from '../../hypervisor/memcg-stat-sum.js';

const MiB = 1 << 20;

describe("a domain's memory.stat, from its cgroup and its userland's", () => {
  // The domain's totals lagged by what its userland had just charged: they are not used.
  const domain = { rss: 9 * MiB, cache: 2 * MiB, pgfault: 100, hierarchical_memory_limit: 200 * MiB, total_rss: 10 * MiB, total_cache: 2 * MiB };
  const user = { rss: 48 * MiB, cache: 4 * MiB, pgfault: 50, hierarchical_memory_limit: 128 * MiB, total_rss: 48 * MiB, total_cache: 4 * MiB };

  it('adds each directory\'s own counters, never the stale totals', () => {
    expect(sumMemoryStats(domain, [user])).toEqual({ rss: 57 * MiB, cache: 6 * MiB, pgfault: 150, hierarchical_memory_limit: 200 * MiB });
  });

  it('keeps the domain\'s own limit, and is its own stat without a userland', () => {
    expect(sumMemoryStats(domain, [])).toEqual({ rss: 9 * MiB, cache: 2 * MiB, pgfault: 100, hierarchical_memory_limit: 200 * MiB });
    expect(sumMemoryStats({}, [])).toEqual({});
  });
});

describe('/proc/meminfo', () => {
  const base = { totalKiB: 128 * 1024, ramChargedBytes: 2 * MiB, kernelFramesBytes: 1 * MiB, kernelAnonBytes: 9 * MiB };

  it('an idle domain: all its memory free but the kernel\'s frames', () => {
    const i = domainMemInfo({ ...base, stat: { rss: 9 * MiB, cache: 2 * MiB, shmem: 2 * MiB, mapped_file: 2 * MiB } });
    expect(i).toEqual({ total: 131072, free: 130048, available: 130048, cached: 0, shmem: 0, anon: 0, mapped: 0 });
  });

  it('the guest\'s programs, tmpfs and page cache are used; page cache stays available', () => {
    const stat = { rss: 59 * MiB, cache: 2 * MiB + 20 * MiB + 10 * MiB, shmem: 2 * MiB + 20 * MiB, mapped_file: 2 * MiB };
    const i = domainMemInfo({ ...base, stat });
    expect(i.anon).toBe(50 * 1024);
    expect(i.cached).toBe(30 * 1024);
    expect(i.shmem).toBe(20 * 1024);
    expect(i.free).toBe(131072 - 50 * 1024 - 30 * 1024 - 1024);
    expect(i.available).toBe(i.free + 10 * 1024); // tmpfs cannot be dropped, page cache can
  });

  it('more in use than the domain has (its kernel\'s headroom) shows 0 free, never negative', () => {
    const i = domainMemInfo({ ...base, stat: { rss: 200 * MiB } });
    expect(i.free).toBe(0);
    expect(i.available).toBe(0);
  });

  it('prints every field in Linux\'s layout: name padded to 16, value in 8, kB', () => {
    const t = meminfoText({ ...base, stat: { rss: 9 * MiB + 4096 * 3, dirty: 8192 } });
    const lines = t.split('\n');
    expect(lines[0]).toBe('MemTotal:         131072 kB');
    expect(lines[1]).toBe('MemFree:          130036 kB');
    expect(lines[2]).toBe('MemAvailable:     130036 kB');
    expect(t).toContain('\nDirty:                 8 kB\n');
    expect(t).toContain('\nHugePages_Total:       0\n');
    expect(t).toContain('\nHugepagesize:       2048 kB\n');
    expect(t.endsWith('DirectMap1G:           0 kB\n')).toBe(true);
    for (const k of ['Buffers', 'Cached', 'SwapTotal', 'SwapFree', 'Shmem', 'SReclaimable', 'AnonPages', 'Mapped', 'Committed_AS']) expect(t).toMatch(new RegExp(`^${k.replace(/[()]/g, '\\$&')}:\\s+\\d+ kB$`, 'm'));
    expect(lines.filter(Boolean)).toHaveLength(54);
  });
});

describe('/proc/cpuinfo', () => {
  const host = ['processor\t: 0', 'vendor_id\t: AuthenticAMD', 'model name\t: AMD EPYC', 'physical id\t: 0', 'siblings\t: 8', 'core id\t\t: 0', 'cpu cores\t: 8', 'apicid\t\t: 0', 'initial apicid\t: 0', 'flags\t\t: fpu sse2 avx2', '', 'processor\t: 1', 'model name\t: AMD EPYC', ''].join('\n');

  it('one block per vCPU with the host\'s model and the domain\'s topology', () => {
    const t = cpuinfoText(firstCpuBlock(host), 3);
    const blocks = t.trimEnd().split('\n\n');
    expect(blocks).toHaveLength(3);
    expect(blocks[2]).toBe(['processor\t: 2', 'vendor_id\t: AuthenticAMD', 'model name\t: AMD EPYC', 'physical id\t: 0', 'siblings\t: 3', 'core id\t\t: 2', 'cpu cores\t: 3', 'apicid\t\t: 2', 'initial apicid\t: 2', 'flags\t\t: fpu sse2 avx2'].join('\n'));
    expect(t.endsWith('avx2\n\n')).toBe(true);
  });

  it('a host cpuinfo without a processor block is an error, not an empty file', () => {
    expect(() => firstCpuBlock('garbage\n')).toThrow(/no "processor" block/);
  });
});

describe('/proc/uptime, /proc/stat', () => {
  it('uptime and idle as Linux prints them (truncated hundredths)', () => {
    expect(uptimeText(12.349, 3.5)).toBe('12.34 3.50\n');
    expect(uptimeText(0.004, 0)).toBe('0.00 0.00\n');
  });

  it('each vCPU\'s running time split user/system, the rest of the uptime idle', () => {
    // 10 s up; vCPU 0 ran 4 s, vCPU 1 ran 1 s; the domain's time was 3/4 user.
    const t = vcpuTimes([4e9, 1e9], 75, 25, 10);
    expect(t).toEqual([{ user: 300, system: 100, idle: 600 }, { user: 75, system: 25, idle: 900 }]);
    // Time beyond the uptime (accounting races) never makes idle negative.
    expect(vcpuTimes([20e9], 1, 0, 10)[0]).toEqual({ user: 1000, system: 0, idle: 0 });
  });

  it('/proc/stat: the cpu total, one line per vCPU, and the counters', () => {
    const t = statText({ perCpu: [{ user: 3, system: 1, idle: 6 }, { user: 1, system: 0, idle: 9 }], btime: 1765130000.7, processes: 42, running: 1, blocked: 0 });
    expect(t).toBe(
      'cpu  4 0 1 15 0 0 0 0 0 0\ncpu0 3 0 1 6 0 0 0 0 0 0\ncpu1 1 0 0 9 0 0 0 0 0 0\n' +
        'intr 0\nctxt 0\nbtime 1765130000\nprocesses 42\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n',
    );
  });
});

describe('/proc/loadavg', () => {
  it('Linux\'s fixed-point averages: one task for one 5 s sample is 0.08, 0.02, 0.01', () => {
    const l = new LoadAverage();
    l.sample(1);
    expect(loadavgText(l.avenrun, 1, 5, 99)).toBe('0.08 0.02 0.01 1/5 99\n');
  });

  it('a steady load converges to it; an idle domain decays to 0.00', () => {
    const l = new LoadAverage();
    for (let i = 0; i < 12 * 45; i++) l.sample(2); // 45 minutes at 2: the 15-minute one is at 1 - e^-3
    expect(loadavgText(l.avenrun, 2, 2, 1)).toBe('2.00 2.00 1.93 2/2 1\n');
    for (let i = 0; i < 12 * 30; i++) l.sample(0);
    expect(loadavgText(l.avenrun, 0, 1, 1).startsWith('0.00 ')).toBe(true);
  });
});

describe('/proc/partitions, /proc/cmdline', () => {
  it('disks and partitions in genhd.c\'s columns, sizes in KiB; an empty drive is left out', () => {
    const t = partitionsText([
      { name: 'xvda', major: 202, minor: 0, sectors: 2097152, readonly: false, path: '/dev/xvda' },
      { name: 'xvda1', major: 202, minor: 1, sectors: 2095104, readonly: false, parent: 'xvda', path: '/dev/xvda1' },
      { name: 'hdc', major: 22, minor: 0, sectors: 0, readonly: true, path: '/dev/hdc' },
    ]);
    expect(t).toBe('major minor  #blocks  name\n\n 202        0    1048576 xvda\n 202        1    1047552 xvda1\n');
    expect(partitionsText([])).toBe('major minor  #blocks  name\n\n');
  });

  it('the command line with a newline', () => {
    expect(cmdlineText('root=/dev/xvda1 ro')).toBe('root=/dev/xvda1 ro\n');
  });
});

describe('placing an unpinned domain\'s vCPUs', () => {
  it('one host CPU per vCPU, the least loaded, keeping its own on a tie', () => {
    expect(placeVcpus(1, [0, 1, 2, 3], [])).toEqual([0]);
    expect(placeVcpus(1, [0, 1, 2, 3], [{ cpus: [0], vcpus: 1 }, { cpus: [1], vcpus: 1 }])).toEqual([2]);
    expect(placeVcpus(2, [0, 1, 2, 3], [{ cpus: [0, 1], vcpus: 2 }])).toEqual([2, 3]);
    // A domain spread over all CPUs weighs little on each.
    expect(placeVcpus(1, [0, 1], [{ cpus: [0, 1], vcpus: 1 }, { cpus: [0], vcpus: 1 }])).toEqual([1]);
    expect(placeVcpus(1, [0, 1], [], [1])).toEqual([1]);
  });

  it('never more CPUs than the host has, never none', () => {
    expect(placeVcpus(8, [0, 1], [])).toEqual([0, 1]);
    expect(placeVcpus(0, [0, 1], [])).toEqual([0]);
  });
});

describe('finding the guest RAM mapping', () => {
  it('every mapping of the named file in /proc/PID/maps', () => {
    const maps = [
      '7f0000000000-7f0008000000 rw-s 00000000 00:3a 5 /xenode-d12-ram (deleted)',
      '7f1000000000-7f1000020000 rw-s 00000000 00:01 9 /memfd:xenode-d1-ram (deleted)',
      '7f2000000000-7f2000001000 r--p 00000000 08:01 7 /usr/lib/x.so',
    ].join('\n');
    expect(mappingsOf(maps, 'xenode-d12-ram')).toEqual([[0x7f0000000000, 0x7f0008000000]]);
    expect(mappingsOf(maps, 'xenode-d1-ram')).toEqual([[0x7f1000000000, 0x7f1000020000]]);
    expect(mappingsOf(maps, 'xenode-d2-ram')).toEqual([]);
  });
});
