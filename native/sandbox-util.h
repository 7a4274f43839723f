/* Helpers shared by xenode's two small C executables (jailer.c, rootboot.c): failing a step
 * with its errno, and the allocations and mounts every step does. Each program defines
 * PROGRAM_NAME and FAIL_STATUS before including this, so its messages and exit status stay
 * its own. */
#ifndef XENODE_SANDBOX_UTIL_H
#define XENODE_SANDBOX_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

/* Report a failed step with errno and exit (_exit: a forked child shares stdio buffers). */
static void die(const char *fmt, ...) {
  int err = errno;
  char step[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(step, sizeof step, fmt, ap);
  va_end(ap);
  fprintf(stderr, PROGRAM_NAME ": %s: %s\n", step, strerror(err));
  _exit(FAIL_STATUS);
}

static char *xasprintf(const char *fmt, ...) {
  char *s;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0) die("asprintf");
  va_end(ap);
  return s;
}

#endif
