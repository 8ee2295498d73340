// Convolution kernel family: algorithm (define_conv2d) and schedule space (schedule_conv2d).
#pragma once
#include "kernels/halide_kernel.h"

namespace qnnc {

struct ConvFuncs {
  Halide::ImageParam input, weights, bias, residual;
  Halide::Func padded, conv, output;
  Halide::RDom r;
  bool has_padding = false;
  // With a chunked reduction (knob k_chunk): `partial` sums one chunk of input channels over
  // the window in registers, and `conv` adds the chunks up (rc) in a small buffer per task.
  Halide::Func partial;
  Halide::RDom rc;
  bool chunked = false;
};

// cb: output channels per weight block (weights are packed (co % cb, ci, kx, ky, co / cb)).
// from_nchw: the input is a model's NCHW image (a stem reading it without a layout step).
// k_chunk > 0: the reduction runs in chunks of that many input channels (see conv2d.cpp); pass
// it only where conv2d_chunk_fits.
ConvFuncs define_conv2d(const KernelSpec &s, int cb, bool from_nchw = false, int k_chunk = 0);
// Knobs: vec (SIMD lanes), co_vectors (output-channel vectors per register tile),
// x_tile (output columns per register tile), unroll_ci (input-channel unroll), pad_inline (no
// padded copy), from_nchw (the input is NCHW; set by lowering), k_chunk and chunk_rows (a
// reduction in chunks of input channels whose weights stay in L1 over several rows' tiles).
Knobs conv2d_default_knobs(const KernelSpec &s, const Halide::Target &t);
// Whether knob pixel_row applies: a 1x1 stride-1 unpadded layer (not a stem read from NCHW,
// not chunked, not Winograd) computed over its pixels as one row (pixels_as_row), so that a
// register tile runs across the image's rows; lowering passes its input, residual and output
// as that row.
bool conv2d_pixel_row(const KernelSpec &s, const Knobs &k);
// Output channels per register tile (the weight packing block) for these knobs.
int conv2d_channel_block(const KernelSpec &s, const Knobs &k);
// Whether knobs' k_chunk applies to the layer: it divides the input channels into 2 or more
// chunks.
bool conv2d_chunk_fits(const KernelSpec &s, const Knobs &k);
void schedule_conv2d(ConvFuncs &f, const KernelSpec &s, const Knobs &k, const Halide::Target &t);

}  // namespace qnnc
