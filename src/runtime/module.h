// A compiled qnnc module: a directory holding kernels.so (generated kernels + Halide runtime),
// weights.bin and graph.json (the execution plan). Module loads one and runs it with planned,
// reused activation memory.
//
// Loading validates the files before anything runs: every field's JSON type, every value index,
// each value's byte size against its shape and dtype, constants inside weights.bin, every
// kernel argument's buffer view inside its value, kernel signatures (arguments, dimensions,
// types) where the kernel library describes them, and the data flow (each step reads values
// already written, writes each value once, reads/writes agree with the arguments). A damaged
// or hand-edited module is a qnnc::Error naming the field, never a crash or a silent misrun.
//
// Threads: one Module may be run from several threads at once. Each run takes an execution
// context (activation arena + bound kernel buffers) from a small per-module pool, creating one
// when all are busy; contexts are kept and reused, so a steady state allocates nothing per run
// and a single caller always reuses the same context. Constants are shared by all runs.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/tensor.h"

namespace qnnc {

class Module {
 public:
  // Finds a symbol of the kernel library (kernels, halide_set_num_threads, ...).
  using SymbolLookup = std::function<void *(const std::string &name)>;

  // Throws qnnc::Error when dir is not a readable qnnc module. Kernels come from dir/kernels.so,
  // or, when lookup is given, from it (a deployed bundle links its kernels statically).
  static Module load(const std::string &dir, SymbolLookup lookup = nullptr);

  // Runs the model; inputs are checked against the compiled shapes. Safe to call from several
  // threads at once (each concurrent call uses its own execution context; see above).
  std::vector<Tensor> run(const std::vector<Tensor> &inputs);
  // Same, calling hook(step) after each step has written its output, on the calling thread;
  // inside the hook, value_data() of an activation refers to this run's context.
  using Hook = std::function<void(size_t step)>;
  std::vector<Tensor> run(const std::vector<Tensor> &inputs, const Hook &hook);
  // Same on caller memory: inputs[i] holds input i (float32, its compiled shape, contiguous,
  // read once into the run's arena), outputs[i] receives output i. No shape is checked here:
  // the caller sized the buffers from input_shapes() / output_shapes().
  void run_into(const std::vector<const float *> &inputs, const std::vector<float *> &outputs,
                const Hook &hook = nullptr);

  // Threads for the kernels' parallel loops (runtime/thread_pool.h; process-wide, shared by all
  // modules); <= 0 means all cores. Concurrent runs share the pool: a loop that finds it busy
  // with another run's loop runs on its caller's thread alone.
  void set_threads(int n);
  int threads() const;

  const nlohmann::json &manifest() const;   // graph.json
  const std::string &dir() const;
  std::vector<std::vector<int64_t>> input_shapes() const;
  std::vector<std::vector<int64_t>> output_shapes() const;
  size_t arena_bytes() const;               // planned activation memory (per context)
  size_t contexts() const;                  // execution contexts created so far (>= 1)

  // Storage of a value (activation or constant) by its manifest id; valid while the module
  // lives. Constants may be rewritten between runs (used for batch-norm re-estimation); they are
  // shared by all contexts. An activation's storage is that of the run in progress on the
  // calling thread (inside a hook), otherwise that of the primary context, which every run takes
  // when no other run holds it (in a single-threaded program: the previous run's values).
  // Throws qnnc::Error for an id out of range. A slice of a concatenation (its channels strided
  // in a larger buffer) is returned as a dense copy made at the call.
  float *value_data(int id);
  std::vector<int64_t> value_shape(int id) const;
  int find_value(const std::string &name) const;   // -1 when absent

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace qnnc
