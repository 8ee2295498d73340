// The quantization rewrite: turns a fused fp32 graph into one whose convolutions run in
// integers end to end (u8 activations, i8 weights, i32 accumulation, fixed-point
// requantization with bias, residual add and ReLU fused), with quantize/dequantize steps only
// where an fp32 layer (skipped, or without an integer kernel) meets an integer one.
#pragma once
#include <map>
#include <string>

#include "ir/graph.h"
#include "quantize/calibrate.h"
#include "quantize/qconfig.h"

namespace qnnc {

struct QuantizeSummary {
  int quantized = 0, kept_fp32 = 0, quantize_steps = 0, dequantize_steps = 0;
  int quantize_folded = 0;  // quantize steps done by their fp32 producer (scale_shift writes u8)
  int gates_folded = 0;     // of them, gate products (u8 x fp32 gate -> u8, no dequantize)
  int lookup_tables = 0;  // functions of one u8 activation (sigmoid, SiLU, ...) run as tables
  int64_t fp32_weight_bytes = 0, quantized_weight_bytes = 0;  // packed size at the chosen bits
  std::map<std::string, int> kept_reasons;  // why layers stayed fp32 -> how many
  std::map<std::string, int> int8_reasons;  // low-bit modes: why layers run at 8 bits -> how many
};

// g must have been through fold_batchnorm + fuse_operators (not choose_layout).
QuantizeSummary quantize_graph(Graph &g, const std::map<std::string, ActivationStats> &stats, const QConfig &cfg);

}  // namespace qnnc
