// fp32 3x3 convolution by Winograd F(2x2, 3x3) over NHWC activations (kernels/conv2d_winograd.h).
#include "kernels/conv2d_winograd.h"
#include "kernels/register_tile.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

bool conv2d_winograd_fits(const KernelSpec &s) {
  return s.in_shape.size() == 4 && s.out_shape.size() == 4 && s.kernel.size() == 2 && s.kernel[0] == 3 &&
         s.kernel[1] == 3 && s.stride[0] == 1 && s.stride[1] == 1 && s.dilation[0] == 1 && s.dilation[1] == 1 &&
         s.group == 1;
}

bool conv2d_uses_winograd(const KernelSpec &s, const Knobs &k) {
  return knob(k, "winograd", 0) && !knob(k, "from_nchw", 0) && conv2d_winograd_fits(s);
}

std::vector<float> winograd_weights(const std::vector<float> &oihw, int64_t M, int64_t C, int64_t cb) {
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const int64_t nb = (M + cb - 1) / cb;
  std::vector<float> pk(nb * 16 * C * cb, 0.f);
  for (int64_t m = 0; m < M; m++)
    for (int64_t c = 0; c < C; c++) {
      const float *g = &oihw[(m * C + c) * 9];  // g[ky * 3 + kx]
      for (int b = 0; b < 4; b++)
        for (int a = 0; a < 4; a++) {
          double u = 0;
          for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) u += G[a][kx] * G[b][ky] * g[ky * 3 + kx];
          const int64_t e = a + 4 * b;
          pk[(((m / cb) * 16 + e) * C + c) * cb + m % cb] = (float)u;
        }
    }
  return pk;
}

WinogradFuncs define_conv2d_winograd(const KernelSpec &s, int cb) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t nb = (M + cb - 1) / cb;
  WinogradFuncs f;
  f.input = fixed_param(Float(32), "input", {C, W, H, N});
  f.weights = fixed_param(Float(32), "weights", {cb, C, 16, nb});
  f.bias = fixed_param(Float(32), "bias", {M});
  if (s.residual) f.residual = fixed_param(Float(32), "residual", {M, OW, OH, N});

  Var c("c"), co("co"), x("x"), y("y"), n("n"), a("a"), j("j"), e("e"), t("t");
  const int TX = (int)winograd_grid(s).tx;
  Func padded = BoundaryConditions::constant_exterior(f.input, 0.f, {Range(), Range(0, (int)W), Range(0, (int)H), Range()});
  // Tile t = (tx, ty) = (t % TX, t / TX), numbered along rows, makes outputs (2 tx + i, 2 ty + j)
  // from the 4x4 input patch at (2 tx - pad_left, 2 ty - pad_top).
  Expr x0 = 2 * (t % TX) - (int)s.pads[1], y0 = 2 * (t / TX) - (int)s.pads[0];
  auto d = [&](int i) { return padded(c, x0 + i, y0 + j, n); };
  f.rows = Func("wino_rows");  // B^T along x
  f.rows(c, a, j, t, n) = select(a == 0, d(0) - d(2), a == 1, d(1) + d(2), a == 2, d(2) - d(1), d(1) - d(3));
  Expr ea = e % 4, eb = e / 4;
  auto rw = [&](int jj) { return f.rows(c, ea, jj, t, n); };
  f.tiles = Func("wino_tiles");  // ... and along y
  f.tiles(c, e, t, n) = select(eb == 0, rw(0) - rw(2), eb == 1, rw(1) + rw(2), eb == 2, rw(2) - rw(1), rw(1) - rw(3));

  f.r = RDom(0, (int)C, "r");
  f.product = Func("wino_product");
  f.product(co, e, t, n) = 0.f;
  f.product(co, e, t, n) += f.weights(co % cb, f.r, e, co / cb) * f.tiles(f.r, e, t, n);

  // A^T P A for output (i, jj) of tile (x / 2, y / 2).
  Expr i = x % 2, jj = y % 2, tile = x / 2 + TX * (y / 2);
  auto p = [&](int pa, int pb) { return f.product(co, pa + 4 * pb, tile, n); };
  auto col = [&](int pb) { return select(i == 0, p(0, pb) + p(1, pb) + p(2, pb), p(1, pb) - p(2, pb) - p(3, pb)); };
  Expr v = select(jj == 0, col(0) + col(1) + col(2), col(1) - col(2) - col(3)) + f.bias(co);
  if (s.residual) v += f.residual(co, x, y, n);
  f.output = Func("output");
  f.output(co, x, y, n) = fused_activation(v, s);
  fix_output(f.output, {M, OW, OH, N});
  return f;
}

void schedule_conv2d_winograd(WinogradFuncs &f, const KernelSpec &s, const Knobs &k) {
  const int64_t M = s.out_shape[1], C = s.in_shape[1];
  const auto [TX, TY] = winograd_grid(s);
  const int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), M);
  const int cb = conv2d_channel_block(s, k);
  const int wr = (int)std::min<int64_t>(std::max(1, knob(k, "wino_rows", 1)), TY);
  const int wt = (int)std::min<int64_t>(std::max(1, knob(k, "wino_tiles", 6)), TX * wr);
  const int cvw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), C);

  Func out = f.output;
  Var co = out.args()[0], x = out.args()[1], y = out.args()[2], n = out.args()[3];
  Var co_o("co_o"), co_i("co_i"), xp("xp"), xi("xi"), yp("yp"), yi("yi"), tyo("tyo"), tyi("tyi"), task("task"),
      rows_blocks("rows_blocks");
  // The output transform, a tile (2 x 2 outputs) at a time, reads the channel block's products.
  out.split(co, co_o, co_i, cb, TailStrategy::ShiftInwards)
      .split(x, xp, xi, 2, TailStrategy::GuardWithIf)
      .split(y, yp, yi, 2, TailStrategy::GuardWithIf)
      .split(yp, tyo, tyi, wr, TailStrategy::ShiftInwards)
      .reorder(co_i, xi, yi, xp, tyi, co_o, tyo, n)
      .vectorize(co_i, vw)
      .unroll(co_i)
      .unroll(xi)
      .unroll(yi);
  const bool root = knob(k, "wino_root", 0);
  if (root) out.fuse(co_o, tyo, rows_blocks).fuse(rows_blocks, n, task);
  else out.fuse(tyo, n, task);
  out.parallel(task);

  // The products of a channel block over the task's tiles, one transformed element e at a time
  // (its weights, C x cb, serve every tile), in register tiles of cb channels x wt tiles summed
  // over the input channels.
  Var pc = f.product.args()[0], pe = f.product.args()[1], pt = f.product.args()[2], pn = f.product.args()[3],
      pto("pto"), pti("pti");
  f.product.compute_at(out, root ? task : co_o).vectorize(pc, vw).unroll(pc);
  f.product.update()
      .split(pt, pto, pti, wt, TailStrategy::RoundUp)
      .reorder(pc, pti, f.r.x, pto, pe, pn)
      .vectorize(pc, vw)
      .unroll(pc)
      .unroll(pti);

  // The input transformed once: per task (for its rows, every channel block), or in a parallel
  // pass of its own (wino_root: tasks are then rows x channel blocks). A vector of input
  // channels at a time: its 16 elements from 16 row sums held in registers.
  Var tc = f.tiles.args()[0], te = f.tiles.args()[1], tt = f.tiles.args()[2];
  Var tc_o("tc_o"), tc_i("tc_i");
  f.tiles.split(tc, tc_o, tc_i, cvw, TailStrategy::ShiftInwards).reorder(tc_i, te, tc_o, tt).vectorize(tc_i).unroll(te);
  if (root) f.tiles.compute_root().parallel(tt, (int)TX);
  else f.tiles.compute_at(out, task);
  Var rc = f.rows.args()[0];
  f.rows.compute_at(f.tiles, tc_o).vectorize(rc, cvw).unroll(f.rows.args()[1]).unroll(f.rows.args()[2]);
}

HalideKernel build_conv2d_winograd(const KernelSpec &s, const Knobs &k) {
  WinogradFuncs f = define_conv2d_winograd(s, conv2d_channel_block(s, k));
  schedule_conv2d_winograd(f, s, k);
  std::vector<ImageParam> args{f.input, f.weights, f.bias};
  if (s.residual) args.push_back(f.residual);
  return {Pipeline(f.output), args};
}

}  // namespace qnnc
