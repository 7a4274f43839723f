// Pseudo-terminals: consoles (xl console, the console daemon) and raw terminal modes.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "addon.h"

namespace xenode_addon {
namespace {

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

}  // namespace

void InitPty(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"openpty", Openpty},
      {"setWinsize", SetWinsize},
      {"getWinsize", GetWinsize},
      {"makeRaw", MakeRaw},
      {"restoreTermios", RestoreTermios},
  });
}

}  // namespace xenode_addon
