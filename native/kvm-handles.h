// What native/kvm.cc's handle registry lends to the other KVM files of the addon
// (native/kvm-state.cc: save, restore, dirty logging) without exposing its structs: the fds
// and the guest-memory mapping a handle names, with a reference that keeps them open while used.
#pragma once

#include <node.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace xenode_kvm {

struct VmView {
  std::shared_ptr<void> keep;  // holds the VM (its fds, its mapping) while the view is used
  int kvm_fd = -1;             // /dev/kvm (system ioctls: KVM_GET_MSR_INDEX_LIST ...)
  int fd = -1;                 // the VM
  uint8_t* mem = nullptr;      // the domain's memfd, mapped MAP_SHARED
  size_t mem_bytes = 0;
};

struct VcpuView {
  std::shared_ptr<void> keep;
  int fd = -1;
  int kvm_fd = -1;
  bool in_run = false;  // a thread is inside run(): its state may not be read or written
};

bool LookupVm(int handle, VmView* out);
bool LookupVcpu(int handle, VcpuView* out);

// native/kvm-state.cc adds its functions to the addon's `kvm` object.
void InitState(v8::Local<v8::Context> context, v8::Local<v8::Object> kvm);

}  // namespace xenode_kvm
