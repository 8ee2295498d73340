// fp32 2-D convolution over NHWC activations with a fused epilogue (bias, residual add, ReLU).
// Weights arrive as (co, ci, kx, ky) with co innermost, so each reduction step multiplies one
// broadcast input value by a vector of output channels.
#include "kernels/knob_space.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_winograd.h"
#include "kernels/register_tile.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

bool conv2d_pixel_row(const KernelSpec &s, const Knobs &k) {
  return knob(k, "pixel_row", 0) && pointwise_same_size(s) && !knob(k, "from_nchw", 0) && !knob(k, "k_chunk", 0) &&
         !knob(k, "winograd", 0);
}

int conv2d_channel_block(const KernelSpec &s, const Knobs &k) {
  if (knob(k, "flat_weights", 0) && !conv2d_uses_winograd(s, k)) return (int)s.out_shape[1];
  return register_tile_channels(s.out_shape[1], k, 8);
}

ConvFuncs define_conv2d(const KernelSpec &s, int cb, bool from_nchw, int k_chunk) {
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
  else if (k_chunk > 0)
    // The chunked reduction computes whole tiles past a row's end (their sums are never
    // stored); their reads stay in the image.
    f.padded(co, x, y, n) = src(co, min(x, (int)W - 1), y, n);
  else
    f.padded(co, x, y, n) = src(co, x, y, n);

  f.chunked = k_chunk > 0;  // the caller passes 0 unless conv2d_chunk_fits
  RDom r(0, f.chunked ? k_chunk : (int)C, 0, (int)KW, 0, (int)KH, "r");
  f.conv = Func("conv");
  Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
  f.conv(co, x, y, n) = f.bias(co);
  // An output channel's place in the packed weights; one block of all channels (cb >= M) needs
  // no division, so a vector at any channel offset reads them densely.
  const Expr wco = nb == 1 ? Expr(co) : co % cb, wblk = nb == 1 ? Expr(0) : co / cb;
  if (f.chunked) {
    // Chunk ko's sum over its k_chunk input channels and the window, then the chunks' sum.
    Var ko("ko");
    Expr ci = ko * k_chunk + r.x;
    f.partial = Func("partial");
    f.partial(co, x, y, n, ko) = 0.f;
    f.partial(co, x, y, n, ko) += f.weights(wco, ci, r.y, r.z, wblk) * f.padded(ci, ix, iy, n);
    f.rc = RDom(0, (int)(C / k_chunk), "rc");
    f.conv(co, x, y, n) += f.partial(co, x, y, n, f.rc);
  } else {
    f.conv(co, x, y, n) += f.weights(wco, r.x, r.y, r.z, wblk) * f.padded(r.x, ix, iy, n);
  }

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
    // Up to 4 MB of weights: 3 or 2 16-lane vectors (whichever computes fewer channels past
    // the end) by 7 or 8 columns, the last block shifted inward over weights packed as one
    // block (flat_weights), so that its weights load densely (in blocks of the tile, they
    // straddle two and gather). Measured on a stack of RegNet shapes (`bench --profile`,
    // per-layer minima of 3 alternating rounds, 1 / 2 threads, against two vectors): 168 ->
    // 168, 168 -> 216 and 216 -> 216 at 28x28 0.62-0.79x the time at one thread, 3x3/2 216 ->
    // 408 0.86x / 0.71x. Beyond, consecutive reduction steps' weights lie M floats apart, a
    // page or more for large layers, and streaming them from memory lost its prefetch: 3x3/2
    // 408 -> 1512 (22 MB) took 1.34x / 1.21x as long so; those keep two vectors in blocks.
    if (K * M * 4 > (4 << 20)) {
      if (M < 8 * 16) return false;
      k["vec"] = 16;
      k["co_vectors"] = 2;
      return true;
    }
    if (M < 64) return false;
    const auto [cv, xt] = shifted_block_tile(M, OW);
    k["vec"] = 16;
    k["co_vectors"] = cv;
    k["x_tile"] = xt;
    k["flat_weights"] = 1;
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
  // A long reduction takes 3-4 vectors by 5-7 columns where they divide the channels, not up to
  // 9 by 2: each block's weights (cv x 16 x K floats) are read from L2 once per tile, and 9
  // vectors of 432 input channels are 249 kB per 2 columns. RegNet-X-3.2GF at 224x224, one
  // thread (`bench --profile`, per-layer minimum of 3 alternating rounds): its 1x1 432 -> 432
  // layers at 14x14 0.70x the time with 3 x 7, the 1008 -> 1008 at 7x7 0.70x.
  if (K > 128 && cv > 4)
    for (int c = 4; c >= 2; c--)
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

// Four vectors of output channels by 4-6 columns (16-24 accumulators) where the channels come
// in blocks of 64 and the row is at least 8 wide, instead of the general rule's two vectors by
// 7-8 columns: each reduction step loads 4 weight vectors and up to 6 broadcasts for up to 24
// multiply-adds, not 2 and 8 for 16.
// Not where a block of 64 channels' weights would take more than about half of L2 (640 kB;
// VGG-11's 3x3 512 -> 512 layers at 28x28 and 14x14 took 1.12-1.19x as long at one thread), nor
// for a stem read in place (VGG-11's 3x3 stem over 3 channels: 1.2x).
bool wide_channel_tile(const KernelSpec &s, const Target &t, Knobs &k) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], C = s.in_shape[1], KK = s.kernel[0] * s.kernel[1];
  if (!t.has_feature(Target::AVX512) || M % 64 != 0 || OW < 8 || knob(k, "vec", 16) != 16) return false;
  if (C * KK * 64 * 4 > (640 << 10) || (C <= 4 && KK <= 9)) return false;
  // Columns: the most useful work per tile, its rate (measured on register tiles in L1: 4 x 5
  // about 0.95 and 4 x 4 about 0.85 of 4 x 6) times the share of its columns inside the row.
  auto useful = [&](int c, double rate) { return rate * (double)OW / (double)((OW + c - 1) / c * c); };
  int xt = 6;
  if (useful(5, 0.95) > useful(xt, 1.0)) xt = 5;
  if (useful(4, 0.85) > useful(xt, xt == 5 ? 0.95 : 1.0)) xt = 4;
  k["co_vectors"] = 4;
  k["x_tile"] = xt;
  return true;
}

// The reduction in chunks (k_chunk) where one register tile covers a whole row (at most 8
// columns) and would otherwise stream a large block of weights (256 kB or more) from L2 for it
// alone: a chunk's weights (up to about 32 kB) stay in L1 for the tiles of 8 rows. ResNet-50 at
// one thread (`bench --profile`, alternating): its 3x3 512 -> 512 layers into 7x7 0.86-0.90x
// the time. Where a row has several tiles, the chunks' extra passes cost more than they save
// (its 14x14 layers took 1.06-1.10x as long in chunks).
void chunked_reduction(const KernelSpec &s, Knobs &k) {
  const int64_t C = s.in_shape[1], OW = s.out_shape[3], OH = s.out_shape[2], KK = s.kernel[0] * s.kernel[1];
  const int64_t cb = register_tile_channels(s.out_shape[1], k, 8);
  if (OW > 8 || knob(k, "x_tile", 4) < OW || C * KK * cb * 4 < (256 << 10)) return;
  int kc = 16;
  while (kc * 2 * KK * cb * 4 <= (32 << 10) && C % (kc * 2) == 0 && C / (kc * 2) > 1) kc *= 2;
  if (C % kc != 0 || C / kc < 2) return;
  k["k_chunk"] = kc;
  k["chunk_rows"] = (int)std::min<int64_t>(OH, 8);
}

// x86 without AVX-512 (16 vector registers): a 1x1 stride-1 layer over 256 or more input
// channels takes 2 vectors by 6 columns over its pixels as one row (12 accumulators, as many as
// keep Zen 3's two 4-cycle multiply-add pipes busy with room for 2 weight vectors and a broadcast;
// no tile past a row's end: 6 columns in rows of 14 would compute 18), whatever the general rule
// gave: 2 x 4 (8 accumulators, barely more than the multiply-adds in flight), 4 x 2 at 14x14
// (4 weight vectors from L2 for every 2 columns) or 1 x 7 at 7x7 (7 accumulators, a weight
// vector for every 7 multiply-adds). Output channels in whole blocks of 16 only (a last block
// shifted inward would take the slow path in every task). Measured on an AMD EPYC (Zen 3), `qnnc
// bench --profile`:
// - from 2 x 4, one thread (per-layer minima of 3-8 alternating rounds): RegNet-Y-16GF's 1232
//   -> 1232 at 14x14 (154 vectors, which 3 and 4 do not divide) 0.70-0.83x the time (2 x 6 in
//   the image's rows 1.00x, 2 x 4 as one row 1.0x); ResNet-50's 256 -> 64 and 256 -> 128 at
//   56x56 0.85-0.88x, 512 -> 128 and 512 -> 256 at 28x28 0.93-0.99x and 0.89x; but its 64 -> 64
//   and 64 -> 256 at 56x56 and 128 -> 512 at 28x28 1.06-1.3x, hence the 256 channels;
// - from 4 x 2 and 1 x 7, one / two threads (5-8 alternating rounds, each layer's ratio per round
//   scaled by the layers both builds share, then the median: bench/compare_layers.py):
//   ResNet-50's 1024 -> 256 and 1024 -> 512 at 14x14 0.91-0.97x / 0.86-0.91x, its 256 -> 1024
//   0.96-1.06x / 0.98-1.03x, 512 -> 2048 and 2048 -> 512 at 7x7 0.68-0.72x / 0.80-0.85x;
//   ResNeXt-50's 14x14 and 7x7 1x1 layers 0.68-0.92x (minima) / 0.79-0.93x (its 1x1 layers'
//   sum at one thread 138 -> 124 ms; 3 x 4 as one row 129, 4 x 3 227); MobileNetV2's 384 -> 64
//   and 576 -> 96 at 14x14 (4 x 2, 3 x 4) 0.90-0.97x / 0.90-0.96x, its 7x7 layers 0.72-0.79x /
//   0.73-0.77x; RegNet-Y-800MF's 784 -> 784 at 7x7 0.66-0.81x (one thread).
// Shorter reductions keep the general tile, and take the pixels as one row where its columns
// leave a shifted last tile in each row but divide the pixels (14x14 by 4: 16 columns computed
// for each row of 14): MobileNetV2's 64 -> 384 and 96 -> 576 at 14x14 (3 x 4) 0.85-0.89x their
// time (one thread, 6 rounds, bench/compare_layers.py); its 192 -> 64 at 14x14 (4 x 2, no
// columns past the end) took 1.22x as one row, hence only where columns are wasted.
void pixel_row_default(const KernelSpec &s, const Target &t, Knobs &k) {
  if (t.arch != Target::X86 || t.has_feature(Target::AVX512) || !pointwise_same_size(s)) return;
  // (A stem that reads NCHW drops the knob where it is built: conv2d_pixel_row.)
  const int64_t pixels = s.out_shape[2] * s.out_shape[3];
  if (s.in_shape[1] >= 256 && s.out_shape[1] % 16 == 0 && knob(k, "vec", 8) == 8 && pixels >= 2 * 6) {
    k["pixel_row"] = 1;
    k["co_vectors"] = 2;
    k["x_tile"] = 6;
    k.erase("row_major");
    return;
  }
  avx2_pixel_row_where_rows_leave_columns(s, t, k);
}

// The direct schedule's knobs, which do not apply under winograd (dropped from its normal form).
const char *const kDirectOnlyKnobs[] = {"x_tile", "unroll_ci", "pad_inline", "k_chunk", "chunk_rows", "row_major", "tasks",
                                        "flat_weights", "pixel_row"};

// Winograd F(2x2, 3x3) for 3x3 stride-1 layers (AVX-512) of at least 32 input and 16 output
// channels. Measured with `bench --profile` (Ice Lake, alternating) against the direct
// convolution, at 1 / 2 threads:
// - transformed weights (16 x C x M floats) up to 1 MB: each task takes one row of tiles for
//   every channel block, reading the weights from L2. ResNet-50's 64 -> 64 at 56x56 0.50x /
//   0.65x the time, 128 -> 128 at 28x28 0.57x / 0.75x; VGG-11's 64 -> 128 at 112x112 0.64x /
//   0.55x.
// - more: the input transformed in a pass of its own, then tasks of one channel block over
//   rows of tiles (about 96 tiles, their transformed input within 2 MB), so each block's
//   weights serve many tiles. ResNet-50's 256 -> 256 at 14x14 (all 49 tiles per task) 0.80x /
//   0.75x (one row per task: 1.05-1.1x); VGG-11's 128 -> 256 and 256 -> 256 at 56x56 0.87x /
//   0.60x and 0.77x / 0.45x, 512 -> 512 at 28x28 0.89x / 0.74x, at 14x14 0.93x / 0.84x.
// - fewer than 32 input channels: direct. 16 -> 64 at 55x55 took 1.1-1.2x the direct time
//   alone, 0.9x inside SqueezeNet at one thread and 1.4x at two (before runtime/scratch.h,
//   about 2x: glibc trimmed and regrew the heap around its buffers on every call); 32 -> 64 0.69x.
// - fewer than 28 tiles per task (or in the whole image): direct. ResNet-50's 512 -> 512 at
//   7x7 (16 tiles) took 1.1-2.6x the direct time in every arrangement tried (each weight
//   serves too few tiles); VGG-11's 512 at 14x14 with 14 tiles per task 1.2-1.4x. A 60-trial
//   `qnnc tune` of ResNet-18 at 56x56 found direct schedules 0.86-0.92x the Winograd default's
//   time on its 128 -> 128 layers at 7x7.
// Only measured on AVX-512; elsewhere it is the tuner's to choose.
void winograd_default(const KernelSpec &s, const Target &t, Knobs &k) {
  if (!t.has_feature(Target::AVX512) || !conv2d_winograd_fits(s) || knob(k, "from_nchw", 0)) return;
  const int64_t C = s.in_shape[1], M = s.out_shape[1];
  const auto [TX, TY] = winograd_grid(s);
  if (C < 32 || M < 16 || TX * TY < 28) return;
  int64_t rows = 1;
  int root = 0;
  if (16 * C * M * 4 > (1 << 20)) {
    root = 1;
    rows = std::min<int64_t>(TY, (96 + TX - 1) / TX);
    while (rows > 1 && 16 * C * TX * rows * 4 > (2 << 20)) rows--;
    if (TX * rows < 28) return;
  }
  k["winograd"] = 1;
  k["vec"] = 16;
  const int cv = M % 64 == 0 ? 4 : M % 48 == 0 ? 3 : 2;
  k["co_vectors"] = cv;
  k["wino_rows"] = (int)rows;
  k["wino_root"] = root;
  // Tiles per register tile: at most 24 accumulators (7 x 4 vectors took 1.2x as long per tile
  // as 6 x 4 on 64 -> 64), the fewest tiles computed past the task's end, narrower tiles
  // weighed by their lower rate (5 and 4 tiles guessed 5% and 12% slower per tile than 6).
  const int64_t T = TX * rows;
  int wt = 0;
  double best = 0;
  for (auto [c, w] : {std::pair<int, double>{8, 1.0}, {6, 1.0}, {5, 1.05}, {4, 1.12}}) {
    const double cost = (double)((T + c - 1) / c * c) * w;
    if (cv * c <= 24 && (wt == 0 || cost < best)) wt = c, best = cost;
  }
  k["wino_tiles"] = wt;
  for (const char *name : kDirectOnlyKnobs) k.erase(name);
}

}  // namespace

Knobs conv2d_default_knobs(const KernelSpec &s, const Target &t) {
  // 1x1 layers on x86 without AVX-512 whose input passes 1 MB: tasks row by row (row_major,
  // where the weights fit kRowMajorWeightBytes). Block by block, every channel block streams the
  // whole input from L3 again. AMD EPYC (Zen 3), one thread, `bench --profile`, medians over 6-8
  // alternating rounds of each layer's ratio (each round scaled by the layers both builds
  // share): ResNeXt-50's 128 -> 256 at 56x56 (1.6 MB of input, 16 blocks) 0.71-0.80x the time,
  // MobileNetV2's 32 -> 16 at 112x112 0.88x. At 0.8 MB it was mixed (ResNet-50's 64 -> 256 at
  // 56x56 0.87-1.14x, MobileNetV2's 16 -> 96 1.07x, ResNeXt-50's 64 -> 128 0.80x), so those stay
  // block by block; 3x3 layers took longer row by row (ResNet-50's 64 -> 64 at 56x56 1.03-1.14x,
  // VGG-16's 64 -> 64 at 224x224 1.13x, 32 -> 64 at 112x112 1.47x; its 1x1 64 -> 64 there 0.90x).
  const bool avx2 = t.arch == Target::X86 && !t.has_feature(Target::AVX512);
  const bool large_input = s.in_shape.size() == 4 && s.kernel == std::vector<int64_t>{1, 1} &&
                           s.in_shape[1] * s.in_shape[2] * s.in_shape[3] * 4 > (1 << 20);
  const int64_t weight_bytes =
      s.in_shape.size() == 4 ? s.in_shape[1] * s.kernel[0] * s.kernel[1] * s.out_shape[1] * 4 : 0;
  Knobs k = register_tile_knobs(s.out_shape[1], s.out_shape[3], t.natural_vector_size<float>(), t,
                                avx2 && large_input ? weight_bytes : -1);
  if (!(s.in_shape.size() == 4 && wide_channel_tile(s, t, k))) channel_dividing_tile(s, t, k);
  // fp32 at one thread (AMD EPYC Zen 3, bench/compare_layers.py, 4 rounds), 2 x 4 against 1 x 4:
  // ShuffleNetV2's 1x1 layers over 58, 116 and 232 channels 0.56-0.78x their time; 40 channels
  // (48 computed) 0.71-0.90x (MnasNet, MobileNetV3-Large, EfficientNet-B0), 184 and 200 0.66-0.70x.
  if (s.in_shape.size() == 4) avx2_shifted_pair_tile(s.out_shape[1], s.out_shape[3], weight_bytes, 0.25, t, k);
  if (s.in_shape.size() == 4 && t.has_feature(Target::AVX512)) chunked_reduction(s, k);
  // Weights beyond a core's L2 (2 MB here): 8 runs of consecutive (row, block) tasks instead of
  // one task each. With one task each, both threads take the same block's rows in turn and each
  // core streams every block's weights; in runs, each core streams about half of them.
  // ResNet-50 at 2 threads (`bench --profile`, alternating): its 3x3 512 -> 512 layers (9.4 MB)
  // and 2048 -> 512 1x1s (4 MB) at 7x7 0.86-0.90x the time; one thread unchanged.
  if (weight_bytes > (2 << 20))
    k["tasks"] = 8;
  k["unroll_ci"] = 1;
  // An image's few channels (a stem) under a 3x3 window are read in place, the borders tested
  // in the loads (MnasNet's 3x3/2 stem, 2 threads: 0.242 -> 0.208 ms against a padded copy;
  // ResNet-50's 7x7/2 stem took 1.3-1.4x as long so).
  if (s.in_shape.size() == 4 && s.in_shape[1] <= 4 && s.kernel[0] * s.kernel[1] <= 9) k["pad_inline"] = 1;
  pixel_row_default(s, t, k);
  winograd_default(s, t, k);
  return k;
}

namespace {

// The chunked reduction's schedule. Each task is one block of output channels over
// `chunk_rows` rows; `conv` holds their sums (block x width x rows floats, in L1). For each
// chunk of input channels, every register tile of the task's rows sums the chunk in registers
// (`partial`) and adds it to `conv`, so the chunk's weights (k_chunk x window x block) are read
// from L1 by all those tiles, instead of each tile streaming the whole block's weights from L2.
void schedule_conv2d_chunked(ConvFuncs &f, const KernelSpec &s, const Knobs &k) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], OH = s.out_shape[2];
  const int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), M);
  const int cb = register_tile_channels(M, k, 8);
  const int xt = (int)std::min<int64_t>(std::max(1, knob(k, "x_tile", 4)), OW);
  const int rows = (int)std::min<int64_t>(std::max(1, knob(k, "chunk_rows", 1)), OH);
  Func out = f.output;
  Var co = out.args()[0], x = out.args()[1], y = out.args()[2], n = out.args()[3];
  Var co_o("co_o"), co_i("co_i"), x_o("x_o"), x_i("x_i"), y_o("y_o"), y_i("y_i"), t_("tile");
  out.split(co, co_o, co_i, cb, TailStrategy::ShiftInwards)
      .split(x, x_o, x_i, xt, TailStrategy::ShiftInwards)
      .split(y, y_o, y_i, rows, TailStrategy::ShiftInwards)
      .vectorize(co_i, vw)
      .unroll(co_i)
      .unroll(x_i)
      .reorder(co_i, x_i, x_o, y_i, y_o, co_o, n)
      .fuse(y_o, co_o, t_);
  const Var task = parallel_tasks(out, t_, ((OH + rows - 1) / rows) * ((M + cb - 1) / cb), k);

  Var cv = f.conv.args()[0], xv = f.conv.args()[1], yv = f.conv.args()[2], nv = f.conv.args()[3];
  Var xo("xo"), xi("xi");
  f.conv.compute_at(out, task).vectorize(cv, vw).unroll(cv);
  f.conv.update()
      .split(xv, xo, xi, xt, TailStrategy::RoundUp)  // whole tiles; `conv` is as wide as they are
      .reorder(cv, xi, xo, yv, f.rc.x, nv)
      .vectorize(cv, vw)
      .unroll(cv)
      .unroll(xi);
  Var pc = f.partial.args()[0], px = f.partial.args()[1], py = f.partial.args()[2], pn = f.partial.args()[3],
      pk = f.partial.args()[4];
  f.partial.compute_at(f.conv, xo).vectorize(pc, vw).unroll(pc).unroll(px);
  auto pu = f.partial.update();
  pu.reorder(pc, px, f.r.x, f.r.y, f.r.z, py, pn, pk).vectorize(pc, vw).unroll(pc).unroll(px);
  const int uci = knob(k, "unroll_ci", 1);
  if (uci > 1 && knob(k, "k_chunk", 0) % uci == 0) pu.unroll(f.r.x, uci);
}

}  // namespace

bool conv2d_chunk_fits(const KernelSpec &s, const Knobs &k) {
  const int kc = knob(k, "k_chunk", 0);
  if (kc <= 0 || s.in_shape.size() != 4 || s.out_shape.size() != 4) return false;
  const int64_t C = s.in_shape[1];
  return C % kc == 0 && C / kc > 1;
}

void schedule_conv2d(ConvFuncs &f, const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], C = s.in_shape[1];
  int vec = std::max(1, knob(k, "vec", 8));
  if (f.chunked) {
    schedule_conv2d_chunked(f, s, k);
  } else {
    int vw = (int)std::min<int64_t>(vec, M);
    schedule_register_tile(f.output, f.conv, M, OW, s.out_shape[2], k, 8);  // s: one row with pixel_row
    Var cv = f.conv.args()[0], xv = f.conv.args()[1], yv = f.conv.args()[2], nv = f.conv.args()[3];
    auto upd = f.conv.update();
    upd.reorder(cv, xv, f.r.x, f.r.y, f.r.z, yv, nv).vectorize(cv, vw).unroll(cv).unroll(xv);
    int uci = knob(k, "unroll_ci", 1);
    if (uci > 1 && C % uci == 0) upd.unroll(f.r.x, uci);
  }
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
  s.knobs.push_back({"k_chunk", "input channels per reduction chunk (0: the whole reduction per register tile); "
                                "a chunk's weights serve every tile of a task's rows from L1",
                     {0, 16, 32, 64, 128}, {0, 8, 16, 32, 64, 128, 256}});
  s.knobs.push_back({"chunk_rows", "output rows per task with k_chunk", {1, 2, 4, 7}, {}});
  s.knobs.push_back({"flat_weights", "1: weights packed as one block of all output channels, so that a register tile "
                     "at any channel offset (a last block shifted inward) loads them densely; 0: in blocks of the "
                     "tile's channels. Default 1 on AVX-512 for at least 64 channels that 16 does not divide under "
                     "a reduction over 128", {0, 1}, {0, 1}, true});
  s.knobs.push_back({"pixel_row", "1: a 1x1 stride-1 layer's pixels as one row, register tiles running across the "
                                  "image's rows (none past a row's end); tasks are runs of tiles x channel blocks. "
                                  "Default 1 on x86 without AVX-512 over 256+ input channels and output channels in blocks of 16, "
                                  "as 2 vectors x 6 columns",
                     {0, 1}, {0, 1}});
  s.knobs.push_back({"from_nchw", "1: reads the model's NCHW input itself (a stem; set by lowering)", {}, {0, 1},
                     false, true});
  s.knobs.push_back({"winograd", "1: Winograd F(2x2, 3x3) for a 3x3 stride-1 layer (weights transformed at compile "
                                 "time; 16 multiply-adds per channel and 2x2 outputs instead of 36)",
                     {0, 1}, {0, 1}, true});
  s.knobs.push_back({"wino_tiles", "with winograd: 2x2 output tiles per register tile", {2, 3, 4, 6, 8}, {}});
  s.knobs.push_back({"wino_rows", "with winograd: tile rows per parallel task (its input transformed once for "
                                  "every channel block)", {1, 2, 4, 7, 14}, {}});
  s.knobs.push_back({"wino_root", "with winograd: 1 transforms the input in a parallel pass of its own; tasks are "
                                  "then tile rows x channel blocks", {0, 1}, {0, 1}});
  s.normalize = [](const KernelSpec &s, Knobs k) {
    if (k.count("winograd") && !conv2d_winograd_fits(s)) k["winograd"] = 0;
    if (conv2d_uses_winograd(s, k)) {
      // Winograd's schedule reads only the channel block and its own knobs.
      for (const char *name : kDirectOnlyKnobs) k.erase(name);
      k = register_tile_normalize(s, std::move(k), 8);
      const auto [TX, TY] = winograd_grid(s);
      if (k.count("wino_rows")) k["wino_rows"] = (int)std::min<int64_t>(std::max(1, k["wino_rows"]), TY);
      if (k.count("wino_tiles"))
        k["wino_tiles"] = (int)std::min<int64_t>(std::max(1, k["wino_tiles"]), TX * std::max(1, knob(k, "wino_rows", 1)));
      return k;
    }
    for (const char *name : {"wino_tiles", "wino_rows", "wino_root"}) k.erase(name);
    k = register_tile_normalize(s, std::move(k), 8);
    if (k.count("unroll_ci") && s.in_shape.size() == 4 && (k["unroll_ci"] < 1 || s.in_shape[1] % k["unroll_ci"] != 0))
      k["unroll_ci"] = 1;  // the schedule ignores a factor that does not divide the channels
    if (k.count("k_chunk") && !conv2d_chunk_fits(s, k)) k["k_chunk"] = 0;
    if (!knob(k, "k_chunk", 0)) k.erase("chunk_rows");
    // One block holds every channel anyway: both layouts are the same.
    if (k.count("flat_weights") && register_tile_channels(s.out_shape[1], k, 8) >= s.out_shape[1]) k["flat_weights"] = 0;
    else k.erase("row_major");  // tasks are blocks over rows there
    if (k.count("pixel_row") && !conv2d_pixel_row(s, k)) k.erase("pixel_row");
    if (knob(k, "pixel_row", 0)) k.erase("row_major");  // tasks are runs of one row's tiles
    if (knob(k, "k_chunk", 0) && k.count("chunk_rows"))
      k["chunk_rows"] = (int)std::min<int64_t>(std::max(1, k["chunk_rows"]), s.out_shape[2]);
    return k;
  };
  return s;
}

}  // namespace qnnc
