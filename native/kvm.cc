// The KVM vCPU engine's native half: exports.kvm in xenode.node (see native/index.ts, KvmAddon,
// and docs/kvm.md). Thin wrappers over /dev/kvm ioctls plus one loop, run(), that keeps a
// vCPU inside KVM_RUN until an exit that needs user space (port I/O or MMIO for a device
// model, shutdown, an error, or a kick), and reports it in a small exit record.
//
// Handles. VMs and vCPUs are small integers naming entries of a process-wide registry, so
// any thread (the main thread, each vCPU's worker thread) can use them. Entries are
// reference counted: a vCPU keeps its VM alive; destroying a VM handle only drops the
// registry's reference.
//
// Threads. A vCPU's ioctls are serialized by KVM on vcpu->mutex, so only the thread that runs
// the vCPU should issue them while it runs. The one cross-thread operation is kick(): it sets
// kvm_run.immediate_exit and sends SIG_KICK (a real-time signal with an empty handler,
// installed once with SA_RESTART) to the thread inside run(). KVM_RUN then returns EINTR
// (immediately, if it had not entered the guest yet: that is what immediate_exit is for), and
// run() returns EXIT_INTERRUPTED. A kick while the vCPU is outside run() is latched by
// immediate_exit and takes effect at the next run().

#include <node.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "js-helpers.h"
#include "kvm-handles.h"

namespace xenode_kvm {

void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);

namespace {

using v8::Array;
using v8::ArrayBufferView;
using v8::BigInt;
using v8::Boolean;
using v8::Context;
using v8::Exception;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::String;
using v8::Value;

using Args = FunctionCallbackInfo<Value>;

// ---------------------------------------------------------------------------------------
// exit record (shared with TypeScript: hypervisor/kvm/kvm.ts mirrors these numbers)

enum ExitType : uint32_t {
  EXIT_NONE = 0,
  EXIT_IO = 1,              // port I/O for a device model
  EXIT_MMIO = 2,            // MMIO for a device model
  EXIT_SHUTDOWN = 3,        // triple fault (or a reset the guest forced that way)
  EXIT_INTERNAL_ERROR = 4,  // KVM could not emulate: suberror, data[0]
  EXIT_FAIL_ENTRY = 5,      // VM entry failed: hardware reason
  EXIT_INTERRUPTED = 6,     // kick() (pause, destroy): nothing to complete
  EXIT_HLT = 7,             // only without an in-kernel irqchip
  EXIT_SYSTEM_EVENT = 8,    // KVM_SYSTEM_EVENT_{SHUTDOWN,RESET,CRASH}
  EXIT_UNKNOWN = 9,         // any other exit_reason (raw reason in REC_REASON)
};

constexpr size_t REC_TYPE = 0;     // u32 ExitType
constexpr size_t REC_DIR = 4;      // u32 1 = read (IN / MMIO load), 0 = write
constexpr size_t REC_SIZE = 8;     // u32 bytes per access
constexpr size_t REC_COUNT = 12;   // u32 repetitions (string I/O); 1 otherwise
constexpr size_t REC_ADDR = 16;    // u64 port or guest-physical address
constexpr size_t REC_DATA = 24;    // u64 first value (writes), little-endian
constexpr size_t REC_REASON = 32;  // u32 raw kvm_run.exit_reason
constexpr size_t REC_SUB = 36;     // u32 internal-error suberror / system-event type
constexpr size_t REC_EXTRA = 40;   // u64 internal-error data[0] / fail-entry hw reason
constexpr size_t REC_EXTRA2 = 48;  // u64 internal-error data[1] (emulation failure: insn size, bytes 0-6)
constexpr size_t REC_EXTRA3 = 56;  // u64 internal-error data[2] (emulation failure: insn bytes 7-14)
constexpr size_t REC_BYTES = 64;   // data area: count*size bytes (writes out, reads in)
constexpr size_t REC_DATA_MAX = 4096;
constexpr size_t REC_TOTAL = REC_BYTES + REC_DATA_MAX;

int KickSignal() { return SIGRTMIN + 5; }

// <linux/kvm.h> declares the variable-length structs with __DECLARE_FLEX_ARRAY, whose empty
// struct has size 1 in C++ (0 in C). That changes sizeof, hence the ioctl numbers built from
// it (the kernel then answers EINVAL). Use C-sized headers and our own numbers for those.
struct Cpuid2Hdr {  // struct kvm_cpuid2 without entries[]
  uint32_t nent, padding;
};
struct MsrsHdr {  // struct kvm_msrs without entries[]
  uint32_t nmsrs, pad;
};
static_assert(sizeof(Cpuid2Hdr) == 8 && sizeof(MsrsHdr) == 8, "C layout");
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Hdr);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Hdr);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHdr);

// ---------------------------------------------------------------------------------------
// registry

struct Vm {
  int kvm_fd = -1;
  int fd = -1;
  uint8_t* mem = nullptr;
  size_t mem_bytes = 0;
  // Port I/O the device model claimed (bit set = forward). Empty = forward everything.
  // Ports not claimed behave like Xen's null handler: reads all ones, writes dropped.
  std::vector<uint8_t> pio_forward;
  // MMIO ranges the device model claimed, [start, end). Empty = forward everything.
  std::vector<std::pair<uint64_t, uint64_t>> mmio_forward;
  std::mutex filter_lock;  // guards the two filters (rarely written)
  ~Vm() {
    if (fd >= 0) close(fd);
    if (kvm_fd >= 0) close(kvm_fd);
    if (mem != nullptr) munmap(mem, mem_bytes);
  }
};

struct Vcpu {
  std::shared_ptr<Vm> vm;
  int fd = -1;
  int id = 0;
  struct kvm_run* run = nullptr;
  size_t run_size = 0;
  std::mutex lock;             // guards tid/in_run against kick()
  pid_t tid = 0;               // the thread that last ran this vCPU
  bool in_run = false;
  std::atomic<bool> kick_pending{false};
  // Completion owed to KVM at the next run(): 1 = IN data, 2 = MMIO read data.
  int pending = 0;
  // counters (written by the running thread, read by anyone)
  std::atomic<uint64_t> runs{0}, exits_io{0}, exits_mmio{0}, null_io{0}, null_mmio{0},
      exits_intr{0}, exits_other{0}, io_bytes{0};
  ~Vcpu() {
    if (run != nullptr) munmap(run, run_size);
    if (fd >= 0) close(fd);
  }
};

std::mutex g_reg_lock;
int g_next_handle = 1;
std::map<int, std::shared_ptr<Vm>> g_vms;
std::map<int, std::shared_ptr<Vcpu>> g_vcpus;

// ---------------------------------------------------------------------------------------
// errors and arguments (same conventions as addon.h)

using xenode_js::SetFn;
using xenode_js::Str;
using xenode_js::ThrowErrno;
using xenode_js::ThrowType;
using xenode_js::ViewData;

bool IntArg(const Args& a, int i, const char* name, double lo, double hi, int64_t* out) {
  Local<Value> v = a[i];
  char msg[128];
  double d;
  if (v->IsBigInt()) {
    d = static_cast<double>(v.As<BigInt>()->Int64Value());
  } else if (v->IsNumber()) {
    d = v.As<Number>()->Value();
  } else {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  if (!(d >= lo && d <= hi) || d != std::trunc(d)) {
    snprintf(msg, sizeof msg, "%s must be an integer in [%.0f, %.0f]", name, lo, hi);
    a.GetIsolate()->ThrowException(Exception::RangeError(Str(a.GetIsolate(), msg)));
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

// A u64 from a Number (exact below 2^53) or a BigInt (exact).
bool U64From(Isolate* iso, Local<Value> v, const char* name, uint64_t* out) {
  if (v->IsBigInt()) {
    bool lossless;
    *out = v.As<BigInt>()->Uint64Value(&lossless);
    if (lossless) return true;
  } else if (v->IsNumber()) {
    double d = v.As<Number>()->Value();
    if (d >= 0 && d <= 9007199254740991.0 && d == std::trunc(d)) {
      *out = static_cast<uint64_t>(d);
      return true;
    }
  }
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be a non-negative integer (number or bigint)", name);
  ThrowType(iso, msg);
  return false;
}


std::shared_ptr<Vm> VmArg(const Args& a, int i) {
  int64_t h;
  if (!IntArg(a, i, "vm", 1, 1e9, &h)) return nullptr;
  std::lock_guard<std::mutex> g(g_reg_lock);
  auto it = g_vms.find(static_cast<int>(h));
  if (it == g_vms.end()) {
    ThrowErrno(a.GetIsolate(), "kvm(vm handle)", EBADF);
    return nullptr;
  }
  return it->second;
}

std::shared_ptr<Vcpu> VcpuArg(const Args& a, int i) {
  int64_t h;
  if (!IntArg(a, i, "vcpu", 1, 1e9, &h)) return nullptr;
  std::lock_guard<std::mutex> g(g_reg_lock);
  auto it = g_vcpus.find(static_cast<int>(h));
  if (it == g_vcpus.end()) {
    ThrowErrno(a.GetIsolate(), "kvm(vcpu handle)", EBADF);
    return nullptr;
  }
  return it->second;
}

void SetU64(Isolate* iso, Local<Object> o, const char* k, uint64_t v) {
  o->Set(iso->GetCurrentContext(), Str(iso, k), BigInt::NewFromUnsigned(iso, v)).Check();
}
void SetNum(Isolate* iso, Local<Object> o, const char* k, double v) {
  o->Set(iso->GetCurrentContext(), Str(iso, k), Number::New(iso, v)).Check();
}

// o[k] if present (not undefined) as u64. Returns false only on a thrown error.
bool GetU64(Isolate* iso, Local<Object> o, const char* k, uint64_t* out, bool* present) {
  Local<Value> v;
  *present = false;
  if (!o->Get(iso->GetCurrentContext(), Str(iso, k)).ToLocal(&v)) return false;
  if (v->IsUndefined()) return true;
  if (v->IsBoolean()) {
    *out = v->IsTrue() ? 1 : 0;
    *present = true;
    return true;
  }
  if (!U64From(iso, v, k, out)) return false;
  *present = true;
  return true;
}

template <typename T>
bool Field(Isolate* iso, Local<Object> o, const char* k, T* field) {
  uint64_t v;
  bool present;
  if (!GetU64(iso, o, k, &v, &present)) return false;
  if (present) *field = static_cast<T>(v);
  return true;
}

// ---------------------------------------------------------------------------------------
// availability

int OpenKvm(int* err, const char** why) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    *why = errno == ENOENT ? "/dev/kvm does not exist (no KVM on this host: enable virtualization or nested virtualization)"
                           : "cannot open /dev/kvm";
    return -1;
  }
  int v = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (v != KVM_API_VERSION) {
    close(fd);
    *err = EINVAL;
    *why = "/dev/kvm speaks an unexpected KVM API version";
    return -1;
  }
  return fd;
}

void Available(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  Local<Object> res = Object::New(iso);
  int err = 0;
  const char* why = nullptr;
  int fd = OpenKvm(&err, &why);
  std::string reason;
  if (fd >= 0) {
    struct {
      int cap;
      const char* name;
    } need[] = {{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},     {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
                {KVM_CAP_PIT2, "KVM_CAP_PIT2"},                   {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
                {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"}, {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"}};
    for (auto& n : need) {
      if (ioctl(fd, KVM_CHECK_EXTENSION, n.cap) <= 0) {
        reason = std::string("/dev/kvm lacks ") + n.name;
        break;
      }
    }
    int max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0) max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    SetNum(iso, res, "maxVcpus", max_vcpus > 0 ? max_vcpus : 1);
    SetNum(iso, res, "irqfd", ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0 ? 1 : 0);
    close(fd);
  } else {
    char buf[256];
    snprintf(buf, sizeof buf, "%s: %s", why, strerror(err));
    reason = buf;
  }
  res->Set(ctx, Str(iso, "ok"), Boolean::New(iso, reason.empty())).Check();
  res->Set(ctx, Str(iso, "reason"), Str(iso, reason.c_str())).Check();
  a.GetReturnValue().Set(res);
}

// ---------------------------------------------------------------------------------------
// VM

// createVm(memfd, memBytes): KVM_CREATE_VM, the TSS and identity-map pages (needed by Intel
// without unrestricted guest; harmless elsewhere), the in-kernel irqchip (PIC + IOAPIC +
// LAPICs) and PIT, and an mmap of the domain's memfd that mapMemory() slots carve from.
void CreateVm(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int64_t memfd, mem_bytes;
  if (!IntArg(a, 0, "memfd", 0, 1 << 30, &memfd) || !IntArg(a, 1, "memBytes", 4096, 9007199254740991.0, &mem_bytes))
    return;
  struct stat st;
  if (fstat(static_cast<int>(memfd), &st) < 0) return ThrowErrno(iso, "fstat", errno);
  // A guest touching a page past the end of the file would make KVM fault forever (or kill
  // us with SIGBUS on our own accesses): refuse.
  if (S_ISREG(st.st_mode) && st.st_size < mem_bytes) return ThrowErrno(iso, "kvm.createVm(memfd smaller than memBytes)", EINVAL);
  auto vm = std::make_shared<Vm>();
  int err = 0;
  const char* why = nullptr;
  vm->kvm_fd = OpenKvm(&err, &why);
  if (vm->kvm_fd < 0) return ThrowErrno(iso, "open(/dev/kvm)", err);
  int fd;
  do fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return ThrowErrno(iso, "ioctl(KVM_CREATE_VM)", errno);
  vm->fd = fd;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  void* p = mmap(nullptr, mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, static_cast<int>(memfd), 0);
  if (p == MAP_FAILED) return ThrowErrno(iso, "mmap(guest memory)", errno);
  vm->mem = static_cast<uint8_t*>(p);
  vm->mem_bytes = mem_bytes;
  madvise(p, mem_bytes, MADV_DONTDUMP);

  if (ioctl(fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_TSS_ADDR)", errno);
  if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
    uint64_t ident = 0xfffbc000UL;
    if (ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_IDENTITY_MAP_ADDR)", errno);
  }
  if (ioctl(fd, KVM_CREATE_IRQCHIP, 0) < 0) return ThrowErrno(iso, "ioctl(KVM_CREATE_IRQCHIP)", errno);
  struct kvm_pit_config pit = {};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (ioctl(fd, KVM_CREATE_PIT2, &pit) < 0) return ThrowErrno(iso, "ioctl(KVM_CREATE_PIT2)", errno);

  std::lock_guard<std::mutex> g(g_reg_lock);
  int h = g_next_handle++;
  g_vms[h] = vm;
  a.GetReturnValue().Set(h);
}

// mapMemory(vm, slot, guestPhys, memOffset, size): one KVM memory slot over
// [memOffset, memOffset+size) of the memfd mapping, at guest-physical guestPhys.
void MapMemory(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto vm = VmArg(a, 0);
  if (!vm) return;
  int64_t slot;
  uint64_t gpa, off, size;
  if (!IntArg(a, 1, "slot", 0, 255, &slot) || !U64From(iso, a[2], "guestPhys", &gpa) ||
      !U64From(iso, a[3], "memOffset", &off) || !U64From(iso, a[4], "size", &size))
    return;
  if ((gpa | off | size) & 0xfff) return ThrowErrno(iso, "kvm.mapMemory(not page aligned)", EINVAL);
  if (off + size > vm->mem_bytes || off + size < off) return ThrowErrno(iso, "kvm.mapMemory(outside guest memory)", EINVAL);
  struct kvm_userspace_memory_region r = {};
  r.slot = static_cast<uint32_t>(slot);
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(vm->mem + off);
  if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_USER_MEMORY_REGION)", errno);
}

void DestroyVm(const Args& a) {
  int64_t h;
  if (!IntArg(a, 0, "vm", 1, 1e9, &h)) return;
  std::lock_guard<std::mutex> g(g_reg_lock);
  g_vms.erase(static_cast<int>(h));  // the fds close when the last vCPU lets go too
}

void IrqLine(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto vm = VmArg(a, 0);
  int64_t irq, level;
  if (!vm || !IntArg(a, 1, "irq", 0, 1023, &irq) || !IntArg(a, 2, "level", 0, 1, &level)) return;
  struct kvm_irq_level l = {};
  l.irq = static_cast<uint32_t>(irq);
  l.level = static_cast<uint32_t>(level);
  if (ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0) return ThrowErrno(iso, "ioctl(KVM_IRQ_LINE)", errno);
}

// irqfd(vm, eventfd, gsi, resampleFd = -1, deassign = false): a write to `eventfd` (from any
// process holding it, e.g. a device model in the stub domain) raises `gsi` in the kernel,
// with no trip through this process. With resampleFd, the line is level-triggered: KVM
// lowers it at the guest's EOI and signals resampleFd so the device model can re-assert.
void Irqfd(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto vm = VmArg(a, 0);
  int64_t efd, gsi, rfd = -1, deassign = 0;
  if (!vm || !IntArg(a, 1, "eventfd", 0, 1 << 30, &efd) || !IntArg(a, 2, "gsi", 0, 1023, &gsi)) return;
  if (!a[3]->IsUndefined() && !IntArg(a, 3, "resampleFd", -1, 1 << 30, &rfd)) return;
  if (!a[4]->IsUndefined()) deassign = a[4]->BooleanValue(iso) ? 1 : 0;
  struct kvm_irqfd f = {};
  f.fd = static_cast<uint32_t>(efd);
  f.gsi = static_cast<uint32_t>(gsi);
  if (deassign) f.flags |= KVM_IRQFD_FLAG_DEASSIGN;
  if (rfd >= 0 && !deassign) {
    f.flags |= KVM_IRQFD_FLAG_RESAMPLE;
    f.resamplefd = static_cast<uint32_t>(rfd);
  }
  if (ioctl(vm->fd, KVM_IRQFD, &f) < 0) return ThrowErrno(iso, "ioctl(KVM_IRQFD)", errno);
}

// setPioForward(vm, bitmap | null): 8192 bytes, bit p set = forward port p to the device
// model. null = forward every port.
void SetPioForward(const Args& a) {
  auto vm = VmArg(a, 0);
  if (!vm) return;
  std::vector<uint8_t> bits;
  if (!a[1]->IsNull() && !a[1]->IsUndefined()) {
    if (!a[1]->IsArrayBufferView() || a[1].As<ArrayBufferView>()->ByteLength() != 8192)
      return ThrowType(a.GetIsolate(), "bitmap must be an 8192-byte Uint8Array or null");
    uint8_t* d = ViewData(a[1].As<ArrayBufferView>());
    bits.assign(d, d + 8192);
  }
  std::lock_guard<std::mutex> g(vm->filter_lock);
  vm->pio_forward.swap(bits);
}

// setMmioForward(vm, ranges | null): Float64Array of [start, end) pairs the device model
// serves. null = forward every MMIO exit.
void SetMmioForward(const Args& a) {
  auto vm = VmArg(a, 0);
  if (!vm) return;
  std::vector<std::pair<uint64_t, uint64_t>> r;
  if (!a[1]->IsNull() && !a[1]->IsUndefined()) {
    if (!a[1]->IsFloat64Array()) return ThrowType(a.GetIsolate(), "ranges must be a Float64Array of [start, end) pairs or null");
    auto f = a[1].As<v8::Float64Array>();
    const double* d = reinterpret_cast<const double*>(ViewData(f));
    size_t n = f->Length() / 2;
    for (size_t i = 0; i < n; i++) r.emplace_back(static_cast<uint64_t>(d[2 * i]), static_cast<uint64_t>(d[2 * i + 1]));
    if (r.empty()) r.emplace_back(1, 0);  // an empty list forwards nothing: keep it non-empty
  }
  std::lock_guard<std::mutex> g(vm->filter_lock);
  vm->mmio_forward.swap(r);
}

// ---------------------------------------------------------------------------------------
// vCPU

uint32_t CeilLog2(uint32_t n) {
  uint32_t s = 0;
  while ((1u << s) < n) s++;
  return s;
}

// The CPUID the guest sees: what KVM supports on this host, plus the topology of a package of
// `n` cores with one thread each, this one being core `id` (APIC ID = id). Linux reads the
// count from leaves 1/4/0xB/0x80000008/0x8000001E; the CPUs themselves it finds in the MP
// table (hypervisor/kvm/mptable.ts).
struct CpuidClear {
  uint32_t leaf, index, reg, bits;  // reg: 0 eax, 1 ebx, 2 ecx, 3 edx
};

bool SetCpuid(Isolate* iso, Vm* vm, int vcpu_fd, uint32_t id, uint32_t n, const std::vector<CpuidClear>& clear) {
  int nent = 256;
  std::vector<uint8_t> buf;
  Cpuid2Hdr* c = nullptr;
  for (;;) {
    buf.assign(sizeof(Cpuid2Hdr) + nent * sizeof(struct kvm_cpuid_entry2), 0);
    c = reinterpret_cast<Cpuid2Hdr*>(buf.data());
    c->nent = nent;
    if (ioctl(vm->kvm_fd, kGetSupportedCpuid, c) == 0) break;
    if (errno != E2BIG || nent > 4096) {
      ThrowErrno(iso, "ioctl(KVM_GET_SUPPORTED_CPUID)", errno);
      return false;
    }
    nent *= 2;
  }
  auto* entries = reinterpret_cast<struct kvm_cpuid_entry2*>(buf.data() + sizeof(Cpuid2Hdr));
  uint32_t core_bits = CeilLog2(n);
  for (uint32_t i = 0; i < c->nent; i++) {
    struct kvm_cpuid_entry2& e = entries[i];
    switch (e.function) {
      case 1:
        e.ebx = (e.ebx & 0x0000ffff) | (id << 24) | ((n & 0xff) << 16);
        if (n > 1) e.edx |= 1u << 28;  // HTT: EBX[23:16] is meaningful
        break;
      case 4:
        // Deterministic cache parameters (Intel): cores per package - 1 in EAX[31:26].
        e.eax = (e.eax & 0x03ffffff) | (((n - 1) & 0x3f) << 26);
        break;
      case 0xb:
      case 0x1f:
        if (e.index == 0) {
          e.eax = 0;                 // no SMT bits
          e.ebx = 1;                 // one thread per core
          e.ecx = (1u << 8) | 0;     // level 0: SMT
        } else if (e.index == 1) {
          e.eax = core_bits;
          e.ebx = n;
          e.ecx = (2u << 8) | 1;     // level 1: core
        } else {
          e.eax = 0;
          e.ebx = 0;
          e.ecx = e.index;           // invalid level: ends the enumeration
        }
        e.edx = id;
        break;
      case 0x80000008:
        // AMD: NC = cores - 1 in ECX[7:0], ApicIdCoreIdSize in ECX[15:12].
        e.ecx = (e.ecx & ~0xf0ffu) | ((n - 1) & 0xff) | ((core_bits & 0xf) << 12);
        break;
      case 0x8000001e:
        e.eax = id;                  // extended APIC ID
        e.ebx = (e.ebx & ~0xffffu) | (id & 0xff);  // core id, 1 thread per core
        e.ecx = 0;                   // node 0, one node
        break;
      default:
        break;
    }
    for (const CpuidClear& x : clear) {
      if (x.leaf != e.function || (x.index != e.index && (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX))) continue;
      uint32_t* regs[] = {&e.eax, &e.ebx, &e.ecx, &e.edx};
      if (x.reg < 4) *regs[x.reg] &= ~x.bits;
    }
  }
  if (ioctl(vcpu_fd, kSetCpuid2, c) < 0) {
    ThrowErrno(iso, "ioctl(KVM_SET_CPUID2)", errno);
    return false;
  }
  return true;
}

// What firmware does for every CPU: LINT0 = ExtINT (the 8259's output, "virtual wire" mode),
// LINT1 = NMI.
bool SetLint(Isolate* iso, int vcpu_fd) {
  struct kvm_lapic_state s;
  if (ioctl(vcpu_fd, KVM_GET_LAPIC, &s) < 0) {
    ThrowErrno(iso, "ioctl(KVM_GET_LAPIC)", errno);
    return false;
  }
  auto set_mode = [&](size_t reg, uint32_t mode) {
    uint32_t v;
    memcpy(&v, s.regs + reg, 4);
    v = (v & ~0x700u) | (mode << 8);
    v &= ~(1u << 16);  // unmasked
    memcpy(s.regs + reg, &v, 4);
  };
  set_mode(0x350, 7);  // APIC_LVT0: ExtINT
  set_mode(0x360, 4);  // APIC_LVT1: NMI
  if (ioctl(vcpu_fd, KVM_SET_LAPIC, &s) < 0) {
    ThrowErrno(iso, "ioctl(KVM_SET_LAPIC)", errno);
    return false;
  }
  return true;
}

// createVcpu(vm, id, nrVcpus, cpuidClear?): KVM_CREATE_VCPU, its kvm_run mapping, CPUID and LAPIC LINTs.
// vCPU 0 is the bootstrap processor; the others wait in the kernel for INIT/SIPI from it.
void CreateVcpu(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto vm = VmArg(a, 0);
  int64_t id, n = 1;
  if (!vm || !IntArg(a, 1, "id", 0, 1023, &id)) return;
  if (!a[2]->IsUndefined() && !IntArg(a, 2, "nrVcpus", 1, 1024, &n)) return;
  // cpuidClear: optional Uint32Array of (leaf, index, reg, bits) quadruples to clear.
  std::vector<CpuidClear> clear;
  if (!a[3]->IsUndefined() && !a[3]->IsNull()) {
    if (!a[3]->IsUint32Array() || a[3].As<v8::Uint32Array>()->Length() % 4 != 0)
      return ThrowType(iso, "cpuidClear must be a Uint32Array of (leaf, index, reg, bits) quadruples");
    auto arr = a[3].As<v8::Uint32Array>();
    const uint32_t* d = reinterpret_cast<const uint32_t*>(ViewData(arr));
    for (size_t i = 0; i + 3 < arr->Length(); i += 4) clear.push_back({d[i], d[i + 1], d[i + 2], d[i + 3]});
  }
  if (id >= n) return ThrowErrno(iso, "kvm.createVcpu(id >= nrVcpus)", EINVAL);
  auto v = std::make_shared<Vcpu>();
  v->vm = vm;
  v->id = static_cast<int>(id);
  int fd;
  do fd = ioctl(vm->fd, KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return ThrowErrno(iso, "ioctl(KVM_CREATE_VCPU)", errno);
  v->fd = fd;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size < static_cast<int>(sizeof(struct kvm_run))) return ThrowErrno(iso, "ioctl(KVM_GET_VCPU_MMAP_SIZE)", errno);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ThrowErrno(iso, "mmap(kvm_run)", errno);
  v->run = static_cast<struct kvm_run*>(p);
  v->run_size = size;
  if (!SetCpuid(iso, vm.get(), fd, static_cast<uint32_t>(id), static_cast<uint32_t>(n), clear)) return;
  if (!SetLint(iso, fd)) return;
  std::lock_guard<std::mutex> g(g_reg_lock);
  int h = g_next_handle++;
  g_vcpus[h] = v;
  a.GetReturnValue().Set(h);
}

void DestroyVcpu(const Args& a) {
  int64_t h;
  if (!IntArg(a, 0, "vcpu", 1, 1e9, &h)) return;
  std::shared_ptr<Vcpu> v;
  {
    std::lock_guard<std::mutex> g(g_reg_lock);
    auto it = g_vcpus.find(static_cast<int>(h));
    if (it == g_vcpus.end()) return;
    v = it->second;
    {
      std::lock_guard<std::mutex> l(v->lock);
      if (v->in_run) return ThrowErrno(a.GetIsolate(), "kvm.destroyVcpu(still running: kick it first)", EBUSY);
    }
    g_vcpus.erase(it);
  }
}

// ---- registers

const char* kRegNames[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",  "r9",
                           "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"};

void GetRegs(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  struct kvm_regs r;
  if (ioctl(v->fd, KVM_GET_REGS, &r) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_REGS)", errno);
  uint64_t* f = reinterpret_cast<uint64_t*>(&r);
  Local<Object> o = Object::New(iso);
  for (size_t i = 0; i < 18; i++) SetU64(iso, o, kRegNames[i], f[i]);
  a.GetReturnValue().Set(o);
}

// setRegs(vcpu, {rip, rsi, ...}): fields not given keep their value.
void SetRegs(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  if (!a[1]->IsObject()) return ThrowType(iso, "regs must be an object");
  Local<Object> o = a[1].As<Object>();
  struct kvm_regs r;
  if (ioctl(v->fd, KVM_GET_REGS, &r) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_REGS)", errno);
  uint64_t* f = reinterpret_cast<uint64_t*>(&r);
  for (size_t i = 0; i < 18; i++)
    if (!Field(iso, o, kRegNames[i], &f[i])) return;
  if (ioctl(v->fd, KVM_SET_REGS, &r) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_REGS)", errno);
}

Local<Object> SegToJs(Isolate* iso, const struct kvm_segment& s) {
  Local<Object> o = Object::New(iso);
  SetU64(iso, o, "base", s.base);
  SetNum(iso, o, "limit", s.limit);
  SetNum(iso, o, "selector", s.selector);
  SetNum(iso, o, "type", s.type);
  SetNum(iso, o, "present", s.present);
  SetNum(iso, o, "dpl", s.dpl);
  SetNum(iso, o, "db", s.db);
  SetNum(iso, o, "s", s.s);
  SetNum(iso, o, "l", s.l);
  SetNum(iso, o, "g", s.g);
  SetNum(iso, o, "avl", s.avl);
  SetNum(iso, o, "unusable", s.unusable);
  return o;
}

bool SegFromJs(Isolate* iso, Local<Object> o, const char* name, struct kvm_segment* s) {
  Local<Value> v;
  if (!o->Get(iso->GetCurrentContext(), Str(iso, name)).ToLocal(&v)) return false;
  if (v->IsUndefined()) return true;
  if (!v->IsObject()) {
    ThrowType(iso, "segments must be objects");
    return false;
  }
  Local<Object> so = v.As<Object>();
  return Field(iso, so, "base", &s->base) && Field(iso, so, "limit", &s->limit) && Field(iso, so, "selector", &s->selector) &&
         Field(iso, so, "type", &s->type) && Field(iso, so, "present", &s->present) && Field(iso, so, "dpl", &s->dpl) &&
         Field(iso, so, "db", &s->db) && Field(iso, so, "s", &s->s) && Field(iso, so, "l", &s->l) &&
         Field(iso, so, "g", &s->g) && Field(iso, so, "avl", &s->avl) && Field(iso, so, "unusable", &s->unusable);
}

const char* kSegNames[] = {"cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"};

void GetSregs(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  struct kvm_sregs s;
  if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_SREGS)", errno);
  Local<Object> o = Object::New(iso);
  Local<Context> ctx = iso->GetCurrentContext();
  struct kvm_segment* segs[] = {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt};
  for (size_t i = 0; i < 8; i++) o->Set(ctx, Str(iso, kSegNames[i]), SegToJs(iso, *segs[i])).Check();
  Local<Object> gdt = Object::New(iso), idt = Object::New(iso);
  SetU64(iso, gdt, "base", s.gdt.base);
  SetNum(iso, gdt, "limit", s.gdt.limit);
  SetU64(iso, idt, "base", s.idt.base);
  SetNum(iso, idt, "limit", s.idt.limit);
  o->Set(ctx, Str(iso, "gdt"), gdt).Check();
  o->Set(ctx, Str(iso, "idt"), idt).Check();
  SetU64(iso, o, "cr0", s.cr0);
  SetU64(iso, o, "cr2", s.cr2);
  SetU64(iso, o, "cr3", s.cr3);
  SetU64(iso, o, "cr4", s.cr4);
  SetU64(iso, o, "cr8", s.cr8);
  SetU64(iso, o, "efer", s.efer);
  SetU64(iso, o, "apicBase", s.apic_base);
  a.GetReturnValue().Set(o);
}

// setSregs(vcpu, {cs: {...}, ..., gdt: {base, limit}, cr0, cr3, cr4, efer}): fields not
// given keep their value.
void SetSregs(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  if (!a[1]->IsObject()) return ThrowType(iso, "sregs must be an object");
  Local<Object> o = a[1].As<Object>();
  Local<Context> ctx = iso->GetCurrentContext();
  struct kvm_sregs s;
  if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_SREGS)", errno);
  struct kvm_segment* segs[] = {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt};
  for (size_t i = 0; i < 8; i++)
    if (!SegFromJs(iso, o, kSegNames[i], segs[i])) return;
  struct {
    const char* name;
    struct kvm_dtable* t;
  } tables[] = {{"gdt", &s.gdt}, {"idt", &s.idt}};
  for (auto& t : tables) {
    Local<Value> tv;
    if (!o->Get(ctx, Str(iso, t.name)).ToLocal(&tv)) return;
    if (tv->IsUndefined()) continue;
    if (!tv->IsObject()) return ThrowType(iso, "gdt/idt must be objects");
    if (!Field(iso, tv.As<Object>(), "base", &t.t->base) || !Field(iso, tv.As<Object>(), "limit", &t.t->limit)) return;
  }
  if (!Field(iso, o, "cr0", &s.cr0) || !Field(iso, o, "cr2", &s.cr2) || !Field(iso, o, "cr3", &s.cr3) ||
      !Field(iso, o, "cr4", &s.cr4) || !Field(iso, o, "cr8", &s.cr8) || !Field(iso, o, "efer", &s.efer) ||
      !Field(iso, o, "apicBase", &s.apic_base))
    return;
  if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_SREGS)", errno);
}

// setFpu(vcpu, {fcw, mxcsr}): the x87 control word and MXCSR at their reset values, say.
void SetFpu(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  if (!a[1]->IsObject()) return ThrowType(iso, "fpu must be an object");
  Local<Object> o = a[1].As<Object>();
  struct kvm_fpu f;
  if (ioctl(v->fd, KVM_GET_FPU, &f) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_FPU)", errno);
  if (!Field(iso, o, "fcw", &f.fcw) || !Field(iso, o, "fsw", &f.fsw) || !Field(iso, o, "ftwx", &f.ftwx) ||
      !Field(iso, o, "mxcsr", &f.mxcsr))
    return;
  if (ioctl(v->fd, KVM_SET_FPU, &f) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_FPU)", errno);
}

// setMsrs(vcpu, [[index, value], ...]): KVM_SET_MSRS; throws if KVM refused any.
void SetMsrs(const Args& a) {
  Isolate* iso = a.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  if (!a[1]->IsArray()) return ThrowType(iso, "msrs must be an array of [index, value]");
  Local<Array> arr = a[1].As<Array>();
  uint32_t n = arr->Length();
  if (n > 64) return ThrowType(iso, "at most 64 MSRs at once");
  std::vector<uint8_t> buf(sizeof(MsrsHdr) + n * sizeof(struct kvm_msr_entry), 0);
  auto* m = reinterpret_cast<MsrsHdr*>(buf.data());
  auto* entries = reinterpret_cast<struct kvm_msr_entry*>(buf.data() + sizeof(MsrsHdr));
  m->nmsrs = n;
  for (uint32_t i = 0; i < n; i++) {
    Local<Value> e;
    if (!arr->Get(ctx, i).ToLocal(&e)) return;
    if (!e->IsArray() || e.As<Array>()->Length() != 2) return ThrowType(iso, "msrs must be an array of [index, value]");
    Local<Value> idx, val;
    if (!e.As<Array>()->Get(ctx, 0).ToLocal(&idx) || !e.As<Array>()->Get(ctx, 1).ToLocal(&val)) return;
    uint64_t index, value;
    if (!U64From(iso, idx, "msr index", &index) || !U64From(iso, val, "msr value", &value)) return;
    entries[i].index = static_cast<uint32_t>(index);
    entries[i].data = value;
  }
  int r = ioctl(v->fd, kSetMsrs, m);
  if (r < 0) return ThrowErrno(iso, "ioctl(KVM_SET_MSRS)", errno);
  if (static_cast<uint32_t>(r) != n) {
    char msg[96];
    snprintf(msg, sizeof msg, "ioctl(KVM_SET_MSRS) refused MSR 0x%x", entries[r].index);
    return ThrowErrno(iso, msg, EINVAL);
  }
}

// injectException(vcpu, vector, errorCode = -1): make the guest take exception `vector` at
// its next entry (KVM_SET_VCPU_EVENTS), as the CPU would have. For the vCPU's own thread, after
// an exit (e.g. an instruction KVM's emulator could not run, which the engine finishes by
// hand: INT3 -> #BP).
void InjectException(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  int64_t vec, err = -1;
  if (!v || !IntArg(a, 1, "vector", 0, 31, &vec)) return;
  if (!a[2]->IsUndefined() && !IntArg(a, 2, "errorCode", -1, 4294967295.0, &err)) return;
  struct kvm_vcpu_events ev;
  memset(&ev, 0, sizeof ev);
  if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_VCPU_EVENTS)", errno);
  ev.exception.injected = 1;
  ev.exception.pending = 0;
  ev.exception.nr = static_cast<uint8_t>(vec);
  ev.exception.has_error_code = err >= 0 ? 1 : 0;
  ev.exception.error_code = err >= 0 ? static_cast<uint32_t>(err) : 0;
  ev.exception_has_payload = 0;
  ev.flags &= KVM_VCPUEVENT_VALID_PAYLOAD;  // change nothing else
  if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_VCPU_EVENTS)", errno);
}

// ---- the run loop

void KickHandler(int) {}

std::once_flag g_sig_once;
void InstallKickHandler() {
  std::call_once(g_sig_once, [] {
    struct sigaction sa = {};
    sa.sa_handler = KickHandler;
    sa.sa_flags = SA_RESTART;  // KVM_RUN still returns EINTR; other syscalls just restart
    sigemptyset(&sa.sa_mask);
    sigaction(KickSignal(), &sa, nullptr);
  });
}

bool PioForwarded(Vm* vm, uint16_t port) {
  std::lock_guard<std::mutex> g(vm->filter_lock);
  if (vm->pio_forward.empty()) return true;
  return (vm->pio_forward[port >> 3] >> (port & 7)) & 1;
}

bool MmioForwarded(Vm* vm, uint64_t addr) {
  std::lock_guard<std::mutex> g(vm->filter_lock);
  if (vm->mmio_forward.empty()) return true;
  for (auto& r : vm->mmio_forward)
    if (addr >= r.first && addr < r.second) return true;
  return false;
}

template <typename T>
void Put(uint8_t* rec, size_t off, T v) {
  memcpy(rec + off, &v, sizeof v);
}

// run(vcpu, exitRecord): completes the previous exit (IN / MMIO-read data from the record's
// data area), then loops in KVM_RUN, handling unclaimed I/O itself, until an exit JS must
// see. Returns the exit type (also at REC_TYPE).
void Run(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  if (!a[1]->IsArrayBufferView() || a[1].As<ArrayBufferView>()->ByteLength() < REC_TOTAL)
    return ThrowType(iso, "exitRecord must be a Uint8Array of at least 4160 bytes");
  uint8_t* rec = ViewData(a[1].As<ArrayBufferView>());
  struct kvm_run* run = v->run;
  Vm* vm = v->vm.get();

  {
    std::lock_guard<std::mutex> l(v->lock);
    if (v->in_run) return ThrowErrno(iso, "kvm.run(vcpu already running in another thread)", EBUSY);
    v->in_run = true;
    v->tid = static_cast<pid_t>(syscall(SYS_gettid));
  }
  auto leave = [&]() {
    std::lock_guard<std::mutex> l(v->lock);
    v->in_run = false;
  };

  if (v->pending == 1) {
    size_t n = static_cast<size_t>(run->io.size) * run->io.count;
    if (n > REC_DATA_MAX) n = REC_DATA_MAX;
    memcpy(reinterpret_cast<uint8_t*>(run) + run->io.data_offset, rec + REC_BYTES, n);
  } else if (v->pending == 2) {
    memcpy(run->mmio.data, rec + REC_BYTES, run->mmio.len <= 8 ? run->mmio.len : 8);
  }
  v->pending = 0;

  uint32_t type = EXIT_NONE;
  int fail_errno = 0;
  while (type == EXIT_NONE) {
    v->runs.fetch_add(1, std::memory_order_relaxed);
    int r = ioctl(v->fd, KVM_RUN, 0);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        // A signal that was not our kick (profiler, another library): just go back in.
        if (!v->kick_pending.exchange(false)) continue;
        v->exits_intr.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_INTERRUPTED;
        Put<uint32_t>(rec, REC_REASON, KVM_EXIT_INTR);
        break;
      }
      fail_errno = errno;
      break;
    }
    Put<uint32_t>(rec, REC_REASON, run->exit_reason);
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
        size_t n = static_cast<size_t>(run->io.size) * run->io.count;
        bool in = run->io.direction == KVM_EXIT_IO_IN;
        if (!PioForwarded(vm, run->io.port)) {
          if (in) memset(data, 0xff, n);  // Xen's null handler: reads float high
          v->null_io.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (n > REC_DATA_MAX) n = REC_DATA_MAX;  // KVM's PIO area is one page: cannot happen
        v->exits_io.fetch_add(1, std::memory_order_relaxed);
        v->io_bytes.fetch_add(n, std::memory_order_relaxed);
        type = EXIT_IO;
        Put<uint32_t>(rec, REC_DIR, in ? 1 : 0);
        Put<uint32_t>(rec, REC_SIZE, run->io.size);
        Put<uint32_t>(rec, REC_COUNT, run->io.count);
        Put<uint64_t>(rec, REC_ADDR, run->io.port);
        uint64_t first = 0;
        if (!in) {
          memcpy(rec + REC_BYTES, data, n);
          memcpy(&first, data, run->io.size <= 8 ? run->io.size : 8);
        } else {
          memset(rec + REC_BYTES, 0xff, n);
          v->pending = 1;
        }
        Put<uint64_t>(rec, REC_DATA, first);
        break;
      }
      case KVM_EXIT_MMIO: {
        uint32_t len = run->mmio.len <= 8 ? run->mmio.len : 8;
        if (!MmioForwarded(vm, run->mmio.phys_addr)) {
          if (!run->mmio.is_write) memset(run->mmio.data, 0xff, len);
          v->null_mmio.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        v->exits_mmio.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_MMIO;
        Put<uint32_t>(rec, REC_DIR, run->mmio.is_write ? 0 : 1);
        Put<uint32_t>(rec, REC_SIZE, len);
        Put<uint32_t>(rec, REC_COUNT, 1);
        Put<uint64_t>(rec, REC_ADDR, run->mmio.phys_addr);
        uint64_t val = 0;
        if (run->mmio.is_write) {
          memcpy(&val, run->mmio.data, len);
          memcpy(rec + REC_BYTES, run->mmio.data, len);
        } else {
          memset(rec + REC_BYTES, 0xff, 8);
          v->pending = 2;
        }
        Put<uint64_t>(rec, REC_DATA, val);
        break;
      }
      case KVM_EXIT_HLT:
        v->exits_other.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_HLT;
        break;
      case KVM_EXIT_SHUTDOWN:
        v->exits_other.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_SHUTDOWN;
        break;
      case KVM_EXIT_FAIL_ENTRY:
        v->exits_other.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_FAIL_ENTRY;
        Put<uint64_t>(rec, REC_EXTRA, run->fail_entry.hardware_entry_failure_reason);
        break;
      case KVM_EXIT_INTERNAL_ERROR:
        v->exits_other.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_INTERNAL_ERROR;
        Put<uint32_t>(rec, REC_SUB, run->internal.suberror);
        Put<uint64_t>(rec, REC_EXTRA, run->internal.ndata > 0 ? run->internal.data[0] : 0);
        Put<uint64_t>(rec, REC_EXTRA2, run->internal.ndata > 1 ? run->internal.data[1] : 0);
        Put<uint64_t>(rec, REC_EXTRA3, run->internal.ndata > 2 ? run->internal.data[2] : 0);
        break;
      case KVM_EXIT_SYSTEM_EVENT:
        v->exits_other.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_SYSTEM_EVENT;
        Put<uint32_t>(rec, REC_SUB, run->system_event.type);
        break;
      case KVM_EXIT_INTR:
        // Should come back as EINTR above; treat the same.
        __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (!v->kick_pending.exchange(false)) continue;
        v->exits_intr.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_INTERRUPTED;
        break;
      case KVM_EXIT_IRQ_WINDOW_OPEN:
        continue;
      default:
        v->exits_other.fetch_add(1, std::memory_order_relaxed);
        type = EXIT_UNKNOWN;
        break;
    }
  }
  leave();
  if (fail_errno != 0) return ThrowErrno(iso, "ioctl(KVM_RUN)", fail_errno);
  Put<uint32_t>(rec, REC_TYPE, type);
  a.GetReturnValue().Set(type);
}

// kick(vcpu): make the vCPU's run() return EXIT_INTERRUPTED as soon as possible (now, if it
// is inside; at its next run() otherwise). Callable from any thread.
void Kick(const Args& a) {
  auto v = VcpuArg(a, 0);
  if (!v) return;
  std::lock_guard<std::mutex> l(v->lock);
  v->kick_pending.store(true);
  __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (v->in_run && v->tid > 0) syscall(SYS_tgkill, getpid(), v->tid, KickSignal());
  a.GetReturnValue().Set(v->in_run);
}

// vcpuStats(vcpu): counters and the running thread's CPU time (for `xl vcpu-list`).
void VcpuStats(const Args& a) {
  Isolate* iso = a.GetIsolate();
  auto v = VcpuArg(a, 0);
  if (!v) return;
  Local<Object> o = Object::New(iso);
  pid_t tid;
  bool in_run;
  {
    std::lock_guard<std::mutex> l(v->lock);
    tid = v->tid;
    in_run = v->in_run;
  }
  double cpu_ns = -1;
  if (tid > 0) {
    // The per-thread CPU clock of a thread of this process: MAKE_THREAD_CPUCLOCK(tid, SCHED).
    clockid_t cid = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
    struct timespec ts;
    if (clock_gettime(cid, &ts) == 0) cpu_ns = static_cast<double>(ts.tv_sec) * 1e9 + ts.tv_nsec;
  }
  SetNum(iso, o, "id", v->id);
  SetNum(iso, o, "tid", tid);
  o->Set(iso->GetCurrentContext(), Str(iso, "inRun"), Boolean::New(iso, in_run)).Check();
  SetNum(iso, o, "cpuNs", cpu_ns);
  SetNum(iso, o, "runs", static_cast<double>(v->runs.load()));
  SetNum(iso, o, "io", static_cast<double>(v->exits_io.load()));
  SetNum(iso, o, "mmio", static_cast<double>(v->exits_mmio.load()));
  SetNum(iso, o, "nullIo", static_cast<double>(v->null_io.load()));
  SetNum(iso, o, "nullMmio", static_cast<double>(v->null_mmio.load()));
  SetNum(iso, o, "interrupted", static_cast<double>(v->exits_intr.load()));
  SetNum(iso, o, "other", static_cast<double>(v->exits_other.load()));
  SetNum(iso, o, "ioBytes", static_cast<double>(v->io_bytes.load()));
  a.GetReturnValue().Set(o);
}

}  // namespace

bool LookupVm(int handle, VmView* out) {
  std::lock_guard<std::mutex> g(g_reg_lock);
  auto it = g_vms.find(handle);
  if (it == g_vms.end()) return false;
  out->keep = it->second;
  out->kvm_fd = it->second->kvm_fd;
  out->fd = it->second->fd;
  out->mem = it->second->mem;
  out->mem_bytes = it->second->mem_bytes;
  return true;
}

bool LookupVcpu(int handle, VcpuView* out) {
  std::shared_ptr<Vcpu> v;
  {
    std::lock_guard<std::mutex> g(g_reg_lock);
    auto it = g_vcpus.find(handle);
    if (it == g_vcpus.end()) return false;
    v = it->second;
  }
  std::lock_guard<std::mutex> l(v->lock);
  out->keep = v;
  out->fd = v->fd;
  out->kvm_fd = v->vm->kvm_fd;
  out->in_run = v->in_run;
  return true;
}

void Init(Local<Context> context, Local<Object> exports) {
  Isolate* iso = context->GetIsolate();
  InstallKickHandler();
  Local<Object> k = Object::New(iso);
  SetFn(context, k, "available", Available);
  SetFn(context, k, "createVm", CreateVm);
  SetFn(context, k, "mapMemory", MapMemory);
  SetFn(context, k, "destroyVm", DestroyVm);
  SetFn(context, k, "irqLine", IrqLine);
  SetFn(context, k, "irqfd", Irqfd);
  SetFn(context, k, "setPioForward", SetPioForward);
  SetFn(context, k, "setMmioForward", SetMmioForward);
  SetFn(context, k, "createVcpu", CreateVcpu);
  SetFn(context, k, "destroyVcpu", DestroyVcpu);
  SetFn(context, k, "getRegs", GetRegs);
  SetFn(context, k, "setRegs", SetRegs);
  SetFn(context, k, "getSregs", GetSregs);
  SetFn(context, k, "setSregs", SetSregs);
  SetFn(context, k, "setFpu", SetFpu);
  SetFn(context, k, "setMsrs", SetMsrs);
  SetFn(context, k, "injectException", InjectException);
  SetFn(context, k, "run", Run);
  SetFn(context, k, "kick", Kick);
  SetFn(context, k, "vcpuStats", VcpuStats);
  InitState(context, k);
  struct {
    const char* name;
    int value;
  } consts[] = {{"EXIT_NONE", EXIT_NONE},
                {"EXIT_IO", EXIT_IO},
                {"EXIT_MMIO", EXIT_MMIO},
                {"EXIT_SHUTDOWN", EXIT_SHUTDOWN},
                {"EXIT_INTERNAL_ERROR", EXIT_INTERNAL_ERROR},
                {"EXIT_FAIL_ENTRY", EXIT_FAIL_ENTRY},
                {"EXIT_INTERRUPTED", EXIT_INTERRUPTED},
                {"EXIT_HLT", EXIT_HLT},
                {"EXIT_SYSTEM_EVENT", EXIT_SYSTEM_EVENT},
                {"EXIT_UNKNOWN", EXIT_UNKNOWN},
                {"EXIT_RECORD_BYTES", static_cast<int>(REC_TOTAL)},
                {"KICK_SIGNAL", KickSignal()}};
  for (auto& c : consts) k->Set(context, Str(iso, c.name), Integer::New(iso, c.value)).Check();
  exports->Set(context, Str(iso, "kvm"), k).Check();
}

}  // namespace xenode_kvm
