#include "runtime/module.h"

#ifndef QNNC_STATIC_KERNELS
#include <dlfcn.h>
#endif

#include <HalideRuntime.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "ir/graph.h"
#include "runtime/memory_plan.h"
#include "runtime/thread_pool.h"

namespace qnnc {

std::string shape_string(const std::vector<int64_t> &s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); i++) os << (i ? "," : "") << s[i];
  return os.str() + "]";
}

Tensor random_tensor(const std::vector<int64_t> &shape, uint64_t seed) {
  Tensor t;
  t.shape = shape;
  t.data.resize(t.numel());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto &x : t.data) x = nd(rng);
  return t;
}

namespace {

// Last Halide runtime error on this thread (the kernels report errors through a handler
// instead of aborting).
thread_local std::string last_halide_error;
extern "C" void qnnc_halide_error(void *, const char *msg) { last_halide_error = msg; }

struct AlignedFree {
  void operator()(void *p) const { std::free(p); }
};
using Bytes = std::unique_ptr<uint8_t, AlignedFree>;

// Weights and the activation arena: 64-byte aligned; from 2 MB on, aligned to and advised onto
// transparent huge pages where the OS offers them, since kernels stream through megabytes of
// weights per layer and 4 KB pages would cost a TLB miss every 4 KB.
Bytes aligned_bytes(size_t n) {
  constexpr size_t kHuge = size_t(2) << 20;
  size_t align = n >= kHuge ? kHuge : 64;
  void *p = std::aligned_alloc(align, std::max<size_t>(align, (n + align - 1) / align * align));
  if (!p) throw Error("out of memory allocating " + std::to_string(n) + " bytes");
#ifdef MADV_HUGEPAGE
  if (align == kHuge) madvise(p, (n + align - 1) / align * align, MADV_HUGEPAGE);
#endif
  return Bytes((uint8_t *)p);
}

struct Arg {
  int value;
  std::vector<halide_dimension_t> dims;
  halide_buffer_t buf{};
};

struct Step {
  std::string name, fn;
  bool alias = false;
  int (*argv)(void **) = nullptr;
  std::vector<Arg> args;
  std::vector<void *> argptrs;
};

struct ValueInfo {
  std::string name, kind;  // kind: input, const, act
  halide_type_t type{halide_type_float, 32, 1};
  std::vector<int64_t> shape;
  int64_t bytes = 0, offset = 0;   // offset into weights (const) or arena (act/input)
  int alias_of = -1;
};

}  // namespace

struct Module::Impl {
  std::string dir;
  nlohmann::json manifest;
  void *lib = nullptr;
  int (*set_threads)(int) = nullptr;
  int threads = 0;
  std::vector<ValueInfo> values;
  std::vector<Step> steps;
  std::vector<int> inputs, outputs;
  Bytes weights, arena;
  size_t weights_bytes = 0, arena_bytes = 0;

  ~Impl() {
#ifndef QNNC_STATIC_KERNELS
    if (lib) dlclose(lib);
#endif
  }

  uint8_t *storage(int id) {
    while (values[id].alias_of >= 0) id = values[id].alias_of;
    const ValueInfo &v = values[id];
    return (v.kind == "const" ? weights.get() : arena.get()) + v.offset;
  }
};

Module Module::load(const std::string &dir, SymbolLookup lookup) {
  auto im = std::make_shared<Impl>();
  im->dir = dir;
  std::ifstream mf(dir + "/graph.json");
  if (!mf) throw Error("'" + dir + "' is not a qnnc module (cannot open " + dir + "/graph.json)");
  try {
    mf >> im->manifest;
  } catch (const std::exception &e) {
    throw Error("'" + dir + "/graph.json' is corrupt: " + e.what());
  }
  const auto &m = im->manifest;
  if (!m.contains("format") || m["format"] != "qnnc-module-1")
    throw Error("'" + dir + "' is not a qnnc module (unknown format)");
  if (!lookup && m.value("target_is_host", true) == false)
    throw Error("module '" + dir + "' was compiled for target '" + m.value("target", std::string("?")) +
                "'; it cannot run on this host (deploy its bundle instead)");

  // Weights.
  std::ifstream wf(dir + "/weights.bin", std::ios::binary | std::ios::ate);
  if (!wf) throw Error("module '" + dir + "' has no weights.bin");
  im->weights_bytes = (size_t)wf.tellg();
  if (im->weights_bytes != m.at("weights_bytes").get<size_t>())
    throw Error("module '" + dir + "': weights.bin has " + std::to_string(im->weights_bytes) +
                " bytes, graph.json expects " + std::to_string(m.at("weights_bytes").get<size_t>()));
  im->weights = aligned_bytes(im->weights_bytes);
  wf.seekg(0);
  wf.read((char *)im->weights.get(), (std::streamsize)im->weights_bytes);

  for (const auto &jv : m.at("values")) {
    ValueInfo v;
    v.name = jv.at("name");
    v.kind = jv.at("kind");
    v.shape = jv.at("shape").get<std::vector<int64_t>>();
    v.bytes = jv.at("bytes");
    v.offset = jv.value("offset", (int64_t)0);
    v.alias_of = jv.value("alias_of", -1);
    std::string dt = jv.value("dtype", std::string("f32"));
    if (dt == "f32") v.type = halide_type_t(halide_type_float, 32);
    else if (dt == "u8") v.type = halide_type_t(halide_type_uint, 8);
    else if (dt == "i8") v.type = halide_type_t(halide_type_int, 8);
    else if (dt == "i32") v.type = halide_type_t(halide_type_int, 32);
    else if (dt == "u32") v.type = halide_type_t(halide_type_uint, 32);
    else throw Error("module '" + dir + "': value '" + v.name + "' has unknown dtype '" + dt + "'");
    if (v.kind == "const" && (v.offset < 0 || v.offset + v.bytes > (int64_t)im->weights_bytes))
      throw Error("module '" + dir + "': constant '" + v.name + "' lies outside weights.bin");
    im->values.push_back(v);
  }
  im->inputs = m.at("inputs").get<std::vector<int>>();
  im->outputs = m.at("outputs").get<std::vector<int>>();

  // Kernels.
  if (!lookup) {
#ifdef QNNC_STATIC_KERNELS
    throw Error("this runtime has no dynamic kernel loading");
#else
    std::string so = dir + "/kernels.so";
    im->lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!im->lib) throw Error("cannot load kernels of module '" + dir + "': " + dlerror());
    void *lib = im->lib;
    lookup = [lib](const std::string &name) { return dlsym(lib, name.c_str()); };
#endif
  }
  im->set_threads = (int (*)(int))lookup("halide_set_num_threads");
  // Parallel loops run on qnnc's pool (runtime/thread_pool.h) instead of Halide's.
  using ParFor = int (*)(void *, ParallelTask, int, int, uint8_t *);
  if (auto set_par_for = (ParFor(*)(ParFor))lookup("halide_set_custom_do_par_for")) set_par_for(pool_do_par_for);
  using ErrorHandler = void (*)(void *, const char *);
  if (auto set_handler = (ErrorHandler(*)(ErrorHandler))lookup("halide_set_error_handler"))
    set_handler(qnnc_halide_error);

  std::vector<std::vector<int>> step_reads, step_writes;
  for (const auto &js : m.at("steps")) {
    Step s;
    s.name = js.at("name");
    s.alias = js.value("alias", false);
    std::vector<int> reads, writes;
    for (const auto &ja : js.at("args")) {
      Arg a;
      a.value = ja.at("value");
      for (const auto &d : ja.at("dims")) {
        halide_dimension_t hd{};
        hd.min = d[0];
        hd.extent = d[1];
        hd.stride = d[2];
        a.dims.push_back(hd);
      }
      s.args.push_back(std::move(a));
    }
    for (int r : js.at("reads").get<std::vector<int>>()) reads.push_back(r);
    for (int w : js.at("writes").get<std::vector<int>>()) writes.push_back(w);
    if (!s.alias) {
      s.fn = js.at("fn");
      s.argv = (int (*)(void **))lookup(s.fn + "_argv");
      if (!s.argv) throw Error("module '" + dir + "': kernel " + s.fn + " missing from kernels.so");
    }
    step_reads.push_back(reads);
    step_writes.push_back(writes);
    im->steps.push_back(std::move(s));
  }

  // Memory plan over activations (inputs included); aliases share their source's storage.
  std::vector<Interval> live;
  plan_lifetimes(im->inputs, im->outputs, step_reads, step_writes,
                 [&](int v) { return im->values[v].kind != "const"; },
                 [&](int v) { return im->values[v].alias_of; },
                 [&](int v) { return im->values[v].bytes; }, live);
  im->arena_bytes = assign_offsets(live);
  for (const auto &iv : live) im->values[iv.value].offset = iv.offset;
  im->arena = aligned_bytes(im->arena_bytes);

  // Bind buffers once; runs only call the kernels.
  for (auto &s : im->steps) {
    for (auto &a : s.args) {
      a.buf.host = im->storage(a.value);
      a.buf.type = im->values[a.value].type;
      a.buf.dimensions = (int32_t)a.dims.size();
      a.buf.dim = a.dims.data();
      s.argptrs.push_back(&a.buf);
    }
  }
  Module mod;
  mod.impl_ = im;
  mod.set_threads(0);
  return mod;
}

void Module::set_threads(int n) {
  if (n <= 0) n = (int)std::max(1u, std::thread::hardware_concurrency());
  impl_->threads = n;
  pool_set_threads(n);
  if (impl_->set_threads) impl_->set_threads(n);
}

int Module::threads() const { return impl_->threads; }
const nlohmann::json &Module::manifest() const { return impl_->manifest; }
const std::string &Module::dir() const { return impl_->dir; }
size_t Module::arena_bytes() const { return impl_->arena_bytes; }

std::vector<std::vector<int64_t>> Module::input_shapes() const {
  std::vector<std::vector<int64_t>> r;
  for (int i : impl_->inputs) r.push_back(impl_->values[i].shape);
  return r;
}

float *Module::value_data(int id) { return (float *)impl_->storage(id); }
std::vector<int64_t> Module::value_shape(int id) const { return impl_->values.at(id).shape; }
int Module::find_value(const std::string &name) const {
  for (size_t i = 0; i < impl_->values.size(); i++)
    if (impl_->values[i].name == name) return (int)i;
  return -1;
}

std::vector<Tensor> Module::run(const std::vector<Tensor> &inputs) { return run(inputs, nullptr); }

std::vector<Tensor> Module::run(const std::vector<Tensor> &inputs, const Hook &hook) {
  Impl &im = *impl_;
  if (inputs.size() != im.inputs.size())
    throw Error("model takes " + std::to_string(im.inputs.size()) + " input(s), got " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); i++) {
    const ValueInfo &v = im.values[im.inputs[i]];
    if (inputs[i].shape != v.shape)
      throw Error("input '" + v.name + "' has shape " + shape_string(inputs[i].shape) + ", the module was compiled for " +
                  shape_string(v.shape) + " (recompile with --input-shape)");
    if ((int64_t)inputs[i].data.size() != inputs[i].numel())
      throw Error("input '" + v.name + "': data size does not match its shape");
    std::memcpy(im.storage(im.inputs[i]), inputs[i].data.data(), inputs[i].data.size() * sizeof(float));
  }
  for (size_t k = 0; k < im.steps.size(); k++) {
    Step &s = im.steps[k];
    if (!s.alias) {
      last_halide_error.clear();
      int rc = s.argv(s.argptrs.data());
      if (rc != 0)
        throw Error("kernel '" + s.fn + "' of step '" + s.name + "' failed (Halide error " + std::to_string(rc) +
                    "): " + last_halide_error);
    }
    if (hook) hook(k);
  }
  std::vector<Tensor> outs;
  for (int o : im.outputs) {
    Tensor t;
    t.shape = im.values[o].shape;
    t.data.resize(t.numel());
    std::memcpy(t.data.data(), im.storage(o), t.data.size() * sizeof(float));
    outs.push_back(std::move(t));
  }
  return outs;
}

}  // namespace qnnc
