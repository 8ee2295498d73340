// fp32 2-D convolution over NHWC activations with a fused epilogue (bias, residual add, ReLU).
// Weights arrive as (co, ci, kx, ky) with co innermost, so each reduction step multiplies one
// broadcast input value by a vector of output channels.
#include "kernels/knob_space.h"
#include "kernels/conv2d.h"
#include "kernels/register_tile.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

int conv2d_channel_block(const KernelSpec &s, const Knobs &k) { return register_tile_channels(s.out_shape[1], k, 8); }

ConvFuncs define_conv2d(const KernelSpec &s, int cb, bool from_nchw) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t KH = s.kernel[0], KW = s.kernel[1];
  ConvFuncs f;
  Var co("co"), x("x"), y("y"), n("n");
  Func src("src");
  if (from_nchw) {
    f.input = fixed_param(Float(32), "input", nchw_dims(s.in_shape));
    src(co, x, y, n) = f.input(x, y, co, n);
  } else {
    f.input = fixed_param(Float(32), "input", {C, W, H, N});
    src(co, x, y, n) = f.input(co, x, y, n);
  }
  const int64_t nb = (M + cb - 1) / cb;
  f.weights = fixed_param(Float(32), "weights", {cb, C, KW, KH, nb});
  f.bias = fixed_param(Float(32), "bias", {M});
  if (s.residual) f.residual = fixed_param(Float(32), "residual", {M, OW, OH, N});

  bool padded = s.pads[0] || s.pads[1] || s.pads[2] || s.pads[3];
  f.padded = Func("padded");
  if (padded)
    f.padded(co, x, y, n) = BoundaryConditions::constant_exterior(
        src, 0.f, {Range(), Range(0, (int)W), Range(0, (int)H), Range()})(co, x, y, n);
  else
    f.padded(co, x, y, n) = src(co, x, y, n);

  RDom r(0, (int)C, 0, (int)KW, 0, (int)KH, "r");
  f.conv = Func("conv");
  Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
  f.conv(co, x, y, n) = f.bias(co);
  f.conv(co, x, y, n) += f.weights(co % cb, r.x, r.y, r.z, co / cb) * f.padded(r.x, ix, iy, n);

  Expr v = f.conv(co, x, y, n);
  if (s.residual) v += f.residual(co, x, y, n);
  v = fused_activation(v, s);
  f.output = Func("output");
  f.output(co, x, y, n) = v;
  fix_output(f.output, {M, OW, OH, N});
  f.r = r;
  f.has_padding = padded;
  return f;
}

namespace {

// Register tiles that divide the output channels (AVX-512): up to 9 vectors of channels that
// divide them exactly (8-lane vectors where 16 lanes do not divide them), by as many columns
// as make about 21 accumulators. Taken for a short reduction (K = C x KH x KW <= 64: the
// expansion 1x1 layers of MobileNet-class models) and wherever the general rule's tile is one
// vector of a wider layer or leaves a block shifted inward. Measured on single layers at 2
// threads (`bench --profile`, alternating), against the general rule: 24 -> 72 channels at
// 56x56 0.40x the time (8 lanes x 9 vectors x 2 columns), 24 -> 144 0.58x, 16 -> 48 at
// 112x112 0.61x, 40 -> 120 at 28x28 0.70x, 64 -> 64 0.72x, 480 -> 80 at 14x14 0.71x, 480 ->
// 112 0.76x, 80 -> 200 0.81x; 64 -> 256 unchanged (one column of 16 vectors took 2x as long,
// hence at most 9 vectors). 8-lane vectors only up to a reduction of 128; longer ones with
// channels that 16 does not divide take two 16-lane vectors, the last block shifted inward.
bool channel_dividing_tile(const KernelSpec &s, const Target &t, Knobs &k) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], K = s.in_shape[1] * s.kernel[0] * s.kernel[1];
  if (!t.has_feature(Target::AVX512)) return false;
  const int64_t general_block = (int64_t)knob(k, "vec", 16) * knob(k, "co_vectors", 1);
  const bool poor = M % general_block != 0 || (knob(k, "co_vectors", 1) == 1 && M > general_block);
  if (K > 64 && !poor) return false;
  if (M % 16 != 0 && K > 128) {
    // 8-lane vectors halve the multiply-adds per instruction, which a long reduction feels:
    // SqueezeNet's 512 -> 1000 at 13x13, one thread, took 2.39 ms so (8 lanes x 5), 1.49 with
    // the general rule's single 16-lane vector and 1.14 with two (the last block shifted).
    if (M < 8 * 16) return false;
    k["vec"] = 16;
    k["co_vectors"] = 2;
    return true;
  }
  const int vec = M % 16 == 0 ? 16 : 8;
  if (M % vec != 0 || (M % 16 != 0 && M < 64)) return false;  // few odd channels: the general rule's one block
  const int64_t nv = M / vec;
  int cv = 1;
  for (int c = 9; c >= 1; c--)
    if (nv % c == 0) {
      cv = c;
      break;
    }
  if (cv == 1 && nv > 1) return false;
  const int most = std::min(8, 30 / cv - 1), want = std::clamp(21 / cv, 2, most);
  int xt = want;
  for (int c : {want, want - 1, want + 1})
    if (c >= 2 && c <= most && OW % c == 0) {
      xt = c;
      break;
    }
  k["vec"] = vec;
  k["co_vectors"] = cv;
  k["x_tile"] = (int)std::min<int64_t>(xt, OW);
  return true;
}

}  // namespace

Knobs conv2d_default_knobs(const KernelSpec &s, const Target &t) {
  Knobs k = register_tile_knobs(s.out_shape[1], s.out_shape[3], t.natural_vector_size<float>(), t);
  channel_dividing_tile(s, t, k);
  // Weights beyond a core's L2 (2 MB here): 8 runs of consecutive (row, block) tasks instead of
  // one task each. With one task each, both threads take the same block's rows in turn and each
  // core streams every block's weights; in runs, each core streams about half of them.
  // ResNet-50 at 2 threads (`bench --profile`, alternating): its 3x3 512 -> 512 layers (9.4 MB)
  // and 2048 -> 512 1x1s (4 MB) at 7x7 0.86-0.90x the time; one thread unchanged.
  if (s.in_shape.size() == 4 && s.in_shape[1] * s.kernel[0] * s.kernel[1] * s.out_shape[1] * 4 > (2 << 20))
    k["tasks"] = 8;
  k["unroll_ci"] = 1;
  // An image's few channels (a stem) under a 3x3 window are read in place, the borders tested
  // in the loads (MnasNet's 3x3/2 stem, 2 threads: 0.242 -> 0.208 ms against a padded copy;
  // ResNet-50's 7x7/2 stem took 1.3-1.4x as long so).
  if (s.in_shape.size() == 4 && s.in_shape[1] <= 4 && s.kernel[0] * s.kernel[1] <= 9) k["pad_inline"] = 1;
  return k;
}

void schedule_conv2d(ConvFuncs &f, const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], C = s.in_shape[1];
  int vec = std::max(1, knob(k, "vec", 8));
  int vw = (int)std::min<int64_t>(vec, M);
  schedule_register_tile(f.output, f.conv, M, OW, s.out_shape[2], k, 8);
  Var cv = f.conv.args()[0], xv = f.conv.args()[1], yv = f.conv.args()[2], nv = f.conv.args()[3];
  auto upd = f.conv.update();
  upd.reorder(cv, xv, f.r.x, f.r.y, f.r.z, yv, nv).vectorize(cv, vw).unroll(cv).unroll(xv);
  int uci = knob(k, "unroll_ci", 1);
  if (uci > 1 && C % uci == 0) upd.unroll(f.r.x, uci);
  if (f.has_padding && !knob(k, "pad_inline", 0)) {
    Var pc = f.padded.args()[0], py = f.padded.args()[2];
    f.padded.compute_root().parallel(py);
    if (C >= vec) {
      f.padded.vectorize(pc, vec, TailStrategy::GuardWithIf);
    } else if (C <= 4 && s.in_shape[3] >= 16) {
      schedule_image_columns(f.padded, C);  // from NCHW, each channel's columns load as one vector
    }
  }
}

KnobSpace conv2d_knob_space() {
  KnobSpace s{"conv2d", "fp32 convolution (NHWC, register tile over output channels x columns)",
              register_tile_knob_decls()};
  s.knobs.push_back({"unroll_ci", "input channels unrolled in the reduction (when it divides them)", {1, 2, 4}, {}});
  s.knobs.push_back({"pad_inline", "1: no padded copy of the input; loads test the borders (default for <= 4 "
                                   "input channels under a 3x3 window)", {0, 1}, {0, 1}});
  s.knobs.push_back({"from_nchw", "1: reads the model's NCHW input itself (a stem; set by lowering)", {}, {0, 1},
                     false, true});
  s.normalize = [](const KernelSpec &s, Knobs k) {
    k = register_tile_normalize(s, std::move(k), 8);
    if (k.count("unroll_ci") && s.in_shape.size() == 4 && (k["unroll_ci"] < 1 || s.in_shape[1] % k["unroll_ci"] != 0))
      k["unroll_ci"] = 1;  // the schedule ignores a factor that does not divide the channels
    return k;
  };
  return s;
}

}  // namespace qnnc
