// What the files of xenode.node's host primitives share (one file per kind of primitive:
// memory.cc, futex.cc, eventfd.cc, fd-watch.cc, fd-io.cc, unix-sockets.cc, tap.cc, pty.cc,
// mounts.cc, processes.cc; native/xenode.cc registers them all). Argument checking that throws
// the error a JavaScript caller should see, and each file's Init, which adds its exports.
//
// Every function is a thin synchronous wrapper; policy lives in TypeScript. A failing
// syscall throws Error{code: "EXXX", errno, syscall} with message "syscall: EXXX (strerror)".
// Built with -fno-exceptions (node's common.gypi): helpers return false with a pending JS
// exception, and callers return immediately.
#pragma once

#include <node.h>

#include <cstdint>
#include <initializer_list>

#include "js-helpers.h"

namespace xenode_addon {

using v8::Array;
using v8::ArrayBuffer;
using v8::ArrayBufferView;
using v8::Context;
using v8::Exception;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Int32Array;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::SharedArrayBuffer;
using v8::Signature;
using v8::String;
using v8::Uint8Array;
using v8::Value;

using xenode_js::Str;
using xenode_js::ThrowErrno;
using xenode_js::ThrowRange;
using xenode_js::ThrowType;
using xenode_js::ViewData;

using Args = FunctionCallbackInfo<Value>;

constexpr double kMaxSafeInt = 9007199254740991.0;  // 2^53 - 1

// ---------------------------------------------------------------------------------------
// errors and argument checking (native/addon-args.cc)

// args[i] as an integer in [lo, hi]. `dflt` (if given) stands in for undefined.
bool IntArg(const Args& a, int i, const char* name, double lo, double hi, int64_t* out,
            const int64_t* dflt = nullptr);
bool FdArg(const Args& a, int i, int* fd);
bool FlagArg(const Args& a, int i, const char* name, bool* out);
bool BytesArg(const Args& a, int i, const char* name, uint8_t** data, size_t* len);
// (buf, offset, length) at args[i..i+2], checked against the view's size.
bool SliceArgs(const Args& a, int i, uint8_t** data, size_t* len);
int64_t MonoNs();

// Sets or clears `bit` in the F_GETx/F_SETx flags of fd (native/fd-io.cc; TAP uses it too).
bool SetFdFlag(Isolate* iso, int fd, int get, int set, int bit, bool on);

// target[name] = a function calling fn, with `data` as its FunctionCallbackInfo::Data().
void SetFn(Local<Context> ctx, Local<Object> target, const char* name, v8::FunctionCallback fn,
           Local<Value> data = Local<Value>());
void SetInt(Local<Context> ctx, Local<Object> target, const char* name, int value);

// A file's exports as one list: SetFns(context, exports, {{"read", Read}, ...}).
struct FnExport {
  const char* name;
  v8::FunctionCallback fn;
};
struct IntExport {
  const char* name;
  int value;
};
void SetFns(Local<Context> ctx, Local<Object> target, std::initializer_list<FnExport> fns);
void SetInts(Local<Context> ctx, Local<Object> target, std::initializer_list<IntExport> ints);

// ---------------------------------------------------------------------------------------
// each file's exports

void InitMemory(Local<Context> context, Local<Object> exports);
void InitFutex(Local<Context> context, Local<Object> exports);
void InitEventfd(Local<Context> context, Local<Object> exports);
void InitFdWatch(Local<Context> context, Local<Object> exports);
void InitFdIo(Local<Context> context, Local<Object> exports);
void InitUnixSockets(Local<Context> context, Local<Object> exports);
void InitTap(Local<Context> context, Local<Object> exports);
void InitPty(Local<Context> context, Local<Object> exports);
void InitProcesses(Local<Context> context, Local<Object> exports);
void InitMounts(Local<Context> context, Local<Object> exports);

}  // namespace xenode_addon

// The addon's other two parts, registered beside these: native/kvm.cc, the KVM vCPU engine
// (exports.kvm), and native/uring.cc, blkback's disk I/O on io_uring (exports.uring).
namespace xenode_kvm {
void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);
}
namespace xenode_uring {
void Init(v8::Local<v8::Context> context, v8::Local<v8::Object> exports);
}
