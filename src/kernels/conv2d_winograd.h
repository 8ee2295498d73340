// fp32 3x3 convolution by Winograd's minimal filtering F(2x2, 3x3): the conv2d family's
// algorithm under knob `winograd` = 1. Each 2x2 block of outputs (a tile) is
// A^T [sum_ci U_ci (.) (B^T d_ci B)] A over its 4x4 input patch d, with the weights transformed
// at compile time (U = G g G^T): 16 multiply-adds per input channel and tile instead of 36.
#pragma once
#include "kernels/conv2d.h"

namespace qnnc {

// Whether the layer is one Winograd F(2x2, 3x3) computes: 3x3 window, stride 1, no dilation,
// 4-D NHWC input of one group.
bool conv2d_winograd_fits(const KernelSpec &s);

// Whether a conv2d kernel with knobs k runs Winograd: knob winograd = 1 on a layer that fits
// (not a stem reading NCHW). Lowering packs the weights by it, the builder builds by it.
bool conv2d_uses_winograd(const KernelSpec &s, const Knobs &k);

// The layer's grid of 2x2 output tiles: columns (tx) and rows (ty) of tiles, the last of each
// half outside the output where its extent is odd.
struct WinogradGrid {
  int64_t tx, ty;
};
inline WinogradGrid winograd_grid(const KernelSpec &s) { return {(s.out_shape[3] + 1) / 2, (s.out_shape[2] + 1) / 2}; }

// Transformed weights, packed for the kernel: OIHW 3x3 weights -> (co % cb, ci, e, co / cb),
// e = a + 4 b the element of the 4x4 transformed tile (a along x, b along y), zero-padded to
// whole blocks of cb output channels. Computed in double precision.
std::vector<float> winograd_weights(const std::vector<float> &oihw, int64_t M, int64_t C, int64_t cb);

// The stages of the algorithm, for the schedule.
struct WinogradFuncs {
  Halide::ImageParam input, weights, bias, residual;
  // Tiles are numbered along rows: t = tx + ceil(OW / 2) ty.
  Halide::Func rows;     // B^T d along x: (c, a, j, t, n), j the patch row
  Halide::Func tiles;    // B^T d B: (c, e, t, n)
  Halide::Func product;  // sum over ci of U * tiles: (co, e, t, n)
  Halide::Func output;   // A^T product A, plus bias, residual and activation: (co, x, y, n)
  Halide::RDom r;        // input channels
};

// Algorithm; arguments as conv2d's (input, weights, bias[, residual]), the weights as
// winograd_weights packs them with cb output channels per block.
WinogradFuncs define_conv2d_winograd(const KernelSpec &s, int cb);
HalideKernel build_conv2d_winograd(const KernelSpec &s, const Knobs &k);
// Knobs: vec, co_vectors (the channel block), wino_tiles (tiles per register tile, consecutive
// along rows), wino_rows (tile rows per parallel task: each task transforms its rows' input once
// for all channel blocks), wino_root (the input transformed in a pass of its own; tasks are then
// rows x channel blocks).
void schedule_conv2d_winograd(WinogradFuncs &f, const KernelSpec &s, const Knobs &k);

}  // namespace qnnc
