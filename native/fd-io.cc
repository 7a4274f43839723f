// Plain fd I/O: read/write, readv/writev from views or spans of guest memory, positioned
// disk I/O (in place or on the thread pool), and fd flags.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <vector>

#include "addon.h"

namespace xenode_addon {
namespace {

// The result of a read/write on a non-blocking fd: bytes, null for EAGAIN, or a throw.
void IoResult(const Args& a, const char* syscall, ssize_t r) {
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return a.GetReturnValue().SetNull();
  if (r < 0) return ThrowErrno(a.GetIsolate(), syscall, errno);
  a.GetReturnValue().Set(static_cast<double>(r));
}

// read/write(fd, buf, offset, length), retried on EINTR.
void PlainIo(const Args& a, bool out) {
  int fd;
  uint8_t* p;
  size_t n;
  if (!FdArg(a, 0, &fd) || !SliceArgs(a, 1, &p, &n)) return;
  ssize_t r;
  do r = out ? write(fd, p, n) : read(fd, p, n);
  while (r < 0 && errno == EINTR);
  IoResult(a, out ? "write" : "read", r);
}

void Read(const Args& a) { PlainIo(a, false); }
void Write(const Args& a) { PlainIo(a, true); }

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

}  // namespace

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

void InitFdIo(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"read", Read},
      {"write", Write},
      {"writev", Writev},
      {"readv", Readv},
      {"readvSegs", ReadvSegs},
      {"writevSegs", WritevSegs},
      {"preadvSegs", PreadvSegs},
      {"pwritevSegs", PwritevSegs},
      {"preadvSegsAsync", PreadvSegsAsync},
      {"pwritevSegsAsync", PwritevSegsAsync},
      {"close", Close},
      {"setNonblocking", SetNonblocking},
      {"setCloexec", SetCloexec},
      {"dup", Dup},
  });
}

}  // namespace xenode_addon
