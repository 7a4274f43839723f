// Guest OS boot benchmark (npm run bench:boot; needs root, busybox-static, debootstrap): on a
// private xenode instance,
//   1. `xl create` to the login prompt on the console for a busybox image and a Debian systemd
//      image booted from their own disks (root=/dev/xvda), against the minimal host-userland
//      guest's create-to-shell in the same run (the baseline a guest without root= gets);
//   2. fio on a file of the Debian guest's root filesystem (its ext4 served by fuse2fs over
//      blkfront) against the same fio on the host on the same image, loop-mounted by the
//      host's own ext4.
// Prints a table and writes JSON to bench/results/. Bounded: BENCH_BOOTS boots per image
// (default 5), fio jobs of BENCH_FIO_S seconds (default 5); everything is torn down at the end.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchInstance, ROOT, XENODE } from './lib/instance.js';
import { ConsoleTap } from './lib/console-tap.js';
import { fmt, nowMs, summarise, table, type Summary } from './lib/stats.js';

const CFG = {
  boots: Number(process.env.BENCH_BOOTS ?? 5),
  fioSeconds: Number(process.env.BENCH_FIO_S ?? 5),
  fileMiB: 256,
};
const TARGETS = { busyboxMs: 400, debianMs: 3000 };

const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);

function xenode(...args: string[]): void {
  const r = spawnSync(process.execPath, [XENODE, ...args], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (r.status !== 0) throw new Error(`xenode ${args.join(' ')}: ${r.stderr}${r.stdout}`);
}

function config(inst: BenchInstance, name: string, image: string | null): string {
  const p = join(inst.dir, `${name}.cfg`);
  const lines = [`name = "${name}"`, 'memory = 256', 'vcpus = 1'];
  if (image) lines.push(`disk = [ 'file:${image},xvda,w' ]`, 'extra = "root=/dev/xvda console=hvc0"');
  else lines.push('extra = "console=hvc0"');
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

/** Create, time until `ready` shows on the console, then destroy. Milliseconds. */
async function bootOnce(inst: BenchInstance, name: string, image: string | null, ready: RegExp): Promise<number> {
  const cfg = config(inst, name, image);
  const t0 = nowMs();
  await inst.xl('create', cfg);
  const { tty } = await inst.rpc<{ tty: string }>('console', { dom: name });
  const tap = new ConsoleTap(tty);
  try {
    if (image) return (await tap.waitFor(ready, 60_000)) - t0;
    // The minimal guest's shell prints no banner: it is ready when it answers.
    await tap.waitFor(/Run \S+ as init process/, 15_000);
    for (let i = 0; ; i++) {
      tap.type('echo XN""RDY\n');
      try {
        return (await tap.waitFor(/XNRDY/, 1000)) - t0;
      } catch (e) {
        if (i >= 9) throw e;
      }
    }
  } finally {
    tap.close();
    await inst.xl('destroy', name).catch(() => {});
  }
}

async function boots(inst: BenchInstance, label: string, image: string | null, ready: RegExp): Promise<Summary> {
  const ms: number[] = [];
  for (let i = 0; i < CFG.boots; i++) {
    ms.push(await bootOnce(inst, `${label}${i}`, image, ready));
    log(`${label} boot ${i + 1}/${CFG.boots}: ${ms.at(-1)!.toFixed(0)} ms`);
  }
  return summarise(ms);
}

const FIO_JOBS = [
  { key: 'seqRead', args: ['--rw=read', '--bs=1M', '--iodepth=4'] },
  { key: 'seqWrite', args: ['--rw=write', '--bs=1M', '--iodepth=4'] },
  { key: 'randRead4k', args: ['--rw=randread', '--bs=4k', '--iodepth=1'] },
  { key: 'randWrite4k', args: ['--rw=randwrite', '--bs=4k', '--iodepth=1'] },
] as const;
type FioResult = Record<(typeof FIO_JOBS)[number]['key'], number>;

/** fio's command lines (a file on the root filesystem, fsync at the end of writes). */
function fioCommands(file: string): string[] {
  return FIO_JOBS.map((j) =>
    ['fio', '--name=j', `--filename=${file}`, `--size=${CFG.fileMiB}M`, ...j.args, '--ioengine=psync', '--end_fsync=1', `--runtime=${CFG.fioSeconds}`, '--time_based', '--output-format=terse', '--terse-version=3'].join(' '),
  );
}

/** MiB/s (sequential) or IOPS (4 KiB) from fio's terse v3 line: read bw KiB at field 7, iops
 * 8; write bw 48, iops 49. */
function fioValue(key: string, terse: string): number {
  const f = terse.trim().split(';');
  const read = key.includes('Read');
  const bw = Number(f[read ? 6 : 47]);
  const iops = Number(f[read ? 7 : 48]);
  return key.startsWith('seq') ? bw / 1024 : iops;
}

function hostFio(image: string): FioResult {
  const mnt = mkdtempSync(join(tmpdir(), 'xenode-bench-mnt-'));
  const m = spawnSync('mount', ['-o', 'loop', image, mnt], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount -o loop: ${m.stderr}`);
  try {
    const out: Partial<FioResult> = {};
    fioCommands(join(mnt, 'bench.dat')).forEach((cmd, i) => {
      const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`host fio: ${r.stderr}`);
      out[FIO_JOBS[i]!.key] = fioValue(FIO_JOBS[i]!.key, r.stdout);
    });
    rmSync(join(mnt, 'bench.dat'), { force: true });
    return out as FioResult;
  } finally {
    spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
}

async function guestFio(inst: BenchInstance, image: string): Promise<FioResult> {
  const name = 'fio-guest';
  await inst.xl('create', config(inst, name, image));
  const { tty } = await inst.rpc<{ tty: string }>('console', { dom: name });
  const tap = new ConsoleTap(tty);
  try {
    await tap.waitFor(/login: $/m, 60_000);
    tap.type('root\n');
    await tap.waitFor(/# $/m, 20_000);
    const out: Partial<FioResult> = {};
    const cmds = fioCommands('/root/bench.dat');
    for (let i = 0; i < cmds.length; i++) {
      const tag = `XNF${i}`;
      tap.type(`${cmds[i]} | sed 's/^/${tag} /'; echo ${tag}""END\n`);
      await tap.waitFor(new RegExp(`${tag}END`), 180_000);
      // The terse line, wherever the console's echo of the typed command put it.
      const m = new RegExp(`${tag} (3;[^\\r\\n]*)`).exec(tap.text());
      if (!m) throw new Error(`guest fio printed no result for ${FIO_JOBS[i]!.key}: ${tap.text().slice(-1500)}`);
      out[FIO_JOBS[i]!.key] = fioValue(FIO_JOBS[i]!.key, m[1]!);
    }
    tap.type('rm -f /root/bench.dat; sync\n');
    return out as FioResult;
  } finally {
    tap.close();
    await inst.xl('shutdown', '-w', name).catch(() => inst.xl('destroy', name).catch(() => {}));
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('bench:boot needs root');
  const inst = new BenchInstance('boot');
  const work = mkdtempSync(join(tmpdir(), 'xenode-bench-boot-'));
  const bb = join(work, 'busybox.img');
  const deb = join(work, 'debian.img');
  const timer = setTimeout(() => {
    log('time limit reached: stopping');
    void inst.stop().finally(() => process.exit(2));
  }, 30 * 60_000);
  try {
    log('images: busybox, Debian systemd with fio (the first Debian build runs debootstrap)');
    xenode('mkimage', '--from', 'busybox', bb, '64M');
    xenode('mkimage', '--from', 'debian', '--init', 'systemd', '--packages', 'fio', deb, '2G');
    await inst.start();
    // The machine's load (1-minute average) around the run: boots on a shared 2-CPU host are
    // as slow as the queue for its CPUs.
    const load = { start: loadavg()[0]!, end: 0 };
    const baseline = await boots(inst, 'shell', null, /XNRDY/);
    const busybox = await boots(inst, 'bb', bb, /login: $/m);
    const debian = await boots(inst, 'deb', deb, /login: $/m);
    log('fio: host (loop-mounted ext4) then guest (fuse2fs over blkfront), same image');
    const host = hostFio(deb);
    const guest = await guestFio(inst, deb);
    load.end = loadavg()[0]!;

    const rows = [
      ['boot (create to prompt)', 'median ms', 'p90 ms', 'vs minimal guest', 'target'],
      ['minimal guest (no root=)', fmt(baseline.median, 0), fmt(baseline.p90, 0), '1.00x', ''],
      ['busybox from its disk', fmt(busybox.median, 0), fmt(busybox.p90, 0), `${fmt(busybox.median / baseline.median, 2)}x`, `< ${TARGETS.busyboxMs} ms`],
      ['Debian systemd from its disk', fmt(debian.median, 0), fmt(debian.p90, 0), `${fmt(debian.median / baseline.median, 2)}x`, `< ${TARGETS.debianMs} ms`],
    ];
    const fioRows = [['fio on a root-fs file', 'host ext4', 'guest fuse2fs', 'guest/host']];
    for (const j of FIO_JOBS) {
      const unit = j.key.startsWith('seq') ? 'MiB/s' : 'IOPS';
      fioRows.push([`${j.key} (${unit})`, fmt(host[j.key], 0), fmt(guest[j.key], 0), `${fmt(guest[j.key] / host[j.key], 2)}x`]);
    }
    process.stdout.write(`\nGuest OS boot, ${CFG.boots} boots each (${new Date().toISOString()}; load average ${fmt(load.start, 1)} at the start, ${fmt(load.end, 1)} at the end)\n${table(rows)}\n\n${table(fioRows)}\n`);
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `boot-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify({ machine: { host: hostname(), kernel: release(), cpus: cpus().length, load }, config: CFG, targets: TARGETS, boot: { baseline, busybox, debian }, fio: { host, guest } }, null, 2),
    );
    process.stdout.write(`wrote ${file}\n`);
    return 0;
  } finally {
    clearTimeout(timer);
    await inst.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench:boot failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
