// Rounding shared by the integer kernels: the requantization x * m / 2^shift and float-to-level
// rounding, each with the tie rule the quantization config chose
// ("upward": ties towards +infinity, TVM's UPWARD; "tonearest": ties to even, TVM's TONEAREST).
#pragma once
#include <string>
#include <vector>

#include <Halide.h>

namespace qnnc {

// The requantization of an accumulator, as ONNX Runtime and XNNPACK do it: in IEEE single
// precision, f = f32(x) * M with M = f32(multiplier) * 2^-shift (each step rounded to nearest,
// ties to even), clamped to [lo, hi] (integers within +-2^22; default +-2^22), then rounded to
// an int32 with `rounding`'s tie rule. x, multiplier i32, 0 <= shift <= 126. The quantizer
// gives multipliers 24 bits, so M is exactly multiplier / 2^shift. About half the instructions
// per output of an exact 64-bit product (x86 has no 32-bit high multiply).
// term (optional, a float): added to the product before the clamp, as one more rounded step.
Halide::Expr requantize_scaled(Halide::Expr x, Halide::Expr multiplier, Halide::Expr shift, const std::string &rounding,
                               Halide::Expr lo = -4194304.f, Halide::Expr hi = 4194304.f,
                               Halide::Expr term = Halide::Expr());

// An integer convolution's output level: requantize_scaled(acc) clamped to [lo, hi] - out_zp
// on the float, before rounding (the same levels as clamping after, two instructions fewer),
// + out_zp. qparams: (in_zp, out_zp, res_zp, res_mult, res_shift, lo, hi, -). res: the
// residual's level, or an undefined Expr. A residual joins as a float term before the one
// rounding: f32(acc) M + f32(res - res_zp) R, R = f32(res_mult) 2^-res_shift, each product and
// the sum rounded to single precision (no fused multiply-add), so every target gets the same
// levels. (It was a second rounded fixed-point term: one more rounding, and about twice the
// epilogue's instructions.)
Halide::Expr requantized_level(Halide::Expr acc, Halide::Expr multiplier, Halide::Expr shift, Halide::Expr res,
                               const Halide::ImageParam &qparams, const std::string &rounding);

// The same arithmetic in C++ (compile-time thresholds; the tests' references spell it out
// again on their own), with term added and the clamp to [lo, hi] before rounding.
int32_t requantize_scaled_value(int64_t x, int32_t multiplier, int32_t shift, const std::string &rounding,
                                float term = 0.f, float lo = -4194304.f, float hi = 4194304.f);

// A residual's float term: f32(diff) * (f32(res_mult) 2^-res_shift), as requantized_level
// computes it.
float residual_term_value(int32_t diff, int32_t res_mult, int32_t res_shift);

// f rounded to an integer-valued float. Evaluated with strict float semantics so that the
// compiler cannot fuse f's multiply into the rounding (tests reproduce it exactly).
Halide::Expr round_float(Halide::Expr f, const std::string &rounding);

// An fp32 value as the level of a u8 activation: clamp(round(x * (1 / scale)) + zero_point, 0,
// qmax). The quantize kernel and every kernel with a quantize step folded into its epilogue
// (scale_shift, the integer gate product) use this one expression, so they agree bit for bit.
Halide::Expr quantize_level(Halide::Expr x, float scale, int zero_point, int qmax, const std::string &rounding);

// A u8 level as fp32: (q - zero_point) * scale (the dequantize kernel, and the integer gate
// product's operand).
Halide::Expr dequantize_level(Halide::Expr q, int zero_point, float scale);

// Threshold epilogues: where an output has at most 3 levels above 0 (1-2 bit activations), its
// level is the number of per-channel thresholds the accumulator reaches, with bias,
// requantization, residual and clamp folded into them at compile time; the epilogue becomes
// compares. thr (channel, residual level, output level - 1) holds R sets (one per residual
// level `res`, 0 without a residual).
Halide::Expr threshold_level(Halide::Expr total, Halide::Expr res, const Halide::ImageParam &thr, Halide::Expr co,
                             int R, int levels);

// The epilogue the thresholds replace: requantized_level's (res_mult 0 without a residual).
struct ThresholdEpilogue {
  std::vector<int32_t> bias, mult, shift;  // per output channel: acc = bias + s
  int out_zp = 0, res_zp = 0, res_mult = 0, res_shift = 0, lo = 0, hi = 255, qmax = 1;
  std::string rounding = "upward";
};

// For each output channel m, residual level r < R and output level l in 1..qmax, the smallest s
// in [s_lo[m], s_hi[m]] whose output level is at least l (s_hi[m] + 1 when none is), computed
// with the kernels' own arithmetic. Laid out (m, r, l - 1), m innermost. Empty when a
// multiplier is not positive or the accumulator could leave int32 in that range (the
// multiplier epilogue is then kept).
std::vector<int32_t> epilogue_thresholds(const ThresholdEpilogue &e, const std::vector<int64_t> &s_lo,
                                         const std::vector<int64_t> &s_hi, int R);

}  // namespace qnnc
