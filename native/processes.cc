// Processes: signals, CPU affinity, and reaping a domain's orphans.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "addon.h"

namespace xenode_addon {
namespace {

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

// PR_SET_CHILD_SUBREAPER: orphans among this process's descendants come to it, not to the
// host's init (which in a container may never reap them). The hypervisor sets it so that a
// dead dom0's stub domains stay its descendants (hypervisor/orphan-reaper.ts).
void SetChildSubreaper(const Args& a) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) ThrowErrno(a.GetIsolate(), "prctl(PR_SET_CHILD_SUBREAPER)", errno);
}

}  // namespace

void InitProcesses(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"kill", Kill},
      {"setAffinity", SetAffinity},
      {"reap", Reap},
      {"setChildSubreaper", SetChildSubreaper},
  });
}

}  // namespace xenode_addon
