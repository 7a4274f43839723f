// A private xenode instance for one test file: its own run dir, logs, xenstored socket and
// cgroup name, so tests never touch a user's running xenode or each other. stop() tears
// everything down (guests, services, cgroups, dirs) and is safe to call after a failure.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openSync, closeSync, readSync, writeSync, constants } from 'node:fs';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const XL = join(ROOT, 'dist', 'bin', 'xl.js');
export const XENODE = join(ROOT, 'dist', 'bin', 'xenode.js');

export const isRoot = process.getuid?.() === 0;
export const inCI = process.env.CI === 'true';

/** Why integration tests cannot run here, or null. Under CI a missing requirement is a failure. */
export function skipReason(): string | null {
  if (!isRoot) return 'needs root (namespaces, cgroups)';
  if (!existsSync('/sys/fs/cgroup/freezer/tasks')) return 'needs cgroup v1 freezer';
  if (!existsSync(join(ROOT, 'build', 'Release', 'xenode.node'))) return 'native addon not built (npm install)';
  if (!existsSync(join(ROOT, 'dist', 'boot', 'kernel.mjs'))) return 'not built (npm run build)';
  return null;
}

/** Use as: describe.skipIf(shouldSkip())(...). Under CI, throws instead of skipping. */
export function shouldSkip(): boolean {
  const why = skipReason();
  if (why && inCI) throw new Error(`CI requires this suite, but it cannot run: ${why}`);
  if (why) console.warn(`skipping integration suite: ${why}`);
  return why !== null;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Instance {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cgroup: string;

  constructor(label: string) {
    // A skipped suite still constructs its Instance but never stops it: make no dir then.
    if (skipReason() === null) {
      this.dir = mkdtempSync(join(tmpdir(), `xenode-test-${label}-`));
      chmodSync(this.dir, 0o755);
    } else {
      this.dir = join(tmpdir(), `xenode-test-${label}-skipped-${process.pid}`);
    }
    this.cgroup = `xenode-test-${label}-${process.pid}`;
    this.env = {
      ...process.env,
      XENODE_RUN_DIR: join(this.dir, 'run'),
      XENODE_LOG_DIR: join(this.dir, 'log'),
      XENODE_LIB_DIR: join(this.dir, 'lib'),
      XENSTORED_PATH: join(this.dir, 'run', 'xenstored.sock'),
      XENODE_CGROUP: this.cgroup,
      // Should this test process die before stop() runs, the instance stops itself.
      XENODE_STOP_WITH_PID: String(process.pid),
    };
  }

  run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return new Promise((resolvePromise) => {
      const child = execFile(cmd, args, { env: this.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
        resolvePromise({ code, stdout: String(stdout), stderr: String(stderr) });
      });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
    });
  }

  xl(...args: string[]): Promise<RunResult> {
    return this.run(process.execPath, [XL, ...args]);
  }

  async xlOk(...args: string[]): Promise<string> {
    const r = await this.xl(...args);
    if (r.code !== 0) throw new Error(`xl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  xenode(...args: string[]): Promise<RunResult> {
    return this.run(process.execPath, [XENODE, ...args]);
  }

  async start(): Promise<void> {
    const r = await this.xenode('start');
    if (r.code !== 0) throw new Error(`xenode start failed: ${r.stderr}${r.stdout}\n${this.log()}`);
  }

  /** Write a config file into the instance's dir and return its path. */
  config(name: string, text: string): string {
    const p = join(this.dir, `${name}.cfg`);
    writeFileSync(p, text);
    return p;
  }

  /** A minimal PV guest config. */
  guestConfig(name: string, extra: Record<string, string | number> = {}): string {
    const lines = [`name = "${name}"`, 'type = "pv"', 'memory = 128', 'vcpus = 1', 'extra = "console=hvc0"'];
    for (const [k, v] of Object.entries(extra)) {
      const idx = lines.findIndex((l) => l.startsWith(`${k} =`));
      const line = `${k} = ${typeof v === 'number' ? v : JSON.stringify(v)}`;
      if (idx >= 0) lines[idx] = line;
      else lines.push(line);
    }
    return this.config(name, lines.join('\n') + '\n');
  }

  async create(name: string, extra: Record<string, string | number> = {}): Promise<number> {
    await this.xlOk('create', this.guestConfig(name, extra));
    return Number((await this.xlOk('domid', name)).trim());
  }

  log(): string {
    const p = join(this.dir, 'log', 'xenode.log');
    return existsSync(p) ? readFileSync(p, 'utf8') : '(no log)';
  }

  consoleLog(name: string): string {
    const p = join(this.dir, 'log', 'console', `guest-${name}.log`);
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  }

  xenstore(tool: string, ...args: string[]): Promise<RunResult> {
    return this.run(tool, args);
  }

  /** The guest's console pty, as xl console finds it. */
  async consoleTty(dom: string): Promise<string> {
    const domid = (await this.xlOk('domid', dom)).trim();
    const r = await this.xenstore('xenstore-read', `/local/domain/${domid}/console/tty`);
    if (r.code !== 0) throw new Error(`no console/tty for ${dom}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** Type a command on the guest's console and return its output (a shell must be on it). */
  async consoleRun(dom: string, command: string, timeoutMs = 10_000): Promise<string> {
    const tty = await this.consoleTty(dom);
    const fd = openSync(tty, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    try {
      const marker = `__XN${Math.random().toString(36).slice(2, 10)}__`;
      // Drain what is already buffered (boot log, prompt).
      const buf = Buffer.alloc(65536);
      for (;;) {
        try {
          if (readSync(fd, buf, 0, buf.length, null) <= 0) break;
        } catch {
          break;
        }
      }
      const line = `${command}; echo ${marker.slice(0, 4)}""${marker.slice(4)} $?\n`;
      writeSync(fd, line);
      let out = '';
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        try {
          const n = readSync(fd, buf, 0, buf.length, null);
          if (n > 0) out += buf.subarray(0, n).toString('utf8');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
        const m = new RegExp(`${marker} (\\d+)`).exec(out);
        if (m) {
          // Output between the echoed command line and the marker line.
          const start = out.indexOf('\n') + 1;
          return out.slice(start, m.index).replace(/\r/g, '');
        }
      }
      throw new Error(`console command timed out: ${command}\n--- got:\n${out}`);
    } finally {
      closeSync(fd);
    }
  }

  /** Wait until a predicate holds (polling), or throw with a message. */
  async waitFor(what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await pred()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}\n--- log:\n${this.log().split('\n').slice(-30).join('\n')}${this.kernelLogTails()}`);
  }

  /** The last lines of each guest kernel's own log (its printk: a frontend that gave up says
   * why there), for a failure message. */
  kernelLogTails(lines = 8): string {
    const dir = join(this.dir, 'log');
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^kernel-\d+\.log$/.test(f)) : [];
    return files
      .map((f) => `\n--- ${f}:\n${readFileSync(join(dir, f), 'utf8').trimEnd().split('\n').slice(-lines).join('\n')}`)
      .join('');
  }

  async list(): Promise<{ name: string; id: number; mem: number; vcpus: number; state: string; time: number }[]> {
    const out = await this.xlOk('list');
    return out
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => {
        const f = l.trim().split(/\s+/);
        return { name: f[0]!, id: Number(f[1]), mem: Number(f[2]), vcpus: Number(f[3]), state: f[4]!, time: Number(f[5]) };
      });
  }

  /** Wait until the domain now called `name` has started init. Its console log keeps earlier
   * boots under that name, so look after this domain's own xenbus line when it prints one. */
  async waitForShell(name: string, timeoutMs = 15_000): Promise<void> {
    const domid = (await this.xlOk('domid', name)).trim();
    await this.waitFor(`${name}'s shell prompt`, () => {
      const log = this.consoleLog(name);
      const boot = log.lastIndexOf(`(domain ${domid})`);
      const earlier = boot < 0 && /\(domain \d+\)/.test(log); // only older boots so far
      return !earlier && /Run .* as init process/.test(log.slice(Math.max(boot, 0)));
    }, timeoutMs);
  }

  /** Tear down: stop the services, then make sure nothing of ours is left. */
  async stop(): Promise<void> {
    await this.xenode('stop').catch(() => {});
    const pidFile = join(this.dir, 'run', 'hypervisor.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // Any domain processes left in our cgroups die, and the groups go.
    // The domains' groups, and the stub domains' (dom0/stubdom-cgroup.ts).
    // And the directories delegated to guests' own inits (hypervisor/delegated-cgroups.ts), in
    // systemd's named hierarchy and cgroup2, where a guest's systemd nests its units.
    const groups: [string, string][] = [
      ...['freezer', 'memory', 'cpu', 'cpuset', 'cpuacct', 'pids', 'systemd', 'unified'].map((c): [string, string] => [c, this.cgroup]),
      ['memory', `${this.cgroup}-stubdom`],
      ['pids', `${this.cgroup}-stubdom`],
    ];
    for (const [ctrl, group] of groups) {
      const base = join('/sys/fs/cgroup', ctrl, group);
      if (!existsSync(base)) continue;
      if (ctrl === 'freezer') for (const d of readdirSync(base)) { try { writeFileSync(join(base, d, 'freezer.state'), 'THAWED'); } catch { /* */ } }
      for (const p of cgroupProcs(base)) try { process.kill(p, 'SIGKILL'); } catch { /* */ }
    }
    await new Promise((r) => setTimeout(r, 100));
    for (const [ctrl, group] of groups) {
      const base = join('/sys/fs/cgroup', ctrl, group);
      if (!existsSync(base)) continue;
      // Deepest first: a domain's children (the memory hierarchy's "user", a guest's units).
      removeCgroupTree(base);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export { spawn };

/** Every process in a cgroup directory and the ones below it. */
function cgroupProcs(dir: string, depth = 0): number[] {
  if (depth > 32) return [];
  const here = existsSync(join(dir, 'cgroup.procs')) ? readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number) : [];
  const below = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => cgroupProcs(join(dir, e.name), depth + 1));
  return [...here, ...below];
}

/** rmdir a cgroup and everything below it, deepest first (a cgroup with children cannot go). */
function removeCgroupTree(dir: string, depth = 0): void {
  if (depth > 32 || !existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name), depth + 1);
  spawnSync('rmdir', [dir]);
}
