// Unix sockets with SCM_RIGHTS: the seqpacket pairs that carry messages and fds between
// the hypervisor, dom0 and domains.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "addon.h"

namespace xenode_addon {
namespace {

constexpr int kMaxFdsPerMsg = 16;

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

}  // namespace

void InitUnixSockets(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"seqpacketPair", SeqpacketPair},
      {"sendMsg", SendMsg},
      {"recvMsg", RecvMsg},
  });
}

}  // namespace xenode_addon
