// The register tile shared by the convolution families (fp32, int8, bit-serial): each task
// computes a block of co_vectors SIMD vectors of output channels by x_tile output columns,
// keeping the block's accumulators in registers for the whole reduction.
#pragma once
#include <utility>
#include "kernels/halide_kernel.h"
#include "kernels/knob_space.h"

namespace qnnc {

// A tile over M output channels in 16-lane vectors whose last block shifts inward (weights in
// one block: knob flat_weights): 3 or 2 vectors, whichever computes fewer channels past the
// end (3 on a tie), by 7 or 8 columns (or the nearest of 2 fewer that divides OW), capped at
// OW. Returns {co_vectors, x_tile}.
std::pair<int, int> shifted_block_tile(int64_t M, int64_t OW);

// Default knobs vec / co_vectors / x_tile / row_major for M output channels and width OW: x_tile
// divides the width when it can (no recomputed columns); co_vectors fills about 16 accumulators
// on AVX-512 (28 spilled) or 12 elsewhere, at most max_vectors, preferring a block that divides
// M; tasks go row by row when the layer's weights (weight_bytes; < 0: unknown) fit in
// kRowMajorWeightBytes and the blocks divide M. On x86 without AVX-512, rows wider than a tile
// avoid 2-column tiles unless two_columns is true (the bit-serial kernel keeps them).
constexpr int64_t kRowMajorWeightBytes = 256 << 10;
Knobs register_tile_knobs(int64_t M, int64_t OW, int vec, const Halide::Target &t, int64_t weight_bytes = -1,
                          int max_vectors = 64, bool two_columns = false);

// x86 without AVX-512: where the general rule left one vector of 8 lanes by fewer than 7
// columns (output channels that 2 vectors do not divide: ShuffleNetV2's 58, 116, 232), 2 vectors
// with the last block shifted inward over weights packed as one block (flat_weights), tasks
// block by block. One vector by 4 columns keeps 4 accumulators, fewer than the multiply-adds in
// flight. Only where the 2-vector blocks compute at most a fraction max_extra of M past its end.
// Returns whether it applied (kernels whose weights lowering packs by `flat_weights` only).
bool avx2_shifted_pair_tile(int64_t M, int64_t OW, int64_t weight_bytes, double max_extra, const Halide::Target &t,
                            Knobs &k);

// A 1x1 stride-1 unpadded convolution, whose NHWC pixels (c, x, y, n) are also one row
// (c, x + W y, 0, n): a register tile may then run across the image's rows.
bool pointwise_same_size(const KernelSpec &s);
// The spec of such a layer with its pixels as that one row (H = 1, W = H W).
KernelSpec pixels_as_row(const KernelSpec &s);

// x86 without AVX-512: a 1x1 stride-1 layer whose rows the tile's columns (knob x_tile) do
// not divide but whose pixels they do (14x14 by 4: 16 columns computed for each row of 14)
// takes its pixels as one row (knob pixel_row; tasks are then runs of tiles, so no row_major).
// Returns whether it applied.
bool avx2_pixel_row_where_rows_leave_columns(const KernelSpec &s, const Halide::Target &t, Knobs &k);

// Register tiles of one long row (knob pixel_row): runs of about this many tiles, each over one
// channel block, are the parallel tasks.
constexpr int kRowRunTiles = 8;

// Output channels per tile (also the weight packing block), clamped to the layer.
int register_tile_channels(int64_t M, const Knobs &k, int default_vec);

// Tiles out(co, x, y, n) over (channels, columns), runs rows x channel blocks in parallel (knob
// tasks: how many parallel tasks; with knob pixel_row and one row, runs of kRowRunTiles tiles
// take the rows' place), and
// computes acc per tile with its pure dimensions vectorized and unrolled. The caller orders
// acc's update (its reduction) inside the tile.
void schedule_register_tile(Halide::Func out, Halide::Func acc, int64_t M, int64_t OW, int64_t OH, const Knobs &k,
                            int default_vec);

// Runs out's loop t (`units` iterations) in parallel: one task per iteration, or, with knob
// tasks = T > 0, about T tasks of consecutive iterations (fewer claims of work per kernel).
// Returns the loop that runs one iteration of t (t itself, or the split's inner loop).
Halide::Var parallel_tasks(Halide::Func out, Halide::Var t, int64_t units, const Knobs &k);

// The register tile's knobs (vec, co_vectors, x_tile), shared by the families that use it.
std::vector<KnobDecl> register_tile_knob_decls();

// Their canonical form (KnobSpace::normalize): x_tile clamped to the width, co_vectors to the
// vectors the tile really holds; vec as given.
Knobs register_tile_normalize(const KernelSpec &s, Knobs k, int default_vec);

}  // namespace qnnc
