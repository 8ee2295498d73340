// The compiler driver: graph -> passes -> one Halide kernel per fused node -> a module
// directory (kernels.so, weights.bin, graph.json, graph.txt) -> a loaded Module.
#pragma once
#include <functional>
#include <string>

#include "ir/graph.h"
#include "kernels/kernel_spec.h"
#include "passes/passes.h"
#include "runtime/module.h"

namespace qnnc {

struct CompileOptions {
  std::string target = "host";
  PassOptions passes;
  std::map<std::string, Knobs> knobs;            // per-family schedule overrides (--knob)
  int jobs = 0;                                   // parallel kernel compiles; <= 0: all cores
  std::function<void(const std::string &)> log;   // progress lines; null = silent
};

struct CompileSummary {
  std::string dir;
  int steps = 0, kernels = 0, cached = 0;
  double seconds = 0;
  int64_t weight_bytes = 0;
};

// Runs the passes on g (a copy) and writes a module directory.
CompileSummary compile_to_dir(Graph g, const CompileOptions &opt, const std::string &dir);

// Compiles into a fresh temporary directory and loads the module (host targets only).
Module compile(const Graph &g, const CompileOptions &opt = {});

}  // namespace qnnc
