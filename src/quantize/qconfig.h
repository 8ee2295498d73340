// Quantization configuration (names follow TVM's qconfig where they mean the same thing).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnnc {

struct QConfig {
  int weight_bits = 8;                 // 1, 2, 4 or 8 (signed, symmetric per output channel)
  int activation_bits = 8;             // 1, 2, 4 or 8 (unsigned, affine per tensor)
  std::string calibrate_mode = "minmax";   // global_scale | minmax | percentile | kl_divergence
  float global_scale = 8.0f;           // range used by calibrate_mode=global_scale
  float percentile = 99.99f;           // calibrate_mode=percentile
  std::string weight_scale = "channel_max";  // channel_max | power2 | mse (per channel, least squared error)
  // Tie rule of run-time rounding (requantization, the quantize step): "tonearest" to the even
  // neighbour (TVM's TONEAREST, ONNX Runtime's), "upward" rounds x.5 up (TVM's UPWARD; a few
  // more instructions per output in the float requantization). Weights are rounded at compile
  // time to nearest, ties away from zero, either way.
  std::string rounding = "tonearest";
  bool skip_first_conv = true;         // as TVM: the first conv stays fp32
  bool skip_dense = true;              // as TVM: dense (fully connected) layers stay fp32; false
                                       // runs them as 1x1 integer convolutions
  // Low-bit modes (weights or activations below 8 bits): the first convolution and the dense
  // layers hold few of the multiply-accumulates and much of the accuracy, so they run at
  // "int8" (default), stay "fp32" (then skip_first_conv / skip_dense apply as in int8 mode), or
  // take the model's bits ("same"). Ignored at int8.
  std::string lowbit_edges = "int8";
  std::vector<std::string> skip_layers;    // further node names to keep in fp32
  int calibration_samples = 8;         // random inputs when no data is given
  uint64_t calibration_seed = 1234;
  std::string calibration_data;        // .npy/.npz of inputs (N,C,H,W); empty = random

  // "int8", "int4", "w4a8", ...; throws qnnc::Error on anything else.
  static QConfig parse_precision(const std::string &p);
  std::string precision() const;       // "int8" or "w4a8"
  void validate() const;
};

// A real multiplier as a fixed-point mantissa of `bits` bits (normalized: in [2^(bits-1), 2^bits))
// and a right shift: x * real ~= rounding_mul_shift_right(x, multiplier, shift) =
// round(x * multiplier / 2^shift).
struct FixedPoint {
  int32_t multiplier = 0;
  int32_t shift = 0;
};
FixedPoint to_fixed_point(double real, int bits = 31);
// Convolutions requantize in single precision (kernels/requantize.h, requantize_scaled): a
// 24-bit mantissa is exactly a float, so multiplier / 2^shift is the scale the kernel uses.
constexpr int kScaleMantissaBits = 24;
// The residual rescale multiplies a difference of two u8 levels (|x| < 2^9): a 22-bit mantissa
// keeps that product inside int32, so kernels requantize the residual with 32-bit multiplies;
// the relative error of the multiplier stays below 2^-22.
constexpr int kResidualMultiplierBits = 22;
// The exact integer function the kernels compute, for references and tests.
int32_t rounding_mul_shift_right(int32_t x, int32_t multiplier, int32_t shift);

}  // namespace qnnc
