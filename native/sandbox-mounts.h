/* Mount helpers shared by the two sandboxes that build a root of their own: the guest's
 * (jailer.c) and the stub domain's (stubdom-sandbox.c). Include after sandbox-util.h. */
#ifndef XENODE_SANDBOX_MOUNTS_H
#define XENODE_SANDBOX_MOUNTS_H

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static void xmount(const char *src, const char *dst, const char *type, unsigned long flags,
                   const char *data) {
  if (mount(src, dst, type, flags, data) < 0) die("mount %s", dst);
}

static void mkdir_p(const char *path) {
  char *p = strdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) < 0 && errno != EEXIST) die("mkdir %s", p);
    *s = '/';
  }
  if (mkdir(p, 0755) < 0 && errno != EEXIST) die("mkdir %s", p);
  free(p);
}

/* Make a mount tree read-only (and nosuid/nodev). mount_setattr covers every submount,
 * which a MS_REMOUNT|MS_BIND would not. */
static void make_ro(const char *path) {
  struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
  if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) < 0)
    die("make read-only %s", path);
}

/* Bind host path src on dst (created as a dir or an empty file to match), read-only. */
static void bind_ro(const char *src, const char *dst) {
  struct stat st;
  if (stat(src, &st) < 0) die("stat %s", src);
  if (S_ISDIR(st.st_mode)) {
    mkdir_p(dst);
  } else {
    char *parent = strdup(dst);
    *strrchr(parent, '/') = 0;
    if (*parent) mkdir_p(parent);
    free(parent);
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) die("create %s", dst);
    close(fd);
  }
  xmount(src, dst, NULL, MS_BIND | MS_REC, NULL);
  make_ro(dst);
}

#endif
