// Where a module's time goes: each step's median time over several runs, its multiply-
// accumulates, its rate and that rate's share of the peak of its precision on this CPU
// (runtime/peak.h). `qnnc bench --profile`, the Python package and the HTML report read it.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/kernel_spec.h"
#include "runtime/module.h"
#include "runtime/peak.h"

namespace qnnc {

struct ProfileRow {
  size_t step = 0;
  std::string name, kernel, kind;
  std::string precision;   // fp32, or the module's integer precision (int8, w4a8, ...) for integer kernels
  std::string peak;        // key into Profile::peaks ("fp32", "int8", "binary"), empty: no arithmetic peak applies
  double ms = 0, macs = 0;
  double gops = 0;         // 2 * macs / time, in G per second
  double peak_pct = -1;    // gops as a share of the peak (binary: per bit plane pair), -1 when none
  std::string schedule;    // "tuned" (knobs from tuning records), "default" (tunable, not tuned), "" (no knobs to tune)
};

struct Profile {
  int threads = 0, repeat = 0;
  double total_ms = 0;     // sum of the step medians
  std::string machine;     // CPU model and host target
  std::map<std::string, Peak> peaks;
  std::vector<ProfileRow> rows;   // steps that run a kernel, in execution order
  nlohmann::json to_json() const;
  std::string format() const;     // the table `qnnc bench --profile` prints
};

// Whole runs: milliseconds over `repeat` timed runs after `warmup` untimed ones.
struct RunTiming {
  double median = 0, min = 0, max = 0, mean = 0, stddev = 0;
};
RunTiming time_runs(Module &m, const std::vector<Tensor> &inputs, int warmup, int repeat);

// Multiply-accumulates of a manifest step (convolutions, dense layers and matmuls; 0 otherwise).
double step_macs(const nlohmann::json &step);
double spec_macs(const KernelSpec &spec);

// Runs `warmup` untimed then `repeat` timed runs on `inputs`, timing each step; with peaks,
// also measures this CPU's peaks at the module's thread count.
Profile profile_module(Module &m, const std::vector<Tensor> &inputs, int repeat, int warmup, bool peaks = true);

}  // namespace qnnc
