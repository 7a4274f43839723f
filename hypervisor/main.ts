// The hypervisor process. It creates dom0 (the control domain, a plain child process holding
// the other end of its hypercall channel) and then serves hypercalls. A dom0 that dies is
// started again and takes the guests over; one that exits when asked (or dies in a loop)
// stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, nativeBuildDir } from '../native/index.js';
import { bootDir, hypervisorPidFile, runDir, toolstackSocket, xenstoredStateFile } from '../common/paths.js';
import { cgroupsAvailable } from './cgroups.js';
import { Hypervisor } from './hypervisor.js';
import { checkPoolAgainstSubordinateIds, uidPoolFromEnv } from '../common/uid-ranges.js';
import { reapOrphanedStubDomains, removeOrphanedStubDomains } from './orphaned-stub-domains.js';

const here = dirname(fileURLToPath(import.meta.url));

/** dom0 dying more than this many times within the window is a crash loop: stop, as before. */
const MAX_DOM0_DEATHS = 3;
const DOM0_DEATH_WINDOW_MS = 60_000;

/** Stage the guest kernel image where every domain's sandbox can read it (as /boot). */
function stageBootImage(): void {
  const dir = bootDir();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(runDir(), 0o755);
  const kernel = join(here, '..', 'boot', 'kernel.mjs');
  if (!existsSync(kernel)) throw new Error(`guest kernel image ${kernel} missing: run "npm run build"`);
  copyFileSync(kernel, join(dir, 'kernel.mjs'));
  copyFileSync(join(nativeBuildDir(), 'xenode.node'), join(dir, 'xenode.node'));
  // The HVM guest kernel exists once guest/hvm/ is built; PV-only builds have none.
  const hvmKernel = join(here, '..', 'boot', 'hvm-kernel.mjs');
  if (existsSync(hvmKernel)) {
    copyFileSync(hvmKernel, join(dir, 'hvm-kernel.mjs'));
    chmodSync(join(dir, 'hvm-kernel.mjs'), 0o644);
  }
  // The guest kernel runs it to boot a guest's own root filesystem (native/rootboot.c).
  copyFileSync(join(nativeBuildDir(), 'xenode-rootboot'), join(dir, 'xenode-rootboot'));
  chmodSync(join(dir, 'xenode-rootboot'), 0o755);
  chmodSync(join(dir, 'kernel.mjs'), 0o644);
  chmodSync(join(dir, 'xenode.node'), 0o644);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the hypervisor needs root (namespaces, cgroups, TAPs)');
  if (!cgroupsAvailable()) throw new Error('cgroup v1 controllers freezer, memory, cpu, cpuset, cpuacct, pids are required under /sys/fs/cgroup');
  // Guests' host uids must be nobody else's (docs/architecture.md, Security).
  checkPoolAgainstSubordinateIds(uidPoolFromEnv());
  mkdirSync(runDir(), { recursive: true });
  stageBootImage();
  writeFileSync(hypervisorPidFile(), `${process.pid}\n`);

  const hv = new Hypervisor();
  // A dead dom0's stub domains stay the hypervisor's descendants (docs/hvm.md, "The stub domain").
  reapOrphanedStubDomains();
  // A new instance starts from an empty xenstore: a live state left by an earlier one is stale.
  const discardLiveState = () => {
    for (const p of [xenstoredStateFile(), `${xenstoredStateFile()}.log`]) rmSync(p, { force: true });
  };
  discardLiveState();
  let dom0: ChildProcess | null = null;
  let generation = 0;
  const deaths: number[] = [];

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    hv.log.write(`stopping: ${why}`);
    await hv.destroyAll();
    // A dom0 that died left stub domains; their guests are gone now, and so are they.
    await removeOrphanedStubDomains();
    rmSync(hypervisorPidFile(), { force: true });
    discardLiveState();
    process.exit(0);
  };

  /**
   * Start dom0. The first one starts from nothing; a later one (the previous died) finds the
   * guests still here, with their memory, event channels and grant tables, and xenstored's
   * live state in the run dir, and takes them over (docs/architecture.md, "dom0 restarts").
   */
  const startDom0 = () => {
    const [ours, theirs] = native().seqpacketPair();
    // --expose-gc: dom0 collects a destroyed guest's memory views at once (see ForeignMemory.unmap).
    const child = spawn(process.execPath, ['--expose-gc', join(here, '..', 'dom0', 'main.js')], {
      stdio: ['ignore', 'inherit', 'inherit', theirs],
      env: { ...process.env, XENODE_DOM0_GENERATION: String(generation) },
    });
    native().close(theirs);
    dom0 = child;
    let gone = false;
    // Its hypercall channel closes as it dies: act on the process's exit, so that a new dom0
    // never meets the old one's sockets, TAPs or open images.
    hv.attachDom0(ours, () => hv.log.write('dom0 hypercall channel closed'));
    child.on('exit', (code, signal) => {
      if (gone) return;
      gone = true;
      const why = `dom0 exited (${signal ?? code})`;
      // Exit status 0 is dom0 stopping on purpose (xenode stop, SIGTERM): everything stops.
      if (stopping || asked || code === 0) return void stop(why);
      // A first dom0 that never came up (no toolstack socket) failed to start: nothing to keep.
      if (generation === 0 && !existsSync(toolstackSocket())) return void stop(`${why} before it was up`);
      onDom0Death(why);
    });
  };

  const onDom0Death = (why: string) => {
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && now - deaths[0]! > DOM0_DEATH_WINDOW_MS) deaths.shift();
    if (deaths.length > MAX_DOM0_DEATHS) {
      return void stop(`${why}; dom0 died ${deaths.length} times within ${DOM0_DEATH_WINDOW_MS / 1000} s: not restarting it again`);
    }
    generation++;
    hv.log.write(`${why}: starting dom0 again (restart ${generation}); the guests keep running`);
    startDom0();
  };

  // Stopping the hypervisor asks dom0 to tear down cleanly first; dom0's exit then stops us.
  let asked = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      hv.log.write(`${sig}: asking dom0 to shut down`);
      asked = true;
      dom0?.kill('SIGTERM');
      setTimeout(() => void stop('dom0 did not stop in time'), 10_000).unref();
    });
  }
  startDom0();
  process.on('SIGHUP', () => {});
  stopWithOwner();
}

/**
 * XENODE_STOP_WITH_PID: the process this xenode belongs to (a test run's worker starts private
 * instances). When it is gone, killed or timed out before its own teardown could run, this
 * xenode stops as on SIGTERM, so no hypervisor, dom0 or guest outlives the run that made them.
 */
function stopWithOwner(): void {
  const owner = Number(process.env.XENODE_STOP_WITH_PID);
  if (!Number.isSafeInteger(owner) || owner <= 1) return;
  const timer = setInterval(() => {
    try {
      process.kill(owner, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') return;
      clearInterval(timer);
      process.kill(process.pid, 'SIGTERM');
    }
  }, 1000);
}

main().catch((e) => {
  process.stderr.write(`xenode hypervisor: ${(e as Error).message}\n`);
  process.exit(1);
});
