// The guest OOM killer's choice and its words, from /proc/PID/status text as Linux writes it:
// Linux's oom_badness() (resident + swap + page-table pages, moved by oom_score_adj in
// thousandths of the cgroup's memory; -1000 never chosen) and mm/oom_kill.c's lines.
import { describe, expect, it } from 'vitest';
import { chooseVictim, oomBadness, oomKillLines, parseTaskStatus } from '../../guest/kernel/oom-killer.js';

function status(name: string, nspid: string, anonKb: number, extra = ''): string {
  return [
    `Name:\t${name}`, 'State:\tR (running)', `NSpid:\t${nspid}`, 'Uid:\t0\t0\t0\t0',
    'VmSize:\t  210000 kB', `RssAnon:\t ${anonKb} kB`, 'RssFile:\t    1200 kB', 'RssShmem:\t       0 kB',
    'VmPTE:\t     460 kB', 'VmSwap:\t       0 kB', extra,
  ].join('\n');
}

describe('guest OOM killer', () => {
  it('reads a task from /proc/PID/status, with the guest\'s own pid from NSpid', () => {
    const t = parseTaskStatus(57, status('dd', '57\t3', 131072), 0, 1)!;
    expect(t).toMatchObject({ pid: 57, guestPid: 3, comm: 'dd', uid: 0, totalVmKb: 210000, anonRssKb: 131072, fileRssKb: 1200, pgtablesKb: 460 });
    expect(parseTaskStatus(57, status('dd', '57', 1), 0, 1)!.guestPid).toBe(57); // no deeper level: its own
    expect(parseTaskStatus(2, 'Name:\tkthreadd\nState:\tS (sleeping)\n', 0, 0)).toBeNull(); // no mm
  });

  it('chooses the task holding the most memory, weighs oom_score_adj, never -1000', () => {
    const shell = parseTaskStatus(10, status('sh', '10', 900), 0, 0)!;
    const hog = parseTaskStatus(11, status('hog', '11', 120_000), 0, 0)!;
    const protectedHog = parseTaskStatus(12, status('db', '12', 125_000), -1000, 0)!;
    const total = 32768; // a 128 MiB cgroup in pages
    expect(oomBadness(protectedHog, total)).toBeNull();
    expect(chooseVictim([shell, hog, protectedHog], total)?.comm).toBe('hog');
    // +1000 is all the cgroup's pages: the shell outranks a 117 MiB hog; +500 does not.
    expect(chooseVictim([{ ...shell, oomScoreAdj: 1000 }, hog], total)?.comm).toBe('sh');
    expect(chooseVictim([{ ...shell, oomScoreAdj: 500 }, hog], total)?.comm).toBe('hog');
    expect(chooseVictim([protectedHog], total)).toBeNull();
  });

  it("says what Linux says", () => {
    const v = parseTaskStatus(57, status('dd', '57\t3', 131072), 0, 1)!;
    const lines = oomKillLines(v, 131072, 131072, 42);
    expect(lines[0]).toBe('memory: usage 131072kB, limit 131072kB, failcnt 42');
    expect(lines[2]).toBe('Memory cgroup out of memory: Killed process 3 (dd) total-vm:210000kB, anon-rss:131072kB, file-rss:1200kB, shmem-rss:0kB, UID:0 pgtables:460kB oom_score_adj:0');
  });
});
