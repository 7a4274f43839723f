// Save, restore and dirty logging for the KVM engine (docs/kvm.md, "Save, restore, migration"):
// every piece of a VM's and a vCPU's state that lives in the kernel, read out and written
// back with KVM's own ioctls, as QEMU's and Firecracker's snapshots do. The bytes are KVM's
// structs as the kernel gives them, in a simple record list:
//
//   record = u32 tag, u32 length, length bytes, zero padding to 8
//
// hypervisor/kvm/kvm-state-codec.ts reads and checks that list (tags, lengths) before any of it
// comes back here; loadVcpu/loadVm check the lengths again, since these are what the kernel
// copies from.
//
// Threads: a vCPU's state may be read or written only while no thread is inside run() for it
// (the owner pauses the VM first and has each vCPU complete its last exit, vcpu-worker.ts).

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "addon.h"
#include "js-helpers.h"
#include "kvm-handles.h"

namespace xenode_kvm {
namespace {

using v8::ArrayBuffer;
using v8::Context;
using v8::FunctionCallbackInfo;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::Uint8Array;
using v8::Value;
using xenode_js::SetFn;
using xenode_js::Str;
using xenode_js::ThrowErrno;
using xenode_addon::BytesArg;
using xenode_addon::IntArg;

using Args = FunctionCallbackInfo<Value>;

// Record tags (hypervisor/kvm/kvm-state-codec.ts mirrors them).
enum Tag : uint32_t {
  T_REGS = 1,
  T_SREGS = 2,
  T_XSAVE = 3,
  T_FPU = 4,
  T_XCRS = 5,
  T_MSRS = 6,
  T_LAPIC = 7,
  T_EVENTS = 8,
  T_MP_STATE = 9,
  T_DEBUGREGS = 10,
  T_PIC_MASTER = 20,
  T_PIC_SLAVE = 21,
  T_IOAPIC = 22,
  T_PIT2 = 23,
  T_CLOCK = 24,
};

// Flexible-array structs are sized differently in C++ (see kvm.cc): our own headers and numbers.
struct MsrListHdr {
  uint32_t nmsrs;
};
struct MsrsHdr {
  uint32_t nmsrs, pad;
};
struct MsrEntry {
  uint32_t index, reserved;
  uint64_t data;
};
struct OneMsr {
  MsrsHdr hdr;
  MsrEntry e;
};
struct Xsave4k {
  uint32_t region[1024];
};
static_assert(sizeof(MsrListHdr) == 4 && sizeof(OneMsr) == 24 && sizeof(Xsave4k) == 4096, "C layout");
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHdr);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHdr);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHdr);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, Xsave4k);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, Xsave4k);
constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, Xsave4k);

constexpr uint32_t MSR_IA32_TSC = 0x10;
constexpr uint32_t MSR_IA32_APICBASE = 0x1b;  // in SREGS (apic_base); setting it twice can reset the LAPIC
constexpr size_t kMaxMsrs = 1024;
constexpr size_t kMaxXsave = 64 * 1024;

int Ioctl(int fd, unsigned long req, void* arg) {
  int r;
  do r = ioctl(fd, req, arg);
  while (r < 0 && errno == EINTR);
  return r;
}

class Writer {
 public:
  void Add(uint32_t tag, const void* p, size_t n) {
    uint32_t h[2] = {tag, static_cast<uint32_t>(n)};
    Append(h, sizeof h);
    Append(p, n);
    static const uint8_t zero[8] = {};
    Append(zero, (8 - (n & 7)) & 7);
  }
  Local<Uint8Array> ToJs(Isolate* iso) const {
    Local<ArrayBuffer> ab = ArrayBuffer::New(iso, buf_.size());
    if (!buf_.empty()) memcpy(ab->Data(), buf_.data(), buf_.size());
    return Uint8Array::New(ab, 0, buf_.size());
  }

 private:
  void Append(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  std::vector<uint8_t> buf_;
};

struct Record {
  uint32_t tag;
  const uint8_t* data;
  size_t len;
};

// Splits a record list; false if it is malformed (a length past the end).
bool Split(const uint8_t* p, size_t n, std::vector<Record>* out) {
  size_t off = 0;
  while (off < n) {
    if (n - off < 8) return false;
    uint32_t h[2];
    memcpy(h, p + off, 8);
    off += 8;
    if (h[1] > n - off) return false;
    out->push_back({h[0], p + off, h[1]});
    off += (static_cast<size_t>(h[1]) + 7) & ~static_cast<size_t>(7);
  }
  return off == n;
}

const Record* Find(const std::vector<Record>& rs, uint32_t tag) {
  for (auto& r : rs)
    if (r.tag == tag) return &r;
  return nullptr;
}

bool VcpuFrom(const Args& a, VcpuView* v) {
  int64_t h;
  if (!IntArg(a, 0, "vcpu", 1, 1e9, &h)) return false;
  if (!LookupVcpu(static_cast<int>(h), v)) {
    ThrowErrno(a.GetIsolate(), "kvm(no such vcpu)", EBADF);
    return false;
  }
  if (v->in_run) {
    ThrowErrno(a.GetIsolate(), "kvm(vcpu is running: pause it first)", EBUSY);
    return false;
  }
  return true;
}

bool VmFrom(const Args& a, VmView* v) {
  int64_t h;
  if (!IntArg(a, 0, "vm", 1, 1e9, &h)) return false;
  if (!LookupVm(static_cast<int>(h), v)) {
    ThrowErrno(a.GetIsolate(), "kvm(no such vm)", EBADF);
    return false;
  }
  return true;
}

// The MSRs KVM says a VMM should save (KVM_GET_MSR_INDEX_LIST), minus APIC_BASE.
bool MsrIndexList(int kvm_fd, std::vector<uint32_t>* out) {
  std::vector<uint32_t> buf(1 + kMaxMsrs);
  buf[0] = kMaxMsrs;
  if (Ioctl(kvm_fd, kGetMsrIndexList, buf.data()) < 0) return false;
  for (uint32_t i = 0; i < buf[0] && i < kMaxMsrs; i++)
    if (buf[1 + i] != MSR_IA32_APICBASE) out->push_back(buf[1 + i]);
  return true;
}

// saveVcpu(vcpu) -> Uint8Array: registers, segment/control registers, XSAVE (or FPU), XCRs,
// MSRs (the TSC among them), the local APIC, pending events, MP state, debug registers.
void SaveVcpu(const Args& a) {
  Isolate* iso = a.GetIsolate();
  VcpuView v;
  if (!VcpuFrom(a, &v)) return;
  Writer w;
  struct kvm_regs regs;
  if (Ioctl(v.fd, KVM_GET_REGS, &regs) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_REGS)", errno);
  w.Add(T_REGS, &regs, sizeof regs);
  struct kvm_sregs sregs;
  if (Ioctl(v.fd, KVM_GET_SREGS, &sregs) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_SREGS)", errno);
  w.Add(T_SREGS, &sregs, sizeof sregs);

  int xsave_size = ioctl(v.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
  bool has_xsave = ioctl(v.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
  if (has_xsave) {
    size_t n = xsave_size > 4096 && static_cast<size_t>(xsave_size) <= kMaxXsave ? static_cast<size_t>(xsave_size) : 4096;
    std::vector<uint8_t> xs(n);
    if (Ioctl(v.fd, n > 4096 ? kGetXsave2 : kGetXsave, xs.data()) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_XSAVE)", errno);
    w.Add(T_XSAVE, xs.data(), n);
  } else {
    struct kvm_fpu fpu;
    if (Ioctl(v.fd, KVM_GET_FPU, &fpu) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_FPU)", errno);
    w.Add(T_FPU, &fpu, sizeof fpu);
  }
  if (ioctl(v.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
    struct kvm_xcrs xcrs;
    if (Ioctl(v.fd, KVM_GET_XCRS, &xcrs) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_XCRS)", errno);
    w.Add(T_XCRS, &xcrs, sizeof xcrs);
  }

  std::vector<uint32_t> idx;
  if (!MsrIndexList(v.kvm_fd, &idx)) return ThrowErrno(iso, "ioctl(KVM_GET_MSR_INDEX_LIST)", errno);
  std::vector<MsrEntry> msrs;
  bool tsc = false;
  for (uint32_t i : idx) {
    OneMsr m = {};
    m.hdr.nmsrs = 1;
    m.e.index = i;
    // An MSR this vCPU does not have (the list is the host's) reads as 0 entries: skipped.
    if (Ioctl(v.fd, kGetMsrs, &m) == 1) {
      msrs.push_back(m.e);
      if (i == MSR_IA32_TSC) tsc = true;
    }
  }
  if (!tsc) return ThrowErrno(iso, "kvm.saveVcpu(the TSC MSR cannot be read)", EIO);
  w.Add(T_MSRS, msrs.data(), msrs.size() * sizeof(MsrEntry));

  struct kvm_lapic_state lapic;
  if (Ioctl(v.fd, KVM_GET_LAPIC, &lapic) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_LAPIC)", errno);
  w.Add(T_LAPIC, &lapic, sizeof lapic);
  struct kvm_vcpu_events ev;
  if (Ioctl(v.fd, KVM_GET_VCPU_EVENTS, &ev) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_VCPU_EVENTS)", errno);
  w.Add(T_EVENTS, &ev, sizeof ev);
  struct kvm_mp_state mp;
  if (Ioctl(v.fd, KVM_GET_MP_STATE, &mp) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_MP_STATE)", errno);
  w.Add(T_MP_STATE, &mp, sizeof mp);
  struct kvm_debugregs dr;
  if (Ioctl(v.fd, KVM_GET_DEBUGREGS, &dr) == 0) w.Add(T_DEBUGREGS, &dr, sizeof dr);
  a.GetReturnValue().Set(w.ToJs(iso));
}

// A record of exactly the size of T (the kernel copies sizeof(T) from what we pass).
template <typename T>
bool Exact(Isolate* iso, const std::vector<Record>& rs, uint32_t tag, bool required, const T** out, const char* what) {
  const Record* r = Find(rs, tag);
  *out = nullptr;
  if (r == nullptr) {
    if (!required) return true;
    char m[96];
    snprintf(m, sizeof m, "kvm state: no %s record", what);
    ThrowErrno(iso, m, EINVAL);
    return false;
  }
  if (r->len != sizeof(T)) {
    char m[96];
    snprintf(m, sizeof m, "kvm state: %s record of %zu bytes, want %zu", what, r->len, sizeof(T));
    ThrowErrno(iso, m, EINVAL);
    return false;
  }
  *out = reinterpret_cast<const T*>(r->data);
  return true;
}

// loadVcpu(vcpu, state) -> { msrsSkipped }: the order QEMU uses where it matters (segment
// registers before MSRs, the LAPIC before the TSC deadline and pending events, MP state last).
void LoadVcpu(const Args& a) {
  Isolate* iso = a.GetIsolate();
  VcpuView v;
  uint8_t* p;
  size_t n;
  if (!VcpuFrom(a, &v) || !BytesArg(a, 1, "state", &p, &n)) return;
  std::vector<Record> rs;
  if (!Split(p, n, &rs)) return ThrowErrno(iso, "kvm.loadVcpu(malformed record list)", EINVAL);
  // Copies: the kernel reads from aligned memory we own, not from a JS buffer that could move.
  const struct kvm_regs* regs;
  const struct kvm_sregs* sregs;
  const struct kvm_fpu* fpu;
  const struct kvm_xcrs* xcrs;
  const struct kvm_lapic_state* lapic;
  const struct kvm_vcpu_events* ev;
  const struct kvm_mp_state* mp;
  const struct kvm_debugregs* dr;
  if (!Exact(iso, rs, T_REGS, true, &regs, "registers") || !Exact(iso, rs, T_SREGS, true, &sregs, "segment registers") ||
      !Exact(iso, rs, T_FPU, false, &fpu, "FPU") || !Exact(iso, rs, T_XCRS, false, &xcrs, "XCR") ||
      !Exact(iso, rs, T_LAPIC, true, &lapic, "local APIC") || !Exact(iso, rs, T_EVENTS, true, &ev, "vCPU events") ||
      !Exact(iso, rs, T_MP_STATE, true, &mp, "MP state") || !Exact(iso, rs, T_DEBUGREGS, false, &dr, "debug registers"))
    return;
  const Record* xs = Find(rs, T_XSAVE);
  const Record* msr = Find(rs, T_MSRS);
  if (xs == nullptr && fpu == nullptr) return ThrowErrno(iso, "kvm.loadVcpu(neither XSAVE nor FPU state)", EINVAL);
  if (xs != nullptr && (xs->len < 4096 || xs->len > kMaxXsave)) return ThrowErrno(iso, "kvm.loadVcpu(XSAVE size)", EINVAL);
  if (msr == nullptr || msr->len % sizeof(MsrEntry) != 0 || msr->len / sizeof(MsrEntry) > kMaxMsrs)
    return ThrowErrno(iso, "kvm.loadVcpu(MSR list)", EINVAL);

  struct kvm_sregs s = *sregs;
  if (Ioctl(v.fd, KVM_SET_SREGS, &s) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_SREGS)", errno);
  struct kvm_regs r = *regs;
  if (Ioctl(v.fd, KVM_SET_REGS, &r) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_REGS)", errno);
  if (xs != nullptr) {
    // KVM_SET_XSAVE reads as much as the vCPU's XSAVE area needs (more than 4 KiB with AMX).
    int want = ioctl(v.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    size_t need = want > 4096 ? static_cast<size_t>(want) : 4096;
    if (xs->len < need) return ThrowErrno(iso, "kvm.loadVcpu(XSAVE area smaller than this host's)", EINVAL);
    std::vector<uint8_t> buf(xs->data, xs->data + xs->len);
    if (Ioctl(v.fd, kSetXsave, buf.data()) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_XSAVE)", errno);
  } else {
    struct kvm_fpu f = *fpu;
    if (Ioctl(v.fd, KVM_SET_FPU, &f) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_FPU)", errno);
  }
  if (xcrs != nullptr) {
    struct kvm_xcrs x = *xcrs;
    if (Ioctl(v.fd, KVM_SET_XCRS, &x) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_XCRS)", errno);
  }
  struct kvm_lapic_state l = *lapic;
  if (Ioctl(v.fd, KVM_SET_LAPIC, &l) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_LAPIC)", errno);
  int skipped = 0;
  size_t count = msr->len / sizeof(MsrEntry);
  for (size_t i = 0; i < count; i++) {
    OneMsr m = {};
    m.hdr.nmsrs = 1;
    memcpy(&m.e, msr->data + i * sizeof(MsrEntry), sizeof(MsrEntry));
    if (m.e.index == MSR_IA32_APICBASE) continue;
    if (Ioctl(v.fd, kSetMsrs, &m) != 1) {
      // The TSC is what a guest's clock runs on: without it the guest would see time jump.
      if (m.e.index == MSR_IA32_TSC) return ThrowErrno(iso, "kvm.loadVcpu(KVM_SET_MSRS refused the TSC)", EINVAL);
      skipped++;
    }
  }
  struct kvm_vcpu_events e = *ev;
  if (Ioctl(v.fd, KVM_SET_VCPU_EVENTS, &e) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_VCPU_EVENTS)", errno);
  if (dr != nullptr) {
    struct kvm_debugregs d = *dr;
    if (Ioctl(v.fd, KVM_SET_DEBUGREGS, &d) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_DEBUGREGS)", errno);
  }
  struct kvm_mp_state m = *mp;
  if (Ioctl(v.fd, KVM_SET_MP_STATE, &m) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_MP_STATE)", errno);
  Local<Object> o = Object::New(iso);
  o->Set(iso->GetCurrentContext(), Str(iso, "msrsSkipped"), Integer::New(iso, skipped)).Check();
  a.GetReturnValue().Set(o);
}

// saveVm(vm) -> Uint8Array: the in-kernel 8259 pair and IOAPIC, the PIT, kvmclock.
void SaveVm(const Args& a) {
  Isolate* iso = a.GetIsolate();
  VmView v;
  if (!VmFrom(a, &v)) return;
  Writer w;
  const uint32_t tags[] = {T_PIC_MASTER, T_PIC_SLAVE, T_IOAPIC};
  for (uint32_t chip = 0; chip < 3; chip++) {
    struct kvm_irqchip c = {};
    c.chip_id = chip;
    if (Ioctl(v.fd, KVM_GET_IRQCHIP, &c) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_IRQCHIP)", errno);
    w.Add(tags[chip], &c, sizeof c);
  }
  struct kvm_pit_state2 pit;
  if (Ioctl(v.fd, KVM_GET_PIT2, &pit) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_PIT2)", errno);
  w.Add(T_PIT2, &pit, sizeof pit);
  struct kvm_clock_data clk = {};
  if (Ioctl(v.fd, KVM_GET_CLOCK, &clk) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_CLOCK)", errno);
  w.Add(T_CLOCK, &clk, sizeof clk);
  a.GetReturnValue().Set(w.ToJs(iso));
}

void LoadVm(const Args& a) {
  Isolate* iso = a.GetIsolate();
  VmView v;
  uint8_t* p;
  size_t n;
  if (!VmFrom(a, &v) || !BytesArg(a, 1, "state", &p, &n)) return;
  std::vector<Record> rs;
  if (!Split(p, n, &rs)) return ThrowErrno(iso, "kvm.loadVm(malformed record list)", EINVAL);
  const struct kvm_irqchip* chips[3];
  const struct kvm_pit_state2* pit;
  const struct kvm_clock_data* clk;
  if (!Exact(iso, rs, T_PIC_MASTER, true, &chips[0], "PIC master") || !Exact(iso, rs, T_PIC_SLAVE, true, &chips[1], "PIC slave") ||
      !Exact(iso, rs, T_IOAPIC, true, &chips[2], "IOAPIC") || !Exact(iso, rs, T_PIT2, true, &pit, "PIT") ||
      !Exact(iso, rs, T_CLOCK, true, &clk, "clock"))
    return;
  for (uint32_t chip = 0; chip < 3; chip++) {
    struct kvm_irqchip c = *chips[chip];
    if (c.chip_id != chip) return ThrowErrno(iso, "kvm.loadVm(irqchip record for the wrong chip)", EINVAL);
    if (Ioctl(v.fd, KVM_SET_IRQCHIP, &c) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_IRQCHIP)", errno);
  }
  struct kvm_pit_state2 ps = *pit;
  if (Ioctl(v.fd, KVM_SET_PIT2, &ps) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_PIT2)", errno);
  struct kvm_clock_data c = {};
  c.clock = clk->clock;  // the guest's clock goes on from where it stood (flags: none)
  if (Ioctl(v.fd, KVM_SET_CLOCK, &c) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_CLOCK)", errno);
}

// Slots with dirty logging on, and their sizes in pages, by VM.
std::mutex g_logged_lock;
std::map<std::pair<void*, int>, uint64_t> g_logged;

// setDirtyLogging(vm, slot, guestPhys, memOffset, size, on): the slot again, with or without
// KVM_MEM_LOG_DIRTY_PAGES (KVM write-protects the slot's pages and records the first write).
void SetDirtyLogging(const Args& a) {
  Isolate* iso = a.GetIsolate();
  VmView v;
  int64_t slot, gpa, off, size;
  if (!VmFrom(a, &v) || !IntArg(a, 1, "slot", 0, 255, &slot) || !IntArg(a, 2, "guestPhys", 0, 9007199254740991.0, &gpa) ||
      !IntArg(a, 3, "memOffset", 0, 9007199254740991.0, &off) || !IntArg(a, 4, "size", 4096, 9007199254740991.0, &size))
    return;
  if ((gpa | off | size) & 0xfff) return ThrowErrno(iso, "kvm.setDirtyLogging(not page aligned)", EINVAL);
  if (static_cast<uint64_t>(off + size) > v.mem_bytes) return ThrowErrno(iso, "kvm.setDirtyLogging(outside guest memory)", EINVAL);
  struct kvm_userspace_memory_region r = {};
  r.slot = static_cast<uint32_t>(slot);
  r.flags = a[5]->BooleanValue(iso) ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  r.guest_phys_addr = static_cast<uint64_t>(gpa);
  r.memory_size = static_cast<uint64_t>(size);
  r.userspace_addr = reinterpret_cast<uint64_t>(v.mem + off);
  if (Ioctl(v.fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) return ThrowErrno(iso, "ioctl(KVM_SET_USER_MEMORY_REGION, dirty log)", errno);
  std::lock_guard<std::mutex> g(g_logged_lock);
  if (r.flags != 0) g_logged[{v.keep.get(), static_cast<int>(slot)}] = static_cast<uint64_t>(size) / 4096;
  else g_logged.erase({v.keep.get(), static_cast<int>(slot)});
}

// getDirtyLog(vm, slot, bitmap): the slot's pages written since the last call (bit n = page n
// of the slot), then cleared and write-protected again (KVM_GET_DIRTY_LOG).
void GetDirtyLog(const Args& a) {
  Isolate* iso = a.GetIsolate();
  VmView v;
  int64_t slot;
  uint8_t* p;
  size_t n;
  if (!VmFrom(a, &v) || !IntArg(a, 1, "slot", 0, 255, &slot) || !BytesArg(a, 2, "bitmap", &p, &n)) return;
  // KVM writes ceil(pages / 64) * 8 bytes for the slot: a bitmap shorter than that would be
  // overrun, so the slot must be one setDirtyLogging() turned on, whose size we know.
  uint64_t pages;
  {
    std::lock_guard<std::mutex> g(g_logged_lock);
    auto it = g_logged.find({v.keep.get(), static_cast<int>(slot)});
    if (it == g_logged.end()) return ThrowErrno(iso, "kvm.getDirtyLog(dirty logging is off for this slot)", EINVAL);
    pages = it->second;
  }
  if (n < (pages + 63) / 64 * 8) return ThrowErrno(iso, "kvm.getDirtyLog(bitmap too small for the slot)", EINVAL);
  struct kvm_dirty_log d = {};
  d.slot = static_cast<uint32_t>(slot);
  d.dirty_bitmap = p;
  if (Ioctl(v.fd, KVM_GET_DIRTY_LOG, &d) < 0) return ThrowErrno(iso, "ioctl(KVM_GET_DIRTY_LOG)", errno);
}

}  // namespace

void InitState(Local<Context> context, Local<Object> k) {
  SetFn(context, k, "saveVcpu", SaveVcpu);
  SetFn(context, k, "loadVcpu", LoadVcpu);
  SetFn(context, k, "saveVm", SaveVm);
  SetFn(context, k, "loadVm", LoadVm);
  SetFn(context, k, "setDirtyLogging", SetDirtyLogging);
  SetFn(context, k, "getDirtyLog", GetDirtyLog);
}

}  // namespace xenode_kvm
