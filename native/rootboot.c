/* xenode-rootboot: the last step of a guest kernel's boot when its command line names a root
 * device (root=/dev/xvda1): what Linux's init/do_mounts.c and kernel_init() do once the root
 * filesystem is mounted. The guest kernel (a Node program, PID 1 of the domain) cannot create
 * a pid namespace itself, so it runs this helper, which gives the image's init a machine of its
 * own to believe in:
 *
 *   xenode-rootboot boot --root DIR [--ro] [--bind SRC:DST]... [--run-size BYTES]
 *                        [--env K=V]... -- INIT ARGS...
 *       fd 3: the console (a pty slave whose master the kernel keeps; it becomes /dev/console
 *       and /dev/hvc0). fd 1: the kernel reads "init-pid N" from it.
 *
 *     1. unshare a pid, mount and cgroup namespace; the forked child is PID 1 of the new pid
 *        namespace: the guest's userland cannot see or signal the kernel, fuse2fs or blkfront.
 *     2. The child mounts, under DIR (the image's filesystem, already mounted by the kernel):
 *        /dev (a slave of the kernel's /dev, so disks hot-plugged later appear too) with its
 *        own devpts, /dev/shm, /dev/console; a fresh /proc; /sys read-only with the guest's
 *        network devices and a delegated cgroup tree (systemd's name=systemd hierarchy plus
 *        cgroup2, as systemd-nspawn gives a container); a tmpfs /run; the --bind files (the
 *        kernel's /proc views over /proc/meminfo ...).
 *     3. pivot_root into DIR and detach the old root: nothing of the kernel's view (the host's
 *        read-only /usr, /boot) stays reachable. Symlinks in the image, absolute or full of
 *        "..", resolve inside it from now on.
 *     4. A new session with no controlling terminal (agetty and systemd acquire the console
 *        themselves), stdio on /dev/console, a clean environment (HOME=/ TERM=linux, as Linux
 *        gives init, plus container=xenode for systemd), and exec INIT; if it cannot be run,
 *        Linux's fallbacks /sbin/init, /etc/init, /bin/init, /bin/sh.
 *     The parent stays outside, waits, and exits as the child did: 128+N when killed by signal
 *     N. A pid namespace's init that calls reboot(2) is killed by SIGINT for power-off/halt and
 *     SIGHUP for restart: that is how the kernel learns what the guest asked for.
 *
 *   xenode-rootboot enter --pid PID -- PROGRAM ARGS...
 *       runs PROGRAM inside the guest's userland (PID's user, pid, mount and cgroup namespaces,
 *       root and cwd /, stdio on its /dev/console): how `xl shutdown` runs the image's
 *       /sbin/poweroff, as Linux's Xen PV kernel runs it (orderly_poweroff). Exits as PROGRAM did.
 *
 *   xenode-rootboot userland -- PROGRAM ARGS...
 *       execs PROGRAM as the init of a guest without its own root (the kernel's minimal
 *       userland): in the userland's user namespace and a mount namespace of its own, with its
 *       stdio and environment as given.
 *
 *   xenode-rootboot filesystem -- PROGRAM ARGS...
 *       execs a filesystem server (fuse2fs) in the userland's user namespace, in the kernel's
 *       other namespaces: the filesystem it mounts is the guest's.
 *
 * Every guest program runs as the userland (userland_limits, enter_userland_ns and
 * confine_userland below): in the userland's memory cgroup ("user", where the kernel is the OOM killer: guest/kernel/oom-killer.ts), with
 * oom_score_adj 0 (the kernel's is lower: native/jailer.c), in the user namespace the jailer
 * made for it (fd 68, nested in the kernel's: guest root has no capability over the kernel's
 * process), under the seccomp filter of native/guest-seccomp.h.
 *
 * Any failure prints "xenode-rootboot: <step>: <strerror>" on stderr and exits 126 (127: no
 * init could be run, as Linux's "No working init found"). It runs
 * as root of the domain's user namespace, never as host root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGRAM_NAME "xenode-rootboot"
#define FAIL_STATUS 126
#include "sandbox-util.h"
#include "guest-seccomp.h"

#define CONSOLE_FD 3
#define USERLAND_NS_FD 68 /* native/jailer.c passes the userland's user namespace here */
#define USERLAND_MEMCG "/run/xenode/memcg/user/cgroup.procs"
#define USERLAND_MEMCG_LIMIT "/run/xenode/memcg/user/memory.limit_in_bytes"
#define MAX_ARGS 256

static void usage(const char *why) {
  fprintf(stderr,
          "xenode-rootboot: arguments: %s\n"
          "usage: xenode-rootboot boot --root DIR [--ro] [--bind SRC:DST]... [--run-size BYTES]\n"
          "                            [--env K=V]... -- INIT ARGS...\n"
          "       xenode-rootboot enter --pid PID -- PROGRAM ARGS...\n"
          "       xenode-rootboot userland -- PROGRAM ARGS...\n"
          "       xenode-rootboot filesystem -- PROGRAM ARGS...\n",
          why);
  exit(127);
}

static void xmount(const char *src, const char *dst, const char *type, unsigned long flags,
                   const char *data) {
  if (mount(src, dst, type, flags, data) < 0) die("mount %s on %s", type ? type : src, dst);
}

/* A directory in the image that may not exist yet; a read-only image that lacks it is the
 * image's problem, reported as Linux reports a missing mount point. */
static int ensure_dir(const char *path, mode_t mode) {
  struct stat st;
  if (lstat(path, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : -1;
  if (mkdir(path, mode) == 0) return 0;
  return -1;
}

static int ensure_file(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

struct boot_config {
  const char *root;
  int ro;
  char **binds; /* "SRC:DST", DST inside the new root */
  int n_binds;
  char **envs;
  int n_envs;
  unsigned long long run_size;
  unsigned long long shm_size;
  char **argv;
};

static void warn_missing(const char *what) {
  fprintf(stderr, "xenode-rootboot: %s: not a directory in the root filesystem; not mounted\n", what);
}

/* /sys/fs/cgroup as systemd-nspawn builds it for a container on a cgroup v1 host: a tmpfs
 * with the name=systemd hierarchy (where systemd keeps its units) and cgroup2 at "unified".
 * Inside our cgroup namespace both show the domain's own delegated directory as their root.
 * Where the host has no such hierarchy, leave it out: busybox and sysvinit do not need it. */
static void mount_cgroups(const char *sys) {
  char *cg = xasprintf("%s/fs/cgroup", sys);
  if (mount("tmpfs", cg, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0) {
    fprintf(stderr, "xenode-rootboot: no cgroup tree for the guest: %s\n", strerror(errno));
    return;
  }
  char *sd = xasprintf("%s/systemd", cg), *un = xasprintf("%s/unified", cg);
  if (mkdir(sd, 0755) == 0 &&
      mount("cgroup", sd, "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, "none,name=systemd") < 0) {
    rmdir(sd);
  }
  if (mkdir(un, 0755) == 0 && mount("cgroup2", un, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
    rmdir(un);
  }
}

/* Put ourselves in a child directory of the domain's delegated name=systemd (and cgroup2)
 * directory before unsharing the cgroup namespace, so the guest's root cgroup holds the
 * guest's processes only, not its kernel. Best effort: a host without those hierarchies
 * still boots busybox and sysvinit images. */
static void enter_guest_cgroup(void) {
  char tmp[] = "/tmp/.xenode-cg-XXXXXX";
  /* The kernel's root is a tmpfs we own; /tmp may be absent there, so fall back to /run. */
  char *dir = mkdtemp(tmp);
  char tmp2[] = "/run/.xenode-cg-XXXXXX";
  if (!dir) dir = mkdtemp(tmp2);
  if (!dir) return;
  struct {
    const char *type, *data;
  } h[] = {{"cgroup", "none,name=systemd"}, {"cgroup2", NULL}};
  for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
    if (mount(h[i].type, dir, h[i].type, MS_NOSUID | MS_NODEV | MS_NOEXEC, h[i].data) < 0) continue;
    char *sub = xasprintf("%s/guest", dir), *procs = xasprintf("%s/guest/cgroup.procs", dir);
    if (mkdir(sub, 0755) == 0 || errno == EEXIST) {
      int fd = open(procs, O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (write(fd, pid, n) != n)
          fprintf(stderr, "xenode-rootboot: join %s cgroup: %s\n", h[i].type, strerror(errno));
        close(fd);
      }
    }
    umount2(dir, MNT_DETACH);
    free(sub);
    free(procs);
  }
  rmdir(dir);
}

/* The userland's resources, set while we are still the kernel's: oom_score_adj back to 0 (the
 * kernel's children inherit its lower score; raising needs no privilege, lowering it again
 * would need host CAP_SYS_RESOURCE) and the userland's memory cgroup. A host without a
 * memory hierarchy leaves the guest in the domain's cgroup, where the host kernel is the OOM
 * killer. */
static void userland_limits(void) {
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "0\n", 2) != 2) die("oom_score_adj");
  close(fd);
  fd = open(USERLAND_MEMCG, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) die("join the userland's memory cgroup");
    return;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (write(fd, pid, n) != n) die("join the userland's memory cgroup");
  close(fd);
}

/* Enter the userland's user namespace: from now on we have capabilities over the guest's
 * network, uts, ipc and mount namespaces and over what we create, none over the kernel's
 * user and pid namespaces, hence none over its process. */
static void enter_userland_ns(void) {
  if (setns(USERLAND_NS_FD, CLONE_NEWUSER) < 0) die("enter the userland's user namespace (fd %d)", USERLAND_NS_FD);
  close(USERLAND_NS_FD);
}

/* Last, just before exec: the seccomp filter (native/guest-seccomp.h). */
static void confine_userland(void) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl(NO_NEW_PRIVS)");
  if (install_guest_seccomp() < 0) die("seccomp");
}

static void setup_dev(const struct boot_config *c) {
  char *dev = xasprintf("%s/dev", c->root);
  if (ensure_dir(dev, 0755) < 0) {
    warn_missing("/dev");
    return;
  }
  /* The kernel's /dev holds null, zero, full, random, urandom, tty, fuse and every disk
   * blkfront serves. It is a shared mount: this recursive bind joins its peer group and
   * becoming a slave means disks attached later show up here, while nothing the guest
   * mounts under /dev leaks back to the kernel. */
  xmount("/dev", dev, NULL, MS_BIND | MS_REC, NULL);
  xmount(NULL, dev, NULL, MS_SLAVE | MS_REC, NULL);

  char *pts = xasprintf("%s/pts", dev);
  if (ensure_dir(pts, 0755) == 0)
    xmount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  char *shm = xasprintf("%s/shm", dev);
  if (ensure_dir(shm, 01777) == 0) {
    char *opts = xasprintf("mode=1777,size=%llu", c->shm_size);
    xmount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV, opts);
  }
  /* The console: the pty the kernel carries to hvc0. Bound, not made our controlling tty:
   * a getty or systemd acquires it itself, and a pty that is someone's ctty already hangs
   * agetty's acquire_terminal. /dev/hvc0 is the same line, as on a Linux PV guest. */
  /* Bound by its path in our copy of the kernel's devpts: an fd's own mount belongs to the
   * kernel's namespace, and bind mounts take their source from ours. */
  char pty[PATH_MAX];
  ssize_t n = readlink("/proc/self/fd/3", pty, sizeof pty - 1);
  if (n < 0) die("console on fd 3");
  pty[n] = 0;
  const char *names[] = {"console", "hvc0"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char *p = xasprintf("%s/%s", dev, names[i]);
    if (ensure_file(p) < 0) die("create %s", p);
    xmount(pty, p, NULL, MS_BIND, NULL);
  }
}

static void setup_proc_sys_run(const struct boot_config *c) {
  char *proc = xasprintf("%s/proc", c->root);
  if (ensure_dir(proc, 0555) == 0)
    xmount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  else
    warn_missing("/proc");

  char *sys = xasprintf("%s/sys", c->root);
  if (ensure_dir(sys, 0555) == 0) {
    /* Read-only: how systemd, udevd and networkd know there are no devices to manage. Our
     * own network namespace: /sys/class/net shows lo and the guest's eth devices only. The
     * kernel's sysfs (the same superblock) is read-only already, and a user namespace may
     * mount it again only as restrictively. */
    xmount("sysfs", sys, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
    mount_cgroups(sys);
  } else {
    warn_missing("/sys");
  }

  char *run = xasprintf("%s/run", c->root);
  if (ensure_dir(run, 0755) == 0) {
    char *opts = xasprintf("mode=0755,size=%llu", c->run_size);
    xmount("tmpfs", run, "tmpfs", MS_NOSUID | MS_NODEV, opts);
  }

  for (int i = 0; i < c->n_binds; i++) {
    char *src = strdup(c->binds[i]);
    char *dst = strchr(src, ':');
    *dst++ = 0;
    char *target = xasprintf("%s%s", c->root, dst);
    /* Over a proc file (always there) or a new empty file: never follow an image symlink. */
    struct stat st;
    if (lstat(target, &st) < 0 && ensure_file(target) < 0) die("create %s", target);
    xmount(src, target, NULL, MS_BIND, NULL);
    free(src);
  }
}

static void enter_new_root(const struct boot_config *c) {
  if (chdir(c->root) < 0) die("chdir %s", c->root);
  /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves the
   * guest nothing of the kernel's tree, which a chroot would not. */
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) < 0) die("detach the kernel's root");
  if (chdir("/") < 0) die("chdir /");
}

static void console_stdio(void) {
  int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    /* Linux: "Warning: unable to open an initial console." and init runs without one. */
    fprintf(stderr, "Warning: unable to open an initial console.\n");
    fd = CONSOLE_FD;
  }
  for (int i = 0; i < 3; i++)
    if (dup2(fd, i) < 0) die("dup2 console");
  if (fd > 2) close(fd);
}

/* Linux's run_init_process: init= first, then the usual places. */
static void exec_init(const struct boot_config *c) {
  char *envp[MAX_ARGS + 4];
  int n = 0;
  envp[n++] = "HOME=/";
  envp[n++] = "TERM=linux";
  envp[n++] = "container=xenode";
  for (int i = 0; i < c->n_envs && n < MAX_ARGS; i++) envp[n++] = c->envs[i];
  envp[n] = NULL;
  execve(c->argv[0], c->argv, envp);
  int err = errno;
  /* The kernel's messages, on the console where the user looks. */
  fprintf(stderr, "Failed to execute %s (error -%d).  Attempting defaults...\n", c->argv[0], err);
  const char *defaults[] = {"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"};
  for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
    if (!strcmp(defaults[i], c->argv[0])) continue;
    char *argv[] = {(char *)defaults[i], NULL};
    execve(defaults[i], argv, envp);
  }
  fprintf(stderr, "Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.\n");
  _exit(127);
}

static int boot_child(void *arg) {
  struct boot_config *c = arg;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PDEATHSIG)");
  /* Nothing we mount may propagate back into the kernel's namespace. */
  xmount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL);
  setup_dev(c);
  setup_proc_sys_run(c);
  if (c->ro) {
    /* `ro` on the command line: the root is mounted read-only, as Linux mounts it before
     * init; `mount -o remount,rw /` in the guest lifts it. */
    if (mount(NULL, c->root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) die("mount root read-only");
  }
  enter_new_root(c);
  if (setsid() < 0) die("setsid");
  console_stdio();
  if (CONSOLE_FD > 2) close(CONSOLE_FD);
  syscall(SYS_close_range, 3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  confine_userland();
  exec_init(c);
  return 127;
}

/* /dev/shm as Linux sizes a tmpfs: half of RAM, the guest's (its userland's memory cgroup
 * limit is the domain's RAM). Without that cgroup, /run's size. */
static unsigned long long shm_size(unsigned long long fallback) {
  FILE *f = fopen(USERLAND_MEMCG_LIMIT, "re");
  unsigned long long ram = 0;
  if (f) {
    if (fscanf(f, "%llu", &ram) != 1) ram = 0;
    fclose(f);
  }
  return ram > 0 && ram < (1ULL << 50) ? ram / 2 : fallback;
}

static int wait_status(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

static int cmd_boot(int argc, char **argv) {
  struct boot_config c = {.run_size = 32ULL << 20};
  c.binds = calloc(argc, sizeof *c.binds);
  c.envs = calloc(argc, sizeof *c.envs);
  int i = 0;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *opt = argv[i];
    if (!strcmp(opt, "--ro")) {
      c.ro = 1;
      continue;
    }
    if (i + 1 >= argc) usage(opt);
    char *val = argv[++i];
    if (!strcmp(opt, "--root")) c.root = val;
    else if (!strcmp(opt, "--bind")) {
      char *colon = strchr(val, ':');
      if (!colon || colon == val || colon[1] != '/' || strstr(colon, "/..")) usage("--bind wants SRC:/DST");
      c.binds[c.n_binds++] = val;
    } else if (!strcmp(opt, "--env")) {
      if (!strchr(val, '=') || val[0] == '=') usage("--env wants K=V");
      c.envs[c.n_envs++] = val;
    } else if (!strcmp(opt, "--run-size")) {
      char *end;
      c.run_size = strtoull(val, &end, 10);
      if (*end || c.run_size < 65536) usage("--run-size wants bytes >= 65536");
    } else usage(opt);
  }
  if (i + 1 >= argc) usage("missing -- INIT");
  if (argc - i - 1 > MAX_ARGS) usage("too many init arguments");
  c.argv = argv + i + 1;
  if (!c.root || c.root[0] != '/') usage("--root wants an absolute path");
  if (fcntl(CONSOLE_FD, F_GETFD) < 0) die("console on fd 3");
  c.shm_size = shm_size(c.run_size);

  enter_guest_cgroup();
  userland_limits();
  enter_userland_ns();
  if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWCGROUP) < 0) die("unshare");
  /* Signals meant for init reach it through its pid; we only wait. */
  size_t stack_size = 1 << 20;
  char *stack = malloc(stack_size);
  if (!stack) die("malloc");
  pid_t pid = clone(boot_child, stack + stack_size, SIGCHLD, &c);
  if (pid < 0) die("clone");
  close(CONSOLE_FD);
  printf("init-pid %d\n", (int)pid);
  fflush(stdout);
  return wait_status(pid);
}

static int cmd_enter(int argc, char **argv) {
  long target = -1;
  int i = 0;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (i + 1 >= argc) usage(argv[i]);
    if (!strcmp(argv[i], "--pid")) {
      char *end;
      target = strtol(argv[++i], &end, 10);
      if (*end || target <= 1) usage("--pid wants the guest init's pid");
    } else usage(argv[i]);
  }
  if (target < 0 || i + 1 >= argc) usage("enter --pid PID -- PROGRAM");
  char **prog = argv + i + 1;
  int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)target, 0);
  if (pidfd < 0) die("pidfd_open %ld", target);
  userland_limits();
  if (setns(pidfd, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWCGROUP) < 0) die("setns into the guest");
  close(USERLAND_NS_FD);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    /* setns into a mount namespace leaves the cwd and root of the old one: take the new. */
    if (chdir("/") < 0) die("chdir /");
    if (setsid() < 0) die("setsid");
    console_stdio();
    syscall(SYS_close_range, 3, ~0U, 0);
    char *envp[] = {"HOME=/", "TERM=linux", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    confine_userland();
    execve(prog[0], prog, envp);
    die("execute %s", prog[0]);
  }
  return wait_status(pid);
}

/* A filesystem server the kernel runs for the guest (fuse2fs for its root): as the userland,
 * so that the filesystem's superblock belongs to the guest, whose root can then remount it
 * (`mount -o remount,rw /`), as on a machine. It stays outside the guest's pid namespace. */
static int cmd_filesystem(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[0], "--") != 0) usage("filesystem -- PROGRAM");
  enter_userland_ns();
  confine_userland();
  execv(argv[1], argv + 1);
  die("execute %s", argv[1]);
  return 126;
}

static int cmd_userland(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[0], "--") != 0) usage("userland -- PROGRAM");
  userland_limits();
  enter_userland_ns();
  /* Our own mount namespace: the guest's mounts stay out of the kernel's view. The kernel's
   * /dev is shared; as its slave, this copy still sees disks attached later, and nothing the
   * guest mounts there reaches the kernel. */
  if (unshare(CLONE_NEWNS) < 0) die("unshare the mount namespace");
  xmount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL);
  syscall(SYS_close_range, 3, ~0U, 0);
  confine_userland();
  execv(argv[1], argv + 1);
  die("execute %s", argv[1]);
  return 126;
}

int main(int argc, char **argv) {
  if (argc < 2) usage("no command");
  if (!strcmp(argv[1], "userland")) return cmd_userland(argc - 2, argv + 2);
  if (!strcmp(argv[1], "filesystem")) return cmd_filesystem(argc - 2, argv + 2);
  if (!strcmp(argv[1], "boot")) return cmd_boot(argc - 2, argv + 2);
  if (!strcmp(argv[1], "enter")) return cmd_enter(argc - 2, argv + 2);
  usage(argv[1]);
  return 127;
}
