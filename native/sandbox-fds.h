/* Closing every inherited descriptor but the ones passed on, shared by the two sandboxes
 * (jailer.c, stubdom-sandbox.c). Include after sandbox-util.h. */
#ifndef XENODE_SANDBOX_FDS_H
#define XENODE_SANDBOX_FDS_H

#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Close every fd > 2 except keep[] (sorted here), whose close-on-exec flag is cleared. */
static void close_fds_except(int *keep, int n) {
  qsort(keep, n, sizeof *keep, cmp_int);
  unsigned int from = 3;
  for (int i = 0; i < n; i++) {
    if (fcntl(keep[i], F_SETFD, 0) < 0) die("keep-fd %d", keep[i]);
    if ((unsigned)keep[i] > from && syscall(SYS_close_range, from, keep[i] - 1, 0) < 0)
      die("close_range");
    if ((unsigned)keep[i] >= from) from = keep[i] + 1;
  }
  if (syscall(SYS_close_range, from, ~0U, 0) < 0) die("close_range");
}

#endif
