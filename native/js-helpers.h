// What every file of the addon (the host primitives, kvm.cc, uring.cc) says to JavaScript the same way: strings,
// errors shaped like Node's own system errors (code, errno, syscall), and the bytes behind a
// typed array, shared or not.
#pragma once

#include <node.h>
#include <stdio.h>
#include <string.h>

#include <cstdint>

namespace xenode_js {

inline v8::Local<v8::String> Str(v8::Isolate* iso, const char* s) {
  return v8::String::NewFromUtf8(iso, s).ToLocalChecked();
}

// An Error like Node's: "syscall: ECODE (message)", with .code, .errno and .syscall.
inline void ThrowErrno(v8::Isolate* iso, const char* syscall, int err) {
  const char* code = strerrorname_np(err);  // glibc >= 2.32
  char codebuf[16];
  if (code == nullptr) {
    snprintf(codebuf, sizeof codebuf, "E%d", err);
    code = codebuf;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, code, strerror(err));
  v8::Local<v8::Context> ctx = iso->GetCurrentContext();
  v8::Local<v8::Object> e = v8::Exception::Error(Str(iso, msg)).As<v8::Object>();
  e->Set(ctx, Str(iso, "code"), Str(iso, code)).Check();
  e->Set(ctx, Str(iso, "errno"), v8::Integer::New(iso, err)).Check();
  e->Set(ctx, Str(iso, "syscall"), Str(iso, syscall)).Check();
  iso->ThrowException(e);
}

inline void ThrowType(v8::Isolate* iso, const char* what) {
  iso->ThrowException(v8::Exception::TypeError(Str(iso, what)));
}

inline void ThrowRange(v8::Isolate* iso, const char* what) {
  iso->ThrowException(v8::Exception::RangeError(Str(iso, what)));
}

// Start of a view's bytes. Buffer() also moves a small on-heap typed array off the heap,
// so the pointer stays valid for the duration of the (synchronous) call.
inline uint8_t* ViewData(v8::Local<v8::ArrayBufferView> view) {
  v8::Local<v8::ArrayBuffer> buf = view->Buffer();
  void* base = buf->IsSharedArrayBuffer() ? buf.As<v8::SharedArrayBuffer>()->Data() : buf->Data();
  return static_cast<uint8_t*>(base) + view->ByteOffset();
}

// target[name] = a function calling fn (a named export of the addon).
inline void SetFn(v8::Local<v8::Context> ctx, v8::Local<v8::Object> target, const char* name, v8::FunctionCallback fn) {
  v8::Isolate* iso = ctx->GetIsolate();
  v8::Local<v8::Function> f = v8::FunctionTemplate::New(iso, fn)->GetFunction(ctx).ToLocalChecked();
  f->SetName(Str(iso, name));
  target->Set(ctx, Str(iso, name), f).Check();
}

}  // namespace xenode_js
