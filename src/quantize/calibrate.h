// Calibration: run the fp32 model on sample inputs and record, for every activation, the
// statistics from which its quantization range is chosen.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/progress.h"
#include "quantize/qconfig.h"
#include "runtime/tensor.h"

namespace qnnc {

struct ActivationStats {
  float min = 0, max = 0;
  std::vector<double> hist;   // histogram of the non-zero |x| over [0, max(|min|, |max|)]
  double zeros = 0;           // how many x were exactly 0
  float absmax() const { return std::max(-min, max); }
};

// Sample inputs per the config: its data file, else seeded random normals.
std::vector<std::vector<Tensor>> calibration_inputs(const Graph &g, const QConfig &cfg);

// Statistics of every activation (by value name) of the fused fp32 graph g on inputs. progress
// (optional) hears of the fp32 kernels compiled for it ("calibration kernels") and of each
// run ("calibration": two passes over the inputs).
std::map<std::string, ActivationStats> collect_stats(const Graph &g, const std::vector<std::vector<Tensor>> &inputs,
                                                     const std::function<void(const std::string &)> &log,
                                                     const ProgressFn &progress = nullptr);

// The clipping threshold chosen for a tensor (values beyond it saturate).
float choose_threshold(const ActivationStats &s, const QConfig &cfg, int levels);

}  // namespace qnnc
