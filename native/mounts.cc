// Mounts: a guest kernel mounting its FUSE-served disks inside its own mount namespace.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <limits.h>
#include <sys/mount.h>
#include <vector>

#include "addon.h"

namespace xenode_addon {
namespace {

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

}  // namespace

void InitMounts(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"mount", Mount},
      {"umount2", Umount2},
  });
  SetInts(context, exports, {
      {"MS_RDONLY", MS_RDONLY},
      {"MS_NOSUID", MS_NOSUID},
      {"MS_NODEV", MS_NODEV},
      {"MS_NOEXEC", MS_NOEXEC},
      {"MS_BIND", MS_BIND},
      {"MNT_DETACH", MNT_DETACH},
  });
}

}  // namespace xenode_addon
