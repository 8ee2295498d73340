// Convolution kernel family: algorithm (define_conv2d) and schedule space (schedule_conv2d).
#pragma once
#include "kernels/halide_kernel.h"

namespace qnnc {

struct ConvFuncs {
  Halide::ImageParam input, weights, bias, residual;
  Halide::Func padded, conv, output;
  Halide::RDom r;
  bool has_padding = false;
};

ConvFuncs define_conv2d(const KernelSpec &s);
// Knobs: vec (SIMD lanes), co_vectors (output-channel vectors per register tile),
// x_tile (output columns per register tile), unroll_ci (input-channel unroll).
Knobs conv2d_default_knobs(const KernelSpec &s, const Halide::Target &t);
void schedule_conv2d(ConvFuncs &f, const KernelSpec &s, const Knobs &k, const Halide::Target &t);

}  // namespace qnnc
