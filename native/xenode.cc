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

NODE_MODULE_INIT(/* exports, module, context */) {
  using namespace xenode_addon;
  using Init = void (*)(v8::Local<v8::Context>, v8::Local<v8::Object>);
  for (Init init : {xenode_kvm::Init, xenode_uring::Init, InitMemory, InitFutex, InitEventfd, InitFdWatch, InitFdIo,
                    InitUnixSockets, InitTap, InitPty, InitProcesses, InitMounts})
    init(context, exports);
}
