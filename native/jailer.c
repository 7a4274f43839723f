/* xenode-jailer: builds one domain's sandbox, in the manner of Firecracker's jailer, then
 * execs the domain's "kernel" as PID 1 inside it.
 *
 *   xenode-jailer --uid-base N [--uid-count 65536] --hostname NAME --root DIR
 *                 --boot-dir DIR [--bind-ro SRC:DST]... [--keep-fd N]... [--env K=V]...
 *                 [--tun-fds N] [--memory BYTES] -- PROGRAM ARGS...
 *
 * 1. Read one byte from fd 0: the hypervisor's "go", sent once it has put this process in
 *    the domain's cgroups (so everything cloned below is accounted there). EOF first: exit 1.
 * 2. clone() into new user, pid and cgroup namespaces: the kernel's (the cgroup
 *    namespace roots the domain at its own cgroups, which is what lets a guest's own init
 *    mount its delegated name=systemd hierarchy: hypervisor/delegated-cgroups.ts), and a
 *    time namespace whose boot clock starts at zero, entered at exec.
 *    Then a second user namespace nested in the first: the userland's. It maps the same ids
 *    (uid 0 inside is the kernel's uid 0), so files look the same from both, but its root has
 *    no capability over the kernel's namespace, hence none over the kernel's process (no
 *    ptrace, no pidfd_getfd, no /proc/<kernel>/mem: the kernel also makes itself
 *    non-dumpable, so sharing a uid gives no way in either). The network, uts, ipc and mount
 *    namespaces are made in (owned by) the userland's user namespace: guest root configures
 *    its network, hostname and mounts as on a machine, and the kernel, which owns that user
 *    namespace, can too. The kernel gets it as fd USERLAND_NS_FD (68), which
 *    native/rootboot.c joins before it runs init.
 * 3. The parent stays host root: it writes the child's uid/gid maps (uid 0 inside = host
 *    uid N), makes itself and the kernel the last choices of the OOM killer (below), opens the
 *    TAP handles inside the guest's network namespace for the child (5.), forwards
 *    SIGTERM/SIGINT/SIGHUP/SIGUSR2 to it and exits with its status (128+signal if killed).
 * 4. The child becomes root of its namespaces, builds a fresh root on a tmpfs at DIR (host
 *    /usr read-only, a generated /etc, a minimal /dev, its own /proc, ...), pivots into
 *    it, sets no_new_privs, closes every fd but 0-2 and the --keep-fd ones, and execs
 *    PROGRAM with a clean environment.
 * 5. With --tun-fds N the parent opens /dev/net/tun N times inside the guest's network
 *    namespace (a TAP is created in the namespace of whoever OPENED the fd; the device is mode
 *    0600 and guest root is an unprivileged host uid) and passes them to the child over a
 *    socket. PROGRAM gets them as fds 4 .. 3+N (after the hypercall socket at 3), ready for
 *    TUNSETIFF: the guest kernel's netfront makes its eth0 TAPs with them, and holds
 *    CAP_NET_ADMIN over the guest's namespace only.
 * 6. Memory as a machine's (--memory BYTES, the domain's RAM): /tmp, /var/tmp and /dev/shm
 *    are tmpfs of half of it each (Linux's tmpfs default: half of RAM), so a full /tmp is
 *    ENOSPC. The domain's memory cgroup hierarchy is mounted at /run/xenode/memcg: the
 *    kernel's OOM killer watches its "user" child, where the userland runs
 *    (hypervisor/cgroups.ts, guest/kernel/oom-killer.ts).
 *
 * Any failure prints "xenode-jailer: <step>: <strerror>" and exits 127. Must run as root.
 *
 * The mounts are made by the child after it became uid N: DIR, --boot-dir and each
 * --bind-ro SRC must be reachable by that uid (every parent directory searchable by
 * others, as mkdir -p with mode 0755 leaves them), or the step fails with EACCES.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGRAM_NAME "xenode-jailer"
#define FAIL_STATUS 127
#include "sandbox-util.h"
#include "sandbox-mounts.h"
#include "sandbox-fds.h"

#define FORWARDED_SIGNALS {SIGTERM, SIGINT, SIGHUP, SIGUSR2}
#define MAX_TUN_FDS 64
#define TUN_FD_BASE 4   /* they follow the hypercall socket (fd 3) */
#define USERLAND_NS_FD 68 /* after the largest TAP range (4 .. 67); native/rootboot.c knows it */
#define MEMCG_DIR "/run/xenode/memcg"
#define GUEST_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct config {
  unsigned long uid_base, uid_count;
  const char *hostname, *root, *boot_dir;
  char **bind_ro;  /* "SRC:DST" */
  int n_bind_ro;
  int *keep_fds;
  int n_keep_fds;
  char **envs;     /* "K=V" */
  int n_envs;
  int n_tun_fds;   /* --tun-fds: /dev/net/tun handles opened in the guest's netns */
  int tun_fds[MAX_TUN_FDS];
  unsigned long long memory;  /* --memory: the domain's RAM in bytes (0: not given) */
  int ctl_fd;      /* child <-> parent socket: the netns out, the TAP handles back */
  int ctl_parent;  /* the parent's end, which the child must not hold */
  char **argv;     /* PROGRAM ARGS... */
  int sync_fd;     /* child: read end of the parent->child pipe */
  int sync_wr;     /* its write end, which the child must not hold */
  sigset_t orig_mask;
};

static volatile pid_t child_pid;

static void usage(const char *why) {
  fprintf(stderr,
          "xenode-jailer: arguments: %s\n"
          "usage: xenode-jailer --uid-base N [--uid-count 65536] --hostname NAME --root DIR\n"
          "         --boot-dir DIR [--bind-ro SRC:DST]... [--keep-fd N]... [--env K=V]...\n"
          "         [--tun-fds N] [--memory BYTES] -- PROGRAM ARGS...\n",
          why);
  exit(127);
}

static unsigned long parse_num(const char *s, const char *opt) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *s < '0' || *s > '9' || *end) usage(opt);
  return v;
}

/* Path inside the new root (before pivot_root it lives under --root). */
static const char *root_dir;
static char *in_root(const char *path) { return xasprintf("%s%s", root_dir, path); }

static void xmkdir(const char *path, mode_t mode) {
  if (mkdir(path, mode) < 0 && errno != EEXIST) die("mkdir %s", path);
  if (chmod(path, mode) < 0) die("chmod %s", path);  /* exact mode, whatever the umask */
}

static void write_file(const char *path, mode_t mode, const char *content) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) die("create %s", path);
  size_t len = strlen(content);
  if (write(fd, content, len) != (ssize_t)len) die("write %s", path);
  if (fchmod(fd, mode) < 0) die("chmod %s", path);
  close(fd);
}

/* /dev/NAME: an empty file with the host's device node bound on it. Device nodes cannot be
 * created in a user namespace, and a tmpfs mounted there is nodev anyway; a bind mount of
 * the host node is a separate mount and works. */
static void bind_dev(const char *name) {
  char *src = xasprintf("/dev/%s", name), *dst = in_root(src);
  int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) die("create %s", dst);
  close(fd);
  xmount(src, dst, NULL, MS_BIND, NULL);
}

static void xsymlink(const char *target, const char *link) {
  if (symlink(target, link) < 0) die("symlink %s", link);
}

static void build_etc(const struct config *c) {
  xmkdir(in_root("/etc"), 0755);
  write_file(in_root("/etc/passwd"), 0644,
             "root:x:0:0:root:/root:/bin/sh\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
  write_file(in_root("/etc/group"), 0644, "root:x:0:\nnogroup:x:65534:\n");
  write_file(in_root("/etc/hostname"), 0644, xasprintf("%s\n", c->hostname));
  write_file(in_root("/etc/hosts"), 0644,
             xasprintf("127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                       c->hostname));
  write_file(in_root("/etc/resolv.conf"), 0644, "");
  write_file(in_root("/etc/nsswitch.conf"), 0644,
             "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n"
             "protocols: files\nservices: files\n");
  write_file(in_root("/etc/profile"), 0644,
             "export PATH=" GUEST_PATH "\n"
             /* bash expands \u@\h; dash (/bin/sh) does not, but it expands $PWD. */
             "if [ -n \"$BASH_VERSION\" ]; then PS1='\\u@\\h:\\w\\$ '; "
             "else PS1=\"$(hostname):\\$PWD# \"; fi\n");
  xsymlink("../proc/self/mounts", in_root("/etc/mtab"));
  /* Not secrets, and needed: many /usr/bin commands are symlinks through alternatives,
   * and ld.so.cache lets the dynamic linker find libraries outside the default path. The
   * host /etc itself (shadow, keys...) is never reachable. */
  struct stat st;
  if (stat("/etc/alternatives", &st) == 0) bind_ro("/etc/alternatives", in_root("/etc/alternatives"));
  if (stat("/etc/ld.so.cache", &st) == 0) bind_ro("/etc/ld.so.cache", in_root("/etc/ld.so.cache"));
}

/* tmpfs options for a scratch filesystem of the guest: half of its RAM, as Linux sizes a tmpfs
 * by default (half of the machine's RAM), so filling it is ENOSPC, not the domain's OOM. */
static const char *scratch_tmpfs_opts(const struct config *c, const char *mode) {
  if (!c->memory) return xasprintf("mode=%s", mode);
  return xasprintf("mode=%s,size=%llu", mode, c->memory / 2);
}

static void build_dev(const struct config *c) {
  const char *dev = in_root("/dev");
  xmkdir(dev, 0755);
  xmount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m");
  const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) bind_dev(nodes[i]);
  struct stat st;
  if (stat("/dev/net/tun", &st) == 0) {
    xmkdir(in_root("/dev/net"), 0755);
    bind_dev("net/tun");
  }
  /* FUSE: blkfront serves the guest's disks through it, and the guest's own programs
   * (fuse2fs) mount filesystems with it. A FUSE mount is allowed in a user namespace. */
  if (stat("/dev/fuse", &st) == 0) bind_dev("fuse");
  /* A private devpts instance: the guest's ptys are invisible to the host's and back. */
  xmkdir(in_root("/dev/pts"), 0755);
  xmount("devpts", in_root("/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC,
         "newinstance,ptmxmode=0666,mode=0620");
  xsymlink("pts/ptmx", in_root("/dev/ptmx"));
  xmkdir(in_root("/dev/shm"), 01777);
  xmount("tmpfs", in_root("/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, scratch_tmpfs_opts(c, "1777"));
  xsymlink("/proc/self/fd", in_root("/dev/fd"));
  xsymlink("/proc/self/fd/0", in_root("/dev/stdin"));
  xsymlink("/proc/self/fd/1", in_root("/dev/stdout"));
  xsymlink("/proc/self/fd/2", in_root("/dev/stderr"));
  /* Shared: a guest booted from its own root sees this /dev through a slave bind
   * (native/rootboot.c), so disks the kernel mounts here later appear there too. */
  xmount(NULL, dev, NULL, MS_SHARED, NULL);
}

/* The memory cgroup hierarchy, as our cgroup namespace shows it (the domain's directory is
 * its root): the kernel watches the "user" child's OOM state there, and rootboot moves the
 * userland into it. Files stay host-owned but for user/cgroup.procs (hypervisor/cgroups.ts).
 * A host without a memory hierarchy boots without it. */
static void mount_memcg(void) {
  mkdir_p(in_root(MEMCG_DIR));
  if (mount("cgroup", in_root(MEMCG_DIR), "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, "memory") < 0)
    fprintf(stderr, "xenode-jailer: no memory cgroup for the guest (%s): its OOM killer is the host's\n",
            strerror(errno));
}

/* poweroff/halt/reboot for the guest's userland: they ask its kernel (PID 1) to stop. */
static void build_power_scripts(void) {
  const char *dir = in_root("/usr/local/sbin");
  xmount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k");
  write_file(in_root("/usr/local/sbin/poweroff"), 0755, "#!/bin/sh\nexec kill -USR2 1\n");
  write_file(in_root("/usr/local/sbin/halt"), 0755, "#!/bin/sh\nexec kill -USR2 1\n");
  write_file(in_root("/usr/local/sbin/reboot"), 0755, "#!/bin/sh\nexec kill -TERM 1\n");
  make_ro(dir);
}

static void build_root(const struct config *c) {
  const char *root = c->root;
  /* Our mounts must not propagate back to the host's mount namespace. */
  xmount("", "/", NULL, MS_REC | MS_PRIVATE, NULL);
  xmount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m");

  bind_ro("/usr", in_root("/usr"));
  /* Merged /usr: bin, lib... are symlinks into usr/ on the host; copy those links, and
   * bind (read-only) any that is a real directory. */
  const char *top[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
  for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
    char *host = xasprintf("/%s", top[i]);
    struct stat st;
    if (lstat(host, &st) < 0) continue;  /* absent on this host: fine */
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlink(host, target, sizeof target - 1);
      if (n < 0) die("readlink %s", host);
      target[n] = 0;
      xsymlink(target, in_root(host));
    } else if (S_ISDIR(st.st_mode)) {
      bind_ro(host, in_root(host));
    }
  }

  build_etc(c);
  xmkdir(in_root("/boot"), 0755);
  bind_ro(c->boot_dir, in_root("/boot"));
  build_dev(c);

  /* We are PID 1 of the new pid namespace: this proc shows the domain's processes only. */
  xmkdir(in_root("/proc"), 0555);
  xmount("proc", in_root("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  /* Read-only sysfs of our own network namespace. A user namespace may mount sysfs only
   * where one is already fully visible, so this one is what lets a guest booted from its own
   * root (native/rootboot.c) mount /sys for its init. */
  xmkdir(in_root("/sys"), 0555);
  xmount("sysfs", in_root("/sys"), "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);

  xmkdir(in_root("/tmp"), 01777);
  xmount("tmpfs", in_root("/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, scratch_tmpfs_opts(c, "1777"));
  xmkdir(in_root("/var"), 0755);
  xmkdir(in_root("/var/tmp"), 01777);
  xmount("tmpfs", in_root("/var/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, scratch_tmpfs_opts(c, "1777"));
  xmkdir(in_root("/root"), 0700);
  xmkdir(in_root("/home"), 0755);
  xmkdir(in_root("/run"), 0755);
  mount_memcg();

  build_power_scripts();

  for (int i = 0; i < c->n_bind_ro; i++) {
    char *src = strdup(c->bind_ro[i]);
    char *dst = strchr(src, ':');
    *dst++ = 0;  /* validated in main */
    bind_ro(src, in_root(dst));
    free(src);
  }
}

/* SCM_RIGHTS over the control socket between the child and the parent. */
static void send_fds(int sock, const int *fds, int n) {
  char byte = 'f';
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_TUN_FDS)];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
  ssize_t r;
  do r = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r != 1) die("send fds");
}

/* Exactly n fds, or die; 0 when the peer is gone. */
static int recv_fds(int sock, int *fds, int n) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_TUN_FDS)];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t r;
  do r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  if (r < 0) die("receive fds");
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int) * n)) {
    errno = EPROTO;
    die("receive fds");
  }
  memcpy(fds, CMSG_DATA(cm), sizeof(int) * n);
  return 1;
}

/* The helper: hold the namespaces until the pipe's write end (arg[1], ours to close) closes. */
static int wait_for_eof(void *arg) {
  int *fds = arg;
  close(fds[1]);
  char b;
  while (read(fds[0], &b, 1) < 0 && errno == EINTR) {}
  _exit(0);
}

static void write_proc_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  size_t len = strlen(text);
  if (fd < 0 || write(fd, text, len) != (ssize_t)len) die("write %s", path);
  close(fd);
}

/* The host pid of a child we know by pidfd (the host's /proc is the one mounted here). */
static pid_t host_pid(int pidfd) {
  char *path = xasprintf("/proc/self/fdinfo/%d", pidfd);
  FILE *f = fopen(path, "re");
  if (!f) die("open %s", path);
  char line[128];
  long pid = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Pid: %ld", &pid) == 1) break;
  fclose(f);
  if (pid <= 0) die("no pid in %s", path);
  free(path);
  return (pid_t)pid;
}

/* The userland's user namespace, nested in ours with the same ids, and the network, uts, ipc
 * and mount namespaces it owns; we join those four (we own the userland's namespace, so we
 * keep every capability over them). The mount namespace is the guest's too: the guest's
 * filesystems (fuse2fs of its root, run as the userland) are then the guest's to remount, and
 * the namespaces rootboot copies from it for the guest lock nothing. A helper process creates
 * them and lives only until we have opened them. Returns the user namespace's fd, parked at
 * USERLAND_NS_FD later. */
static int make_userland_ns(const struct config *c) {
  int hold[2];
  if (pipe2(hold, O_CLOEXEC) < 0) die("pipe");
  static char stack[64 << 10];
  int pidfd = -1;
  pid_t h = clone(wait_for_eof, stack + sizeof stack,
                  CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS | CLONE_PIDFD | SIGCHLD,
                  hold, &pidfd);
  if (h < 0) die("clone the userland's namespaces");
  close(hold[0]);
  pid_t hp = host_pid(pidfd);
  char *map = xasprintf("0 0 %lu\n", c->uid_count);
  write_proc_file(xasprintf("/proc/%d/uid_map", (int)hp), map);
  write_proc_file(xasprintf("/proc/%d/gid_map", (int)hp), map);
  if (setns(pidfd, CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS) < 0)
    die("join the guest's network, uts, ipc and mount namespaces");
  int fd = open(xasprintf("/proc/%d/ns/user", (int)hp), O_RDONLY | O_CLOEXEC);
  /* Parked high, out of the way of the fds laid out for PROGRAM. */
  int userns = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 2048);
  if (userns < 0) die("open the userland's user namespace");
  close(fd);
  close(hold[1]);
  close(pidfd);
  while (waitpid(h, NULL, 0) < 0 && errno == EINTR) {}
  return userns;
}

/* The TAP handles (see 5. above): our network namespace goes to the parent, which opens them
 * there as host root and sends them back. */
static void get_tun_fds(struct config *c) {
  if (c->n_tun_fds == 0) return;
  int netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (netns < 0) die("open our network namespace");
  send_fds(c->ctl_fd, &netns, 1);
  close(netns);
  int fds[MAX_TUN_FDS];
  if (!recv_fds(c->ctl_fd, fds, c->n_tun_fds)) _exit(FAIL_STATUS);  /* the parent said why */
  for (int i = 0; i < c->n_tun_fds; i++) {
    c->tun_fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 1024);
    if (c->tun_fds[i] < 0) die("dup /dev/net/tun");
    close(fds[i]);
  }
}

/* The parent's side: open the handles inside the child's network namespace. */
static void serve_tun_fds(int sock, int n) {
  if (n == 0) return;
  int netns, home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("open the host network namespace");
  if (!recv_fds(sock, &netns, 1)) return;  /* the child failed first; waitpid tells how */
  if (setns(netns, CLONE_NEWNET) < 0) die("enter the guest's network namespace");
  int fds[MAX_TUN_FDS];
  for (int i = 0; i < n; i++)
    if ((fds[i] = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) die("open /dev/net/tun");
  if (setns(home, CLONE_NEWNET) < 0) die("return to the host network namespace");
  send_fds(sock, fds, n);
  for (int i = 0; i < n; i++) close(fds[i]);
  close(netns);
  close(home);
}

/* The new network namespace has only lo, and it starts down. */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("get lo flags");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("set lo up");
  close(s);
}

static void enter_root(const char *root) {
  char *old = xasprintf("%s/.oldroot", root);
  xmkdir(old, 0700);
  if (syscall(SYS_pivot_root, root, old) < 0) die("pivot_root");
  if (chdir("/") < 0) die("chdir /");
  if (umount2("/.oldroot", MNT_DETACH) < 0) die("umount /.oldroot");
  if (rmdir("/.oldroot") < 0) die("rmdir /.oldroot");
}

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* A time namespace whose boot clock starts now, entered at exec: the guest's processes'
 * start times (/proc/PID/stat), /proc/stat's btime and the kernel's /proc/uptime then agree,
 * as on a machine that booted with the domain (ps's STIME and ELAPSED). CLOCK_MONOTONIC is
 * left alone. A host kernel without time namespaces keeps the host's boot clock. */
static void boot_clock_from_now(void) {
  struct timespec now;
  if (clock_gettime(CLOCK_BOOTTIME, &now) < 0) die("clock_gettime");
  if (unshare(CLONE_NEWTIME) < 0) {
    fprintf(stderr, "xenode-jailer: no time namespace (%s): the guest sees the host's boot time\n", strerror(errno));
    return;
  }
  /* The uid change left us undumpable, which makes the files of /proc/self host root's; exec would set
   * it back anyway (the kernel is not setuid). */
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) die("prctl(DUMPABLE)");
  /* The offset to the nanosecond, so the guest's uptime starts at 0 (whole seconds alone made
   * it start up to a second early). The file takes seconds and 0..999999999 nanoseconds. */
  long long sec = -(long long)now.tv_sec, nsec = 0;
  if (now.tv_nsec > 0) sec -= 1, nsec = 1000000000LL - now.tv_nsec;
  char off[64];
  int len = snprintf(off, sizeof off, "boottime %lld %lld\n", sec, nsec);
  int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, off, len) != len) die("timens_offsets");
  close(fd);
}

static int child_main(void *arg) {
  struct config *c = arg;
  /* Signals: back to defaults and the original mask (the parent blocked them for clone). */
  int fwd[] = FORWARDED_SIGNALS;
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) signal(fwd[i], SIG_DFL);
  sigprocmask(SIG_SETMASK, &c->orig_mask, NULL);

  /* Only the parent may hold the write end, or its death would go unnoticed below. */
  close(c->sync_wr);
  close(c->ctl_parent);
  char go;
  ssize_t n;
  do n = read(c->sync_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(127);  /* the parent failed to map us and said why */

  /* The maps are written: become uid/gid 0 of the namespace (host uid N). */
  if (setgroups(0, NULL) < 0) die("setgroups");
  if (setresgid(0, 0, 0) < 0) die("setresgid");
  if (setresuid(0, 0, 0) < 0) die("setresuid");

  /* Die with the jailer parent. Set only now: a credential change clears the setting.
   * The parent holds the pipe's write end until it exits, so a hang-up here means it
   * died before the setting took effect. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PDEATHSIG)");
  struct pollfd p = {c->sync_fd, POLLIN, 0};
  if (poll(&p, 1, 0) < 0) die("poll");
  if (p.revents & (POLLHUP | POLLERR)) _exit(127);
  close(c->sync_fd);
  umask(022);
  boot_clock_from_now();

  int userns = make_userland_ns(c);
  get_tun_fds(c);
  if (sethostname(c->hostname, strlen(c->hostname)) < 0) die("sethostname");
  build_root(c);
  loopback_up();
  enter_root(c->root);

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl(NO_NEW_PRIVS)");
  for (int i = 0; i < c->n_tun_fds; i++) {
    if (dup2(c->tun_fds[i], TUN_FD_BASE + i) < 0) die("dup2 tun fd");
    close(c->tun_fds[i]);
    c->keep_fds[c->n_keep_fds++] = TUN_FD_BASE + i;
  }
  if (dup2(userns, USERLAND_NS_FD) < 0) die("dup2 the userland's namespace");
  close(userns);
  c->keep_fds[c->n_keep_fds++] = USERLAND_NS_FD;
  close_fds_except(c->keep_fds, c->n_keep_fds);

  if (clearenv() != 0) die("clearenv");
  if (setenv("PATH", GUEST_PATH, 1) < 0 || setenv("HOME", "/root", 1) < 0) die("setenv");
  for (int i = 0; i < c->n_envs; i++)
    if (putenv(c->envs[i]) != 0) die("putenv %s", c->envs[i]);
  execv(c->argv[0], c->argv);
  die("execv %s", c->argv[0]);
  return 127;
}

/* The OOM killer's choice, as a machine's: the guest's kernel is its last resort, the
 * userland its first (the userland's launcher, native/rootboot.c, sets itself back to 0).
 * This parent is never chosen: its death would take the domain. The kernel's score is set
 * through the legacy oom_adj file on purpose: -16 is oom_score_adj -941, and unlike a write
 * to oom_score_adj it does not lower the floor (oom_score_adj_min) that the kernel's children
 * inherit, so guest root cannot take -941 back for its own processes (that needs host
 * CAP_SYS_RESOURCE). Not -17 (unkillable): a kernel alone in an exhausted domain may still
 * be killed, and the domain then crashes as it would. */
static void oom_last_resort(pid_t kernel) {
  char *kernel_adj = xasprintf("/proc/%d/oom_adj", (int)kernel);
  const char *files[] = {"/proc/self/oom_score_adj", kernel_adj}, *values[] = {"-1000\n", "-16\n"};
  for (int i = 0; i < 2; i++) {
    int fd = open(files[i], O_WRONLY | O_CLOEXEC);
    size_t len = strlen(values[i]);
    /* Lowering a score needs CAP_SYS_RESOURCE, which some hosts (containers, VMs' agents)
     * withhold from root: then only the cgroup layout protects the kernel (its userland has a
     * memory cgroup of its own, where the kernel is not). */
    if (fd < 0 || write(fd, values[i], len) != (ssize_t)len)
      fprintf(stderr, "xenode-jailer: %s: %s: the OOM killer may choose the guest's kernel\n", files[i], strerror(errno));
    if (fd >= 0) close(fd);
  }
  free(kernel_adj);
}

static void forward_signal(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

static void write_map(pid_t pid, const char *which, const struct config *c) {
  char path[64], map[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
  int len = snprintf(map, sizeof map, "0 %lu %lu\n", c->uid_base, c->uid_count);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, map, len) != len) {
    int err = errno;
    kill(pid, SIGKILL);
    errno = err;
    die("write %s", path);
  }
  close(fd);
}

int main(int argc, char **argv) {
  struct config c = {.uid_count = 65536};
  c.bind_ro = calloc(argc, sizeof *c.bind_ro);
  c.keep_fds = calloc(argc + MAX_TUN_FDS + 1, sizeof *c.keep_fds);
  c.envs = calloc(argc, sizeof *c.envs);
  int have_uid = 0;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *opt = argv[i];
    if (i + 1 >= argc) usage(opt);
    char *val = argv[++i];
    if (!strcmp(opt, "--uid-base")) c.uid_base = parse_num(val, opt), have_uid = 1;
    else if (!strcmp(opt, "--uid-count")) c.uid_count = parse_num(val, opt);
    else if (!strcmp(opt, "--hostname")) c.hostname = val;
    else if (!strcmp(opt, "--root")) c.root = val;
    else if (!strcmp(opt, "--boot-dir")) c.boot_dir = val;
    else if (!strcmp(opt, "--bind-ro")) {
      char *colon = strchr(val, ':');
      if (!colon || colon == val || colon[1] != '/') usage("--bind-ro wants SRC:/DST");
      c.bind_ro[c.n_bind_ro++] = val;
    } else if (!strcmp(opt, "--keep-fd")) {
      unsigned long fd = parse_num(val, opt);
      if (fd < 3 || fd > INT_MAX) usage("--keep-fd wants an fd > 2");
      c.keep_fds[c.n_keep_fds++] = (int)fd;
    } else if (!strcmp(opt, "--tun-fds")) {
      unsigned long n = parse_num(val, opt);
      if (n > MAX_TUN_FDS) usage("--tun-fds wants at most 64");
      c.n_tun_fds = (int)n;
    } else if (!strcmp(opt, "--memory")) {
      c.memory = parse_num(val, opt);
      if (c.memory < (1ULL << 20)) usage("--memory wants bytes >= 1 MiB");
    } else if (!strcmp(opt, "--env")) {
      if (!strchr(val, '=') || val[0] == '=') usage("--env wants K=V");
      c.envs[c.n_envs++] = val;
    } else usage(opt);
  }
  if (i + 1 >= argc) usage("missing -- PROGRAM");
  c.argv = argv + i + 1;
  /* uid base 0 would make the domain's root the host's root. */
  if (!have_uid || c.uid_base == 0) usage("--uid-base wants N > 0");
  if (c.uid_count == 0 || c.uid_base + c.uid_count - 1 > 0xfffffffeUL)
    usage("--uid-count out of range");
  if (!c.hostname || !*c.hostname || strlen(c.hostname) > 64) usage("--hostname");
  if (!c.root || c.root[0] != '/') usage("--root wants an absolute path");
  if (!c.boot_dir) usage("--boot-dir");
  for (int k = 0; k < c.n_keep_fds; k++)
    if (c.keep_fds[k] >= TUN_FD_BASE && c.keep_fds[k] < TUN_FD_BASE + c.n_tun_fds)
      usage("--keep-fd collides with the --tun-fds range (fds 4 ..)");
    else if (c.keep_fds[k] == USERLAND_NS_FD)
      usage("--keep-fd 68 is the userland's namespace");
  root_dir = c.root;

  /* (a) Wait for the hypervisor's go; then fd 0 is of no further use. */
  char go;
  ssize_t n;
  do n = read(0, &go, 1);
  while (n < 0 && errno == EINTR);
  if (n == 0) exit(1);
  if (n < 0) die("read fd 0");
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0) die("reopen fd 0");
  if (null != 0) close(null);

  /* (b) Block the forwarded signals until child_pid is known: a handler running before
   * that would have no one to forward to. */
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) < 0) die("pipe");
  c.sync_fd = sync[0];
  c.sync_wr = sync[1];
  int ctl[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) die("socketpair");
  c.ctl_parent = ctl[0];
  c.ctl_fd = ctl[1];
  int fwd[] = FORWARDED_SIGNALS;
  sigset_t block;
  sigemptyset(&block);
  struct sigaction sa = {.sa_handler = forward_signal};  /* no SA_RESTART: see waitpid */
  for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++) {
    sigaddset(&block, fwd[k]);
    sigaction(fwd[k], &sa, NULL);
  }
  sigprocmask(SIG_BLOCK, &block, &c.orig_mask);

  size_t stack_size = 1 << 20;
  char *stack = malloc(stack_size);
  if (!stack) die("malloc");
  pid_t pid = clone(child_main, stack + stack_size,
                    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWCGROUP | SIGCHLD,
                    &c);
  if (pid < 0) die("clone");
  child_pid = pid;
  sigprocmask(SIG_SETMASK, &c.orig_mask, NULL);

  /* (c) The parent keeps no copy of the fds meant for the domain: a socket the guest
   * closes must look closed to the hypervisor. */
  close(sync[0]);
  close(ctl[1]);
  int ours[] = {sync[1], ctl[0]};
  close_fds_except(ours, 2);
  write_map(pid, "uid_map", &c);
  write_map(pid, "gid_map", &c);
  signal(SIGPIPE, SIG_IGN);  /* a child already dead is seen by waitpid, not as a signal */
  oom_last_resort(pid);
  if (write(sync[1], "x", 1) != 1) die("release child");
  serve_tun_fds(ctl[0], c.n_tun_fds);
  close(ctl[0]);
  /* sync[1] stays open until we exit: the child polls it for a hang-up (see child_main). */

  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
