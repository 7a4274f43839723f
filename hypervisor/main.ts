// The hypervisor process. It creates dom0 (the control domain, a plain child process holding
// the other end of its hypercall channel) and then serves hypercalls until dom0 goes away.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, nativeBuildDir } from '../native/index.js';
import { bootDir, hypervisorPidFile, runDir } from '../common/paths.js';
import { cgroupsAvailable } from './cgroups.js';
import { Hypervisor } from './hypervisor.js';
import { checkPoolAgainstSubordinateIds, uidPoolFromEnv } from '../common/uid-ranges.js';

const here = dirname(fileURLToPath(import.meta.url));

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
  const [ours, theirs] = native().seqpacketPair();
  // --expose-gc: dom0 collects a destroyed guest's memory views at once (see ForeignMemory.unmap).
  const dom0 = spawn(process.execPath, ['--expose-gc', join(here, '..', 'dom0', 'main.js')], {
    stdio: ['ignore', 'inherit', 'inherit', theirs],
    env: process.env,
  });
  native().close(theirs);

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    hv.log.write(`stopping: ${why}`);
    await hv.destroyAll();
    rmSync(hypervisorPidFile(), { force: true });
    process.exit(0);
  };
  hv.attachDom0(ours, () => void stop('dom0 exited'));
  dom0.on('exit', (code, signal) => void stop(`dom0 exited (${signal ?? code})`));
  // Stopping the hypervisor asks dom0 to tear down cleanly first; dom0's exit then stops us.
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      hv.log.write(`${sig}: asking dom0 to shut down`);
      dom0.kill('SIGTERM');
      setTimeout(() => void stop('dom0 did not stop in time'), 10_000).unref();
    });
  }
  process.on('SIGHUP', () => {});
}

main().catch((e) => {
  process.stderr.write(`xenode hypervisor: ${(e as Error).message}\n`);
  process.exit(1);
});
