// Bit-serial integer convolution for 1- to 4-bit weights and activations. Activations are
// packed as bit planes of 32 channels per u32 word (bitpack); weights as two's-complement bit
// planes in the same words. A dot product becomes
//   sum_i sum_j coef_i * 2^j * popcount(act_plane_j & weight_plane_i),
// (AND + popcount: vpopcntd on AVX-512, cnt on NEON), followed by the same fixed-point
// requantization as conv2d_q, so results equal the int8 kernel's on the same integers.
#pragma once
#include "kernels/halide_kernel.h"

namespace qnnc {

// Weight bit planes and their coefficients for `weight_bits`: two's complement for 2-4 bits
// ({1, -2}, {1, 2, -4}, {1, 2, 4, -8}); for 1 bit, w = 2u - 1: one plane u with coefficient 2,
// and the kernel subtracts the per-pixel sum of the activations.
std::vector<int> bitserial_plane_coefficients(int weight_bits);

// bitpack: u8 (c, x, y, n) with values < 2^bits -> u32 (word, plane, x, y, n); channels past C
// pack as zero bits. spec.in_shape = N,C,H,W; knob "bits".
HalideKernel build_bitpack(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

// conv2d_bs arguments: planes u32 (CW, a, W, H, N); weights u32 (cb, CW, P, kx, ky, M/cb) with P
// weight planes; then either bias, mult, shift i32 (M), [residual], qparams i32 (8), or, with
// knob thresholds = R, thresholds i32 (M, R, qmax), [residual]; output last. The residual is u8
// (M, OW, OH, N) or, with residual_bits, planes u32 (OCW, bits, OW, OH, N); the output u8 levels
// or, with output_bits, planes. Knobs: weight_bits, activation_bits, output_bits, residual_bits,
// thresholds (set by lowering), vec, co_vectors, x_tile, tasks. Needs an input zero point of 0.
HalideKernel build_conv2d_bitserial(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
int conv2d_bitserial_channel_block(const KernelSpec &s, const Knobs &k);

}  // namespace qnnc
