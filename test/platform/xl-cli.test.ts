// xl as a user meets it: bad configs and arguments name the file, line and key and change
// nothing; xl says plainly when xenode is not running; and the query commands print Xen's
// formats (create -n and list -l as JSON, info, dmesg, uptime, domid, domname).
import { existsSync, readdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { instanceCgroups } from '../helpers/platform.js';

describe.skipIf(shouldSkip())('xl: errors and formats', () => {
  const xn = new Instance('xlcli');
  const idle = new Instance('xlcli-down'); // never started
  let domid = 0;
  beforeAll(async () => {
    await xn.start();
    domid = await xn.create('cli1', { memory: 96, vcpus: 2, on_crash: 'preserve' });
    await xn.waitForShell('cli1');
  });
  afterAll(async () => {
    await xn.stop();
    await idle.stop();
  });

  /** Everything a failed command must leave as it was. */
  async function snapshot() {
    return {
      list: (await xn.list()).map(({ time: _t, state: _s, ...r }) => r),
      store: (await xn.xenstore('xenstore-ls', '-f', '/')).stdout.split('\n').sort(),
      cgroups: instanceCgroups(xn).sort(),
      domainDirs: existsSync(join(xn.dir, 'run', 'domains')) ? readdirSync(join(xn.dir, 'run', 'domains')).sort() : [],
    };
  }

  const badConfigs: [string, string, RegExp][] = [
    ['not a number', 'name = "b1"\nmemory = 128\nvcpus = "two"\n', /b\.cfg:3: vcpus: .*not a valid number/],
    ['unknown on_crash action', 'name = "b1"\nmemory = 128\non_crash = "explode"\n', /b\.cfg:3: on_crash: unknown on_crash action `explode'/],
    ['syntax error', 'name = "b1"\nmemory = 128\nextra = "console=hvc0\n', /b\.cfg:3: extra: unterminated string/],
    ['missing name', 'memory = 128\n', /b\.cfg: name: domain name must be specified/],
    ['invalid name', 'memory = 128\nname = "no/slash please"\n', /b\.cfg:2: name: /],
    ['name with a space', 'memory = 128\nname = "two words"\n', /b\.cfg:2: name: domain name `two words' is not valid/],
    ['too little memory', 'name = "b1"\nmemory = 4\n', /b\.cfg:2: memory: 4 MiB is too little/],
    ['maxvcpus < vcpus', 'name = "b1"\nmemory = 128\nvcpus = 4\nmaxvcpus = 2\n', /b\.cfg:4: maxvcpus: maxvcpus \(2\) < vcpus \(4\)/],
    ['maxmem < memory', 'name = "b1"\nmemory = 128\nmaxmem = 64\n', /b\.cfg:3: maxmem: maxmem \(64 MiB\) is smaller than memory/],
    ['command line too long', `name = "b1"\nmemory = 128\nextra = "${'x'.repeat(1100)}"\n`, /b\.cfg:3: extra: the kernel command line is 1100 bytes/],
  ];

  let baseline: Awaited<ReturnType<typeof snapshot>> | undefined;
  it.each(badConfigs)('a bad config (%s) names the file, line and key, exits non-zero, and changes nothing', async (_what, text, message) => {
    const before = (baseline ??= await snapshot());
    const r = await xn.xl('create', xn.config('b', text));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    expect(await snapshot()).toEqual(before);
  });

  it('a bad setting on the command line is blamed on the command line, with its key', async () => {
    const before = await snapshot();
    const r = await xn.xl('create', xn.guestConfig('b2'), 'memory=lots');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/command line: memory: /);
    const r2 = await xn.xl('create', xn.guestConfig('b2'), 'not-a-setting');
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/command line: "not-a-setting" is not a key=value setting/);
    expect(await snapshot()).toEqual(before);
  });

  it('a config file that cannot be read is named', async () => {
    const r = await xn.xl('create', join(xn.dir, 'nonexistent.cfg'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/nonexistent\.cfg: cannot read config file: ENOENT/);
  });

  it('refusals from dom0 and the hypervisor change nothing either', async () => {
    const before = await snapshot();
    const dup = await xn.xl('create', xn.guestConfig('cli1'));
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toContain('domain with name "cli1" already exists');
    // More memory than the host has free: refused, as Xen refuses it.
    const mib = Math.ceil(totalmem() / 1048576) * 2;
    const huge = await xn.xl('create', xn.guestConfig('huge1', { memory: mib }));
    expect(huge.code).not.toBe(0);
    expect(huge.stderr).toMatch(/not enough free memory/);
    expect(await snapshot()).toEqual(before);
  });

  it('bad arguments exit non-zero with a usage message and change nothing', async () => {
    const before = await snapshot();
    // Xen's messages and exit codes: usage errors exit 2 with the command's help on stdout.
    const cases: [string[], RegExp, number][] = [
      [['frobnicate'], /^command not implemented$/m, 1],
      [['destroy'], /^'xl destroy' requires at least 1 argument\.$/m, 2],
      [['mem-set', 'cli1'], /^'xl mem-set' requires at least 2 arguments\.$/m, 2],
      [['mem-set', 'cli1', '12q'], /^invalid memory size: 12q$/m, 1],
      [['mem-set', 'cli1', '8'], /^cannot set domid \d+ dynamic max memory to : 8\n8 is 8 MiB: a domain needs at least 16 MiB here$/m, 1],
      [['vcpu-pin', 'cli1', 'x', '0'], /^Error: Invalid argument x as VCPU\.$/m, 1],
      [['vcpu-pin', 'cli1', '0', 'zero'], /Invalid argument zero as CPU range/, 1],
      [['sched-credit', '-d', 'cli1', '-w', '0'], /weight must be an integer in 1\.\.65535/, 1],
      [['sched-credit', '-d', 'cli1', '-w', 'heavy'], /weight must be a number, got "heavy"/, 1],
      [['vcpu-set', 'cli1', '9'], /^You are overcommmitting! You have \d+ physical CPUs and want 9 vCPUs! Aborting, use --ignore-host to continue$/m, 1],
      [['vcpu-set', '-i', 'cli1', '9'], /cli1 has 2 vCPUs \(maxvcpus\): between 1 and 2 can be online/, 1],
      [['list', '-q'], /^option `q' not supported\.$/m, 2],
      [['-Z', 'list'], /^unknown global option$/m, 1],
      [['pause', 'nosuch'], /^nosuch is an invalid domain identifier \(rc=-6\)$/m, 1],
      [['domname', '4000'], /^Can't get domain name of domain id '4000', maybe this domain does not exist\.$/m, 1],
      [['console', 'nosuch'], /^nosuch is an invalid domain identifier \(rc=-6\)$/m, 1],
    ];
    for (const [args, message, code] of cases) {
      const r = await xn.xl(...args);
      expect(r.code, `xl ${args.join(' ')}`).toBe(code);
      expect(r.stderr + r.stdout, `xl ${args.join(' ')}`).toMatch(message);
      expect(r.stderr, `xl ${args.join(' ')}`).not.toMatch(/^\s+at /m);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('says plainly when xenode is not running, for every command, and creates nothing', async () => {
    for (const args of [['list'], ['info'], ['create', xn.guestConfig('down1')], ['destroy', 'x'], ['console', 'x'], ['dmesg'], ['shutdown', 'x']]) {
      const r = await idle.xl(...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toContain('xenode is not running');
      expect(r.stderr, args.join(' ')).toContain('xenode start');
    }
    expect(existsSync(join(idle.dir, 'run'))).toBe(false);
    expect(instanceCgroups(idle)).toEqual([]);
  });

  it('xl create -n prints the parsed config as libxl JSON and creates nothing (even with xenode down)', async () => {
    const cfg = xn.guestConfig('dry1', { memory: 200, vcpus: 2, on_crash: 'coredump-restart', extra: 'init=/bin/true' });
    for (const inst of [xn, idle]) {
      const before = inst === xn ? await snapshot() : null;
      const r = await inst.xl('create', '-n', cfg);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.c_info).toMatchObject({ type: 'pv', name: 'dry1' });
      expect(j.b_info).toMatchObject({ max_vcpus: 2, max_memkb: 200 * 1024, target_memkb: 200 * 1024, cmdline: 'init=/bin/true' });
      expect(j.on_crash).toBe('coredump_restart');
      if (before) expect(await snapshot()).toEqual(before);
    }
  });

  it('xl list -l prints the running domains\' configs as JSON', async () => {
    const all = JSON.parse(await xn.xlOk('list', '-l'));
    expect(Array.isArray(all)).toBe(true);
    const mine = all.find((d: { domid: number }) => d.domid === domid);
    expect(mine.config.c_info.name).toBe('cli1');
    expect(mine.config.b_info).toMatchObject({ max_vcpus: 2, target_memkb: 96 * 1024 });
    expect(mine.config.on_crash).toBe('preserve');
    const one = JSON.parse(await xn.xlOk('list', '-l', 'cli1'));
    expect(one).toHaveLength(1);
    expect(one[0].domid).toBe(domid);
    const r = await xn.xl('list', 'nosuch');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('nosuch is an invalid domain identifier (rc=-6)');
  });

  it('xl list NAME shows one row in xl\'s columns', async () => {
    const out = await xn.xlOk('list', 'cli1');
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^cli1\\s+${domid}\\s+96\\s+2\\s+[r-][b-]----\\s+\\d+\\.\\d$`));
    expect(lines[1]!.slice(40, 46)).toBe(` ${String(domid).padStart(5)}`); // name padded to 40, ID right-aligned in 5
  });

  it('xl info describes the host and the hypervisor', async () => {
    const info = await xn.xlOk('info');
    const field = (k: string) => new RegExp(`^${k}\\s+: (.*)$`, 'm').exec(info)?.[1];
    expect(Number(field('nr_cpus'))).toBeGreaterThanOrEqual(1);
    expect(Number(field('nr_cpus'))).toBeLessThanOrEqual(cpus().length);
    expect(Math.abs(Number(field('total_memory')) - Math.round(totalmem() / 1048576))).toBeLessThanOrEqual(1);
    expect(field('xen_version')).toBe('4.17-xenode');
    expect(field('xen_scheduler')).toBe('credit');
    expect(Number(field('free_memory'))).toBeGreaterThan(0);
  });

  it('xl dmesg shows the hypervisor\'s log; -c clears it', async () => {
    const log = await xn.xlOk('dmesg');
    expect(log).toContain(`(XEN) d${domid}: created "cli1" (96 MiB, 2 vCPUs`);
    expect(log).toMatch(/\(XEN\) xenode hypervisor starting/);
    await xn.xlOk('dmesg', '-c');
    expect(await xn.xlOk('dmesg')).not.toContain('created "cli1"');
  });

  it('xl uptime, domid and domname', async () => {
    const up = await xn.xlOk('uptime');
    // "%-33s %4d %s", hours as "%2d".
    expect(up.split('\n')[0]).toBe(`${'Name'.padEnd(33)}   ID Uptime`);
    expect(up).toMatch(new RegExp(`^cli1 {${34 - String(domid).length}}${domid}  0:0\\d:\\d\\d$`, 'm'));
    expect(up).toMatch(/^Domain-0\s+0\s+(\d+ days?, )?[ \d]\d:\d\d:\d\d$/m);
    expect((await xn.xlOk('domid', 'cli1')).trim()).toBe(String(domid));
    expect((await xn.xlOk('domname', String(domid))).trim()).toBe('cli1');
    expect((await xn.xlOk('domname', '0')).trim()).toBe('Domain-0');
    expect((await xn.xlOk('domid', 'Domain-0')).trim()).toBe('0');
  });
});
