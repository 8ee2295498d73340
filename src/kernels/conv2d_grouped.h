// fp32 grouped convolution (spec.group > 1) over NHWC activations, with the fp32 convolution's
// epilogue (bias, residual add, ReLU / ReLU6). Two algorithms share the family:
//  - depthwise (one input and one output channel per group): memory-bound, so channels sit in
//    the vector lanes, a tile of output columns is kept in registers and every tap is one
//    vector load of the input and one of the weights;
//  - grouped (Cg input, Mg output channels per group): a group's output channels are the
//    vector lanes and each reduction step broadcasts one input value, like the dense register
//    tile, so no lane gathers from another group.
// Weights (packed by lowering): depthwise (c, kx, ky); grouped per group and per vector of
// grouped_weight_lanes output channels: (lane, ci % Cg, kx, ky, group * vectors + vector).
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
// for it: (k, lane, quad, kx, ky, group * vectors + vector), w(co, 4 quad + k) (see
// grouped_weight_lanes).
bool dwconv2d_q_grouped_quads(const KernelSpec &s, const Knobs &k);

// The integer grouped (not depthwise) kernel's input channels per dot product: 4 (quads), 2
// (knob pairs: the input widened to i16, products summed in pairs; input channels per group
// even) or 0 (a widening multiply per channel). Lowering packs the weights for 2 or 4 alike:
// (k, lane, channel pair or quad, kx, ky, vector).
int dwconv2d_q_grouped_dot(const KernelSpec &s, const Knobs &k);

// Lanes of a grouped (not depthwise) layer's packed weight vectors: the kernel's channel lanes
// (knob vec), at most the Mg output channels of a group. Lowering packs each group's weights as
// ceil(Mg / lanes) vectors of that many output channels, each vector's reduction steps (input
// channel, kx, ky) one contiguous stream, the group's last vector zero-padded past Mg. (Laid out
// with all M channels innermost, one step of a large layer lay M values, pages, from the next, and
// its stream lost the hardware prefetch.)
int64_t grouped_weight_lanes(const KernelSpec &s, const Knobs &k);

// Vectors a grouped tile sums in one register block beside xs output columns: the most that
// divide a group's nv vectors with at most max_acc accumulators (one vector beside any xs).
int grouped_block_vectors(int nv, int xs, int max_acc);

// Output columns of an integer grouped layer on channel pairs (knob pairs, x86 without a u8 dot
// product) whose tile of `xt` columns would not fit AVX2's 16 vector registers (AVX-512 keeps xt): each step widens
// the block's weight vectors into registers (they serve every column), so a tile holds its
// accumulators, its weight vectors and a broadcast. Returns xt where they fit, else the column
// count (up to 4) whose tile fits and keeps the most accumulators (then the fewest columns past
// the row's end), or xt if none fits.
int dwconv2d_q_pair_columns(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

// Knobs: vec (channel lanes), x_tile (output columns per task's register block), pad_rows; for
// fp32 depthwise (spec kind conv2d_grouped) also strip or pad_inline.
Knobs conv2d_grouped_default_knobs(const KernelSpec &s, const Halide::Target &t);

// Arguments: input, weights, bias, [residual]; output last.
HalideKernel build_conv2d_grouped(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

// Integer depthwise and grouped convolution (kind dwconv2d_q): u8 activations, i8 weights
// packed as the fp32 ones (depthwise (c, kx, ky), grouped (lane, ci % Cg, kx, ky, vector)), i32
// accumulation, then conv2d_q's epilogue: per-channel fixed-point requantization, optional
// residual, zero point and clamp. Padding reads the input zero point (the bias carries the
// correction). Arguments as conv2d_q's: input, weights, bias, mult, shift, [residual], qparams.
// The products are widened and summed lane by lane, or with knob quads or pairs in dot products
// over 4 or 2 channels (dwconv2d_q_quad_lanes, dwconv2d_q_grouped_dot).
HalideKernel build_dwconv2d_q(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

}  // namespace qnnc
