// eventfd: the counters event channels and irqfds signal through.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "addon.h"

namespace xenode_addon {
namespace {

void EventfdCreate(const Args& a) {
  int64_t init, zero = 0;
  if (!IntArg(a, 0, "initval", 0, UINT_MAX, &init, &zero)) return;
  int fd = eventfd(static_cast<unsigned>(init), EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return ThrowErrno(a.GetIsolate(), "eventfd", errno);
  a.GetReturnValue().Set(fd);
}

void EventfdWrite(const Args& a) {
  int fd;
  int64_t value, one = 1;
  if (!FdArg(a, 0, &fd) || !IntArg(a, 1, "value", 0, kMaxSafeInt, &value, &one)) return;
  uint64_t v = value;
  ssize_t r;
  do r = write(fd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
  if (r < 0) return ThrowErrno(a.GetIsolate(), "write", errno);  // EAGAIN = counter overflow
}

void EventfdRead(const Args& a) {
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  uint64_t v = 0;
  ssize_t r;
  do r = read(fd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EAGAIN) return ThrowErrno(a.GetIsolate(), "read", errno);
  a.GetReturnValue().Set(static_cast<double>(r < 0 ? 0 : v));
}

}  // namespace

void InitEventfd(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"eventfdCreate", EventfdCreate},
      {"eventfdWrite", EventfdWrite},
      {"eventfdRead", EventfdRead},
  });
}

}  // namespace xenode_addon
