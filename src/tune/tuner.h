// `qnnc tune`: searches each task's knob space (kernels/knob_space.h) on this machine and
// appends every measurement to a records file (tune/records.h).
//
// Tasks are the model's distinct kernels without their tunable knobs, weighted by how long
// their steps take with the default knobs. One budget (trials or seconds) goes to whichever task
// promises most: the one with the largest (default time x calls) / (trials + 1). A candidate
// is the whole module compiled with new knobs for one task (the kernel cache keeps the rest);
// candidates compile in parallel batches and are measured one at a time by a runner
// (tune/runner.h: a separate `qnnc measure` process here, or a board over ssh), with a timeout,
// against the default module: outputs must match, and the task's steps are timed in
// interleaved runs. Candidates are drawn
// at random from the space, then increasingly by changing one knob of the best so far. With the
// cost model (tune/cost_model.h) each trial draws a pool of such proposals and measures the one
// the model predicts fastest (a random one of them with probability 0.2, to keep exploring); the
// model retrains every few measurements on all records of the target: this run's, the records
// file's when resuming, and those of `history` (earlier runs, other models: shapes transfer).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "codegen/compile.h"
#include "ir/progress.h"
#include "tune/records.h"

namespace qnnc {

struct TuneOptions {
  std::string records;          // JSON-lines file appended to
  std::string workdir;          // modules compiled while tuning; default: records + ".work"
  int trials = 0;               // candidate measurements in all (0: until the time budget)
  double time_budget_s = 0;     // seconds (0: until `trials`)
  bool resume = false;          // continue a records file: knobs measured there are not retried
  int threads = 0;              // threads the measurements run with (0: all cores)
  int jobs = 0;                 // candidates compiled in parallel (0: one per core); measured one at a time
  std::string runner = "local"; // where candidates are measured: local, qemu, ssh://user@host[:port] (tune/runner.h)
  int repeat = 10;              // timed runs per measurement
  double timeout_s = 120;       // per measurement process
  double min_share = 0.005;     // tasks below this share of the default time are left alone
  uint64_t seed = 0;
  bool use_cost_model = true;   // rank a pool of proposals with the learned model (false: the
                                // random / mutation search alone, one proposal per trial)
  bool confirm = true;          // re-measure each task's best at the end (3x the runs); it decides
  int cost_model_pool = 32;     // proposals ranked per trial
  int cost_model_retrain = 8;   // measurements between retrainings
  std::vector<std::string> history;  // more records files the model trains on (this target's)
  std::string qnnc_exe;         // this program, run as `qnnc measure`
  std::string qnnc_version;
  std::function<void(const std::string &)> log;
  ProgressFn progress;
};

struct TuneTask {
  std::string task, family, describe;
  std::vector<int> steps;       // where it runs in the module
  Knobs default_knobs, best_knobs;
  double default_ms = 0;        // per call, default knobs
  double best_ms = 0;           // per call, best measured (default_ms when nothing beat it)
  int trials = 0, failed = 0;
  bool exhausted = false;
  bool confirmed = false;       // best_ms comes from the confirmation measurement
};

struct TuneResult {
  std::vector<TuneTask> tasks;  // by default time, largest first
  int trials = 0;
  double seconds = 0;
  std::string runner;           // where it measured
  bool times_count = true;      // false under emulation: records check outputs, compile ignores them
  std::string table() const;    // per task: default ms, tuned ms, speed-up, trials
};

// The tasks of a compiled module's manifest: steps grouped by task_signature, for families
// with tunable knobs, largest total MACs first (times are filled in by tune()).
std::vector<TuneTask> extract_tasks(const nlohmann::json &manifest);

// The knobs of s that its family's tuner searches (what a task's records carry).
Knobs tunable_part(const KernelSpec &s);

// Whether a candidate's knobs reached the kernels it was compiled for: "" when every step in
// `steps` of the candidate module's manifest has each knob of `want` at the wanted value,
// else what differs (a candidate whose record the compile did not apply measures the default).
std::string knobs_not_applied(const nlohmann::json &manifest, const std::vector<int> &steps, const Knobs &want);

// prepared: the graph after prepare_for_codegen(g, opt) (calibrated once).
TuneResult tune(const Graph &prepared, const CompileOptions &opt, const TuneOptions &to);

}  // namespace qnnc
