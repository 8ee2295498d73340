// What one generated kernel computes: its kind, the concrete shapes it is specialized for, its
// fused epilogue, and the schedule knobs chosen for it. A spec plus a target names exactly one
// compiled object, which is why the kernel cache keys on signature().
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnnc {

// Schedule knobs by name (tile sizes, unroll factors, ...). Absent knobs take the defaults of
// the kernel family for the target; see kernels/schedules.h.
using Knobs = std::map<std::string, int>;

struct KernelSpec {
  std::string kind;                 // conv2d, dense, maxpool, global_avgpool, add, scale_shift, layout
  std::vector<int64_t> in_shape;    // logical N,C,H,W (or N,K for dense)
  std::vector<int64_t> out_shape;   // logical N,C,H,W (or N,M for dense)
  std::vector<int64_t> kernel;      // kh,kw for windows
  std::vector<int64_t> stride{1, 1};
  std::vector<int64_t> pads{0, 0, 0, 0};  // top,left,bottom,right
  std::vector<int64_t> dilation{1, 1};
  bool relu = false;
  float relu_max = 0;               // with relu: also min(x, relu_max) when > 0 (ReLU6 = Clip(0, 6))
  std::string act;                  // fp32 conv2d, conv2d_grouped, dense: a unary function (unary's fn
  std::vector<float> act_params;    // names, e.g. hardswish) applied after bias and residual; its parameters
  int64_t group = 1;                // convolutions: input and output channels split into `group`
                                    // independent convolutions (group = channels: depthwise)
  bool residual = false;            // conv2d adds a same-shaped tensor before the activation
  bool to_nhwc = true;              // layout: direction of the transpose
  std::string dtype = "f32";        // element type of the activations read (f32 or u8)
  float scale = 0;                  // quantize / dequantize / global_avgpool_q: real = (q - zp) * scale
  int zero_point = 0;
  int qmax = 255;                   // largest activation level (2^bits - 1)
  std::string rounding = "upward";  // integer kernels: tie rule (upward | tonearest)
  std::string fn;                   // unary / binary: the function (sigmoid, hardswish, mul, ...)
  std::vector<float> fparams;       // its parameters (hardsigmoid: alpha, beta)
  std::vector<int64_t> in2_shape;   // binary: second operand (memory order, see families.h)
  std::vector<int64_t> parts;       // concat: channels of each input, in order
  int64_t axis = -1;                // concat: memory dimension joined (out_shape in memory order);
                                    // -1: channels of NHWC / last axis of 2-D (logical out_shape)
  std::vector<int64_t> perm;        // transpose: input dimension of each output dimension
  std::vector<int64_t> starts;      // slice: first element and step along each dimension
  std::vector<int64_t> steps;
  // Memory strides of the kernel's buffer arguments (inputs in call order, output last), for
  // those that are not dense: an activation that is a slice of a concatenation's buffer
  // (codegen/concat_slices.h). Empty (or an empty entry): dense, as fixed_param declares.
  std::vector<std::vector<int64_t>> arg_strides;
  Knobs knobs;                      // schedule choice; empty = defaults

  nlohmann::json to_json() const;
  static KernelSpec from_json(const nlohmann::json &j);
  // Stable text naming the computation and the schedule (not the target).
  std::string signature() const;
  // Short human description, e.g. "conv2d 3x3/2 64->128 56x56 +relu".
  std::string describe() const;
};

// 64-bit FNV-1a of a string, printed as 16 hex digits.
std::string hash_hex(const std::string &s);

}  // namespace qnnc
