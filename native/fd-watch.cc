// Watching fds: watchFd, a uv_poll handle on the calling thread's loop wrapped in a small JS
// object, and pollReadable, a bounded blocking wait for one fd.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <uv.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <algorithm>

#include "addon.h"

namespace xenode_addon {
namespace {

// watchFd's lifetime rules:
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

}  // namespace

void InitFdWatch(Local<Context> context, Local<Object> exports) {
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

  SetFn(context, exports, "watchFd", WatchFd, watcher_ctor);
  SetFn(context, exports, "pollReadable", PollReadable);
  SetInts(context, exports, {
      {"READABLE", UV_READABLE},
      {"WRITABLE", UV_WRITABLE},
  });
}

}  // namespace xenode_addon
