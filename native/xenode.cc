// xenode.node: the host primitives Node cannot reach alone (see native/index.ts for the
// contract and why each one exists).
//
// Written against the V8 C++ API (node.h), not Node-API: Node-API in Node 20 cannot wrap
// external memory in a SharedArrayBuffer, which mapShared needs. The module is
// context-aware (NODE_MODULE_INIT), so it also loads in worker threads: vCPU and
// device-model threads live there.
//
// Every function is a thin synchronous wrapper; policy lives in TypeScript. A failing
// syscall throws Error{code: "EXXX", errno, syscall} with message "syscall: EXXX (strerror)".
// Built with -fno-exceptions (node's common.gypi): helpers return false with a pending JS
// exception, and callers return immediately.

#include <node.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "js-helpers.h"

namespace {

using v8::Array;
using v8::ArrayBuffer;
using v8::ArrayBufferView;
using v8::Context;
using v8::Exception;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Int32Array;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::SharedArrayBuffer;
using v8::Signature;
using v8::String;
using v8::Uint8Array;
using v8::Value;

using Args = FunctionCallbackInfo<Value>;

constexpr double kMaxSafeInt = 9007199254740991.0;  // 2^53 - 1
constexpr int kMaxFdsPerMsg = 16;

// ---------------------------------------------------------------------------------------
// errors and argument checking

using xenode_js::Str;
using xenode_js::ThrowErrno;
using xenode_js::ThrowRange;
using xenode_js::ThrowType;
using xenode_js::ViewData;

// args[i] as an integer in [lo, hi]. `dflt` (if given) stands in for undefined.
bool IntArg(const Args& a, int i, const char* name, double lo, double hi, int64_t* out,
            const int64_t* dflt = nullptr) {
  Local<Value> v = a[i];
  char msg[128];
  if (v->IsUndefined() && dflt != nullptr) {
    *out = *dflt;
    return true;
  }
  if (!v->IsNumber()) {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  double d = v.As<Number>()->Value();
  if (!(d >= lo && d <= hi) || d != std::trunc(d)) {
    snprintf(msg, sizeof msg, "%s must be an integer in [%.0f, %.0f]", name, lo, hi);
    ThrowRange(a.GetIsolate(), msg);
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

int64_t MonoNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

bool FdArg(const Args& a, int i, int* fd) {
  int64_t v;
  if (!IntArg(a, i, "fd", 0, INT_MAX, &v)) return false;
  *fd = static_cast<int>(v);
  return true;
}


bool BytesArg(const Args& a, int i, const char* name, uint8_t** data, size_t* len) {
  if (!a[i]->IsArrayBufferView()) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  Local<ArrayBufferView> v = a[i].As<ArrayBufferView>();
  *len = v->ByteLength();
  *data = ViewData(v);
  return true;
}

// (buf, offset, length) at args[i..i+2], checked against the view's size.
bool SliceArgs(const Args& a, int i, uint8_t** data, size_t* len) {
  uint8_t* base;
  size_t size;
  int64_t off, n;
  if (!BytesArg(a, i, "buf", &base, &size)) return false;
  if (!IntArg(a, i + 1, "offset", 0, static_cast<double>(size), &off)) return false;
  if (!IntArg(a, i + 2, "length", 0, static_cast<double>(size - off), &n)) return false;
  *data = base + off;
  *len = static_cast<size_t>(n);
  return true;
}

// ---------------------------------------------------------------------------------------
// memory

void MemfdCreate(const Args& a) {
  Isolate* iso = a.GetIsolate();
  if (!a[0]->IsString()) return ThrowType(iso, "name must be a string");
  String::Utf8Value name(iso, a[0]);
  int64_t size;
  if (!IntArg(a, 1, "size", 0, kMaxSafeInt, &size)) return;
  int fd = memfd_create(*name, MFD_CLOEXEC);
  if (fd < 0) return ThrowErrno(iso, "memfd_create", errno);
  if (ftruncate(fd, size) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(iso, "ftruncate", err);
  }
  a.GetReturnValue().Set(fd);
}

// hugeRamCreate(name, size): a file of `size` bytes for guest RAM on a tmpfs of its own with
// huge=within_size, so that the kernel backs it with 2 MiB pages when it has them. memfd's
// internal tmpfs follows the host-wide shmem_enabled setting, "never" on many hosts; a tmpfs
// of our own obeys its own huge= option, and needs no host setting changed. The tmpfs is made
// with fsopen/fsmount and never attached anywhere: nothing shows in any mount table, nothing
// is left behind if we die, and it goes away with the last descriptor of the file. The file is
// created as `name` and unlinked at once (so /proc/PID/fd shows "/name (deleted)").
// Why it matters: a 1 MiB request in 256 scattered 4 KiB pages is more segments than a virtio
// disk takes (254), so the host splits every such request in two; in 2 MiB pages, with the
// frames in order, it is a few dozen. Throws (callers fall back to memfdCreate) when the
// kernel cannot.
void HugeRamCreate(const Args& a) {
  Isolate* iso = a.GetIsolate();
  if (!a[0]->IsString()) return ThrowType(iso, "name must be a string");
  String::Utf8Value name(iso, a[0]);
  if (strchr(*name, '/') != nullptr || **name == '\0' || **name == '.') return ThrowType(iso, "name must be a plain file name");
  int64_t size;
  if (!IntArg(a, 1, "size", 0, kMaxSafeInt, &size)) return;
  int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fs < 0) return ThrowErrno(iso, "fsopen(tmpfs)", errno);
  const char* step = "fsconfig(huge=within_size)";
  int mnt = -1;
  // size=0: no limit of its own (as memfd): the domain's memory cgroup is the limit.
  if (fsconfig(fs, FSCONFIG_SET_STRING, "huge", "within_size", 0) < 0 ||
      (step = "fsconfig(size=0)", fsconfig(fs, FSCONFIG_SET_STRING, "size", "0", 0)) < 0 ||
      (step = "fsconfig(mode=0700)", fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0)) < 0 ||
      (step = "fsconfig(create)", fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0)) < 0 ||
      (step = "fsmount", mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)) < 0) {
    int err = errno;
    close(fs);
    return ThrowErrno(iso, step, err);
  }
  close(fs);
  int fd = openat(mnt, *name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  int err = errno;
  if (fd >= 0) unlinkat(mnt, *name, 0);
  close(mnt);
  if (fd < 0) return ThrowErrno(iso, "open", err);
  if (ftruncate(fd, size) < 0) {
    err = errno;
    close(fd);
    return ThrowErrno(iso, "ftruncate", err);
  }
  a.GetReturnValue().Set(fd);
}

void Unmap(void* data, size_t length, void*) { munmap(data, length); }

void MapShared(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int fd;
  int64_t length, offset, zero = 0;
  if (!FdArg(a, 0, &fd) || !IntArg(a, 1, "length", 1, kMaxSafeInt, &length) ||
      !IntArg(a, 2, "offset", 0, kMaxSafeInt, &offset, &zero))
    return;
  // Touching a page past the end of a file raises SIGBUS and kills the whole process:
  // refuse such a mapping up front rather than crash later.
  struct stat st;
  if (fstat(fd, &st) < 0) return ThrowErrno(iso, "fstat", errno);
  if (S_ISREG(st.st_mode) && offset + length > st.st_size) return ThrowErrno(iso, "mmap", EINVAL);
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
  if (p == MAP_FAILED) return ThrowErrno(iso, "mmap", errno);
  // The backing store owns the mapping: it is unmapped when the last SharedArrayBuffer
  // referring to it (in any worker) is collected. The fd can be closed right away.
  std::shared_ptr<v8::BackingStore> store =
      SharedArrayBuffer::NewBackingStore(p, length, Unmap, nullptr);
  a.GetReturnValue().Set(SharedArrayBuffer::New(iso, std::move(store)));
}

void FdSize(const Args& a) {
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  struct stat st;
  if (fstat(fd, &st) < 0) return ThrowErrno(a.GetIsolate(), "fstat", errno);
  a.GetReturnValue().Set(static_cast<double>(st.st_size));
}

// ---------------------------------------------------------------------------------------
// futex: shared (no FUTEX_PRIVATE_FLAG), so the kernel keys waiters by the physical page and
// a waiter in one process is woken by a waker in another that maps the same memfd.

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

// ---------------------------------------------------------------------------------------
// eventfd

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

// ---------------------------------------------------------------------------------------
// watchFd: a uv_poll handle on the calling thread's loop, wrapped in a small JS object.
//
// Lifetime rules:
//  - while started, the handle is active (keeps the loop alive) and the JS object is held
//    strongly, so dropping the object does not silently stop the watch;
//  - while stopped, the handle is inactive and the JS object is weak: if it is collected,
//    the handle is closed for the user;
//  - close() (or collection, or environment teardown) releases every V8 handle at once
//    and uv_closes the poll handle; the C++ memory is freed in the close callback, since
//    libuv still owns the handle until then;
//  - at environment teardown (a worker thread exiting, say) an async cleanup hook closes
//    the handle and tells node when the close callback has run: node refuses to close a
//    loop with open handles.

struct Watcher {
  uv_poll_t poll;
  Isolate* isolate;
  Global<Context> context;
  Global<Object> self;
  Global<Function> callback;
  node::AsyncCleanupHookHandle hook;
  bool active = false;
  bool closing = false;
  void (*teardown_done)(void*) = nullptr;  // set when closed by environment teardown
  void* teardown_arg = nullptr;
};

void OnWatcherClosed(uv_handle_t* h) {
  Watcher* w = static_cast<Watcher*>(h->data);
  if (w->teardown_done != nullptr) w->teardown_done(w->teardown_arg);
  delete w;  // all Globals are already empty: no V8 call here, the isolate may be gone
}

void ReleaseWatcher(Watcher* w, bool from_teardown) {
  if (w->closing) return;
  w->closing = true;
  if (!from_teardown) node::RemoveEnvironmentCleanupHook(std::move(w->hook));
  if (!w->self.IsEmpty()) {
    HandleScope scope(w->isolate);
    w->self.Get(w->isolate)->SetAlignedPointerInInternalField(0, nullptr);
  }
  w->self.Reset();
  w->callback.Reset();
  w->context.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnWatcherClosed);
}

void OnWatcherTeardown(void* arg, void (*done)(void*), void* done_arg) {
  Watcher* w = static_cast<Watcher*>(arg);
  w->teardown_done = done;
  w->teardown_arg = done_arg;
  ReleaseWatcher(w, true);
}

void OnWatcherCollectedSecondPass(const v8::WeakCallbackInfo<Watcher>& info) {
  ReleaseWatcher(info.GetParameter(), false);
}

void OnWatcherCollected(const v8::WeakCallbackInfo<Watcher>& info) {
  // First pass: only reset the collected handle; the rest may call into V8/node.
  info.GetParameter()->self.Reset();
  info.SetSecondPassCallback(OnWatcherCollectedSecondPass);
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Watcher* w = static_cast<Watcher*>(h->data);
  if (w->closing) return;
  Isolate* iso = w->isolate;
  HandleScope scope(iso);
  Local<Context> ctx = w->context.Get(iso);
  Context::Scope context_scope(ctx);
  Local<Value> argv[1] = {Integer::New(iso, status < 0 ? status : events)};
  // MakeCallback runs the nextTick/microtask queues afterwards and routes a throw to
  // 'uncaughtException', as for any other I/O callback. The result is irrelevant.
  (void)node::MakeCallback(iso, w->self.Get(iso), w->callback.Get(iso), 1, argv,
                           node::async_context{0, 0});
}

Watcher* Unwrap(const Args& a) {
  void* p = a.This()->GetAlignedPointerFromInternalField(0);
  if (p == nullptr) ThrowErrno(a.GetIsolate(), "uv_poll", EBADF);  // already closed
  return static_cast<Watcher*>(p);
}

void WatcherStart(const Args& a) {
  Watcher* w = Unwrap(a);
  if (w == nullptr) return;
  int64_t events;
  if (!IntArg(a, 0, "events", 1, UV_READABLE | UV_WRITABLE, &events)) return;
  int r = uv_poll_start(&w->poll, static_cast<int>(events), OnPoll);
  if (r < 0) return ThrowErrno(a.GetIsolate(), "uv_poll_start", -r);
  if (!w->active) {
    w->self.ClearWeak();
    w->active = true;
  }
}

void WatcherStop(const Args& a) {
  // Like close(), harmless on a closed watcher: teardown code may call both.
  Watcher* w = static_cast<Watcher*>(a.This()->GetAlignedPointerFromInternalField(0));
  if (w == nullptr) return;
  uv_poll_stop(&w->poll);
  if (w->active) {
    w->self.SetWeak(w, OnWatcherCollected, v8::WeakCallbackType::kParameter);
    w->active = false;
  }
}

void WatcherClose(const Args& a) {
  void* p = a.This()->GetAlignedPointerFromInternalField(0);
  if (p != nullptr) ReleaseWatcher(static_cast<Watcher*>(p), false);  // idempotent
}

void WatcherConstruct(const Args&) {}

void WatchFd(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  if (!a[1]->IsFunction()) return ThrowType(iso, "callback must be a function");
  Local<Object> obj;
  if (!a.Data().As<Function>()->NewInstance(ctx).ToLocal(&obj)) return;

  Watcher* w = new Watcher();
  w->isolate = iso;
  // uv_poll_init also sets O_NONBLOCK on the fd (on its open file description).
  int r = uv_poll_init(node::GetCurrentEventLoop(iso), &w->poll, fd);
  if (r < 0) {
    delete w;  // libuv has not registered anything on failure
    return ThrowErrno(iso, "uv_poll_init", -r);
  }
  w->poll.data = w;
  w->context.Reset(iso, ctx);
  w->callback.Reset(iso, a[1].As<Function>());
  w->self.Reset(iso, obj);
  w->self.SetWeak(w, OnWatcherCollected, v8::WeakCallbackType::kParameter);
  w->hook = node::AddEnvironmentCleanupHook(iso, OnWatcherTeardown, w);
  obj->SetAlignedPointerInInternalField(0, w);
  a.GetReturnValue().Set(obj);
}

void PollReadable(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int fd;
  int64_t timeout;
  if (!FdArg(a, 0, &fd) || !IntArg(a, 1, "timeoutMs", -1e15, 1e15, &timeout)) return;
  int64_t deadline = MonoNs() + std::min<int64_t>(timeout, 1000000000000) * 1000000;
  for (;;) {
    int wait = -1;
    if (timeout >= 0) {
      int64_t left_ms = std::max<int64_t>(0, (deadline - MonoNs() + 999999) / 1000000);
      wait = static_cast<int>(std::min<int64_t>(left_ms, INT_MAX));
    }
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ThrowErrno(iso, "poll", errno);
    if (r > 0 && (p.revents & POLLNVAL)) return ThrowErrno(iso, "poll", EBADF);
    // POLLHUP/POLLERR count as readable: the read that follows reports EOF or the error.
    if (r > 0) return a.GetReturnValue().Set(true);
    if (timeout >= 0 && MonoNs() >= deadline) return a.GetReturnValue().Set(false);
  }
}

// ---------------------------------------------------------------------------------------
// plain fd I/O

void Read(const Args& a) {
  int fd;
  uint8_t* p;
  size_t n;
  if (!FdArg(a, 0, &fd) || !SliceArgs(a, 1, &p, &n)) return;
  ssize_t r;
  do r = read(fd, p, n);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return a.GetReturnValue().SetNull();
  if (r < 0) return ThrowErrno(a.GetIsolate(), "read", errno);
  a.GetReturnValue().Set(static_cast<double>(r));
}

void Write(const Args& a) {
  int fd;
  uint8_t* p;
  size_t n;
  if (!FdArg(a, 0, &fd) || !SliceArgs(a, 1, &p, &n)) return;
  ssize_t r;
  do r = write(fd, p, n);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return a.GetReturnValue().SetNull();
  if (r < 0) return ThrowErrno(a.GetIsolate(), "write", errno);
  a.GetReturnValue().Set(static_cast<double>(r));
}

// The iovecs for readv/writev from an array of Uint8Array (a vnet header, then the pages a
// frame lands in or leaves from). Up to 64 buffers live on the stack: the per-frame case.
class IovArg {
 public:
  bool Parse(const Args& a, int i, const char* syscall) {
    Isolate* iso = a.GetIsolate();
    Local<Context> ctx = iso->GetCurrentContext();
    if (!a[i]->IsArray()) {
      ThrowType(iso, "bufs must be an array of Uint8Array");
      return false;
    }
    Local<Array> arr = a[i].As<Array>();
    count_ = arr->Length();
    if (count_ > IOV_MAX) {
      char msg[64];
      snprintf(msg, sizeof msg, "too many buffers for %s", syscall);
      ThrowRange(iso, msg);
      return false;
    }
    if (count_ > kStack) {
      big_.resize(count_);
      v_ = big_.data();
    }
    for (uint32_t k = 0; k < count_; k++) {
      Local<Value> e;
      if (!arr->Get(ctx, k).ToLocal(&e)) return false;
      if (!e->IsArrayBufferView()) {
        ThrowType(iso, "bufs must be an array of Uint8Array");
        return false;
      }
      Local<ArrayBufferView> view = e.As<ArrayBufferView>();
      v_[k].iov_base = ViewData(view);
      v_[k].iov_len = view->ByteLength();
    }
    return true;
  }
  struct iovec* data() { return v_; }
  int count() const { return static_cast<int>(count_); }

 private:
  static constexpr uint32_t kStack = 64;
  struct iovec stack_[kStack];
  std::vector<struct iovec> big_;
  struct iovec* v_ = stack_;
  uint32_t count_ = 0;
};

// The result of a readv/writev on a non-blocking fd: bytes, null for EAGAIN, or a throw.
void IoResult(const Args& a, const char* syscall, ssize_t r) {
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return a.GetReturnValue().SetNull();
  if (r < 0) return ThrowErrno(a.GetIsolate(), syscall, errno);
  a.GetReturnValue().Set(static_cast<double>(r));
}

// readv/writev on a non-blocking fd, retried on EINTR; the result as IoResult gives it.
void VecIo(const Args& a, bool write, int fd, const struct iovec* v, int n) {
  ssize_t r;
  do r = write ? writev(fd, v, n) : readv(fd, v, n);
  while (r < 0 && errno == EINTR);
  IoResult(a, write ? "writev" : "readv", r);
}

void Writev(const Args& a) {
  int fd;
  IovArg iov;
  if (!FdArg(a, 0, &fd) || !iov.Parse(a, 1, "writev")) return;
  VecIo(a, true, fd, iov.data(), iov.count());
}

// readv into several buffers in one syscall (a vnet header, then the pages a frame lands in).
void Readv(const Args& a) {
  int fd;
  IovArg iov;
  if (!FdArg(a, 0, &fd) || !iov.Parse(a, 1, "readv")) return;
  VecIo(a, false, fd, iov.data(), iov.count());
}

// Scatter/gather I/O between an fd and spans of one big buffer (a guest's memory), named by
// offsets instead of views: the data path's per-frame case (a vnet header and up to 18 guest
// pages) without a typed array per page in JS, nor a property lookup per page here.
//   readvSegs(fd, head, mem, segs, n)          readv into [head, mem spans...]
//   writevSegs(fd, head, head2, mem, segs, n)  writev from [head, head2?, mem spans...]
// segs is a Float64Array of (offset, length) pairs within mem (guest memory may pass 2 GiB);
// every span is bounds-checked.
class SegIov {
 public:
  // Appends an optional header view (null/undefined: none).
  bool Head(const Args& a, int i) {
    if (a[i]->IsNullOrUndefined()) return true;
    if (!a[i]->IsArrayBufferView()) {
      ThrowType(a.GetIsolate(), "head must be a Uint8Array or null");
      return false;
    }
    Local<ArrayBufferView> v = a[i].As<ArrayBufferView>();
    Push(ViewData(v), v->ByteLength());
    return true;
  }
  bool Spans(const Args& a, int memArg, int segsArg, int nArg) {
    Isolate* iso = a.GetIsolate();
    if (!a[memArg]->IsArrayBufferView() || !a[segsArg]->IsFloat64Array() || !a[nArg]->IsUint32()) {
      ThrowType(iso, "usage: (mem: Uint8Array, segs: Float64Array, n: number)");
      return false;
    }
    Local<ArrayBufferView> mem = a[memArg].As<ArrayBufferView>();
    uint8_t* base = ViewData(mem);
    double memLen = static_cast<double>(mem->ByteLength());
    Local<v8::Float64Array> segs = a[segsArg].As<v8::Float64Array>();
    const double* s = reinterpret_cast<const double*>(ViewData(segs));
    uint32_t n = a[nArg].As<v8::Uint32>()->Value();
    if (static_cast<size_t>(n) * 2 > segs->Length()) {
      ThrowRange(iso, "segment count out of range");
      return false;
    }
    for (uint32_t k = 0; k < n; k++) {
      double off = s[2 * k], len = s[2 * k + 1];
      // NaN fails every comparison: the test is written so that it is refused too.
      if (!(off >= 0 && len >= 0 && off + len <= memLen)) {
        ThrowRange(iso, "segment outside the buffer");
        return false;
      }
      Push(base + static_cast<size_t>(off), static_cast<size_t>(len));
    }
    return true;
  }
  // readv/writev take at most IOV_MAX buffers (preadv/pwritev below go in pieces).
  bool FitsOneCall(const Args& a) {
    if (count_ <= IOV_MAX) return true;
    ThrowRange(a.GetIsolate(), "too many buffers for one readv/writev");
    return false;
  }
  struct iovec* data() { return count_ > kStack ? big_.data() : stack_; }
  int count() const { return static_cast<int>(count_); }

 private:
  void Push(void* p, size_t len) {
    if (count_ == kStack) big_.assign(stack_, stack_ + kStack);
    struct iovec v = {p, len};
    if (count_ >= kStack) big_.push_back(v);
    else stack_[count_] = v;
    count_++;
  }
  static constexpr size_t kStack = 72;
  struct iovec stack_[kStack];
  std::vector<struct iovec> big_;
  size_t count_ = 0;
};

void ReadvSegs(const Args& a) {
  int fd;
  SegIov iov;
  if (!FdArg(a, 0, &fd) || !iov.Head(a, 1) || !iov.Spans(a, 2, 3, 4) || !iov.FitsOneCall(a)) return;
  VecIo(a, false, fd, iov.data(), iov.count());
}

void WritevSegs(const Args& a) {
  int fd;
  SegIov iov;
  if (!FdArg(a, 0, &fd) || !iov.Head(a, 1) || !iov.Head(a, 2) || !iov.Spans(a, 3, 4, 5) || !iov.FitsOneCall(a)) return;
  VecIo(a, true, fd, iov.data(), iov.count());
}

// preadv/pwritev until every byte moved (or EOF, or an error): the disk side of blkback.
// Returns the bytes moved, or -errno if nothing could be.
ssize_t FullPosIo(bool write, int fd, struct iovec* iov, int cnt, off_t pos) {
  ssize_t total = 0;
  int i = 0;
  while (i < cnt) {
    ssize_t r;
    int m = std::min(cnt - i, IOV_MAX);
    do r = write ? pwritev(fd, iov + i, m, pos) : preadv(fd, iov + i, m, pos);
    while (r < 0 && errno == EINTR);
    if (r < 0) return total > 0 ? total : -errno;
    if (r == 0) break;
    total += r;
    pos += r;
    while (i < cnt && static_cast<size_t>(r) >= iov[i].iov_len) r -= static_cast<ssize_t>(iov[i++].iov_len);
    if (i < cnt && r > 0) {
      iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + r;
      iov[i].iov_len -= static_cast<size_t>(r);
    }
  }
  return total;
}

bool PosArg(const Args& a, int i, off_t* pos) {
  if (!a[i]->IsNumber()) {
    ThrowType(a.GetIsolate(), "position must be a number");
    return false;
  }
  double d = a[i].As<Number>()->Value();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != std::floor(d)) {
    ThrowRange(a.GetIsolate(), "position out of range");
    return false;
  }
  *pos = static_cast<off_t>(d);
  return true;
}

// Work for libuv's thread pool: a full preadv/pwritev of spans at a position (a disk
// request). The iovecs are copied when queued; `mem` is kept alive until the callback, which
// gets the bytes moved or -errno. The caller must leave the spans' bytes alone until then.
struct AsyncIo {
  uv_work_t req;
  Isolate* isolate;
  Global<Context> context;
  Global<Function> callback;
  Global<Value> keep;
  bool write;
  int fd;
  off_t pos = 0;
  std::vector<struct iovec> iov;
  ssize_t result = 0;
};

void AsyncIoWork(uv_work_t* req) {
  AsyncIo* w = static_cast<AsyncIo*>(req->data);
  w->result = FullPosIo(w->write, w->fd, w->iov.data(), static_cast<int>(w->iov.size()), w->pos);
}

void AsyncIoDone(uv_work_t* req, int status) {
  AsyncIo* w = static_cast<AsyncIo*>(req->data);
  Isolate* iso = w->isolate;
  {
    HandleScope scope(iso);
    Local<Context> ctx = w->context.Get(iso);
    Context::Scope context_scope(ctx);
    double r = status == UV_ECANCELED ? -ECANCELED : static_cast<double>(w->result);
    Local<Value> argv[1] = {Number::New(iso, r)};
    (void)node::MakeCallback(iso, ctx->Global(), w->callback.Get(iso), 1, argv, node::async_context{0, 0});
  }
  delete w;
}

void QueueAsyncIo(const Args& a, bool write, int fd, off_t pos, SegIov& iov, int memArg, int cbArg) {
  Isolate* iso = a.GetIsolate();
  if (!a[cbArg]->IsFunction()) return ThrowType(iso, "callback must be a function");
  AsyncIo* w = new AsyncIo();
  w->isolate = iso;
  w->context.Reset(iso, iso->GetCurrentContext());
  w->callback.Reset(iso, a[cbArg].As<Function>());
  w->keep.Reset(iso, a[memArg]);
  w->write = write;
  w->fd = fd;
  w->pos = pos;
  w->iov.assign(iov.data(), iov.data() + iov.count());
  w->req.data = w;
  int r = uv_queue_work(node::GetCurrentEventLoop(iso), &w->req, AsyncIoWork, AsyncIoDone);
  if (r != 0) {
    delete w;
    return ThrowErrno(iso, "uv_queue_work", -r);
  }
}

// preadvSegs / pwritevSegs(fd, mem, segs, n, pos): every byte of the spans from/to the file
// at pos, now; returns the bytes moved (fewer only at the end of the file) or throws.
void PosSegs(const Args& a, bool write) {
  int fd;
  off_t pos;
  SegIov iov;
  if (!FdArg(a, 0, &fd) || !iov.Spans(a, 1, 2, 3) || !PosArg(a, 4, &pos)) return;
  ssize_t r = FullPosIo(write, fd, iov.data(), iov.count(), pos);
  if (r < 0) return ThrowErrno(a.GetIsolate(), write ? "pwritev" : "preadv", static_cast<int>(-r));
  a.GetReturnValue().Set(static_cast<double>(r));
}
void PreadvSegs(const Args& a) { PosSegs(a, false); }
void PwritevSegs(const Args& a) { PosSegs(a, true); }

// preadvSegsAsync / pwritevSegsAsync(fd, mem, segs, n, pos, cb): the same on the thread
// pool; cb(bytes moved or -errno).
void PosSegsAsync(const Args& a, bool write) {
  int fd;
  off_t pos;
  SegIov iov;
  if (!FdArg(a, 0, &fd) || !iov.Spans(a, 1, 2, 3) || !PosArg(a, 4, &pos)) return;
  QueueAsyncIo(a, write, fd, pos, iov, 1, 5);
}
void PreadvSegsAsync(const Args& a) { PosSegsAsync(a, false); }
void PwritevSegsAsync(const Args& a) { PosSegsAsync(a, true); }

void Close(const Args& a) {
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  // On Linux the fd is released even when close reports EINTR: never retry.
  if (close(fd) < 0 && errno != EINTR) ThrowErrno(a.GetIsolate(), "close", errno);
}

bool FlagArg(const Args& a, int i, const char* name, bool* out) {
  if (!a[i]->IsBoolean()) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a boolean", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  *out = a[i]->IsTrue();
  return true;
}

// Sets or clears `bit` in the F_GETx/F_SETx flags of fd.
bool SetFdFlag(Isolate* iso, int fd, int get, int set, int bit, bool on) {
  int flags = fcntl(fd, get);
  if (flags < 0) {
    ThrowErrno(iso, "fcntl", errno);
    return false;
  }
  int want = on ? (flags | bit) : (flags & ~bit);
  if (want != flags && fcntl(fd, set, want) < 0) {
    ThrowErrno(iso, "fcntl", errno);
    return false;
  }
  return true;
}

void SetNonblocking(const Args& a) {
  int fd;
  bool on;
  if (!FdArg(a, 0, &fd) || !FlagArg(a, 1, "on", &on)) return;
  SetFdFlag(a.GetIsolate(), fd, F_GETFL, F_SETFL, O_NONBLOCK, on);
}

void SetCloexec(const Args& a) {
  int fd;
  bool on;
  if (!FdArg(a, 0, &fd) || !FlagArg(a, 1, "on", &on)) return;
  SetFdFlag(a.GetIsolate(), fd, F_GETFD, F_SETFD, FD_CLOEXEC, on);
}

void Dup(const Args& a) {
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) return ThrowErrno(a.GetIsolate(), "dup", errno);
  a.GetReturnValue().Set(r);
}

// ---------------------------------------------------------------------------------------
// unix sockets with SCM_RIGHTS

void SeqpacketPair(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
    return ThrowErrno(iso, "socketpair", errno);
  Local<Value> fds[2] = {Integer::New(iso, sv[0]), Integer::New(iso, sv[1])};
  a.GetReturnValue().Set(Array::New(iso, fds, 2));
}

union FdCmsg {  // control buffer for up to kMaxFdsPerMsg fds, correctly aligned
  char buf[CMSG_SPACE(sizeof(int) * kMaxFdsPerMsg)];
  struct cmsghdr align;
};

void SendMsg(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  int fd;
  uint8_t* data;
  size_t len;
  if (!FdArg(a, 0, &fd) || !BytesArg(a, 1, "buf", &data, &len)) return;
  if (!a[2]->IsArray()) return ThrowType(iso, "fds must be an array of numbers");
  Local<Array> arr = a[2].As<Array>();
  uint32_t nfds = arr->Length();
  if (nfds > kMaxFdsPerMsg) return ThrowRange(iso, "at most 16 fds per message");
  int fds[kMaxFdsPerMsg];
  for (uint32_t i = 0; i < nfds; i++) {
    Local<Value> v;
    if (!arr->Get(ctx, i).ToLocal(&v)) return;
    if (!v->IsInt32() || v.As<Integer>()->Value() < 0) return ThrowType(iso, "fds must be fds");
    fds[i] = static_cast<int>(v.As<Integer>()->Value());
  }
  struct iovec iov = {data, len};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  FdCmsg control;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t r;
  do r = sendmsg(fd, &msg, MSG_NOSIGNAL);  // a dead peer is an EPIPE, not a SIGPIPE
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return a.GetReturnValue().SetNull();
  if (r < 0) return ThrowErrno(iso, "sendmsg", errno);
  a.GetReturnValue().Set(static_cast<double>(r));
}

void RecvMsg(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  int fd;
  uint8_t* data;
  size_t len;
  if (!FdArg(a, 0, &fd) || !BytesArg(a, 1, "buf", &data, &len)) return;
  struct iovec iov = {data, len};
  FdCmsg control;
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t r;
  do r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return a.GetReturnValue().SetNull();
  if (r < 0) return ThrowErrno(iso, "recvmsg", errno);
  std::vector<int> fds;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const uint8_t* p = CMSG_DATA(c);
    for (size_t i = 0; i < n; i++) {
      int received;
      memcpy(&received, p + i * sizeof(int), sizeof(int));
      fds.push_back(received);
    }
  }
  // A truncated datagram or fd list means lost data: the protocol is broken, so say so
  // (and do not leak the fds that did arrive).
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (int f : fds) close(f);
    return ThrowErrno(iso, "recvmsg", EMSGSIZE);
  }
  Local<Array> list = Array::New(iso, static_cast<int>(fds.size()));
  for (size_t i = 0; i < fds.size(); i++)
    list->Set(ctx, static_cast<uint32_t>(i), Integer::New(iso, fds[i])).Check();
  Local<Object> res = Object::New(iso);
  res->Set(ctx, Str(iso, "bytes"), Number::New(iso, static_cast<double>(r))).Check();
  res->Set(ctx, Str(iso, "fds"), list).Check();
  a.GetReturnValue().Set(res);
}

// ---------------------------------------------------------------------------------------
// TAP

bool SetOffload(Isolate* iso, int fd, int64_t offloads) {
  if (ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(offloads)) < 0) {
    ThrowErrno(iso, "ioctl(TUNSETOFFLOAD)", errno);
    return false;
  }
  return true;
}

// TUNSETIFF(IFF_TAP|IFF_NO_PI[|IFF_VNET_HDR]) on an open /dev/net/tun fd, then with vnet
// headers TUNSETVNETHDRSZ(12) and TUNSETOFFLOAD. The interface is created in the network
// namespace of whoever OPENED the fd. On success `ifname` holds the kernel's name for it.
bool TapSetIff(Isolate* iso, int fd, const char* name, size_t name_len, bool vnet, int64_t offloads,
               char ifname[IFNAMSIZ]) {
  struct ifreq ifr = {};
  memcpy(ifr.ifr_name, name, name_len);  // "" lets the kernel pick tapN
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  int hdr = 12;  // struct virtio_net_hdr_mrg_rxbuf, what virtio-net with MRG_RXBUF uses
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    ThrowErrno(iso, "ioctl(TUNSETIFF)", errno);
    return false;
  }
  if (vnet && ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
    ThrowErrno(iso, "ioctl(TUNSETVNETHDRSZ)", errno);
    return false;
  }
  if (vnet && !SetOffload(iso, fd, offloads)) return false;
  memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
  ifname[IFNAMSIZ - 1] = 0;
  return true;
}

bool TapArgs(const Args& a, int i, std::vector<char>* name, bool* vnet, int64_t* offloads) {
  Isolate* iso = a.GetIsolate();
  if (!a[i]->IsString()) {
    ThrowType(iso, "name must be a string");
    return false;
  }
  String::Utf8Value n(iso, a[i]);
  if (n.length() >= IFNAMSIZ) {
    ThrowRange(iso, "interface name longer than 15 bytes");
    return false;
  }
  name->assign(*n, *n + n.length());
  return FlagArg(a, i + 1, "vnetHdr", vnet) && IntArg(a, i + 2, "offloads", 0, 0xffff, offloads);
}

Local<Object> TapResult(Isolate* iso, int fd, const char* ifname) {
  Local<Context> ctx = iso->GetCurrentContext();
  Local<Object> res = Object::New(iso);
  res->Set(ctx, Str(iso, "fd"), Integer::New(iso, fd)).Check();
  res->Set(ctx, Str(iso, "name"), Str(iso, ifname)).Check();
  return res;
}

void TapOpen(const Args& a) {
  Isolate* iso = a.GetIsolate();
  std::vector<char> name;
  bool vnet;
  int64_t offloads;
  if (!TapArgs(a, 0, &name, &vnet, &offloads)) return;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(iso, "open(/dev/net/tun)", errno);
  char ifname[IFNAMSIZ];
  if (!TapSetIff(iso, fd, name.data(), name.size(), vnet, offloads, ifname)) {
    close(fd);
    return;
  }
  a.GetReturnValue().Set(TapResult(iso, fd, ifname));
}

// tapAttach(fd, name, vnetHdr, offloads): the same on a /dev/net/tun fd opened elsewhere (a
// guest kernel gets them from its jailer, opened inside the guest's network namespace). The
// fd is made O_NONBLOCK | O_CLOEXEC; on failure it stays open and unattached.
void TapAttach(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int fd;
  std::vector<char> name;
  bool vnet;
  int64_t offloads;
  if (!FdArg(a, 0, &fd) || !TapArgs(a, 1, &name, &vnet, &offloads)) return;
  char ifname[IFNAMSIZ];
  if (!TapSetIff(iso, fd, name.data(), name.size(), vnet, offloads, ifname)) return;
  if (!SetFdFlag(iso, fd, F_GETFL, F_SETFL, O_NONBLOCK, true)) return;
  if (!SetFdFlag(iso, fd, F_GETFD, F_SETFD, FD_CLOEXEC, true)) return;
  a.GetReturnValue().Set(TapResult(iso, fd, ifname));
}

void TapSetOffload(const Args& a) {
  int fd;
  int64_t offloads;
  if (!FdArg(a, 0, &fd) || !IntArg(a, 1, "offloads", 0, 0xffff, &offloads)) return;
  SetOffload(a.GetIsolate(), fd, offloads);
}

// ---------------------------------------------------------------------------------------
// pseudo-terminals

bool MakeRawFd(Isolate* iso, int fd, struct termios* saved) {
  struct termios t;
  if (tcgetattr(fd, &t) < 0) {
    ThrowErrno(iso, "tcgetattr", errno);
    return false;
  }
  if (saved != nullptr) *saved = t;
  cfmakeraw(&t);
  if (tcsetattr(fd, TCSANOW, &t) < 0) {
    ThrowErrno(iso, "tcsetattr", errno);
    return false;
  }
  return true;
}

void Openpty(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  bool raw;
  if (!FlagArg(a, 0, "raw", &raw)) return;
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return ThrowErrno(iso, "posix_openpt", errno);
  char path[128];
  const char* failed = nullptr;
  int slave = -1;
  if (grantpt(master) < 0)
    failed = "grantpt";
  else if (unlockpt(master) < 0)
    failed = "unlockpt";
  else if ((errno = ptsname_r(master, path, sizeof path)) != 0)
    failed = "ptsname";
  else if ((slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
    failed = "open(pts)";
  else if (fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) < 0)
    failed = "fcntl";
  if (failed != nullptr) {
    int err = errno;
    close(master);
    if (slave >= 0) close(slave);
    return ThrowErrno(iso, failed, err);
  }
  if (raw && !MakeRawFd(iso, slave, nullptr)) {
    close(master);
    close(slave);
    return;
  }
  Local<Object> res = Object::New(iso);
  res->Set(ctx, Str(iso, "master"), Integer::New(iso, master)).Check();
  res->Set(ctx, Str(iso, "slave"), Integer::New(iso, slave)).Check();
  res->Set(ctx, Str(iso, "path"), Str(iso, path)).Check();
  a.GetReturnValue().Set(res);
}

void SetWinsize(const Args& a) {
  int fd;
  int64_t rows, cols;
  if (!FdArg(a, 0, &fd) || !IntArg(a, 1, "rows", 0, 65535, &rows) ||
      !IntArg(a, 2, "cols", 0, 65535, &cols))
    return;
  struct winsize ws = {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) ThrowErrno(a.GetIsolate(), "ioctl(TIOCSWINSZ)", errno);
}

void GetWinsize(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return ThrowErrno(iso, "ioctl(TIOCGWINSZ)", errno);
  Local<Object> res = Object::New(iso);
  res->Set(ctx, Str(iso, "rows"), Integer::New(iso, ws.ws_row)).Check();
  res->Set(ctx, Str(iso, "cols"), Integer::New(iso, ws.ws_col)).Check();
  a.GetReturnValue().Set(res);
}

void MakeRaw(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int fd;
  if (!FdArg(a, 0, &fd)) return;
  struct termios saved;
  if (!MakeRawFd(iso, fd, &saved)) return;
  // The saved state is the struct termios itself, as opaque bytes.
  Local<ArrayBuffer> ab = ArrayBuffer::New(iso, sizeof saved);
  memcpy(ab->Data(), &saved, sizeof saved);
  a.GetReturnValue().Set(Uint8Array::New(ab, 0, sizeof saved));
}

void RestoreTermios(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int fd;
  uint8_t* data;
  size_t len;
  if (!FdArg(a, 0, &fd) || !BytesArg(a, 1, "saved", &data, &len)) return;
  if (len != sizeof(struct termios)) return ThrowRange(iso, "saved is not a makeRaw() state");
  struct termios t;
  memcpy(&t, data, sizeof t);
  if (tcsetattr(fd, TCSANOW, &t) < 0) ThrowErrno(iso, "tcsetattr", errno);
}

// ---------------------------------------------------------------------------------------
// mounts (a guest kernel mounting its FUSE-served disks inside its own mount namespace)

// mount(source, target, fstype, flags, data?)
void Mount(const Args& a) {
  Isolate* iso = a.GetIsolate();
  if (!a[0]->IsString() || !a[1]->IsString() || !a[2]->IsString())
    return ThrowType(iso, "source, target and fstype must be strings");
  String::Utf8Value src(iso, a[0]), dst(iso, a[1]), type(iso, a[2]);
  int64_t flags, zero = 0;
  if (!IntArg(a, 3, "flags", 0, 4294967295.0, &flags, &zero)) return;
  std::vector<char> data;
  if (!a[4]->IsUndefined() && !a[4]->IsNull()) {
    if (!a[4]->IsString()) return ThrowType(iso, "data must be a string");
    String::Utf8Value d(iso, a[4]);
    data.assign(*d, *d + d.length() + 1);
  }
  if (mount(*src, *dst, *type, static_cast<unsigned long>(flags),
            data.empty() ? nullptr : data.data()) < 0)
    ThrowErrno(iso, "mount", errno);
}

// umount2(target, flags?)
void Umount2(const Args& a) {
  Isolate* iso = a.GetIsolate();
  if (!a[0]->IsString()) return ThrowType(iso, "target must be a string");
  String::Utf8Value dst(iso, a[0]);
  int64_t flags, zero = 0;
  if (!IntArg(a, 1, "flags", 0, INT_MAX, &flags, &zero)) return;
  if (umount2(*dst, static_cast<int>(flags)) < 0) ThrowErrno(iso, "umount2", errno);
}

// ---------------------------------------------------------------------------------------
// processes

void Kill(const Args& a) {
  int64_t pid, sig;
  if (!IntArg(a, 0, "pid", INT_MIN, INT_MAX, &pid) || !IntArg(a, 1, "sig", 0, 64, &sig)) return;
  if (kill(static_cast<pid_t>(pid), static_cast<int>(sig)) == 0)
    return a.GetReturnValue().Set(true);
  if (errno == ESRCH) return a.GetReturnValue().Set(false);
  ThrowErrno(a.GetIsolate(), "kill", errno);
}

// sched_setaffinity(tid, cpus): which CPUs one thread may run on (0: the calling thread).
// False when the thread is gone (ESRCH), as a task can exit between listing and setting.
void SetAffinity(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int64_t tid;
  if (!IntArg(a, 0, "tid", 0, INT_MAX, &tid)) return;
  if (!a[1]->IsArray()) return ThrowType(iso, "cpus must be an array of CPU numbers");
  Local<Array> list = a[1].As<Array>();
  Local<Context> ctx = iso->GetCurrentContext();
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < list->Length(); i++) {
    Local<Value> v;
    if (!list->Get(ctx, i).ToLocal(&v) || !v->IsNumber()) return ThrowType(iso, "cpus must be an array of CPU numbers");
    double cpu = v.As<Number>()->Value();
    if (!(cpu >= 0 && cpu < CPU_SETSIZE) || cpu != static_cast<int>(cpu)) return ThrowType(iso, "a CPU number is out of range");
    CPU_SET(static_cast<int>(cpu), &set);
  }
  if (CPU_COUNT(&set) == 0) return ThrowType(iso, "cpus must name at least one CPU");
  if (sched_setaffinity(static_cast<pid_t>(tid), sizeof set, &set) == 0) return a.GetReturnValue().Set(true);
  if (errno == ESRCH) return a.GetReturnValue().Set(false);
  ThrowErrno(iso, "sched_setaffinity", errno);
}

// Collect one exited child by pid without blocking: the guest kernel is PID 1 of its domain
// and adopts every orphan, which Linux's init reaps. By pid, so libuv's own children (whose
// exit statuses it waits for) are never taken from it. True when a zombie was collected.
void Reap(const Args& a) {
  int64_t pid;
  if (!IntArg(a, 0, "pid", 1, INT_MAX, &pid)) return;
  int status;
  pid_t r = waitpid(static_cast<pid_t>(pid), &status, WNOHANG);
  if (r > 0) return a.GetReturnValue().Set(true);
  if (r == 0 || errno == ECHILD) return a.GetReturnValue().Set(false);
  ThrowErrno(a.GetIsolate(), "waitpid", errno);
}

// ---------------------------------------------------------------------------------------

void SetFn(Local<Context> ctx, Local<Object> target, const char* name, v8::FunctionCallback fn,
           Local<Value> data = Local<Value>()) {
  Isolate* iso = ctx->GetIsolate();
  Local<Function> f = FunctionTemplate::New(iso, fn, data)->GetFunction(ctx).ToLocalChecked();
  f->SetName(Str(iso, name));
  target->Set(ctx, Str(iso, name), f).Check();
}

void SetInt(Local<Context> ctx, Local<Object> target, const char* name, int value) {
  Isolate* iso = ctx->GetIsolate();
  target->Set(ctx, Str(iso, name), Integer::New(iso, value)).Check();
}

}  // namespace

// native/kvm.cc: the KVM vCPU engine, exported as exports.kvm.
namespace xenode_kvm {
void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);
}
// native/uring.cc: blkback's disk I/O on io_uring with registered memory, as exports.uring.
namespace xenode_uring {
void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);
}

NODE_MODULE_INIT(/* exports, module, context */) {
  xenode_kvm::Init(context, exports);
  xenode_uring::Init(context, exports);
  Isolate* iso = context->GetIsolate();

  // FdWatcher objects: one internal field holding the Watcher*; the signature makes V8
  // reject a method called on anything else.
  Local<FunctionTemplate> watcher = FunctionTemplate::New(iso, WatcherConstruct);
  watcher->SetClassName(Str(iso, "FdWatcher"));
  watcher->InstanceTemplate()->SetInternalFieldCount(1);
  Local<Signature> sig = Signature::New(iso, watcher);
  struct {
    const char* name;
    v8::FunctionCallback fn;
  } methods[] = {{"start", WatcherStart}, {"stop", WatcherStop}, {"close", WatcherClose}};
  for (auto& m : methods)
    watcher->PrototypeTemplate()->Set(
        Str(iso, m.name), FunctionTemplate::New(iso, m.fn, Local<Value>(), sig));
  Local<Function> watcher_ctor = watcher->GetFunction(context).ToLocalChecked();

  SetFn(context, exports, "memfdCreate", MemfdCreate);
  SetFn(context, exports, "hugeRamCreate", HugeRamCreate);
  SetFn(context, exports, "mapShared", MapShared);
  SetFn(context, exports, "fdSize", FdSize);
  SetFn(context, exports, "futexWait", FutexWait);
  SetFn(context, exports, "busyPoll", BusyPoll);
  SetFn(context, exports, "futexWake", FutexWake);
  SetFn(context, exports, "eventfdCreate", EventfdCreate);
  SetFn(context, exports, "eventfdWrite", EventfdWrite);
  SetFn(context, exports, "eventfdRead", EventfdRead);
  SetFn(context, exports, "watchFd", WatchFd, watcher_ctor);
  SetFn(context, exports, "pollReadable", PollReadable);
  SetFn(context, exports, "read", Read);
  SetFn(context, exports, "write", Write);
  SetFn(context, exports, "writev", Writev);
  SetFn(context, exports, "readv", Readv);
  SetFn(context, exports, "readvSegs", ReadvSegs);
  SetFn(context, exports, "writevSegs", WritevSegs);
  SetFn(context, exports, "preadvSegs", PreadvSegs);
  SetFn(context, exports, "pwritevSegs", PwritevSegs);
  SetFn(context, exports, "preadvSegsAsync", PreadvSegsAsync);
  SetFn(context, exports, "pwritevSegsAsync", PwritevSegsAsync);
  SetFn(context, exports, "close", Close);
  SetFn(context, exports, "setNonblocking", SetNonblocking);
  SetFn(context, exports, "setCloexec", SetCloexec);
  SetFn(context, exports, "dup", Dup);
  SetFn(context, exports, "seqpacketPair", SeqpacketPair);
  SetFn(context, exports, "sendMsg", SendMsg);
  SetFn(context, exports, "recvMsg", RecvMsg);
  SetFn(context, exports, "tapOpen", TapOpen);
  SetFn(context, exports, "tapSetOffload", TapSetOffload);
  SetFn(context, exports, "tapAttach", TapAttach);
  SetFn(context, exports, "openpty", Openpty);
  SetFn(context, exports, "setWinsize", SetWinsize);
  SetFn(context, exports, "getWinsize", GetWinsize);
  SetFn(context, exports, "makeRaw", MakeRaw);
  SetFn(context, exports, "restoreTermios", RestoreTermios);
  SetFn(context, exports, "kill", Kill);
  SetFn(context, exports, "setAffinity", SetAffinity);
  SetFn(context, exports, "reap", Reap);
  SetFn(context, exports, "mount", Mount);
  SetFn(context, exports, "umount2", Umount2);

  SetInt(context, exports, "READABLE", UV_READABLE);
  SetInt(context, exports, "WRITABLE", UV_WRITABLE);
  SetInt(context, exports, "TUN_F_CSUM", TUN_F_CSUM);
  SetInt(context, exports, "TUN_F_TSO4", TUN_F_TSO4);
  SetInt(context, exports, "TUN_F_TSO6", TUN_F_TSO6);
  SetInt(context, exports, "TUN_F_TSO_ECN", TUN_F_TSO_ECN);
  SetInt(context, exports, "MS_RDONLY", MS_RDONLY);
  SetInt(context, exports, "MS_NOSUID", MS_NOSUID);
  SetInt(context, exports, "MS_NODEV", MS_NODEV);
  SetInt(context, exports, "MS_NOEXEC", MS_NOEXEC);
  SetInt(context, exports, "MS_BIND", MS_BIND);
  SetInt(context, exports, "MNT_DETACH", MNT_DETACH);
}
