// The compiler driver: graph -> passes -> one Halide kernel per fused node -> a module
// directory (kernels.so, weights.bin, graph.json, graph.txt) -> a loaded Module.
#pragma once
#include <functional>
#include <string>

#include "ir/graph.h"
#include "ir/progress.h"
#include "kernels/kernel_spec.h"
#include "passes/passes.h"
#include "quantize/qconfig.h"
#include "quantize/quantize_graph.h"
#include "runtime/module.h"

namespace qnnc {

struct CompileOptions {
  std::string target = "host";
  PassOptions passes;
  bool quantize = false;                          // calibrate and quantize per qconfig
  QConfig qconfig;
  std::map<std::string, Knobs> knobs;            // per-family schedule overrides (--knob)
  std::map<std::string, Knobs> tuned;            // knobs per task (tune/records.h), over the records'
  std::string tuning_records;                     // JSON-lines records (tune/records.h); empty: the
                                                  // environment's QNNC_TUNING_RECORDS, else none
  bool tuning_records_from_env = true;            // false: ignore QNNC_TUNING_RECORDS (the tuner's
                                                  // default module keeps the default knobs)
  int jobs = 0;                                   // parallel kernel compiles; <= 0: all cores
  std::function<void(const std::string &)> log;   // progress lines; null = silent
  ProgressFn progress;                            // per kernel / calibration run; null: kernels go to log
  std::string progress_task = "kernels";          // the task name compile_to_dir reports
};

struct CompileSummary {
  std::string dir;
  int steps = 0, kernels = 0, cached = 0;
  // Tuning: kernels (distinct) with tuned knobs, those of a tunable family without a record for
  // this target ("describe" of each), and the untuned ones' share of the module's MACs.
  std::string tuning_records;   // the file read, if any
  int tuned = 0;
  int default_best = 0;          // measured, and no candidate beat the default schedule
  std::vector<std::string> untuned;
  double untuned_mac_share = 0;
  // Kernels whose records compared with a default schedule this qnnc no longer chooses (a newer
  // default since they were tuned): not applied, and counted in `untuned`.
  std::vector<std::string> stale;
  int concats = 0, concats_in_place = 0;  // channel concatenations; those written without a copy
  double seconds = 0;
  int64_t weight_bytes = 0;
  QuantizeSummary quant;
};

// Runs the passes on g (a copy) and writes a module directory.
CompileSummary compile_to_dir(Graph g, const CompileOptions &opt, const std::string &dir);

// The second half of compile_to_dir, on a graph prepare_for_codegen already made (the tuner
// compiles one prepared graph many times with different knobs). quant is left empty.
CompileSummary compile_prepared(const Graph &prepared, const CompileOptions &opt, const std::string &dir);
// The graph compile_to_dir lowers: passes, then (with opt.quantize) calibration on the fused
// fp32 graph and the quantization rewrite, then layout.
Graph prepare_for_codegen(Graph g, const CompileOptions &opt, QuantizeSummary *qs = nullptr);

// Compiles into a fresh temporary directory and loads the module (host targets only).
Module compile(const Graph &g, const CompileOptions &opt = {});

}  // namespace qnnc
