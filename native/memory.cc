// Memory: memfd and huge-page files for guest RAM, mapped as SharedArrayBuffers.
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <memory>

#include "addon.h"

namespace xenode_addon {
namespace {

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

}  // namespace

void InitMemory(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"memfdCreate", MemfdCreate},
      {"hugeRamCreate", HugeRamCreate},
      {"mapShared", MapShared},
      {"fdSize", FdSize},
  });
}

}  // namespace xenode_addon
