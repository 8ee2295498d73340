// A compiled qnnc module: a directory holding kernels.so (generated kernels + Halide runtime),
// weights.bin and graph.json (the execution plan). Module loads one and runs it with planned,
// reused activation memory.
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

  // Runs the model; inputs are checked against the compiled shapes.
  std::vector<Tensor> run(const std::vector<Tensor> &inputs);
  // Same, calling hook(step) after each step has written its output.
  using Hook = std::function<void(size_t step)>;
  std::vector<Tensor> run(const std::vector<Tensor> &inputs, const Hook &hook);

  // Threads for the kernels' parallel loops (runtime/thread_pool.h; process-wide, shared by all
  // modules); <= 0 means all cores.
  void set_threads(int n);
  int threads() const;

  const nlohmann::json &manifest() const;   // graph.json
  const std::string &dir() const;
  std::vector<std::vector<int64_t>> input_shapes() const;
  size_t arena_bytes() const;               // planned activation memory

  // Storage of a value (activation or constant) by its manifest id; valid while the module
  // lives. Constants may be rewritten between runs (used for batch-norm re-estimation).
  float *value_data(int id);
  std::vector<int64_t> value_shape(int id) const;
  int find_value(const std::string &name) const;   // -1 when absent

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace qnnc
