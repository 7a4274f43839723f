// Argument checking and export registration shared by the addon's files (native/addon.h).

#include <limits.h>
#include <stdio.h>
#include <time.h>

#include <cmath>

#include "addon.h"

namespace xenode_addon {

bool IntArg(const Args& a, int i, const char* name, double lo, double hi, int64_t* out,
            const int64_t* dflt) {
  Local<Value> v = a[i];
  char msg[128];
  if (v->IsUndefined() && dflt != nullptr) {
    *out = *dflt;
    return true;
  }
  if (!v->IsNumber()) {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  double d = v.As<Number>()->Value();
  if (!(d >= lo && d <= hi) || d != std::trunc(d)) {
    snprintf(msg, sizeof msg, "%s must be an integer in [%.0f, %.0f]", name, lo, hi);
    ThrowRange(a.GetIsolate(), msg);
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

int64_t MonoNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

bool FdArg(const Args& a, int i, int* fd) {
  int64_t v;
  if (!IntArg(a, i, "fd", 0, INT_MAX, &v)) return false;
  *fd = static_cast<int>(v);
  return true;
}

bool FlagArg(const Args& a, int i, const char* name, bool* out) {
  if (!a[i]->IsBoolean()) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a boolean", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  *out = a[i]->IsTrue();
  return true;
}

bool BytesArg(const Args& a, int i, const char* name, uint8_t** data, size_t* len) {
  if (!a[i]->IsArrayBufferView()) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", name);
    ThrowType(a.GetIsolate(), msg);
    return false;
  }
  Local<ArrayBufferView> v = a[i].As<ArrayBufferView>();
  *len = v->ByteLength();
  *data = ViewData(v);
  return true;
}

bool SliceArgs(const Args& a, int i, uint8_t** data, size_t* len) {
  uint8_t* base;
  size_t size;
  int64_t off, n;
  if (!BytesArg(a, i, "buf", &base, &size)) return false;
  if (!IntArg(a, i + 1, "offset", 0, static_cast<double>(size), &off)) return false;
  if (!IntArg(a, i + 2, "length", 0, static_cast<double>(size - off), &n)) return false;
  *data = base + off;
  *len = static_cast<size_t>(n);
  return true;
}

void SetFn(Local<Context> ctx, Local<Object> target, const char* name, v8::FunctionCallback fn,
           Local<Value> data) {
  Isolate* iso = ctx->GetIsolate();
  Local<Function> f = FunctionTemplate::New(iso, fn, data)->GetFunction(ctx).ToLocalChecked();
  f->SetName(Str(iso, name));
  target->Set(ctx, Str(iso, name), f).Check();
}

void SetInt(Local<Context> ctx, Local<Object> target, const char* name, int value) {
  Isolate* iso = ctx->GetIsolate();
  target->Set(ctx, Str(iso, name), Integer::New(iso, value)).Check();
}

void SetFns(Local<Context> ctx, Local<Object> target, std::initializer_list<FnExport> fns) {
  for (const FnExport& f : fns) SetFn(ctx, target, f.name, f.fn);
}

void SetInts(Local<Context> ctx, Local<Object> target, std::initializer_list<IntExport> ints) {
  for (const IntExport& i : ints) SetInt(ctx, target, i.name, i.value);
}

}  // namespace xenode_addon
