// Rounding shared by the integer kernels: the fixed-point requantization x * m / 2^shift and
// float-to-level rounding, each with the tie rule the quantization config chose
// ("upward": ties towards +infinity, TVM's UPWARD; "tonearest": ties to even, TVM's TONEAREST).
#pragma once
#include <string>

#include <Halide.h>

namespace qnnc {

// round(x * multiplier / 2^shift) saturated to int32; x, multiplier i32, shift >= 0.
Halide::Expr requantize_fixed_point(Halide::Expr x, Halide::Expr multiplier, Halide::Expr shift,
                                    const std::string &rounding);

// The same in 32-bit arithmetic, for callers that guarantee |x * multiplier| < 2^31 (the
// residual rescale: 9-bit differences times a 22-bit mantissa).
Halide::Expr requantize_fixed_point_narrow(Halide::Expr x, Halide::Expr multiplier, Halide::Expr shift,
                                           const std::string &rounding);

// f rounded to an integer-valued float. Evaluated with strict float semantics so that the
// compiler cannot fuse f's multiply into the rounding (tests reproduce it exactly).
Halide::Expr round_float(Halide::Expr f, const std::string &rounding);

}  // namespace qnnc
