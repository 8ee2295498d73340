// Classification accuracy of a module on labelled data: top-1 and top-5 over N samples, run
// in batches of the module's compiled batch size (`qnnc eval`, Python's Module.evaluate).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/module.h"

namespace qnnc {

struct EvalResult {
  int64_t samples = 0;
  int64_t classes = 0;
  double top1 = 0, top5 = 0;   // fractions in [0, 1]
  double seconds = 0;          // running the module, all batches
  nlohmann::json to_json() const;
};

// inputs: N samples of the module input's per-sample shape (N x C x H x W for an N' x C x H x W
// module); labels: N class indices. The last partial batch is padded with zeros whose outputs
// are ignored. Output 0 must hold one row of class scores per sample.
EvalResult evaluate(Module &m, const Tensor &inputs, const std::vector<int64_t> &labels);

// Reads an .npz with an inputs array (named inputs, x or images; float32) and a labels array
// (labels or y; integers), and evaluates.
EvalResult evaluate_npz(Module &m, const std::string &path);

}  // namespace qnnc
