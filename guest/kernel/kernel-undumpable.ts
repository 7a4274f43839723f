// The guest kernel's process out of its userland's reach. Guest root has the kernel's host
// uid (the userland's user namespace maps the same ids, native/jailer.c), and a dumpable
// process may be ptraced by any process of its uid. Non-dumpable, reaching the kernel
// (ptrace, pidfd_getfd of its hypercall socket, RAM or event-channel fds, process_vm_readv,
// /proc/PID/mem, /proc/PID/fd) needs CAP_SYS_PTRACE in the kernel's user namespace, which the
// userland's nested one never has.
import { readFileSync } from 'node:fs';

/** A change of credentials makes a process non-dumpable (Linux's commit_creds sets
 * suid_dumpable); Node has no prctl(PR_SET_DUMPABLE), but it can change its effective gid and
 * back. Programs the kernel starts are dumpable again after their exec. */
export function makeKernelUndumpable(log: (msg: string) => void): void {
  const gid = process.getegid!();
  try {
    process.setegid!(gid === 0 ? 1 : 0);
    process.setegid!(gid);
  } catch (e) {
    log(`kernel: could not make itself non-dumpable: ${(e as Error).message}`);
    return;
  }
  let suidDumpable = '';
  try {
    suidDumpable = readFileSync('/proc/sys/fs/suid_dumpable', 'latin1').trim();
  } catch {
    /* no such file: the default (0) */
  }
  if (suidDumpable === '1') log('kernel: the host has fs.suid_dumpable=1: the kernel stays dumpable, and its userland can ptrace it');
}
