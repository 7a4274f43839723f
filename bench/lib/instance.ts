// A private xenode instance for a benchmark run (the same isolation the integration tests use:
// its own run dir, logs, xenstored socket and cgroup name), so a benchmark never touches a
// user's running xenode. stop() tears everything down and is safe to call after a failure.
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rpcCall } from '../../dom0/toolstack/rpc.js';

/** The project root, from dist/bench/lib/ or bench/lib/. */
export const ROOT = resolve(import.meta.dirname, existsSync(resolve(import.meta.dirname, '..', '..', 'package.json')) ? '../..' : '../../..');
export const XL = join(ROOT, 'dist', 'bin', 'xl.js');
export const XENODE = join(ROOT, 'dist', 'bin', 'xenode.js');
const CONTROLLERS = ['freezer', 'memory', 'cpu', 'cpuset', 'cpuacct', 'pids'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class BenchInstance {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cgroup: string;
  private stopped = false;

  constructor(label: string) {
    this.dir = mkdtempSync(join(tmpdir(), `xenode-bench-${label}-`));
    chmodSync(this.dir, 0o755);
    this.cgroup = `xenode-bench-${label}-${process.pid}`;
    this.env = {
      ...process.env,
      XENODE_RUN_DIR: join(this.dir, 'run'),
      XENODE_LOG_DIR: join(this.dir, 'log'),
      XENODE_LIB_DIR: join(this.dir, 'lib'),
      XENSTORED_PATH: join(this.dir, 'run', 'xenstored.sock'),
      XENODE_CGROUP: this.cgroup,
      // Should the benchmark die before stop() runs, the instance stops itself.
      XENODE_STOP_WITH_PID: String(process.pid),
    };
  }

  get xenstoredSocket(): string {
    return this.env.XENSTORED_PATH!;
  }
  get toolstackSocket(): string {
    return join(this.env.XENODE_RUN_DIR!, 'toolstack.sock');
  }

  run(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
    return new Promise((res) => {
      execFile(cmd, args, { env: this.env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        res({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  async xl(...args: string[]): Promise<string> {
    const r = await this.run(process.execPath, [XL, ...args]);
    if (r.code !== 0) throw new Error(`xl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** A toolstack command straight over its socket (what xl does, without xl's process start). */
  rpc<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    return rpcCall<T>(this.toolstackSocket, cmd, args, timeoutMs);
  }

  async start(): Promise<void> {
    const r = await this.run(process.execPath, [XENODE, 'start']);
    if (r.code !== 0) throw new Error(`xenode start failed: ${r.stderr}${r.stdout}\n${this.log().slice(-3000)}`);
  }

  hypervisorPid(): number {
    return Number(readFileSync(join(this.env.XENODE_RUN_DIR!, 'hypervisor.pid'), 'utf8'));
  }

  async dom0Pid(): Promise<number> {
    return (await this.rpc<{ pid: number }>('ping')).pid;
  }

  /** A minimal PV guest config file (a login shell on hvc0). */
  guestConfig(name: string, memoryMiB = 128): string {
    const p = join(this.dir, `${name}.cfg`);
    writeFileSync(p, [`name = "${name}"`, 'type = "pv"', `memory = ${memoryMiB}`, 'vcpus = 1', 'extra = "console=hvc0"', ''].join('\n'));
    return p;
  }

  consoleLogPath(name: string): string {
    return join(this.env.XENODE_LOG_DIR!, 'console', `guest-${name}.log`);
  }

  log(): string {
    const p = join(this.env.XENODE_LOG_DIR!, 'xenode.log');
    return existsSync(p) ? readFileSync(p, 'utf8') : '(no log)';
  }

  /** Stop the services, then make sure nothing of ours is left (processes, cgroups, files). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.run(process.execPath, [XENODE, 'stop'], 30_000).catch(() => undefined);
    const pidFile = join(this.env.XENODE_RUN_DIR!, 'hypervisor.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const ctrl of CONTROLLERS) {
      const base = join('/sys/fs/cgroup', ctrl, this.cgroup);
      if (!existsSync(base)) continue;
      for (const d of readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory())) {
        if (ctrl === 'freezer') try { writeFileSync(join(base, d.name, 'freezer.state'), 'THAWED'); } catch { /* */ }
        let procs: string[] = [];
        try {
          procs = readFileSync(join(base, d.name, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
        } catch {
          /* gone */
        }
        for (const p of procs) try { process.kill(Number(p), 'SIGKILL'); } catch { /* */ }
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const ctrl of CONTROLLERS) {
      const base = join('/sys/fs/cgroup', ctrl, this.cgroup);
      if (!existsSync(base)) continue;
      for (const d of readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory())) spawnSync('rmdir', [join(base, d.name)]);
      spawnSync('rmdir', [base]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
