// Disk I/O for blkback through io_uring with the frontend's memory registered once:
// exports.uring in xenode.node (see native/index.ts, UringAddon, and docs/block.md).
//
// Why. blkback reads and writes a guest's granted pages straight from and to the disk
// (O_DIRECT). With preadv/pwritev every request pins its pages again (get_user_pages, ~70% of
// the I/O thread's time for a 1 MiB request) and goes through libuv's thread pool and back (two
// more wake-ups). Here the guest's whole memory is registered as one fixed buffer when the ring
// opens, so it is pinned once; IORING_OP_READV_FIXED / WRITEV_FIXED (Linux 6.15) then move
// any spans of it with no pinning, submitted from the event loop itself; completions signal
// an eventfd the loop watches.
//
//   open(entries, mem[, done]) -> { handle, eventfd }   throws if the kernel lacks what we need;
//                       with `done`, the memory is registered (pinned: a guest's whole RAM
//                       takes a few hundred ms) on libuv's thread pool, and done(null) or
//                       done(Error) says when the ring may be used
//   submit(handle, write, fd, segs, n, pos, token) queue; spans = (offset, length) pairs within mem
//   flush(handle)                                 hand what is queued to the kernel, at once
//   reap(handle, out: Float64Array) -> count      (token, result) pairs: bytes or -errno
//   close(handle)
//
// A ring is used from one thread (the one that opened it); the registry is locked only so
// that handles stay valid if a worker thread loads the addon too.

#include <node.h>
#include <uv.h>

#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "js-helpers.h"

namespace xenode_uring {

void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);

namespace {

using v8::Context;
using v8::Float64Array;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::Value;
using xenode_js::SetFn;
using xenode_js::Str;
using xenode_js::ThrowErrno;
using xenode_js::ThrowRange;
using xenode_js::ThrowType;
using xenode_js::ViewData;
using Args = v8::FunctionCallbackInfo<Value>;

// Vectored I/O on registered buffers: Linux 6.15 (older uapi headers do not name them).
constexpr uint8_t kOpReadvFixed = 60;
constexpr uint8_t kOpWritevFixed = 61;
// More spans than this in one request are refused (a 1 MiB blkif request has at most 256).
constexpr uint32_t kMaxSpans = 1024;

int Setup(unsigned entries, struct io_uring_params* p) { return static_cast<int>(syscall(__NR_io_uring_setup, entries, p)); }
int Enter(int fd, unsigned toSubmit) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, toSubmit, 0, 0, nullptr, 0));
}
int Register(int fd, unsigned op, void* arg, unsigned n) { return static_cast<int>(syscall(__NR_io_uring_register, fd, op, arg, n)); }

struct Ring {
  int fd = -1;
  int efd = -1;
  void* sqMap = MAP_FAILED;
  size_t sqMapLen = 0;
  void* cqMap = MAP_FAILED;
  size_t cqMapLen = 0;
  struct io_uring_sqe* sqes = static_cast<struct io_uring_sqe*>(MAP_FAILED);
  size_t sqesLen = 0;
  uint32_t* sqTail = nullptr;
  uint32_t sqMask = 0;
  uint32_t* sqArray = nullptr;
  uint32_t* cqHead = nullptr;
  uint32_t* cqTail = nullptr;
  uint32_t cqMask = 0;
  struct io_uring_cqe* cqes = nullptr;
  // The registered buffer (index 0): the frontend's memory as this process maps it.
  uint8_t* base = nullptr;
  size_t len = 0;
  v8::Global<Value> keep;
  // Per request in flight: its iovecs (kept until completion) and the caller's token.
  std::vector<std::vector<struct iovec>> iovs;
  std::vector<double> tokens;
  std::vector<uint32_t> freeSlots;
  // SQEs queued that io_uring_enter has not taken yet (it said EAGAIN/EBUSY).
  uint32_t unsubmitted = 0;

  ~Ring() {
    if (fd >= 0) close(fd);  // in-flight requests finish in the kernel, then pins drop
    if (efd >= 0) close(efd);
    if (sqes != MAP_FAILED) munmap(sqes, sqesLen);
    if (cqMap != MAP_FAILED && cqMap != sqMap) munmap(cqMap, cqMapLen);
    if (sqMap != MAP_FAILED) munmap(sqMap, sqMapLen);
  }
};

std::mutex registryMu;
std::vector<Ring*> registry;

Ring* Lookup(const Args& a, int i) {
  if (!a[i]->IsUint32()) {
    ThrowType(a.GetIsolate(), "handle must be a ring handle");
    return nullptr;
  }
  uint32_t h = a[i].As<v8::Uint32>()->Value();
  std::lock_guard<std::mutex> g(registryMu);
  if (h >= registry.size() || registry[h] == nullptr) {
    ThrowRange(a.GetIsolate(), "no such ring (closed?)");
    return nullptr;
  }
  return registry[h];
}

// Both vectored fixed-buffer operations are known to this kernel.
bool Supported(int fd) {
  const unsigned nops = 256;
  std::vector<uint8_t> buf(sizeof(struct io_uring_probe) + nops * sizeof(struct io_uring_probe_op), 0);
  auto* probe = reinterpret_cast<struct io_uring_probe*>(buf.data());
  if (Register(fd, IORING_REGISTER_PROBE, probe, nops) < 0) return false;
  auto ok = [&](uint8_t op) { return probe->ops_len > op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED); };
  return ok(kOpReadvFixed) && ok(kOpWritevFixed);
}

// The registration of a ring's memory, on libuv's thread pool (open with a callback). The
// caller must not close the ring or use it for I/O before the callback.
struct RegisterWork {
  uv_work_t req;
  Isolate* isolate;
  v8::Global<Context> context;
  v8::Global<v8::Function> callback;
  int fd;
  uint8_t* base;
  size_t len;
  int err = 0;
};

void RegisterWorkRun(uv_work_t* req) {
  auto* w = static_cast<RegisterWork*>(req->data);
  struct iovec whole = {w->base, w->len};
  w->err = Register(w->fd, IORING_REGISTER_BUFFERS, &whole, 1) < 0 ? errno : 0;
}

void RegisterWorkDone(uv_work_t* req, int status) {
  auto* w = static_cast<RegisterWork*>(req->data);
  Isolate* iso = w->isolate;
  {
    v8::HandleScope scope(iso);
    Local<Context> ctx = w->context.Get(iso);
    Context::Scope context_scope(ctx);
    int err = status == UV_ECANCELED ? ECANCELED : w->err;
    Local<Value> argv[1] = {v8::Null(iso)};
    if (err) {
      std::string msg = std::string("io_uring_register buffers: ") + strerror(err);
      argv[0] = v8::Exception::Error(Str(iso, msg.c_str()));
    }
    (void)node::MakeCallback(iso, ctx->Global(), w->callback.Get(iso), 1, argv, node::async_context{0, 0});
  }
  delete w;
}

// open(entries, mem[, done]): a ring with `mem` registered as its one fixed buffer.
void Open(const Args& a) {
  Isolate* iso = a.GetIsolate();
  if (!a[0]->IsUint32() || a[0].As<v8::Uint32>()->Value() < 1 || a[0].As<v8::Uint32>()->Value() > 4096) {
    return ThrowRange(iso, "entries must be an integer in [1, 4096]");
  }
  if (!a[1]->IsArrayBufferView()) return ThrowType(iso, "mem must be a Uint8Array");
  unsigned entries = a[0].As<v8::Uint32>()->Value();
  Local<v8::ArrayBufferView> mem = a[1].As<v8::ArrayBufferView>();

  auto* r = new Ring();
  auto fail = [&](const char* what, int err) {
    delete r;
    ThrowErrno(iso, what, err);
  };
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  r->fd = Setup(entries, &p);
  if (r->fd < 0) return fail("io_uring_setup", errno);
  if (!Supported(r->fd)) return fail("io_uring READV_FIXED/WRITEV_FIXED", EOPNOTSUPP);

  r->sqMapLen = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
  r->cqMapLen = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single) r->sqMapLen = r->cqMapLen = std::max(r->sqMapLen, r->cqMapLen);
  r->sqMap = mmap(nullptr, r->sqMapLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
  if (r->sqMap == MAP_FAILED) return fail("mmap io_uring sq", errno);
  r->cqMap = single ? r->sqMap : mmap(nullptr, r->cqMapLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
  if (r->cqMap == MAP_FAILED) return fail("mmap io_uring cq", errno);
  r->sqesLen = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqes = static_cast<struct io_uring_sqe*>(mmap(nullptr, r->sqesLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES));
  if (r->sqes == MAP_FAILED) return fail("mmap io_uring sqes", errno);

  auto* sq = static_cast<uint8_t*>(r->sqMap);
  auto* cq = static_cast<uint8_t*>(r->cqMap);
  r->sqTail = reinterpret_cast<uint32_t*>(sq + p.sq_off.tail);
  r->sqMask = *reinterpret_cast<uint32_t*>(sq + p.sq_off.ring_mask);
  r->sqArray = reinterpret_cast<uint32_t*>(sq + p.sq_off.array);
  r->cqHead = reinterpret_cast<uint32_t*>(cq + p.cq_off.head);
  r->cqTail = reinterpret_cast<uint32_t*>(cq + p.cq_off.tail);
  r->cqMask = *reinterpret_cast<uint32_t*>(cq + p.cq_off.ring_mask);
  r->cqes = reinterpret_cast<struct io_uring_cqe*>(cq + p.cq_off.cqes);

  // Pin the memory once (root is not held to RLIMIT_MEMLOCK; others may be refused: ENOMEM).
  r->base = ViewData(mem);
  r->len = mem->ByteLength();
  r->keep.Reset(iso, a[1]);
  bool async = a.Length() > 2 && a[2]->IsFunction();
  if (!async) {
    struct iovec whole = {r->base, r->len};
    if (Register(r->fd, IORING_REGISTER_BUFFERS, &whole, 1) < 0) return fail("io_uring_register buffers", errno);
  }

  r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->efd < 0) return fail("eventfd", errno);
  if (Register(r->fd, IORING_REGISTER_EVENTFD, &r->efd, 1) < 0) return fail("io_uring_register eventfd", errno);

  // At most sq_entries requests in flight: the completion queue (twice that) cannot overflow.
  r->iovs.resize(p.sq_entries);
  r->tokens.resize(p.sq_entries, 0);
  for (uint32_t s = p.sq_entries; s-- > 0;) r->freeSlots.push_back(s);

  uint32_t handle;
  {
    std::lock_guard<std::mutex> g(registryMu);
    handle = static_cast<uint32_t>(registry.size());
    for (uint32_t h = 0; h < registry.size(); h++) {
      if (registry[h] == nullptr) {
        handle = h;
        break;
      }
    }
    if (handle == registry.size()) registry.push_back(r);
    else registry[handle] = r;
  }
  if (async) {
    auto* w = new RegisterWork();
    w->isolate = iso;
    w->context.Reset(iso, iso->GetCurrentContext());
    w->callback.Reset(iso, a[2].As<v8::Function>());
    w->fd = r->fd;
    w->base = r->base;
    w->len = r->len;
    w->req.data = w;
    int q = uv_queue_work(node::GetCurrentEventLoop(iso), &w->req, RegisterWorkRun, RegisterWorkDone);
    if (q != 0) {
      delete w;
      std::lock_guard<std::mutex> g(registryMu);
      registry[handle] = nullptr;
      delete r;
      return ThrowErrno(iso, "uv_queue_work", -q);
    }
  }
  Local<Context> ctx = iso->GetCurrentContext();
  Local<Object> o = Object::New(iso);
  o->Set(ctx, Str(iso, "handle"), v8::Integer::NewFromUnsigned(iso, handle)).Check();
  o->Set(ctx, Str(iso, "eventfd"), v8::Integer::New(iso, r->efd)).Check();
  o->Set(ctx, Str(iso, "entries"), v8::Integer::NewFromUnsigned(iso, p.sq_entries)).Check();
  a.GetReturnValue().Set(o);
}

// Hands queued SQEs to the kernel; what it cannot take now (EAGAIN/EBUSY) stays queued for
// the next call. Returns 0 or an errno.
int Flush(Ring* r) {
  while (r->unsubmitted > 0) {
    int n = Enter(r->fd, r->unsubmitted);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EBUSY) return 0;
      return errno;
    }
    r->unsubmitted -= static_cast<uint32_t>(std::min<int>(n, static_cast<int>(r->unsubmitted)));
    if (n == 0) break;
  }
  return 0;
}

// submit(handle, write, fd, segs, n, pos, token)
void Submit(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Ring* r = Lookup(a, 0);
  if (!r) return;
  if (!a[1]->IsBoolean() || !a[2]->IsInt32() || !a[3]->IsFloat64Array() || !a[4]->IsUint32() || !a[5]->IsNumber() || !a[6]->IsNumber()) {
    return ThrowType(iso, "usage: submit(handle, write, fd, segs: Float64Array, n, pos, token)");
  }
  bool write = a[1].As<v8::Boolean>()->Value();
  int fd = a[2].As<v8::Int32>()->Value();
  Local<Float64Array> segs = a[3].As<Float64Array>();
  uint32_t n = a[4].As<v8::Uint32>()->Value();
  double pos = a[5].As<Number>()->Value();
  double token = a[6].As<Number>()->Value();
  if (fd < 0) return ThrowRange(iso, "fd must be >= 0");
  if (n == 0 || n > kMaxSpans || static_cast<size_t>(n) * 2 > segs->Length()) return ThrowRange(iso, "segment count out of range");
  if (!(pos >= 0 && pos <= 9007199254740991.0) || pos != std::floor(pos)) return ThrowRange(iso, "position out of range");
  if (r->freeSlots.empty()) return ThrowErrno(iso, "io_uring submit", EBUSY);

  const double* s = reinterpret_cast<const double*>(ViewData(segs));
  uint32_t slot = r->freeSlots.back();
  std::vector<struct iovec>& iov = r->iovs[slot];
  iov.resize(n);
  const double memLen = static_cast<double>(r->len);
  for (uint32_t k = 0; k < n; k++) {
    double off = s[2 * k], len = s[2 * k + 1];
    // NaN fails every comparison: the test is written so that it is refused too.
    if (!(off >= 0 && len > 0 && off + len <= memLen)) return ThrowRange(iso, "segment outside the registered memory");
    iov[k].iov_base = r->base + static_cast<size_t>(off);
    iov[k].iov_len = static_cast<size_t>(len);
  }
  r->freeSlots.pop_back();
  r->tokens[slot] = token;

  uint32_t tail = *r->sqTail;  // only we write it
  uint32_t idx = tail & r->sqMask;
  struct io_uring_sqe* sqe = &r->sqes[idx];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = write ? kOpWritevFixed : kOpReadvFixed;
  sqe->fd = fd;
  sqe->addr = reinterpret_cast<uint64_t>(iov.data());
  sqe->len = n;
  sqe->off = static_cast<uint64_t>(pos);
  sqe->buf_index = 0;
  sqe->user_data = slot;
  r->sqArray[idx] = idx;
  __atomic_store_n(r->sqTail, tail + 1, __ATOMIC_RELEASE);
  r->unsubmitted++;
}

// flush(handle): hand every queued request to the kernel with one io_uring_enter. Requests
// queued in one pass over a blkif ring go to the disk together: one plug, one doorbell for
// the device, where a system call each made dom0's thread pay a device kick per 4 KiB read.
// Returns how many stay queued (the kernel said EAGAIN/EBUSY or took none): the caller must
// flush again later, as nothing else may come to do it.
void FlushRing(const Args& a) {
  Ring* r = Lookup(a, 0);
  if (!r) return;
  int err = Flush(r);
  if (err) return ThrowErrno(a.GetIsolate(), "io_uring_enter", err);
  a.GetReturnValue().Set(static_cast<double>(r->unsubmitted));
}

// reap(handle, out): completed requests as (token, bytes or -errno) pairs; returns how many.
void Reap(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Ring* r = Lookup(a, 0);
  if (!r) return;
  if (!a[1]->IsFloat64Array()) return ThrowType(iso, "out must be a Float64Array");
  Local<Float64Array> outArr = a[1].As<Float64Array>();
  double* out = reinterpret_cast<double*>(ViewData(outArr));
  size_t room = outArr->Length() / 2;
  uint32_t head = *r->cqHead;
  uint32_t tail = __atomic_load_n(r->cqTail, __ATOMIC_ACQUIRE);
  size_t got = 0;
  while (head != tail && got < room) {
    const struct io_uring_cqe* c = &r->cqes[head & r->cqMask];
    uint64_t slot = c->user_data;
    if (slot < r->tokens.size()) {
      out[2 * got] = r->tokens[slot];
      out[2 * got + 1] = c->res;
      got++;
      r->freeSlots.push_back(static_cast<uint32_t>(slot));
    }
    head++;
  }
  __atomic_store_n(r->cqHead, head, __ATOMIC_RELEASE);
  int err = Flush(r);
  if (err) return ThrowErrno(iso, "io_uring_enter", err);
  a.GetReturnValue().Set(static_cast<double>(got));
}

void CloseRing(const Args& a) {
  Ring* r = Lookup(a, 0);
  if (!r) return;
  {
    std::lock_guard<std::mutex> g(registryMu);
    registry[a[0].As<v8::Uint32>()->Value()] = nullptr;
  }
  delete r;
}

}  // namespace

void Init(Local<Context> context, Local<Object> exports) {
  Isolate* iso = context->GetIsolate();
  Local<Object> u = Object::New(iso);
  SetFn(context, u, "open", Open);
  SetFn(context, u, "submit", Submit);
  SetFn(context, u, "flush", FlushRing);
  SetFn(context, u, "reap", Reap);
  SetFn(context, u, "close", CloseRing);
  exports->Set(context, Str(iso, "uring"), u).Check();
}

}  // namespace xenode_uring
