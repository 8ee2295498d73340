// Accuracy of a quantized module against its fp32 twin: logits SQNR, cosine and top-k
// agreement, raw and centered (random-weight models' logits share a large input-independent
// part, which flatters raw metrics), and SQNR per quantized layer.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/module.h"

namespace qnnc {

struct LayerError {
  std::string name;
  double sqnr_db;
};

struct AccuracyReport {
  int inputs = 0;
  double sqnr_db = 0, cosine = 0, top1 = 0, top5 = 0;                       // raw logits
  double centered_sqnr_db = 0, centered_cosine = 0, centered_top1 = 0, centered_top5 = 0;
  std::vector<LayerError> layers;   // per quantized activation, in execution order
  std::string format() const;
  // {"schema", "inputs", "raw": {sqnr_db, cosine, top1, top5}, "centered": {...}, "layers": [{name, sqnr_db}]}
  // (written as accuracy.json by `qnnc compile --report`, read by `qnnc report`).
  nlohmann::json to_json() const;
};

// Runs both modules on `count` seeded random inputs (seed, seed+1, ...).
AccuracyReport compare_modules(Module &reference, Module &quantized, int count, uint64_t seed);

// SQNR in dB of b against reference a (inf when equal).
double sqnr_db(const std::vector<double> &a, const std::vector<double> &b);

}  // namespace qnnc
