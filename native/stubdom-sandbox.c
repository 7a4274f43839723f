/* xenode-stubdom-sandbox: confines one stub domain (the device models of one HVM guest) the
 * way Firecracker's jailer confines a VMM, then execs it.
 *
 *   xenode-stubdom-sandbox --uid N --gid N --root DIR [--cgroup DIR]... [--bind-ro PATH]...
 *                          [--keep-fd N]... [--env K=V]... -- PROGRAM ARGS...
 *
 * 1. Join each --cgroup DIR (a v1 memory or pids cgroup dom0 made with its limits) before
 *    anything else, so every thread the stub domain ever has is counted there.
 * 2. clone() into new mount, pid, network, IPC, UTS and cgroup namespaces. The network
 *    namespace stays empty (not even lo is up): the stub domain reaches the world only through
 *    fds dom0 passed in (TAPs, the VNC listening socket, its seqpacket channel). The parent
 *    stays host root, forwards SIGTERM/SIGINT/SIGHUP, and exits with the child's status
 *    (128+signal if it was killed); the child dies with it (PDEATHSIG).
 * 3. The child builds a root on a tmpfs at DIR: /usr read-only (Node and its libraries), the
 *    merged-/usr links, /etc/ld.so.cache, /dev/null, zero, random, urandom, a /proc of its own
 *    pid namespace showing processes only (subset=pid: no sysctls, no kernel files), and each --bind-ro PATH read-only at the same path (xenode's dist/ and
 *    addon). Nothing of the host's else: no /etc, /home, /run, /var, /tmp, /sys, no images (dom0
 *    passes them opened), no other guest's files. It pivots into it.
 * 4. It drops privilege for good: an empty capability bounding set, no ambient capabilities,
 *    no supplementary groups, uid and gid N (a range of its own, not root in any namespace, so
 *    the kernel clears its capabilities), no_new_privs, every fd closed but 0-2 and --keep-fd.
 * 5. It installs the seccomp allowlist below and execs PROGRAM with a clean environment.
 *
 * Any failure prints "xenode-stubdom-sandbox: <step>: <strerror>" and exits 127. Must run as
 * root. DIR, and the directories above each --bind-ro PATH, must exist.
 *
 * The seccomp filter (x86-64 and arm64). The stub domain is a Node process: a main thread with
 * the event loop (dom0's channel, VNC viewers), one worker thread per device model, and the
 * threads Node and V8 start themselves. It is allowed what those use and nothing else:
 *   - memory: mmap, munmap, mprotect (V8's JIT), madvise, mremap, brk, msync, membarrier,
 *     pkey_* (V8 write-protects its code with memory protection keys where it can);
 *   - fds it holds: read/write and their vector and positional forms, close, dup*, fcntl,
 *     fstat/statx/newfstatat/lseek, fsync/fdatasync (IDE FLUSH CACHE on an image fd),
 *     epoll, eventfd2, pipe2, poll/ppoll/select, and ioctl only with FIONBIO, FIOCLEX, FIONCLEX,
 *     FIONREAD, TCGETS and TIOCGWINSZ (so no TAP, tty or socket is reconfigured);
 *   - files by path: openat, readlink(at), access, getcwd, getdents64 (Node's module loader);
 *     the mount namespace holds nothing but read-only code and /proc, so a path leads nowhere;
 *   - sockets it was given: accept4 (VNC viewers), listen, getsockname/getpeername,
 *     get/setsockopt, shutdown, sendmsg/recvmsg (dom0's channel). socket(), connect() and
 *     bind() are refused: it can make no new socket, and its network namespace is empty anyway;
 *   - threads: clone only with CLONE_THREAD and no CLONE_NEW* flag (a new thread; fork is
 *     refused, so it can start no process), clone3 answers ENOSYS (its flags cannot be inspected; glibc falls back to
 *     clone), futex, set_robust_list, rseq, sched_yield, sched_getaffinity, the scheduler's
 *     get calls, prctl only PR_SET_NAME/PR_GET_NAME (thread names);
 *   - signals to itself (rt_sig*, sigaltstack, tgkill, kill: its pid namespace holds only
 *     itself), time (clock_*, nanosleep, gettimeofday), ids (get*id), getrandom, uname, sysinfo,
 *     prlimit64/getrlimit, capget (Node checks its capabilities at startup), exit, exit_group;
 *   - execve, once: the filter is installed before exec. A later execve can only replace the
 *     stub domain by another /usr program under the same confinement (no fork, no privilege).
 * Calls only an attacker makes (ptrace, process_vm_*, mount and friends, unshare, setns,
 * the set*id family, capset, module and kexec loading, bpf, perf_event_open, userfaultfd,
 * keyctl, reboot, ...) kill the stub domain at once: its guest crashes, no other is touched.
 * Everything else is refused with EPERM, as Docker's default profile does, so a probe by Node
 * itself (io_uring_setup, for one) falls back instead of killing the device model. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define PROGRAM_NAME "xenode-stubdom-sandbox"
#define FAIL_STATUS 127
#include "sandbox-util.h"
#include "sandbox-mounts.h"
#include "sandbox-fds.h"

#define FORWARDED_SIGNALS {SIGTERM, SIGINT, SIGHUP}

#if defined(__x86_64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_AARCH64
#else
#error "stub domain seccomp filter: x86-64 and arm64 only"
#endif

struct config {
  unsigned long uid, gid;
  const char *root;
  char **cgroups, **binds, **envs;
  int n_cgroups, n_binds, n_envs;
  int *keep_fds;
  int n_keep_fds;
  char **argv;
  int sync_fd, sync_wr;
  sigset_t orig_mask;
};

static volatile pid_t child_pid;

static void usage(const char *why) {
  fprintf(stderr,
          PROGRAM_NAME ": arguments: %s\n"
          "usage: " PROGRAM_NAME " --uid N --gid N --root DIR [--cgroup DIR]... [--bind-ro PATH]...\n"
          "         [--keep-fd N]... [--env K=V]... -- PROGRAM ARGS...\n",
          why);
  exit(FAIL_STATUS);
}

static unsigned long parse_num(const char *s, const char *opt) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *s < '0' || *s > '9' || *end) usage(opt);
  return v;
}

static const char *root_dir;
static char *in_root(const char *path) { return xasprintf("%s%s", root_dir, path); }

static void build_root(const struct config *c) {
  xmount("", "/", NULL, MS_REC | MS_PRIVATE, NULL);
  xmount("tmpfs", c->root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m");
  bind_ro("/usr", in_root("/usr"));
  const char *top[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
  for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
    char *host = xasprintf("/%s", top[i]);
    struct stat st;
    if (lstat(host, &st) < 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlink(host, target, sizeof target - 1);
      if (n < 0) die("readlink %s", host);
      target[n] = 0;
      if (symlink(target, in_root(host)) < 0) die("symlink %s", host);
    } else if (S_ISDIR(st.st_mode)) {
      bind_ro(host, in_root(host));
    }
  }
  mkdir_p(in_root("/etc"));
  struct stat st;
  if (stat("/etc/ld.so.cache", &st) == 0) bind_ro("/etc/ld.so.cache", in_root("/etc/ld.so.cache"));
  mkdir_p(in_root("/dev"));
  const char *nodes[] = {"null", "zero", "random", "urandom"};
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    char *src = xasprintf("/dev/%s", nodes[i]), *dst = in_root(src);
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) die("create %s", dst);
    close(fd);
    xmount(src, dst, NULL, MS_BIND, NULL);
  }
  /* PID 1 of the new pid namespace: this proc shows the stub domain's own process only, and
   * (subset=pid) none of the kernel's files: no /proc/sys, kcore, sysrq-trigger, host stats. */
  mkdir_p(in_root("/proc"));
  xmount("proc", in_root("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid");
  for (int i = 0; i < c->n_binds; i++) bind_ro(c->binds[i], in_root(c->binds[i]));
  /* The root itself read-only too: nothing in it is the stub domain's to change. */
  char *old = in_root("/.oldroot");
  if (mkdir(old, 0700) < 0) die("mkdir %s", old);
  if (syscall(SYS_pivot_root, c->root, old) < 0) die("pivot_root");
  if (chdir("/") < 0) die("chdir /");
  if (umount2("/.oldroot", MNT_DETACH) < 0) die("umount /.oldroot");
  if (rmdir("/.oldroot") < 0) die("rmdir /.oldroot");
  xmount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

static void drop_privileges(const struct config *c) {
  for (int cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("drop capability %d", cap);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) die("clear ambient capabilities");
  if (setgroups(0, NULL) < 0) die("setgroups");
  if (setresgid(c->gid, c->gid, c->gid) < 0) die("setresgid");
  if (setresuid(c->uid, c->uid, c->uid) < 0) die("setresuid");
  /* Leaving uid 0 cleared the permitted and effective sets; the inheritable one too. */
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) < 0) die("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl(NO_NEW_PRIVS)");
}

/* ---- the seccomp program ---- */

#define MAX_INSNS 1024
static struct sock_filter prog[MAX_INSNS];
static unsigned short n_insns;

static void emit(struct sock_filter f) {
  if (n_insns >= MAX_INSNS) {
    errno = E2BIG;
    die("seccomp program");
  }
  prog[n_insns++] = f;
}
#define STMT(code, k) emit((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) emit((struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define LOAD_NR() STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARG_LO(i) STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define LOAD_ARG_HI(i) STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]) + 4)
#define RET(v) STMT(BPF_RET | BPF_K, v)

/* nr -> action; A holds nr before and after. */
static void on_nr(long nr, unsigned int action) {
  JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1);
  RET(action);
}

/* nr allowed when its argument `arg` (all 64 bits) is one of vals[]; otherwise EPERM. */
static void on_nr_arg_in(long nr, int arg, const unsigned long *vals, int n) {
  /* JEQ nr; LD hi; JEQ 0 else EPERM; LD lo; n x (JEQ v -> ALLOW); RET EPERM; LD nr again */
  JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, (unsigned char)(n + 6));
  LOAD_ARG_HI(arg);
  JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, (unsigned char)(n + 1));
  LOAD_ARG_LO(arg);
  for (int i = 0; i < n; i++) JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)vals[i], (unsigned char)(n - i), 0);
  RET(SECCOMP_RET_ERRNO | EPERM);
  RET(SECCOMP_RET_ALLOW);
  LOAD_NR();
}

static const long allowed[] = {
    /* memory */
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk, SYS_msync,
    SYS_membarrier, SYS_pkey_alloc, SYS_pkey_free, SYS_pkey_mprotect,
    /* fds */
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
    SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_close, SYS_close_range, SYS_dup, SYS_dup3,
    SYS_fcntl, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_lseek, SYS_fsync, SYS_fdatasync,
    SYS_fstatfs, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_eventfd2, SYS_pipe2,
    SYS_ppoll, SYS_pselect6,
#ifdef SYS_epoll_pwait2
    SYS_epoll_pwait2,
#endif
#ifdef __x86_64__
    SYS_dup2, SYS_stat, SYS_lstat, SYS_epoll_wait, SYS_epoll_create, SYS_eventfd, SYS_pipe,
    SYS_poll, SYS_select, SYS_open, SYS_readlink, SYS_access, SYS_arch_prctl,
#endif
    /* paths inside the read-only root */
    SYS_openat, SYS_readlinkat, SYS_faccessat, SYS_faccessat2, SYS_getcwd, SYS_getdents64,
    SYS_statfs,
    /* sockets already given */
    SYS_accept4, SYS_accept, SYS_listen, SYS_getsockname, SYS_getpeername, SYS_setsockopt,
    SYS_getsockopt, SYS_shutdown, SYS_sendmsg, SYS_recvmsg,
    /* threads and scheduling */
    SYS_futex, SYS_set_robust_list, SYS_rseq, SYS_sched_yield,
    SYS_sched_getaffinity, SYS_sched_getparam, SYS_sched_getscheduler, SYS_getpriority,
    SYS_set_tid_address,
#ifdef SYS_futex_waitv
    SYS_futex_waitv,
#endif
    /* signals, time, identity */
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_sigaltstack, SYS_tgkill,
    SYS_kill, SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep,
    SYS_nanosleep, SYS_gettimeofday, SYS_getpid, SYS_gettid, SYS_getppid, SYS_getuid,
    SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getgroups, SYS_getresuid, SYS_getresgid,
    SYS_getrandom, SYS_uname, SYS_sysinfo, SYS_prlimit64, SYS_getrlimit, SYS_getrusage,
    SYS_capget, SYS_restart_syscall, SYS_exit, SYS_exit_group, SYS_execve,
};

static const long killed[] = {
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_mount, SYS_umount2,
    SYS_pivot_root, SYS_chroot, SYS_unshare, SYS_setns, SYS_setuid, SYS_setgid, SYS_setreuid,
    SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setgroups, SYS_setfsuid, SYS_setfsgid,
    SYS_capset, SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load,
    SYS_kexec_file_load, SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_keyctl,
    SYS_add_key, SYS_request_key, SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct,
    SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_mknodat, SYS_personality, SYS_syslog,
    SYS_quotactl, SYS_fanotify_init, SYS_move_mount, SYS_open_tree, SYS_fsopen, SYS_fsmount,
    SYS_fsconfig, SYS_mount_setattr, SYS_pidfd_getfd,
#ifdef __x86_64__
    SYS_iopl, SYS_ioperm, SYS_mknod, SYS_fork, SYS_vfork, SYS_uselib,
#endif
};

static void install_seccomp(void) {
  STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_HERE, 1, 0);
  RET(SECCOMP_RET_KILL_PROCESS);
  LOAD_NR();
#ifdef __x86_64__
  /* The x32 ABI's numbers would slip past every rule below. */
  JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
  RET(SECCOMP_RET_KILL_PROCESS);
#endif
  /* clone: threads only (CLONE_THREAD, no namespace flags); a fork is refused. */
  const unsigned namespaces = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                              CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
  JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 5);
  LOAD_ARG_LO(0);
  JUMP(BPF_JMP | BPF_JSET | BPF_K, namespaces, 2, 0);
  JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1);
  RET(SECCOMP_RET_ALLOW);
  RET(SECCOMP_RET_ERRNO | EPERM);
  on_nr(SYS_clone3, SECCOMP_RET_ERRNO | ENOSYS);
  static const unsigned long ioctls[] = {FIONBIO, FIOCLEX, FIONCLEX, FIONREAD, TCGETS, TIOCGWINSZ};
  on_nr_arg_in(SYS_ioctl, 1, ioctls, sizeof ioctls / sizeof ioctls[0]);
  static const unsigned long prctls[] = {PR_SET_NAME, PR_GET_NAME};
  on_nr_arg_in(SYS_prctl, 0, prctls, sizeof prctls / sizeof prctls[0]);
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) on_nr(allowed[i], SECCOMP_RET_ALLOW);
  for (size_t i = 0; i < sizeof killed / sizeof killed[0]; i++) on_nr(killed[i], SECCOMP_RET_KILL_PROCESS);
  RET(SECCOMP_RET_ERRNO | EPERM);
  struct sock_fprog fprog = {.len = n_insns, .filter = prog};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0) die("seccomp");
}

static int child_main(void *arg) {
  struct config *c = arg;
  int fwd[] = FORWARDED_SIGNALS;
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) signal(fwd[i], SIG_DFL);
  sigprocmask(SIG_SETMASK, &c->orig_mask, NULL);
  close(c->sync_wr);
  if (sethostname("stubdom", 7) < 0) die("sethostname");
  build_root(c);
  drop_privileges(c);
  /* Die with the parent; set after the uid change, which clears it. The parent holds the
   * pipe's write end until it exits: a hang-up now means it died before this took effect. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PDEATHSIG)");
  struct pollfd p = {c->sync_fd, POLLIN, 0};
  if (poll(&p, 1, 0) < 0) die("poll");
  if (p.revents & (POLLHUP | POLLERR)) _exit(FAIL_STATUS);
  close(c->sync_fd);
  close_fds_except(c->keep_fds, c->n_keep_fds);
  if (clearenv() != 0) die("clearenv");
  for (int i = 0; i < c->n_envs; i++)
    if (putenv(c->envs[i]) != 0) die("putenv %s", c->envs[i]);
  install_seccomp();
  execv(c->argv[0], c->argv);
  die("execv %s", c->argv[0]);
  return FAIL_STATUS;
}

static void forward_signal(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

static void join_cgroup(const char *dir) {
  char *path = xasprintf("%s/cgroup.procs", dir);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  char pid[24];
  int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (fd < 0 || write(fd, pid, len) != len) die("join cgroup %s", dir);
  close(fd);
}

int main(int argc, char **argv) {
  struct config c = {0};
  c.cgroups = calloc(argc, sizeof *c.cgroups);
  c.binds = calloc(argc, sizeof *c.binds);
  c.envs = calloc(argc, sizeof *c.envs);
  c.keep_fds = calloc(argc, sizeof *c.keep_fds);
  int have_uid = 0, have_gid = 0, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *opt = argv[i];
    if (i + 1 >= argc) usage(opt);
    char *val = argv[++i];
    if (!strcmp(opt, "--uid")) c.uid = parse_num(val, opt), have_uid = 1;
    else if (!strcmp(opt, "--gid")) c.gid = parse_num(val, opt), have_gid = 1;
    else if (!strcmp(opt, "--root")) c.root = val;
    else if (!strcmp(opt, "--cgroup")) c.cgroups[c.n_cgroups++] = val;
    else if (!strcmp(opt, "--bind-ro")) {
      if (val[0] != '/' || strstr(val, "/..")) usage("--bind-ro wants an absolute path");
      c.binds[c.n_binds++] = val;
    } else if (!strcmp(opt, "--keep-fd")) {
      unsigned long fd = parse_num(val, opt);
      if (fd < 3 || fd > INT_MAX) usage("--keep-fd wants an fd > 2");
      c.keep_fds[c.n_keep_fds++] = (int)fd;
    } else if (!strcmp(opt, "--env")) {
      if (!strchr(val, '=') || val[0] == '=') usage("--env wants K=V");
      c.envs[c.n_envs++] = val;
    } else usage(opt);
  }
  if (i + 1 >= argc) usage("missing -- PROGRAM");
  c.argv = argv + i + 1;
  /* 0 would leave it root; the overflow ids are everybody's "nobody". */
  if (!have_uid || !have_gid || c.uid == 0 || c.gid == 0 || c.uid > 0xfffffffdUL || c.gid > 0xfffffffdUL)
    usage("--uid and --gid want unprivileged ids");
  if (!c.root || c.root[0] != '/') usage("--root wants an absolute path");
  root_dir = c.root;

  for (int k = 0; k < c.n_cgroups; k++) join_cgroup(c.cgroups[k]);

  int sync[2];
  if (pipe2(sync, O_CLOEXEC) < 0) die("pipe");
  c.sync_fd = sync[0];
  c.sync_wr = sync[1];
  int fwd[] = FORWARDED_SIGNALS;
  sigset_t block;
  sigemptyset(&block);
  struct sigaction sa = {.sa_handler = forward_signal};
  for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++) {
    sigaddset(&block, fwd[k]);
    sigaction(fwd[k], &sa, NULL);
  }
  sigprocmask(SIG_BLOCK, &block, &c.orig_mask);
  size_t stack_size = 1 << 20;
  char *stack = malloc(stack_size);
  if (!stack) die("malloc");
  pid_t pid = clone(child_main, stack + stack_size,
                    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                        CLONE_NEWCGROUP | SIGCHLD,
                    &c);
  if (pid < 0) die("clone");
  child_pid = pid;
  sigprocmask(SIG_SETMASK, &c.orig_mask, NULL);
  /* The parent keeps no copy of the stub domain's fds: when it dies, its channel closes. */
  close(sync[0]);
  if (sync[1] > 3) syscall(SYS_close_range, 3, sync[1] - 1, 0);
  syscall(SYS_close_range, sync[1] + 1, ~0U, 0);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
