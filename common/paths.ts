// Where xenode keeps its runtime state. Every path can be moved by an environment variable so
// that a test can run a private instance beside a user's (and beside another test).
import { join } from 'node:path';

export function runDir(): string {
  return process.env.XENODE_RUN_DIR ?? '/run/xenode';
}
export function logDir(): string {
  return process.env.XENODE_LOG_DIR ?? '/var/log/xenode';
}
export function libDir(): string {
  return process.env.XENODE_LIB_DIR ?? '/var/lib/xenode';
}
/** Xen's default, so that the stock xenstore tools need no environment. */
export function xenstoredSocket(): string {
  return process.env.XENSTORED_PATH ?? '/var/run/xenstored/socket';
}
export function toolstackSocket(): string {
  return join(runDir(), 'toolstack.sock');
}
/** xenstored's live state, kept for a dom0 that restarts (dom0/xenstored/live-state.ts). */
export function xenstoredStateFile(): string {
  return join(runDir(), 'xenstored.state');
}
/** The toolstack's record of each domain it built, as libxl's userdata files. */
export function toolstackRecordDir(): string {
  return join(runDir(), 'toolstack');
}
export function hypervisorPidFile(): string {
  return join(runDir(), 'hypervisor.pid');
}
/** Name of the cgroup directory (under each v1 controller) that holds the domains. */
export function cgroupName(): string {
  return process.env.XENODE_CGROUP ?? 'xenode';
}
/** The group (under the v1 memory and pids hierarchies) holding stub domains' `d<domid>` groups. */
export function stubdomCgroupName(): string {
  return `${cgroupName()}-stubdom`;
}
/** Stub domains' root mount points, `<this>/<domid>`. */
export function stubdomRootsDir(): string {
  return join(runDir(), 'stubdom');
}
/** Where the guest kernel image (bundle + addon) is staged for domains to boot from. */
export function bootDir(): string {
  return join(runDir(), 'boot');
}
export function domainRootDir(domid: number): string {
  return join(runDir(), 'domains', String(domid), 'root');
}
