// xenode.node: the host primitives Node cannot reach alone (see native/index.ts for the
// contract and why each one exists).
//
// Written against the V8 C++ API (node.h), not Node-API: Node-API in Node 20 cannot wrap
// external memory in a SharedArrayBuffer, which mapShared needs. The module is
// context-aware (NODE_MODULE_INIT), so it also loads in worker threads: vCPU and
// device-model threads live there.
//
// This file only registers the exports: each kind of primitive lives in a file of its own
// (native/addon.h lists them), the KVM engine in kvm.cc, io_uring disk I/O in uring.cc.

#include <node.h>

#include "addon.h"

// native/kvm.cc: the KVM vCPU engine, exported as exports.kvm.
namespace xenode_kvm {
void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);
}
// native/uring.cc: blkback's disk I/O on io_uring with registered memory, as exports.uring.
namespace xenode_uring {
void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);
}

NODE_MODULE_INIT(/* exports, module, context */) {
  xenode_kvm::Init(context, exports);
  xenode_uring::Init(context, exports);
  xenode_addon::InitMemory(context, exports);
  xenode_addon::InitFutex(context, exports);
  xenode_addon::InitEventfd(context, exports);
  xenode_addon::InitFdWatch(context, exports);
  xenode_addon::InitFdIo(context, exports);
  xenode_addon::InitUnixSockets(context, exports);
  xenode_addon::InitTap(context, exports);
  xenode_addon::InitPty(context, exports);
  xenode_addon::InitProcesses(context, exports);
  xenode_addon::InitMounts(context, exports);
}
