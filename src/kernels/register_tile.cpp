#include "kernels/register_tile.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

Knobs register_tile_knobs(int64_t M, int64_t OW, int vec, const Target &t, int64_t weight_bytes, int max_vectors,
                          bool two_columns) {
  // A few channels that vectors do not divide (squeeze-and-excitation's 6, 10, 20): one block
  // of all of them. Shifting the last vector inward would make it straddle two blocks of the
  // packed weights, which x86 gathers and Halide 21's ARM back end refuses ("Should be dense
  // vector load").
  if (M % vec != 0 && M < 4 * vec) vec = (int)M;
  // Columns per tile: the widest that divides the row; else the widest that computes the fewest
  // columns past its end (the last tile shifts inward and recomputes), if that saves a tenth of
  // the widest tile's: 17 columns take 6 (18 computed), not 8 (24).
  const int max_x = t.has_feature(Target::AVX512) ? 8 : 4;
  auto covered = [&](int c) { return (OW + c - 1) / c * c; };
  int x_tile = max_x;
  for (int c = max_x; c >= std::max(2, max_x / 2); c--)
    if (OW % c == 0) {
      x_tile = c;
      break;
    }
  if (OW % x_tile != 0) {
    int best = max_x;
    for (int c = max_x; c >= std::max(2, max_x / 2); c--)
      if (covered(c) < covered(best)) best = c;
    if (10 * covered(best) <= 9 * covered(max_x)) x_tile = best;
  }
  const int regs = t.has_feature(Target::AVX512) ? 16 : 12;
  auto vectors_for = [&](int xt) {
    for (int cv = std::max(1, std::min(regs / xt, max_vectors)); cv >= 1; cv--)
      if (M % (cv * vec) == 0 || cv == 1) return cv;
    return 1;
  };
  int co_vectors = vectors_for(x_tile);
  // x86 without AVX-512, a row wider than a tile: 2 columns pay with 4 vectors only (8
  // accumulators, each weight vector serving 2 columns). With 6 vectors a block's weights stream
  // from L2 at 3 vectors a column, with fewer than 4 the accumulators do not cover the
  // multiply-add latency: there, 4 columns with the last tile shifted inward. Measured on an AMD
  // EPYC (Zen 3), `qnnc bench --profile`, 2026-12-07: ConvNeXt-Tiny's 14x14 1x1 layers (fp32,
  // 384 and 1536 channels) 6 x 2 -> 3 x 4 0.48-0.53x their time; ResNet-50 int8's 14x14 3x3
  // layers (2 x 2, the int8 cap of 3 vectors) -> 2 x 4 0.92x; ResNet-50 fp32's 14x14 layers keep
  // 4 x 2 (2 x 4 took 1.1-1.3x their time, 4 x 3 2.2x). The bit-serial kernel's 14x14 layers
  // took 1.11-1.24x their time with 4 columns (ResNet-50 int1): it keeps 2.
  if (t.arch == Target::X86 && !t.has_feature(Target::AVX512) && OW > max_x && x_tile == 2 && co_vectors != 4 &&
      !two_columns) {
    x_tile = max_x;
    co_vectors = vectors_for(x_tile);
  }
  // Rows of 7 there, where 4 columns leave fewer than 3 vectors (channels that 3 vectors do not
  // divide, or int8's cap): one vector by all 7 columns rather than 4 columns twice (8
  // computed). ResNet-50's 7x7 layers (2 x 4) 0.90-0.97x their time in fp32 (3x3 512 -> 512:
  // 0.90), 0.93-1.0x in int8, 0.82x in int1 (bit-serial); MobileNetV2 int8's 320 -> 1280 0.93x.
  // With 3 vectors (ConvNeXt-Tiny's 768 and 3072 channels, fp32) 1 x 7 took 1.06-1.09x their
  // time (same machine and method).
  if (t.arch == Target::X86 && !t.has_feature(Target::AVX512) && OW == 7 && co_vectors < 3) {
    x_tile = 7;
    co_vectors = 1;
  }
  // Row by row where the weights are small enough to stay in cache while every block of a row
  // runs (the row's input is then read once, by the core that wrote it); else block by block.
  // Only where the blocks divide the channels: a last block shifted inward sits between every
  // row's others, so Halide cannot split it off the whole blocks' loop, and every task takes the
  // slow path (ShuffleNetV2 int8, 116 -> 116 channels at 28x28: 0.25 -> 1.27 ms).
  const int64_t cb = register_tile_channels(M, {{"vec", vec}, {"co_vectors", co_vectors}}, vec);
  const int row_major = weight_bytes >= 0 && weight_bytes <= kRowMajorWeightBytes && cb > 0 && M % cb == 0 ? 1 : 0;
  return {{"vec", vec}, {"co_vectors", co_vectors}, {"x_tile", x_tile}, {"row_major", row_major}};
}

bool avx2_shifted_pair_tile(int64_t M, int64_t OW, int64_t weight_bytes, double max_extra, const Target &t,
                            Knobs &k) {
  if (t.arch != Target::X86 || t.has_feature(Target::AVX512) || knob(k, "vec", 0) != 8 || knob(k, "co_vectors", 0) != 1)
    return false;
  // Not the rows of 7 (1 x 7 took 1.3-1.9x as long as 2 x 4), not a row of one pixel (a dense
  // layer: 2x), not weights whose steps lie pages apart when packed as one block.
  if (knob(k, "x_tile", 4) >= 7 || OW < 2 || M < 16 || M % 16 == 0 || weight_bytes > (4 << 20)) return false;
  if ((double)((M + 15) / 16 * 16) > (1 + max_extra) * (double)M) return false;  // channels computed past the end
  k["co_vectors"] = 2;
  k["flat_weights"] = 1;
  k["row_major"] = 0;
  return true;
}

std::pair<int, int> shifted_block_tile(int64_t M, int64_t OW) {
  auto covered = [](int64_t n, int64_t c) { return (n + c - 1) / c * c; };
  const int cv = covered(M, 32) < covered(M, 48) ? 2 : 3, want = cv == 3 ? 7 : 8;
  int xt = want;
  for (int c : {want, want - 1, want - 2})
    if (OW % c == 0) {
      xt = c;
      break;
    }
  return {cv, (int)std::min<int64_t>(xt, OW)};
}

bool pointwise_same_size(const KernelSpec &s) {
  return s.in_shape.size() == 4 && s.out_shape.size() == 4 && s.kernel == std::vector<int64_t>{1, 1} &&
         s.stride == std::vector<int64_t>{1, 1} && s.pads == std::vector<int64_t>{0, 0, 0, 0} &&
         s.in_shape[2] == s.out_shape[2] && s.in_shape[3] == s.out_shape[3];
}

bool avx2_pixel_row_where_rows_leave_columns(const KernelSpec &s, const Target &t, Knobs &k) {
  if (t.arch != Target::X86 || t.has_feature(Target::AVX512) || !pointwise_same_size(s)) return false;
  const int64_t OW = s.out_shape[3];
  const int xt = knob(k, "x_tile", 4);
  if (xt <= 1 || OW % xt == 0 || s.out_shape[2] * OW % xt != 0) return false;
  k["pixel_row"] = 1;
  k.erase("row_major");
  return true;
}

KernelSpec pixels_as_row(const KernelSpec &s) {
  KernelSpec r = s;
  r.in_shape = {s.in_shape[0], s.in_shape[1], 1, s.in_shape[2] * s.in_shape[3]};
  r.out_shape = {s.out_shape[0], s.out_shape[1], 1, s.out_shape[2] * s.out_shape[3]};
  return r;
}

int register_tile_channels(int64_t M, const Knobs &k, int default_vec) {
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", default_vec)), M);
  return (int)std::min<int64_t>(vw * std::max(1, knob(k, "co_vectors", 2)), (M / vw) * vw);
}

Var parallel_tasks(Func out, Var t, int64_t units, const Knobs &k) {
  const int tasks = knob(k, "tasks", 0);
  if (tasks > 0 && units > tasks) {
    Var t_o(t.name() + "_o"), t_i(t.name() + "_i");
    out.split(t, t_o, t_i, (int)((units + tasks - 1) / tasks), TailStrategy::GuardWithIf).parallel(t_o);
    return t_i;
  }
  out.parallel(t);
  return t;
}

void schedule_register_tile(Func out, Func acc, int64_t M, int64_t OW, int64_t OH, const Knobs &k, int default_vec) {
  Var co = out.args()[0], x = out.args()[1], y = out.args()[2], n = out.args()[3];
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", default_vec)), M);
  int cb = register_tile_channels(M, k, default_vec);
  int xt = (int)std::min<int64_t>(std::max(1, knob(k, "x_tile", 4)), OW);
  Var co_o("co_o"), co_i("co_i"), x_o("x_o"), x_i("x_i"), t_("tile");
  out.split(co, co_o, co_i, cb, TailStrategy::ShiftInwards)
      .split(x, x_o, x_i, xt, TailStrategy::ShiftInwards)
      .vectorize(co_i, vw)
      .unroll(co_i)
      .unroll(x_i);
  const int64_t tiles = (OW + xt - 1) / xt;
  if (OH == 1 && knob(k, "pixel_row", 0) && tiles > kRowRunTiles) {
    // One long row: runs of tiles (the last one shorter) take the place of rows, each run's
    // tiles over one channel block in turn.
    const int64_t runs = (tiles + kRowRunTiles - 1) / kRowRunTiles, per = (tiles + runs - 1) / runs;
    Var run("run"), x_r("x_r");
    out.split(x_o, run, x_r, (int)per, TailStrategy::GuardWithIf).reorder(co_i, x_i, x_r, run, co_o, y, n)
        .fuse(run, co_o, t_);
    parallel_tasks(out, t_, runs * ((M + cb - 1) / cb), k);
    acc.compute_at(out, x_r).vectorize(acc.args()[0], vw).unroll(acc.args()[0]).unroll(acc.args()[1]);
    return;
  }
  if (knob(k, "row_major", 0)) out.reorder(co_i, x_i, x_o, co_o, y, n).fuse(co_o, y, t_);
  else out.reorder(co_i, x_i, x_o, y, co_o, n).fuse(y, co_o, t_);
  parallel_tasks(out, t_, OH * ((M + cb - 1) / cb), k);
  acc.compute_at(out, x_o).vectorize(acc.args()[0], vw).unroll(acc.args()[0]).unroll(acc.args()[1]);
}

Knobs register_tile_normalize(const KernelSpec &s, Knobs k, int default_vec) {
  if (s.out_shape.size() != 4) return k;
  const int64_t M = s.out_shape[1], OW = s.out_shape[3];
  if (k.count("x_tile")) k["x_tile"] = (int)std::min<int64_t>(std::max(1, k["x_tile"]), OW);
  if (k.count("co_vectors")) {
    int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", default_vec)), M);
    k["co_vectors"] = std::max(1, register_tile_channels(M, k, default_vec) / vw);
  }
  // As many tasks as (row, channel block) units, or more, is the default split.
  const int64_t units = s.out_shape[0] * s.out_shape[2] * ((M + register_tile_channels(M, k, default_vec) - 1) /
                                                           register_tile_channels(M, k, default_vec));
  if (k.count("tasks") && k["tasks"] >= units) k["tasks"] = 0;
  return k;
}

std::vector<KnobDecl> register_tile_knob_decls() {
  return {{"vec", "lanes per vector of output channels (capped at the channel count)", {8, 16, 32}, {}, true},
          {"co_vectors", "vectors of output channels per register tile (the weights' block)", {1, 2, 3, 4, 6}, {}, true},
          {"x_tile", "output columns per register tile", {1, 2, 3, 4, 5, 6, 7, 8}, {}, false},
          {"tasks", "parallel tasks per kernel (0: one per row and channel block; else about that many)",
           {0, 8, 16, 32}, {0, 2, 4, 8, 16, 32, 64, 128}, false},
          {"row_major", "task order: 1 row by row (each row's channel blocks in turn: its input is read once), "
                        "0 block by block (a block's weights stay in cache); integer default: 1 up to 256 kB of weights where the blocks divide the channels; fp32 on x86 without AVX-512 the same for 1x1 layers over more than 1 MB of input",
           {0, 1}, {0, 1}, false}};
}

}  // namespace qnnc
