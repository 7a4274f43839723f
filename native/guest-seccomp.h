/* The seccomp filter on a guest's userland (native/rootboot.c installs it just before it runs
 * init, or a program `xl shutdown` runs in the guest). A guest's programs already run as an
 * unprivileged host uid in user namespaces with no_new_privs; this keeps the host kernel's
 * surface they reach small, as Firecracker's and gVisor's filters and Docker's default profile
 * do, without breaking what guests run (busybox, sysvinit and systemd boots, apt, a web
 * server, ip/ifupdown/dhclient). It is a deny list: a guest is a whole machine's userland, and
 * an allow list would have to know every program of every image.
 *
 * Blocked with EPERM (the host would refuse most of them to an unprivileged uid anyway; a
 * kernel bug behind any of them would be a way out, and no guest program needs them):
 *   kexec_load, kexec_file_load        replace the running kernel
 *   init_module, finit_module,
 *   delete_module                       load or remove host kernel modules
 *   bpf                                 eBPF programs and maps: a large verifier/JIT surface
 *   perf_event_open                     host-wide performance counters; a long CVE history
 *   userfaultfd                         lets an exploit stop the kernel mid-copy at will
 *   keyctl, add_key, request_key        the host kernel's keyrings are not namespaced
 *   open_by_handle_at                   open files by handle, past mount and path checks
 *                                       (the "shocker" container escape)
 *   lookup_dcookie, acct, quotactl,
 *   swapon, swapoff, iopl, ioperm,
 *   uselib, fanotify_init               host-wide facilities a guest has no business with
 *   prlimit64 on another process        guest root shares the kernel's host uid, and the
 *     (pid != 0 with a new limit)       kernel checks only uids for this: it could set the
 *                                       guest kernel's limits (its own: pid 0, allowed)
 * Blocked with ENOSYS, so that programs fall back as on a kernel built without them:
 *   io_uring_setup, io_uring_enter,     a large, fast-moving surface (Google and Docker turn
 *   io_uring_register                   it off for untrusted code); guests do I/O without it
 * Other architectures' system calls (x86_64: i386 and x32 entry points) kill the process: the
 * filter would not recognise their numbers.
 *
 * Not blocked, and why: ptrace, process_vm_readv/writev, pidfd_getfd and /proc/PID/mem work
 * on the guest's own processes (gdb, strace) and the kernel keeps the guest kernel's process
 * out of their reach (nested user namespace, non-dumpable); mount and unshare, which init,
 * systemd and fuse2fs need (the host limits a user namespace to its own mounts and to the
 * filesystems marked safe for it); name_to_handle_at, which systemd uses to tell mounts apart.
 */
#ifndef XENODE_GUEST_SECCOMP_H
#define XENODE_GUEST_SECCOMP_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define GUEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#define GUEST_FOREIGN_NR_BASE 0x40000000U /* x32 */
#elif defined(__aarch64__)
#define GUEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#define GUEST_FOREIGN_NR_BASE 0xffffffffU
#else
#error "guest-seccomp.h: no filter for this architecture"
#endif

static const struct {
  int nr;
  int err;
} guest_blocked_calls[] = {
    {__NR_kexec_load, EPERM},     {__NR_kexec_file_load, EPERM}, {__NR_init_module, EPERM},
    {__NR_finit_module, EPERM},   {__NR_delete_module, EPERM},   {__NR_bpf, EPERM},
    {__NR_perf_event_open, EPERM}, {__NR_userfaultfd, EPERM},    {__NR_keyctl, EPERM},
    {__NR_add_key, EPERM},        {__NR_request_key, EPERM},     {__NR_open_by_handle_at, EPERM},
    {__NR_lookup_dcookie, EPERM}, {__NR_acct, EPERM},            {__NR_quotactl, EPERM},
    {__NR_swapon, EPERM},         {__NR_swapoff, EPERM},         {__NR_fanotify_init, EPERM},
#ifdef __NR_iopl
    {__NR_iopl, EPERM},
#endif
#ifdef __NR_ioperm
    {__NR_ioperm, EPERM},
#endif
#ifdef __NR_uselib
    {__NR_uselib, EPERM},
#endif
    {__NR_io_uring_setup, ENOSYS}, {__NR_io_uring_enter, ENOSYS}, {__NR_io_uring_register, ENOSYS},
};

#define GUEST_N_BLOCKED (sizeof guest_blocked_calls / sizeof guest_blocked_calls[0])
#define SC_ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define SC_ARG_HI(n) (offsetof(struct seccomp_data, args) + 8 * (n) + 4)

/* Install the filter on this process (inherited by everything it runs). Needs no_new_privs,
 * which the jailer has set for the whole domain. Returns 0 or -1 with errno. */
static int install_guest_seccomp(void) {
  struct sock_filter prog[8 + 2 * GUEST_N_BLOCKED + 12];
  unsigned n = 0;
#define EMIT(code, k, jt, jf) prog[n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf)
  EMIT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
  EMIT(BPF_JMP | BPF_JEQ | BPF_K, GUEST_AUDIT_ARCH, 1, 0);
  EMIT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
  EMIT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
  EMIT(BPF_JMP | BPF_JGE | BPF_K, GUEST_FOREIGN_NR_BASE, 0, 1);
  EMIT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
  for (unsigned i = 0; i < GUEST_N_BLOCKED; i++) {
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)guest_blocked_calls[i].nr, 0, 1);
    EMIT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (guest_blocked_calls[i].err & SECCOMP_RET_DATA), 0, 0);
  }
  /* prlimit64(pid, resource, new_limit, old_limit): allowed for pid 0 or without new_limit. */
  EMIT(BPF_JMP | BPF_JEQ | BPF_K, __NR_prlimit64, 0, 7);
  EMIT(BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(0), 0, 0);
  EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0);
  EMIT(BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(2), 0, 0);
  EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2);
  EMIT(BPF_LD | BPF_W | BPF_ABS, SC_ARG_HI(2), 0, 0);
  EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
  EMIT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, 0, 0);
  EMIT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
#undef EMIT
  struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
}

#endif
