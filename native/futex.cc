// Futex: shared (no FUTEX_PRIVATE_FLAG), so the kernel keys waiters by the physical page and
// a waiter in one process is woken by a waker in another that maps the same memfd.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>

#include "addon.h"

namespace xenode_addon {
namespace {

bool FutexWord(const Args& a, int32_t** word) {
  Isolate* iso = a.GetIsolate();
  if (!a[0]->IsInt32Array()) {
    ThrowType(iso, "view must be an Int32Array");
    return false;
  }
  Local<Int32Array> view = a[0].As<Int32Array>();
  // Only shared memory is stable and visible to other threads; an ordinary ArrayBuffer's
  // contents could be detached under a blocked waiter.
  if (!view->Buffer()->IsSharedArrayBuffer()) {
    ThrowType(iso, "view must be backed by a SharedArrayBuffer");
    return false;
  }
  int64_t index;
  if (!IntArg(a, 1, "index", 0, static_cast<double>(view->Length()) - 1, &index)) return false;
  *word = reinterpret_cast<int32_t*>(ViewData(view)) + index;
  return true;
}

// busyPoll(view, index, expected, fd, maxUs): spin until view[index] != expected (a ring's
// producer index moved), `fd` is readable (a TAP has a frame), or maxUs pass. Returns 1, 2
// or 0 respectively. Yields the CPU on every turn, so a peer woken on this CPU (the guest
// process that will answer) runs at once instead of waiting out our time slice. Bounded to
// 10 ms whatever the caller asks: a driver polls briefly after it handed work over, then
// sleeps on its event as usual (docs/networking.md, "Busy polling").
void BusyPoll(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int32_t* word;
  int64_t expected, fd;
  if (!FutexWord(a, &word)) return;
  if (!IntArg(a, 2, "expected", INT32_MIN, UINT32_MAX, &expected)) return;
  if (!IntArg(a, 3, "fd", -1, INT32_MAX, &fd)) return;
  if (!a[4]->IsNumber()) return ThrowType(iso, "maxUs must be a number");
  double max_us = std::max(0.0, std::min(a[4].As<Number>()->Value(), 10000.0));
  int64_t deadline = MonoNs() + static_cast<int64_t>(max_us * 1000);
  int result = 0;
  for (unsigned turn = 0;; turn++) {
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != static_cast<int32_t>(expected)) {
      result = 1;
      break;
    }
    if (fd >= 0 && (turn & 3) == 0) {
      struct pollfd p = {static_cast<int>(fd), POLLIN, 0};
      if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
        result = 2;
        break;
      }
    }
    if (MonoNs() >= deadline) break;
    sched_yield();
  }
  a.GetReturnValue().Set(result);
}

void FutexWait(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int32_t* word;
  int64_t expected;
  if (!FutexWord(a, &word)) return;
  if (!IntArg(a, 2, "expected", INT32_MIN, UINT32_MAX, &expected)) return;
  if (!a[3]->IsNumber()) return ThrowType(iso, "timeoutMs must be a number");
  double timeout_ms = a[3].As<Number>()->Value();
  bool forever = !(timeout_ms >= 0) || std::isinf(timeout_ms);
  int64_t deadline = forever ? 0 : MonoNs() + static_cast<int64_t>(std::min(timeout_ms, 1e12) * 1e6);
  const char* result;
  for (;;) {
    // FUTEX_WAIT takes a relative timeout; recompute it after each EINTR (signals from the
    // profiler or libuv's SIGCHLD handling must not lengthen the wait). A zero timeout
    // still compares the word once.
    struct timespec rel, *relp = nullptr;
    if (!forever) {
      int64_t left = std::max<int64_t>(0, deadline - MonoNs());
      rel.tv_sec = left / 1000000000;
      rel.tv_nsec = left % 1000000000;
      relp = &rel;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, static_cast<int32_t>(expected), relp,
                     nullptr, 0);
    if (r == 0) {
      result = "ok";  // woken (or spuriously): the caller re-checks the word anyway
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      result = "not-equal";
      break;
    }
    if (errno == ETIMEDOUT) {
      result = "timed-out";
      break;
    }
    return ThrowErrno(iso, "futex", errno);
  }
  a.GetReturnValue().Set(Str(iso, result));
}

void FutexWake(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int32_t* word;
  if (!FutexWord(a, &word)) return;
  if (!a[2]->IsNumber()) return ThrowType(iso, "count must be a number");
  double c = a[2].As<Number>()->Value();
  if (!(c >= 0)) return ThrowRange(iso, "count must be >= 0");
  int count = c >= INT_MAX ? INT_MAX : static_cast<int>(c);
  long r = syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  if (r < 0) return ThrowErrno(iso, "futex", errno);
  a.GetReturnValue().Set(static_cast<int32_t>(r));
}

}  // namespace

void InitFutex(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"futexWait", FutexWait},
      {"busyPoll", BusyPoll},
      {"futexWake", FutexWake},
  });
}

}  // namespace xenode_addon
