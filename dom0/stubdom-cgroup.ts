// A stub domain's own cgroups (v1 memory and pids), as a domain has its own: a device model
// that leaks or forks without end stops at its limits, not at the host's. They sit under
// `<xenode group>-stubdom/d<domid>`, apart from the domains' group, because the hypervisor
// removes that one when its last domain goes, which is before dom0 stops the device model.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stubdomCgroupName } from '../common/paths.js';

const ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['memory', 'pids'] as const;

/** Node's main thread, V8's and libuv's pools, one device-model worker and its helpers come to
 * about 20 tasks; a stub domain that wants more than this is not running device models. */
export const STUBDOM_PIDS_MAX = 64;

export class StubdomCgroup {
  readonly dirs: string[];

  constructor(readonly domid: number) {
    this.dirs = CONTROLLERS.map((c) => join(ROOT, c, stubdomCgroupName(), `d${domid}`));
  }

  /** Groups a dom0 that died left behind (a restarted dom0 finds them). */
  static leftovers(): StubdomCgroup[] {
    const parent = join(ROOT, CONTROLLERS[0], stubdomCgroupName());
    let names: string[] = [];
    try {
      names = readdirSync(parent).filter((n) => /^d\d+$/.test(n));
    } catch {
      /* none */
    }
    return names.map((n) => new StubdomCgroup(Number(n.slice(1))));
  }

  /** The processes in the groups: the sandbox and the stub domain inside it. */
  procs(): number[] {
    try {
      return readFileSync(join(this.dirs[1]!, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** Signal whatever still runs in the groups (a stub domain whose dom0 died). */
  killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
    for (const pid of this.procs()) {
      try {
        process.kill(pid, signal);
      } catch {
        /* exited */
      }
    }
  }

  /** Resolves true once nothing runs in the groups, false after `ms`. */
  async waitEmpty(ms: number): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; ) {
      if (this.procs().length === 0) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.procs().length === 0;
  }

  /** Make the groups with their limits (memory in bytes). */
  create(memoryBytes: number): void {
    for (const dir of this.dirs) mkdirSync(dir, { recursive: true });
    const [memory, pids] = this.dirs as [string, string];
    writeFileSync(join(memory, 'memory.limit_in_bytes'), String(memoryBytes));
    // Out of memory: the kernel kills the stub domain (its guest crashes), it does not stall.
    writeFileSync(join(memory, 'memory.oom_control'), '0');
    writeFileSync(join(pids, 'pids.max'), String(STUBDOM_PIDS_MAX));
  }

  /** Remove the groups (empty once the stub domain has exited), and their parent when it is
   * the last. Retries briefly: the kernel lets go of an exited process's cgroup a little later. */
  async remove(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      let busy = false;
      for (const dir of this.dirs) {
        if (!existsSync(dir)) continue;
        try {
          rmdirSync(dir);
        } catch {
          busy = true;
        }
      }
      if (!busy) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const dir of this.dirs) {
      try {
        rmdirSync(join(dir, '..'));
      } catch {
        /* another stub domain is still there */
      }
    }
  }
}
