// Starts a domain's kernel process inside its sandbox: the jailer (native/jailer.c) makes the
// user, pid, mount, net, uts and ipc namespaces and the root view; we put it in the domain's
// cgroup BEFORE it runs anything (it waits for one byte on stdin), so nothing escapes the
// limits, then let it go.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { jailerPath } from '../native/index.js';
import { bootDir, domainRootDir, logDir } from '../common/paths.js';
import type { DomainCgroup } from './cgroups.js';
import { UID_RANGE } from '../common/uid-ranges.js';
import { KernelLogWriter } from './kernel-log.js';

/** Each domain's root maps to its own unprivileged host range (common/uid-ranges.ts, held
 * host-wide for the domain's life): guest root is nobody here. */
export { UID_RANGE };

/** /dev/net/tun handles the jailer opens inside each domain's network namespace (fds 4..35 of
 * the kernel): netfront makes one eth TAP per vif with them, so a domain can be given this
 * many vifs over its life, hot-plugged ones included (a detached vif's handle is gone with its
 * TAP). An unattached handle costs the host one open file and a few KiB. */
export const GUEST_TUN_FDS = 32;
const TUN_FD_BASE = 4;

export interface LaunchSpec {
  domid: number;
  hostname: string;
  /** Our end stays in the hypervisor; this fd becomes fd 3 in the guest. */
  hypercallFd: number;
  startInfoPfn: number;
  /** PV boots /boot/kernel.mjs; HVM boots /boot/hvm-kernel.mjs (firmware + native drivers). */
  kind: 'pv' | 'hvm';
  cgroup: DomainCgroup;
  /** First host uid of the domain's range (guest root). */
  uidBase: number;
}

/** Guests use FUSE (blkfront serves their disks through it, fuse2fs mounts filesystems on
 * them), and guest root is an unprivileged host uid: /dev/fuse must be world read-write, as
 * udev's default rules make it on a standard system. Hosts without udev leave it 0600. */
let fuseChecked = false;
function ensureFuseDevice(): void {
  if (fuseChecked) return;
  fuseChecked = true;
  try {
    const st = statSync('/dev/fuse');
    if (st.isCharacterDevice() && (st.mode & 0o666) !== 0o666) chmodSync('/dev/fuse', 0o666);
  } catch {
    /* no FUSE on this host: guests get no /dev/<vdev> for their disks */
  }
}

export function launchDomainKernel(spec: LaunchSpec): ChildProcess {
  ensureFuseDevice();
  const root = domainRootDir(spec.domid);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  mkdirSync(logDir(), { recursive: true });
  // The kernel's own stdout/stderr (not the guest console) go through pipes to a bounded
  // per-domain log for debugging (kernel-log.ts); the guest never holds a host file.
  const args = [
    '--uid-base', String(spec.uidBase),
    '--uid-count', String(UID_RANGE),
    '--hostname', spec.hostname,
    '--root', root,
    '--boot-dir', bootDir(),
    '--keep-fd', '3',
    ...(spec.cgroup.guestMemoryBytes > 0 ? ['--memory', String(spec.cgroup.guestMemoryBytes)] : []),
    ...(existsSync('/dev/net/tun')
      ? ['--tun-fds', String(GUEST_TUN_FDS), '--env', `XENODE_TUN_FDS=${TUN_FD_BASE}-${TUN_FD_BASE + GUEST_TUN_FDS - 1}`]
      : []),
    '--env', 'XENODE_NATIVE_DIR=/boot',
    '--',
    process.execPath,
    '--max-semi-space-size=1',
    ...(spec.kind === 'hvm' ? ['/boot/hvm-kernel.mjs'] : ['/boot/kernel.mjs', `start_info=${spec.startInfoPfn}`]),
  ];
  const child = spawn(jailerPath(), args, {
    stdio: ['pipe', 'pipe', 'pipe', spec.hypercallFd],
    detached: false,
  });
  const kernelLog = new KernelLogWriter(join(logDir(), `kernel-${spec.domid}.log`));
  kernelLog.attach(child.stdout!);
  kernelLog.attach(child.stderr!);
  if (child.pid === undefined) throw new Error('could not start the domain jailer');
  spec.cgroup.delegated.create(spec.uidBase);
  spec.cgroup.delegateUserland(spec.uidBase);
  spec.cgroup.addProcess(child.pid);
  child.stdin!.end('g');
  return child;
}
