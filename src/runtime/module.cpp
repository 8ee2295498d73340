#include "runtime/module.h"

#ifndef QNNC_STATIC_KERNELS
#include <dlfcn.h>
#endif

#include <HalideRuntime.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "ir/graph.h"
#include "runtime/cpu_features.h"
#include "runtime/memory_plan.h"
#include "runtime/scratch.h"
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

using json = nlohmann::json;

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

// Limits of what a module may declare (far above any real network; they keep every size
// computation below within int64).
constexpr size_t kMaxRank = 16;
constexpr int64_t kMaxValueBytes = int64_t(1) << 40;
constexpr size_t kMaxValues = size_t(1) << 20, kMaxSteps = size_t(1) << 20, kMaxArgs = 1024;

enum Kind { kInput, kConst, kAct };
const char *const kKindNames[] = {"input", "const", "act"};

struct DTypeInfo {
  const char *name;
  halide_type_t type;
  int bytes;
};
const DTypeInfo kDTypes[] = {{"f32", halide_type_t(halide_type_float, 32), 4},
                             {"u8", halide_type_t(halide_type_uint, 8), 1},
                             {"i8", halide_type_t(halide_type_int, 8), 1},
                             {"i32", halide_type_t(halide_type_int, 32), 4},
                             {"u32", halide_type_t(halide_type_uint, 32), 4}};

std::string type_name(halide_type_t t) {
  for (const auto &d : kDTypes)
    if (d.type == t) return d.name;
  const char *code = t.code == halide_type_int ? "i" : t.code == halide_type_uint ? "u" : t.code == halide_type_float ? "f" : "?";
  return code + std::to_string(t.bits) + (t.lanes > 1 ? "x" + std::to_string(t.lanes) : "");
}

struct ArgInfo {
  int value = -1;
  std::vector<halide_dimension_t> dims;
};

struct Step {
  std::string name, fn;
  bool alias = false;
  int (*argv)(void **) = nullptr;
  std::vector<ArgInfo> args;
  std::vector<int> reads, writes;
  std::vector<bool> is_output;   // per arg: the kernel writes it
  size_t first_arg = 0;          // index of args[0] in the flat per-context tables
};

struct ValueInfo {
  std::string name;
  int kind = kAct;
  int dtype = 0;                 // index into kDTypes
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  int64_t offset = 0;            // constants: into weights.bin
  int64_t arena_offset = 0;      // activations and inputs: into each context's arena
  int alias_of = -1;
  int root = -1;                 // end of the alias chain (the value owning the storage)
  // A slice: channels [channel_offset, +C) of alias_of, both N,C,H,W activations in NHWC memory
  // with the same N, H, W (a concatenation's input written in place); -1: a plain view.
  int64_t channel_offset = -1;
  std::string layout;
  int64_t root_channel = 0;      // first channel within the root (slice offsets summed)
  int64_t view_bytes = 0;        // bytes from the root's storage to this value's first element
  bool is_slice() const { return channel_offset >= 0; }
};

// One argument of one step, bound the same way in every execution context.
struct Binding {
  bool is_const = false;
  int64_t offset = 0;            // into the weights or the arena
  halide_type_t type;
  int32_t rank = 0;
  size_t first_dim = 0;          // into the flat dims table
};

// What one run needs for itself: the activation arena and kernel buffers bound to it.
struct Context {
  Bytes arena;
  std::map<int, Bytes> dense_copies;  // value_data of slices: gathered copies
  std::vector<halide_dimension_t> dims;
  std::vector<halide_buffer_t> bufs;
  std::vector<void *> argptrs;
};

// The run in progress on this thread (for value_data inside a hook).
struct Current {
  const void *impl = nullptr;
  Context *ctx = nullptr;
};
thread_local Current current_run;

// Typed access to graph.json: every failure is a qnnc::Error naming the module, the place
// (e.g. "step 12 ('/layer1/...')") and the field; strings from the file are made printable.
class Reader {
 public:
  explicit Reader(const std::string &dir) : dir_(printable(dir)) {}

  [[noreturn]] void fail(const std::string &where, const std::string &what) const {
    throw Error("module '" + dir_ + "': " + (where.empty() ? "" : where + ": ") + what);
  }
  static std::string shown(const json &j) {
    if (j.is_string()) return "'" + printable(j.get_ref<const std::string &>(), 60) + "'";
    if (j.is_structured()) return std::string("an ") + (j.is_array() ? "array" : "object");
    return printable(j.dump(), 60);
  }

  const json *find(const json &o, const char *key) const {
    auto it = o.find(key);
    return it == o.end() ? nullptr : &*it;
  }
  const json &need(const json &o, const char *key, const std::string &where) const {
    const json *j = find(o, key);
    if (!j) fail(where, std::string("field '") + key + "' is missing");
    return *j;
  }
  const json &array(const json &o, const char *key, const std::string &where) const {
    const json &j = need(o, key, where);
    if (!j.is_array()) fail(where, std::string("field '") + key + "' must be an array, found " + shown(j));
    return j;
  }
  std::string string(const json &o, const char *key, const std::string &where) const {
    const json &j = need(o, key, where);
    if (!j.is_string()) fail(where, std::string("field '") + key + "' must be a string, found " + shown(j));
    return j.get<std::string>();
  }
  std::string string_or(const json &o, const char *key, const std::string &where, const std::string &dflt) const {
    return find(o, key) ? string(o, key, where) : dflt;
  }
  bool boolean_or(const json &o, const char *key, const std::string &where, bool dflt) const {
    const json *j = find(o, key);
    if (!j) return dflt;
    if (!j->is_boolean()) fail(where, std::string("field '") + key + "' must be true or false, found " + shown(*j));
    return j->get<bool>();
  }
  void optional_type(const json &o, const char *key, const std::string &where, bool ok, const char *what) const {
    const json *j = find(o, key);
    if (j && !ok) fail(where, std::string("field '") + key + "' must be " + what + ", found " + shown(*j));
  }
  // An integer in [lo, hi]; `what` names it in messages.
  int64_t integer(const json &j, const std::string &where, const std::string &what, int64_t lo, int64_t hi) const {
    if (!j.is_number_integer()) fail(where, what + " must be an integer, found " + shown(j));
    if (j.is_number_unsigned() && j.get<uint64_t>() > (uint64_t)std::numeric_limits<int64_t>::max())
      fail(where, what + " is " + shown(j) + ", out of range");
    int64_t v = j.get<int64_t>();
    if (v < lo || v > hi)
      fail(where, what + " is " + std::to_string(v) + ", must be " +
                      (hi == std::numeric_limits<int64_t>::max() ? ">= " + std::to_string(lo)
                                                                 : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"));
    return v;
  }
  int64_t integer(const json &o, const char *key, const std::string &where, int64_t lo, int64_t hi) const {
    return integer(need(o, key, where), where, std::string("field '") + key + "'", lo, hi);
  }
  // An array of value indices.
  std::vector<int> indices(const json &o, const char *key, const std::string &where) const {
    const json &a = array(o, key, where);
    std::vector<int> r;
    r.reserve(a.size());
    for (size_t i = 0; i < a.size(); i++) {
      std::string what = std::string("'") + key + "'[" + std::to_string(i) + "]";
      if (!a[i].is_number_integer()) fail(where, what + " must be a value index, found " + shown(a[i]));
      r.push_back(value_index(a[i], where, what));
    }
    return r;
  }
  int value_index(const json &j, const std::string &where, const std::string &what) const {
    if (!j.is_number_integer()) fail(where, what + " must be a value index, found " + shown(j));
    if (j.is_number_unsigned() ? j.get<uint64_t>() >= nvalues_ : (j.get<int64_t>() < 0 || j.get<int64_t>() >= (int64_t)nvalues_))
      fail(where, what + " is value " + printable(j.dump(), 30) + ", but the module has " + std::to_string(nvalues_) +
                      " values");
    return (int)j.get<int64_t>();
  }
  void set_values(size_t n) { nvalues_ = n; }

 private:
  std::string dir_;
  size_t nvalues_ = 0;
};

std::string named(const std::string &what, size_t i, const std::string &name) {
  return what + " " + std::to_string(i) + " ('" + printable(name) + "')";
}

}  // namespace

struct Module::Impl {
  std::string dir;
  nlohmann::json manifest;
  void *lib = nullptr;
  int (*set_threads)(int) = nullptr;
  std::atomic<int> threads{0};
  std::vector<ValueInfo> values;
  std::vector<Step> steps;
  std::vector<int> inputs, outputs;
  Bytes weights;
  size_t weights_bytes = 0, arena_bytes = 0;
  std::vector<Binding> bindings;          // every step's args, in order
  std::vector<halide_dimension_t> dims;   // their dims, in order

  // Execution contexts: the primary one (made at load) and those made for concurrent runs.
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Context>> contexts;
  Context *primary = nullptr;
  bool primary_busy = false;
  std::vector<Context *> idle;            // free contexts other than the primary

  ~Impl() {
#ifndef QNNC_STATIC_KERNELS
    if (lib) dlclose(lib);
#endif
  }

  std::unique_ptr<Context> make_context() const {
    auto c = std::make_unique<Context>();
    c->arena = aligned_bytes(arena_bytes);
    c->dims = dims;
    c->bufs.assign(bindings.size(), halide_buffer_t{});
    c->argptrs.resize(bindings.size());
    for (size_t i = 0; i < bindings.size(); i++) {
      const Binding &b = bindings[i];
      halide_buffer_t &buf = c->bufs[i];
      buf.host = (b.is_const ? weights.get() : c->arena.get()) + b.offset;
      buf.type = b.type;
      buf.dimensions = b.rank;
      buf.dim = c->dims.data() + b.first_dim;
      c->argptrs[i] = &buf;
    }
    return c;
  }

  // The primary context when free, else an idle one, else a new one (kept for later runs).
  Context *acquire() {
    {
      std::lock_guard<std::mutex> lk(pool_mutex);
      if (!primary_busy) {
        primary_busy = true;
        return primary;
      }
      if (!idle.empty()) {
        Context *c = idle.back();
        idle.pop_back();
        return c;
      }
    }
    std::unique_ptr<Context> c = make_context();
    Context *p = c.get();
    std::lock_guard<std::mutex> lk(pool_mutex);
    contexts.push_back(std::move(c));
    idle.reserve(contexts.size());  // so that release never allocates
    return p;
  }
  void release(Context *c) {
    std::lock_guard<std::mutex> lk(pool_mutex);
    if (c == primary) primary_busy = false;
    else idle.push_back(c);
  }

  uint8_t *storage(int id, Context *c) const {
    const ValueInfo &r = values[values[id].root];
    return (r.kind == kConst ? weights.get() + r.offset : c->arena.get() + r.arena_offset) + values[id].view_bytes;
  }
};

Module Module::load(const std::string &dir, SymbolLookup lookup) {
  auto im = std::make_shared<Impl>();
  im->dir = dir;
  const std::string qdir = printable(dir);
  std::ifstream mf(dir + "/graph.json");
  if (!mf) throw Error("'" + qdir + "' is not a qnnc module (cannot open " + qdir + "/graph.json)");
  try {
    mf >> im->manifest;
  } catch (const std::exception &e) {
    throw Error("'" + qdir + "/graph.json' is corrupt: " + printable(e.what(), 300));
  }
  const json &m = im->manifest;
  Reader r(dir);
  if (!m.is_object() || !m.contains("format") || m["format"] != "qnnc-module-1")
    throw Error("'" + qdir + "' is not a qnnc module (unknown format)");
  const std::string target = r.string_or(m, "target", "", "?");
  r.optional_type(m, "model", "", m.value("model", json("")).is_string(), "a string");
  r.optional_type(m, "halide_target", "", m.value("halide_target", json("")).is_string(), "a string");
  if (!lookup && !r.boolean_or(m, "target_is_host", "", true))
    throw Error("module '" + qdir + "' was compiled for target '" + printable(target) +
                "'; it cannot run on this host (deploy its bundle instead)");
  // Kernels may use any instruction of the features they were compiled for: refuse a CPU that
  // lacks one rather than die with SIGILL inside a kernel.
  if (m.contains("cpu_features")) {
    if (!m["cpu_features"].is_array())
      throw Error("module '" + qdir + "': graph.json's cpu_features is not a list");
    std::vector<std::string> need;
    for (const auto &f : m["cpu_features"]) {
      if (!f.is_string()) throw Error("module '" + qdir + "': graph.json's cpu_features holds a non-string");
      need.push_back(f.get<std::string>());
    }
    require_cpu_features(need, "module '" + qdir + "' (target '" + printable(target) + "')",
                         "recompile it on this machine with --target host");
  }

  // Values: kind, dtype, shape and byte size agree; aliases end at a non-constant value.
  const json &jvals = r.array(m, "values", "");
  const size_t nv = jvals.size();
  if (nv > kMaxValues) r.fail("", "more than " + std::to_string(kMaxValues) + " values");
  r.set_values(nv);
  auto &values = im->values;
  values.resize(nv);
  for (size_t i = 0; i < nv; i++) {
    const json &jv = jvals[i];
    std::string where = "value " + std::to_string(i);
    if (!jv.is_object()) r.fail(where, "must be an object, found " + Reader::shown(jv));
    ValueInfo &v = values[i];
    v.name = r.string(jv, "name", where);
    where = named("value", i, v.name);
    std::string kind = r.string(jv, "kind", where);
    v.kind = int(std::find(std::begin(kKindNames), std::end(kKindNames), kind) - std::begin(kKindNames));
    if (v.kind > kAct) r.fail(where, "kind '" + printable(kind) + "' is not input, const or act");
    std::string dt = r.string(jv, "dtype", where);
    v.dtype = int(std::find_if(std::begin(kDTypes), std::end(kDTypes), [&](const DTypeInfo &d) { return dt == d.name; }) -
                  std::begin(kDTypes));
    if (v.dtype == (int)std::size(kDTypes)) r.fail(where, "unknown dtype '" + printable(dt) + "'");
    const json &js = r.array(jv, "shape", where);
    if (js.size() > kMaxRank) r.fail(where, "shape has " + std::to_string(js.size()) + " dimensions");
    int64_t numel = 1;
    for (size_t d = 0; d < js.size(); d++) {
      int64_t e = r.integer(js[d], where, "shape[" + std::to_string(d) + "]", 1, kMaxValueBytes);
      if (__builtin_mul_overflow(numel, e, &numel) || numel > kMaxValueBytes)
        r.fail(where, "shape " + printable(js.dump(), 200) + " is too large");
      v.shape.push_back(e);
    }
    const int64_t expect = numel * kDTypes[v.dtype].bytes;
    v.bytes = r.integer(jv, "bytes", where, 0, std::numeric_limits<int64_t>::max());
    if (v.bytes != expect)
      r.fail(where, "bytes is " + std::to_string(v.bytes) + ", but shape " + shape_string(v.shape) + " of " + dt +
                        " takes " + std::to_string(expect));
    if (v.kind == kConst) v.offset = r.integer(jv, "offset", where, 0, std::numeric_limits<int64_t>::max());
    else if (r.find(jv, "offset")) r.integer(jv, "offset", where, 0, std::numeric_limits<int64_t>::max());
    if (const json *a = r.find(jv, "alias_of")) {
      v.alias_of = r.value_index(*a, where, "alias_of");
      if (v.kind != kAct) r.fail(where, "only activations may be aliases (alias_of), this is kind '" + kind + "'");
    }
    if (r.find(jv, "channel_offset")) {
      if (v.alias_of < 0) r.fail(where, "has a channel_offset but no alias_of");
      v.channel_offset = r.integer(jv, "channel_offset", where, 0, kMaxValueBytes);
    }
    r.optional_type(jv, "layout", where, jv.value("layout", json("")).is_string(), "a string");
    v.layout = jv.value("layout", json("")).is_string() ? jv.value("layout", std::string()) : std::string();
    r.optional_type(jv, "scale", where, jv.value("scale", json(0)).is_number(), "a number");
    r.optional_type(jv, "zero_point", where, jv.value("zero_point", json(0)).is_number_integer(), "an integer");
  }
  for (size_t i = 0; i < nv; i++) {
    ValueInfo &v = values[i];
    int root = (int)i;
    for (size_t hops = 0; values[root].alias_of >= 0; hops++) {
      if (hops >= nv) r.fail(named("value", i, v.name), "alias_of chain loops");
      root = values[root].alias_of;
    }
    v.root = root;
    if (v.alias_of >= 0) {
      const ValueInfo &a = values[v.alias_of];
      if (values[root].kind == kConst)
        r.fail(named("value", i, v.name), "is an alias of constant value " + std::to_string(root));
      if (v.is_slice()) {
        // A channel range of an NHWC activation (itself a slice or the owner of its storage).
        const bool fits = v.shape.size() == 4 && a.shape.size() == 4 && v.layout == "NHWC" && a.layout == "NHWC" &&
                          v.shape[0] == a.shape[0] && v.shape[2] == a.shape[2] && v.shape[3] == a.shape[3] &&
                          v.channel_offset + v.shape[1] <= a.shape[1];
        if (a.dtype != v.dtype || !fits || (a.alias_of >= 0 && !a.is_slice()))
          r.fail(named("value", i, v.name), "is a slice (channels " + std::to_string(v.channel_offset) + "+ of value " +
                                                std::to_string(v.alias_of) +
                                                ") that is not a channel range of an NHWC activation of its type and size");
        continue;
      }
      if (a.is_slice())
        r.fail(named("value", i, v.name), "is a view of slice value " + std::to_string(v.alias_of) +
                                              " (a slice is not dense; only kernels read it)");
      if (a.dtype != v.dtype || a.bytes != v.bytes)
        r.fail(named("value", i, v.name), "is an alias (alias_of " + std::to_string(v.alias_of) + ") of a value with " +
                                              std::string(kDTypes[a.dtype].name) + " " + std::to_string(a.bytes) +
                                              " bytes, it has " + kDTypes[v.dtype].name + " " + std::to_string(v.bytes));
    }
  }

  for (size_t i = 0; i < nv; i++) {
    ValueInfo &v = values[i];
    for (int a = (int)i; values[a].is_slice(); a = values[a].alias_of) v.root_channel += values[a].channel_offset;
    v.view_bytes = v.root_channel * kDTypes[v.dtype].bytes;
  }

  // Model inputs and outputs: float32 (run() copies floats), inputs exactly the 'input' values.
  im->inputs = r.indices(m, "inputs", "");
  im->outputs = r.indices(m, "outputs", "");
  if (im->inputs.empty()) r.fail("", "'inputs' is empty");
  if (im->outputs.empty()) r.fail("", "'outputs' is empty");
  size_t input_values = 0;
  for (const auto &v : values) input_values += v.kind == kInput;
  std::vector<bool> is_input(nv, false);
  for (size_t i = 0; i < im->inputs.size(); i++) {
    int x = im->inputs[i];
    if (values[x].kind != kInput || is_input[x])
      r.fail("", "inputs[" + std::to_string(i) + "] is " + named("value", x, values[x].name) +
                     (is_input[x] ? ", listed twice" : ", of kind '" + std::string(kKindNames[values[x].kind]) + "' (not input)"));
    if (values[x].dtype != 0) r.fail("", "input " + named("value", x, values[x].name) + " is not f32");
    is_input[x] = true;
  }
  if (input_values != im->inputs.size())
    r.fail("", std::to_string(input_values) + " values have kind 'input', but 'inputs' lists " +
                   std::to_string(im->inputs.size()));
  for (size_t i = 0; i < im->outputs.size(); i++) {
    const ValueInfo &v = values[im->outputs[i]];
    if (v.kind == kConst || v.dtype != 0)
      r.fail("", "outputs[" + std::to_string(i) + "] is " + named("value", im->outputs[i], v.name) + ", a " +
                     kKindNames[v.kind] + " of " + kDTypes[v.dtype].name + " (outputs are f32 activations)");
    if (v.is_slice()) r.fail("", "outputs[" + std::to_string(i) + "] is " + named("value", im->outputs[i], v.name) + ", a slice");
  }

  // Constants lie inside weights.bin, stored in value order, each 64-byte aligned.
  const int64_t wbytes = r.integer(m, "weights_bytes", "", 0, std::numeric_limits<int64_t>::max());
  int64_t end = 0;
  for (size_t i = 0; i < nv; i++) {
    const ValueInfo &v = values[i];
    if (v.kind != kConst) continue;
    if (v.offset > wbytes || v.bytes > wbytes - v.offset)
      r.fail(named("constant", i, v.name), "lies outside weights.bin (offset " + std::to_string(v.offset) + ", " +
                                                std::to_string(v.bytes) + " bytes; weights_bytes " + std::to_string(wbytes) + ")");
    int64_t expect = (end + 63) / 64 * 64;
    if (v.offset != expect)
      r.fail(named("constant", i, v.name), "offset is " + std::to_string(v.offset) + ", expected " +
                                                std::to_string(expect) +
                                                " (constants are stored in value order, each 64-byte aligned)");
    end = v.offset + v.bytes;
  }
  if (end != wbytes)
    r.fail("", "weights_bytes is " + std::to_string(wbytes) + ", but the constants end at byte " + std::to_string(end));
  std::ifstream wf(dir + "/weights.bin", std::ios::binary | std::ios::ate);
  if (!wf) throw Error("module '" + qdir + "' has no weights.bin");
  im->weights_bytes = (size_t)wf.tellg();
  if ((int64_t)im->weights_bytes != wbytes)
    throw Error("module '" + qdir + "': weights.bin has " + std::to_string(im->weights_bytes) +
                " bytes, graph.json expects " + std::to_string(wbytes));

  // Steps: fields and buffer views (each inside its value's bytes).
  const json &jsteps = r.array(m, "steps", "");
  if (jsteps.size() > kMaxSteps) r.fail("", "more than " + std::to_string(kMaxSteps) + " steps");
  size_t total_args = 0, total_dims = 0;
  for (size_t k = 0; k < jsteps.size(); k++) {
    const json &js = jsteps[k];
    std::string where = "step " + std::to_string(k);
    if (!js.is_object()) r.fail(where, "must be an object, found " + Reader::shown(js));
    Step s;
    s.name = r.string(js, "name", where);
    where = named("step", k, s.name);
    s.alias = r.boolean_or(js, "alias", where, false);
    r.string_or(js, "op", where, "");
    r.string_or(js, "describe", where, "");
    r.string_or(js, "halide_target", where, "");
    r.optional_type(js, "spec", where, js.value("spec", json::object()).is_object(), "an object");
    if (!s.alias) s.fn = r.string(js, "fn", where);
    s.reads = r.indices(js, "reads", where);
    s.writes = r.indices(js, "writes", where);
    const json &ja = r.array(js, "args", where);
    if (ja.size() > kMaxArgs) r.fail(where, "has " + std::to_string(ja.size()) + " args");
    for (size_t i = 0; i < ja.size(); i++) {
      const std::string arg = "arg " + std::to_string(i);
      if (!ja[i].is_object()) r.fail(where, arg + " must be an object, found " + Reader::shown(ja[i]));
      ArgInfo a;
      const json &jval = r.need(ja[i], "value", where + ": " + arg);
      if (!jval.is_number_integer()) r.fail(where, arg + " value must be a value index, found " + Reader::shown(jval));
      if (jval.is_number_unsigned() ? jval.get<uint64_t>() >= nv : (jval.get<int64_t>() < 0 || jval.get<int64_t>() >= (int64_t)nv))
        r.fail(where, arg + " reads value " + printable(jval.dump(), 30) + ", but the module has " + std::to_string(nv) +
                          " values");
      a.value = jval.get<int>();
      const ValueInfo &v = values[a.value];
      const json &jd = r.array(ja[i], "dims", where + ": " + arg);
      if (jd.size() > kMaxRank) r.fail(where, arg + " has " + std::to_string(jd.size()) + " dimensions");
      // The furthest element the view reaches, (extent - 1) * stride summed; it must lie
      // inside the value (numbers bounded so that nothing overflows).
      int64_t furthest = 0;
      for (size_t d = 0; d < jd.size(); d++) {
        const std::string dim = arg + " dim " + std::to_string(d);
        if (!jd[d].is_array() || jd[d].size() != 3)
          r.fail(where, dim + " must be [min, extent, stride], found " + Reader::shown(jd[d]));
        constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
        halide_dimension_t hd{};
        hd.min = (int32_t)r.integer(jd[d][0], where, dim + " min", 0, 0);
        hd.extent = (int32_t)r.integer(jd[d][1], where, dim + " extent", 1, kI32);
        hd.stride = (int32_t)r.integer(jd[d][2], where, dim + " stride", 0, kI32);
        if (__builtin_add_overflow(furthest, int64_t(hd.extent - 1) * hd.stride, &furthest))  // each term < 2^62
          r.fail(where, arg + " spans more than 2^63 elements");
        a.dims.push_back(hd);
      }
      const int64_t numel = v.bytes / kDTypes[v.dtype].bytes;
      // A slice's view reaches into its root's storage, from the slice's first element.
      const ValueInfo &owner = values[v.root];
      const int64_t room = owner.bytes / kDTypes[v.dtype].bytes - v.view_bytes / kDTypes[v.dtype].bytes;
      if (furthest >= room)
        r.fail(where, arg + " reaches element " + std::to_string(furthest) + " of " + named("value", a.value, v.name) +
                          ", which has " + std::to_string(room) + (v.is_slice() ? " elements from its start in value " +
                                                                                       std::to_string(v.root)
                                                                                 : " elements"));
      // A kernel argument views its whole value (the compiler never passes part of one): the
      // extents multiply to the value's element count. This also catches an argument pointed
      // at another value that merely happens to be large enough.
      int64_t covered = 1;
      for (const auto &hd : a.dims)
        if (__builtin_mul_overflow(covered, (int64_t)hd.extent, &covered)) covered = -1;
      if (covered != numel)
        r.fail(where, arg + " views " + std::to_string(covered) + " elements of " + named("value", a.value, v.name) +
                          ", which has " + std::to_string(numel));
      total_dims += a.dims.size();
      s.args.push_back(std::move(a));
    }
    s.first_arg = total_args;
    total_args += s.args.size();
    im->steps.push_back(std::move(s));
  }

  // Kernels.
  if (!lookup) {
#ifdef QNNC_STATIC_KERNELS
    throw Error("this runtime has no dynamic kernel loading");
#else
    std::string so = dir + "/kernels.so";
    im->lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!im->lib) throw Error("cannot load kernels of module '" + qdir + "': " + printable(dlerror(), 500));
    void *lib = im->lib;
    lookup = [lib](const std::string &name) { return dlsym(lib, name.c_str()); };
#endif
  }
  im->set_threads = (int (*)(int))lookup("halide_set_num_threads");
  // Parallel loops run on qnnc's pool (runtime/thread_pool.h) instead of Halide's.
  using ParFor = int (*)(void *, ParallelTask, int, int, uint8_t *);
  if (auto set_par_for = (ParFor(*)(ParFor))lookup("halide_set_custom_do_par_for")) set_par_for(pool_do_par_for);
  // Kernels' own buffers come from per-thread caches (runtime/scratch.h).
  using Malloc = void *(*)(void *, size_t);
  using Free = void (*)(void *, void *);
  if (auto set_malloc = (Malloc(*)(Malloc))lookup("halide_set_custom_malloc")) set_malloc(scratch_malloc);
  if (auto set_free = (Free(*)(Free))lookup("halide_set_custom_free")) set_free(scratch_free);
  using ErrorHandler = void (*)(void *, const char *);
  if (auto set_handler = (ErrorHandler(*)(ErrorHandler))lookup("halide_set_error_handler"))
    set_handler(qnnc_halide_error);

  // Each kernel's signature, where its library describes it (fn_metadata): argument count,
  // buffer ranks and element types, and which arguments it writes.
  using Metadata = const halide_filter_metadata_t *(*)();
  std::map<std::string, const halide_filter_metadata_t *> metadata;
  for (size_t k = 0; k < im->steps.size(); k++) {
    Step &s = im->steps[k];
    const std::string where = named("step", k, s.name);
    s.is_output.assign(s.args.size(), false);
    if (s.alias) continue;
    s.argv = (int (*)(void **))lookup(s.fn + "_argv");
    if (!s.argv) r.fail(where, "kernel '" + printable(s.fn) + "' is missing from kernels.so");
    auto it = metadata.find(s.fn);
    if (it == metadata.end()) {
      auto get = (Metadata)lookup(s.fn + "_metadata");
      const halide_filter_metadata_t *md = get ? get() : nullptr;
      if (md && (md->version != halide_filter_metadata_t::VERSION || md->num_arguments < 0 || !md->arguments)) md = nullptr;
      it = metadata.emplace(s.fn, md).first;
    }
    if (const halide_filter_metadata_t *md = it->second) {
      if ((size_t)md->num_arguments != s.args.size())
        r.fail(where, "has " + std::to_string(s.args.size()) + " args, kernel '" + printable(s.fn) + "' takes " +
                          std::to_string(md->num_arguments));
      for (size_t i = 0; i < s.args.size(); i++) {
        const halide_filter_argument_t &fa = md->arguments[i];
        const ValueInfo &v = values[s.args[i].value];
        if (fa.kind == halide_argument_kind_input_scalar)
          r.fail(where, "kernel '" + printable(s.fn) + "' takes a scalar as argument " + std::to_string(i));
        if ((size_t)fa.dimensions != s.args[i].dims.size())
          r.fail(where, "arg " + std::to_string(i) + " has " + std::to_string(s.args[i].dims.size()) + " dims, kernel '" +
                            printable(s.fn) + "' expects " + std::to_string(fa.dimensions));
        if (!(fa.type == kDTypes[v.dtype].type))
          r.fail(where, "arg " + std::to_string(i) + " is " + named("value", s.args[i].value, v.name) + " of dtype " +
                            kDTypes[v.dtype].name + ", kernel '" + printable(s.fn) + "' expects " + type_name(fa.type));
        s.is_output[i] = fa.kind == halide_argument_kind_output_buffer;
      }
    } else if (!s.args.empty()) {
      s.is_output.back() = true;  // a Halide pipeline's output buffer comes last
    }
  }

  // Data flow: a step reads values already written (or model inputs), writes each value once,
  // and its reads/writes (which the memory plan trusts) cover the values its kernel reads and
  // are exactly those it writes; every value written is read later or is a model output.
  std::vector<int> written_at(nv, -2), last_read(nv, -2);
  for (int x : im->inputs) written_at[x] = -1;
  for (size_t k = 0; k < im->steps.size(); k++) {
    const Step &s = im->steps[k];
    const std::string where = named("step", k, s.name);
    auto sorted_unique = [](std::vector<int> v) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      return v;
    };
    if (s.alias) {
      if (s.reads.empty() || s.writes.size() != 1 || !s.args.empty())
        r.fail(where, "a view step (alias) must read values, write one and have no args");
      const ValueInfo &w = values[s.writes[0]];
      if (s.reads.size() == 1 && !values[s.reads[0]].is_slice()) {
        if (w.alias_of != s.reads[0])
          r.fail(where, "writes " + named("value", s.writes[0], w.name) + " as a view of value " +
                            std::to_string(s.reads[0]) + ", but its alias_of is " + std::to_string(w.alias_of));
      } else {
        // A join: a concatenation whose inputs were written in place, as slices that tile its
        // output's channels in order.
        int64_t at = w.root_channel;
        for (int x : s.reads) {
          const ValueInfo &p = values[x];
          if (!p.is_slice() || p.root != w.root || p.root_channel != at)
            r.fail(where, "joins " + named("value", x, p.name) + ", which is not the slice of value " +
                              std::to_string(w.root) + " at channel " + std::to_string(at));
          at += p.shape[1];
        }
        if (w.shape.size() != 4 || at != w.root_channel + w.shape[1])
          r.fail(where, "its slices do not cover the channels of " + named("value", s.writes[0], w.name));
      }
    } else {
      std::vector<int> in, out;
      for (size_t i = 0; i < s.args.size(); i++) {
        int a = s.args[i].value;
        if (s.is_output[i]) {
          if (values[a].kind != kAct || (values[a].alias_of >= 0 && !values[a].is_slice()))
            r.fail(where, "arg " + std::to_string(i) + " writes " + named("value", a, values[a].name) +
                              ", which is not a plain activation or a slice");
          out.push_back(a);
        } else if (values[a].kind != kConst) {
          in.push_back(a);
        } else {
          // Each constant argument of a step is its own (weights, bias, multipliers, ...): the
          // compiler never binds one constant twice in a step, a damaged index may.
          for (size_t j = 0; j < i; j++)
            if (s.args[j].value == a)
              r.fail(where, "args " + std::to_string(j) + " and " + std::to_string(i) + " are both constant " +
                                named("value", a, values[a].name));
        }
      }
      if (s.writes.size() != sorted_unique(s.writes).size()) r.fail(where, "'writes' lists a value twice");
      auto list = [](const std::vector<int> &v) {
        std::string l;
        for (int x : v) l += (l.empty() ? "" : ", ") + std::to_string(x);
        return "[" + l + "]";
      };
      if (sorted_unique(s.writes) != sorted_unique(out))
        r.fail(where, "'writes' is " + list(s.writes) + ", but its kernel writes values " + list(sorted_unique(out)));
      // 'reads' lists the values the kernel reads. The one exception: a bit-serial convolution,
      // whose first argument is bit planes (u32) packed by the previous step, also lists the
      // activation those were packed from (it keeps it alive no longer than necessary anyway).
      std::vector<int> reads = sorted_unique(s.reads), need = sorted_unique(in), extra;
      std::set_difference(reads.begin(), reads.end(), need.begin(), need.end(), std::back_inserter(extra));
      bool ok = std::includes(reads.begin(), reads.end(), need.begin(), need.end());
      const int planes = s.args.empty() ? -1 : s.args[0].value, packer = planes < 0 ? -2 : written_at[planes];
      for (int e : extra) {
        const bool packed_from = packer >= 0 && kDTypes[values[planes].dtype].type == halide_type_t(halide_type_uint, 32) &&
                                 std::count(im->steps[packer].reads.begin(), im->steps[packer].reads.end(), e);
        ok = ok && packed_from;
      }
      if (!ok)
        r.fail(where, "'reads' is " + list(s.reads) + ", but its kernel reads the non-constant values " + list(need));
    }
    for (int x : s.reads) {
      if (written_at[x] == -2)
        r.fail(where, "reads " + named("value", x, values[x].name) + " before any step writes it");
      last_read[x] = (int)k;
    }
    for (int w : s.writes) {
      if (values[w].kind != kAct) r.fail(where, "writes " + named("value", w, values[w].name) + ", which is not an activation");
      if (written_at[w] != -2)
        r.fail(where, "writes " + named("value", w, values[w].name) + ", already written by step " + std::to_string(written_at[w]));
      written_at[w] = (int)k;
    }
  }
  std::vector<bool> is_output(nv, false);
  for (int o : im->outputs) {
    if (written_at[o] == -2) r.fail("", "output " + named("value", o, values[o].name) + " is never written");
    is_output[o] = true;
  }
  for (size_t v = 0; v < nv; v++)
    if (written_at[v] >= 0 && last_read[v] <= written_at[v] && !is_output[v])
      r.fail(named("step", written_at[v], im->steps[written_at[v]].name),
             "writes " + named("value", v, values[v].name) + ", which no later step reads and is not an output");

  // Weights (after every check, so that a damaged module fails before reading megabytes).
  im->weights = aligned_bytes(im->weights_bytes);
  wf.seekg(0);
  wf.read((char *)im->weights.get(), (std::streamsize)im->weights_bytes);
  if (!wf) throw Error("module '" + qdir + "': cannot read weights.bin");

  // Memory plan over activations (inputs included); aliases share their source's storage.
  std::vector<std::vector<int>> step_reads, step_writes;
  for (const auto &s : im->steps) {
    step_reads.push_back(s.reads);
    step_writes.push_back(s.writes);
  }
  std::vector<Interval> live;
  plan_lifetimes(im->inputs, im->outputs, step_reads, step_writes, [&](int v) { return values[v].kind != kConst; },
                 [&](int v) { return values[v].alias_of; }, [&](int v) { return values[v].bytes; }, live);
  im->arena_bytes = assign_offsets(live);
  for (const auto &iv : live) values[iv.value].arena_offset = iv.offset;

  // Bindings, the same in every context; the primary context binds them once here, so runs
  // only call the kernels.
  im->bindings.reserve(total_args);
  im->dims.reserve(total_dims);
  for (const auto &s : im->steps)
    for (const auto &a : s.args) {
      const ValueInfo &root = values[values[a.value].root];
      Binding b;
      b.is_const = root.kind == kConst;
      b.offset = (b.is_const ? root.offset : root.arena_offset) + values[a.value].view_bytes;
      b.type = kDTypes[values[a.value].dtype].type;
      b.rank = (int32_t)a.dims.size();
      b.first_dim = im->dims.size();
      im->dims.insert(im->dims.end(), a.dims.begin(), a.dims.end());
      im->bindings.push_back(b);
    }
  im->contexts.push_back(im->make_context());
  im->primary = im->contexts.back().get();
  im->idle.reserve(1);

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
size_t Module::contexts() const {
  std::lock_guard<std::mutex> lk(impl_->pool_mutex);
  return impl_->contexts.size();
}

std::vector<std::vector<int64_t>> Module::input_shapes() const {
  std::vector<std::vector<int64_t>> r;
  for (int i : impl_->inputs) r.push_back(impl_->values[i].shape);
  return r;
}

namespace {
void check_id(int id, size_t n) {
  if (id < 0 || (size_t)id >= n)
    throw Error("value id " + std::to_string(id) + " is out of range (the module has " + std::to_string(n) + " values)");
}
}  // namespace

float *Module::value_data(int id) {
  const Impl &im = *impl_;
  check_id(id, im.values.size());
  Context *c = current_run.impl == &im && current_run.ctx ? current_run.ctx : im.primary;
  const ValueInfo &v = im.values[id];
  if (!v.is_slice()) return (float *)im.storage(id, c);
  // A slice is strided (its pixels lie the root's channel count apart): gather a dense copy.
  const int64_t elem = kDTypes[v.dtype].bytes, row = v.shape[1] * elem;
  const int64_t pitch = im.values[v.root].shape[1] * elem, pixels = v.shape[0] * v.shape[2] * v.shape[3];
  Bytes &copy = c->dense_copies[id];
  if (!copy) copy = aligned_bytes(v.bytes);
  const uint8_t *src = im.storage(id, c);
  for (int64_t p = 0; p < pixels; p++) std::memcpy(copy.get() + p * row, src + p * pitch, row);
  return (float *)copy.get();
}
std::vector<int64_t> Module::value_shape(int id) const {
  check_id(id, impl_->values.size());
  return impl_->values[id].shape;
}
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
  std::vector<const float *> in;
  for (size_t i = 0; i < inputs.size(); i++) {
    const ValueInfo &v = im.values[im.inputs[i]];
    if (inputs[i].shape != v.shape)
      throw Error("input '" + printable(v.name) + "' has shape " + shape_string(inputs[i].shape) +
                  ", the module was compiled for " + shape_string(v.shape) + " (recompile with --input-shape)");
    if ((int64_t)inputs[i].data.size() != inputs[i].numel())
      throw Error("input '" + printable(v.name) + "': data size does not match its shape");
    in.push_back(inputs[i].data.data());
  }
  std::vector<Tensor> outs;
  std::vector<float *> out;
  for (const auto &s : output_shapes()) {
    Tensor t;
    t.shape = s;
    t.data.resize(t.numel());
    outs.push_back(std::move(t));
  }
  for (auto &t : outs) out.push_back(t.data.data());
  run_into(in, out, hook);
  return outs;
}

std::vector<std::vector<int64_t>> Module::output_shapes() const {
  std::vector<std::vector<int64_t>> r;
  for (int o : impl_->outputs) r.push_back(impl_->values[o].shape);
  return r;
}

void Module::run_into(const std::vector<const float *> &inputs, const std::vector<float *> &outputs, const Hook &hook) {
  Impl &im = *impl_;
  if (inputs.size() != im.inputs.size())
    throw Error("model takes " + std::to_string(im.inputs.size()) + " input(s), got " + std::to_string(inputs.size()));
  if (outputs.size() != im.outputs.size())
    throw Error("model has " + std::to_string(im.outputs.size()) + " output(s), got " + std::to_string(outputs.size()) +
                " output buffers");
  // A context for this run, made this thread's current one (for value_data in the hook) and
  // given back however the run ends.
  struct Lease {
    Impl &im;
    Context *ctx;
    Current saved;
    explicit Lease(Impl &i) : im(i), ctx(i.acquire()), saved(current_run) { current_run = {&i, ctx}; }
    ~Lease() {
      current_run = saved;
      im.release(ctx);
    }
  } lease(im);
  Context &c = *lease.ctx;
  auto numel = [](const std::vector<int64_t> &s) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
  };
  for (size_t i = 0; i < inputs.size(); i++)
    std::memcpy(im.storage(im.inputs[i], &c), inputs[i], numel(im.values[im.inputs[i]].shape) * sizeof(float));
  for (size_t k = 0; k < im.steps.size(); k++) {
    const Step &s = im.steps[k];
    if (!s.alias) {
      last_halide_error.clear();
      int rc = s.argv(c.argptrs.data() + s.first_arg);
      if (rc != 0)
        throw Error("kernel '" + printable(s.fn) + "' of step '" + printable(s.name) + "' failed (Halide error " +
                    std::to_string(rc) + "): " + printable(last_halide_error, 1000));
    }
    if (hook) hook(k);
  }
  for (size_t i = 0; i < outputs.size(); i++) {
    int o = im.outputs[i];
    std::memcpy(outputs[i], im.storage(o, &c), numel(im.values[o].shape) * sizeof(float));
  }
}

}  // namespace qnnc
