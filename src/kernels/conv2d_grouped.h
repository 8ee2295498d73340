// fp32 grouped convolution (spec.group > 1) over NHWC activations, with the fp32 convolution's
// epilogue (bias, residual add, ReLU / ReLU6). Two algorithms share the family:
//  - depthwise (one input and one output channel per group): memory-bound, so channels sit in
//    the vector lanes, a tile of output columns is kept in registers and every tap is one
//    vector load of the input and one of the weights;
//  - grouped (Cg input, Mg output channels per group): a group's output channels are the
//    vector lanes and each reduction step broadcasts one input value, like the dense register
//    tile, so no lane gathers from another group.
// Weights (packed by lowering): depthwise (c, kx, ky); grouped (co, ci % Cg, kx, ky), co innermost
// over grouped_weight_channels.
#pragma once
#include "kernels/halide_kernel.h"

namespace qnnc {

// True when spec is depthwise (channels = groups on both sides).
bool conv2d_is_depthwise(const KernelSpec &s);

// The integer depthwise kernel's lanes per channel quad vector (16 or 8: 64 or 32 channels per
// dot-product vector) when knob quads is on and the layer allows it, else 0. Lowering packs the
// weights for it: (j, quad, k, kx, ky), w(4 quad + k) where j == k, else 0.
int dwconv2d_q_quad_lanes(const KernelSpec &s, const Knobs &k);

// Whether the integer grouped (not depthwise) kernel sums channel quads with u8 x i8 dot
// products (knob quads; input channels per group a multiple of 4). Lowering packs the weights
// for it: (k, co, quad, kx, ky), w(co, 4 quad + k), co over grouped_weight_channels.
bool dwconv2d_q_grouped_quads(const KernelSpec &s, const Knobs &k);

// Channels of a grouped (not depthwise) layer's packed weights along their innermost dimension:
// M, plus the lanes a group's last vector reaches past its Mg channels where the vector lanes
// (knob vec) do not divide Mg. That vector computes lanes past the group's end (never stored)
// from the next group's weights; the padding keeps the last group's in bounds. Lowering appends
// that many zero channels; M for depthwise layers.
int64_t grouped_weight_channels(const KernelSpec &s, const Knobs &k);

// Knobs: vec (channel lanes), x_tile (output columns per task's register block), pad_rows; for
// fp32 depthwise (spec kind conv2d_grouped) also strip or pad_inline.
Knobs conv2d_grouped_default_knobs(const KernelSpec &s, const Halide::Target &t);

// Arguments: input, weights, bias, [residual]; output last.
HalideKernel build_conv2d_grouped(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

// Integer depthwise and grouped convolution (kind dwconv2d_q): u8 activations, i8 weights
// packed as the fp32 ones (depthwise (c, kx, ky), grouped (co, ci % Cg, kx, ky)), i32
// accumulation, then conv2d_q's epilogue: per-channel fixed-point requantization, optional
// residual, zero point and clamp. Padding reads the input zero point (the bias carries the
// correction). Arguments as conv2d_q's: input, weights, bias, mult, shift, [residual], qparams.
// The products are widened and summed lane by lane (a depthwise layer has no channel reduction
// for a dot-product instruction to take; a grouped one has few).
HalideKernel build_dwconv2d_q(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

}  // namespace qnnc
