// Kernel families other than convolution. Each builder defines the algorithm, then applies
// its schedule from the knobs; all take NHWC activations (Halide dims c, x, y, n).
#pragma once
#include "kernels/halide_kernel.h"

namespace qnnc {

// out(o, n) = act(bias(o) + sum_k w(o, k) * x(k, n)); weights in blocks of
// dense_out_block(M, knobs) outputs, (o % ob, k, o / ob), and the bias, zero-padded to whole blocks.
HalideKernel build_dense(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
int dense_out_block(int64_t M, const Knobs &k);
// Max over a kh x kw window with -inf padding.
HalideKernel build_maxpool(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Mean over a kh x kw window (spec.kernel, stride, pads; ceil_mode is in the output shape):
// spec.fn "count_include_pad" divides by the taps inside the padded input, otherwise by the
// taps inside the input.
HalideKernel build_avgpool(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Channel concatenation of NHWC activations (or of 2-D [N, K] ones along K), or with
// spec.axis >= 0 along that memory dimension of spec.out_shape (memory extents): input i holds
// spec.parts[i] of it; arguments are the inputs in order, output last. fp32, or u8 inputs of
// one encoding (spec.dtype).
HalideKernel build_concat(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Mean over H and W; output keeps H = W = 1. A u8 input (spec.dtype) is dequantized too.
HalideKernel build_global_avgpool(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// a + b, optionally followed by ReLU, over flattened tensors.
HalideKernel build_add(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// max(x, 0) over a flattened tensor (a ReLU that could not be fused).
HalideKernel build_relu(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Per-channel x * scale + shift (an unfolded batch norm), optionally followed by ReLU.
HalideKernel build_scale_shift(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// fp32 -> u8 with spec.scale / zero_point / qmax.
HalideKernel build_quantize(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// u8 -> fp32.
HalideKernel build_dequantize(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Flat elementwise kinds that also run over (channel, pixel) rows with strided pixels, so that
// they can read or write a slice of a concatenation (codegen/concat_slices.h).
bool takes_channel_rows(const std::string &kind);
// Elementwise function of one fp32 tensor, over its flattened elements: spec.fn is sigmoid,
// hardsigmoid (fparams alpha, beta: clamp(alpha x + beta, 0, 1)), hardswish (x hardsigmoid(x)
// with 1/6, 1/2), silu (x sigmoid(x)), tanh, erf, gelu (x (1 + erf(x / sqrt 2)) / 2) or sqrt.
HalideKernel build_unary(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// erf(x) to about 1e-7 (Halide has no erf): for unary's erf and gelu.
Halide::Expr erf_approx(Halide::Expr x);
// a op b with numpy broadcasting, op = spec.fn in add, sub, mul, div. Shapes are in memory order
// (innermost first) and of equal rank: spec.in_shape (a), spec.in2_shape (b), spec.out_shape;
// an operand's extent 1 broadcasts along that dimension.
HalideKernel build_binary(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Reorders dimensions: output dimension d is input dimension spec.perm[d]. spec.in_shape and
// spec.out_shape are fp32 extents in memory order (innermost first).
HalideKernel build_transpose(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// out(i...) = in(starts + i * steps) per dimension (fp32, memory order like transpose).
HalideKernel build_slice(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Constant padding (fp32, memory order like slice): spec.pads holds the elements added before
// each dimension, then after it (negative: cropped); spec.fparams[0] is the value added.
HalideKernel build_pad(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// (x - mean) / sqrt(var + eps) * gamma + beta over the innermost dimension of a {K, R} input
// (spec.in_shape; eps = spec.fparams[0]); mean and variance in fp32, two passes.
HalideKernel build_layernorm(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Softmax over the innermost dimension of a {K, R} input (max-subtracted exponentials).
HalideKernel build_softmax(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// Batched product of two fp32 activations: a {K, M, B} (spec.in_shape, memory order) times
// b {N, K, B} (spec.in2_shape) -> {N, M, B}.
HalideKernel build_matmul(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// out(i) = table(in(i)) over a flattened u8 tensor with a 256-entry u8 table: an activation
// function of one quantized input, exactly.
HalideKernel build_lut(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// NCHW <-> NHWC transpose.
HalideKernel build_layout(const KernelSpec &s, const Knobs &k, const Halide::Target &t);

}  // namespace qnnc
