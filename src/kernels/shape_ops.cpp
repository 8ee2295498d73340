// Kernels for shape operators and transformer layers. Transpose (also ShuffleNet's channel
// shuffle) and strided slices (Split, Slice, Gather with constant indices) work on extents in
// memory order, so one kernel serves any layout; table lookups (integer activation
// functions); softmax and layer normalization over rows; batched matrix products.
#include "kernels/knob_space.h"
#include "kernels/families.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

namespace {

// Vectorizes the innermost output dimension when it is wide enough, parallelizes the outermost
// non-unit one. An innermost dimension of a few elements (ShuffleNet's channel shuffle writes
// [58][2] from [2][58]) is unrolled around vectors of the next one instead, whose strided
// stores Halide interleaves into dense ones.
void schedule_copy(Func out, const std::vector<Var> &v, const std::vector<int64_t> &ext, const Knobs &k) {
  int vec = knob(k, "vec", 8);
  if (ext[0] >= vec) {
    out.vectorize(v[0], vec, TailStrategy::GuardWithIf);
  } else if (ext.size() > 1 && ext[0] <= 4 && ext[1] >= vec) {
    Var vo(v[1].name() + "_o"), vi(v[1].name() + "_i");
    out.split(v[1], vo, vi, vec, TailStrategy::GuardWithIf).reorder(vi, v[0], vo).vectorize(vi).unroll(v[0]);
  }
  for (size_t d = ext.size(); d-- > 1;)
    if (ext[d] > 1) {
      out.parallel(v[d]);
      break;
    }
}

// The row-wise schedule (softmax, layer norm): blocks of `rows` rows in parallel, the output
// vectorized along the row, each row's statistics computed inside the block; returns the
// per-row loop at which they go.
Var schedule_rows(Func out, int64_t K, const Knobs &k) {
  Var c = out.args()[0], row = out.args()[1];
  int vec = knob(k, "vec", 8), rows = knob(k, "rows", 16);
  Var ro("ro"), ri("ri");
  out.split(row, ro, ri, rows, TailStrategy::GuardWithIf).parallel(ro);
  if (K >= vec) out.vectorize(c, vec, TailStrategy::GuardWithIf);
  return ri;
}

}  // namespace

// out(v) = in(index(v)) over fp32 extents in memory order, with the copy schedule.
template <typename Index>
HalideKernel gather_kernel(const KernelSpec &s, const Knobs &k, Index index) {
  ImageParam in = fixed_param(Float(32), "input", s.in_shape);
  std::vector<Var> v = dim_vars(s.out_shape.size());
  Func out("output");
  out(v) = in(index(v));
  fix_output(out, s.out_shape);
  schedule_copy(out, v, s.out_shape, k);
  return {Pipeline(out), {in}};
}

HalideKernel build_transpose(const KernelSpec &s, const Knobs &k, const Target &t) {
  const size_t r = s.in_shape.size();
  if (s.perm.size() != r || s.out_shape.size() != r || r == 0 || r > 6)
    throw Error("transpose kernel: perm and shapes do not match");
  return gather_kernel(s, k, [&](const std::vector<Var> &v) {
    std::vector<Expr> at(r);
    for (size_t d = 0; d < r; d++) at[s.perm[d]] = v[d];
    return at;
  });
}

HalideKernel build_slice(const KernelSpec &s, const Knobs &k, const Target &t) {
  const size_t r = s.in_shape.size();
  if (s.starts.size() != r || s.steps.size() != r || s.out_shape.size() != r || r == 0 || r > 6)
    throw Error("slice kernel: starts, steps and shapes do not match");
  return gather_kernel(s, k, [&](const std::vector<Var> &v) {
    std::vector<Expr> at;
    for (size_t d = 0; d < r; d++) at.push_back((int)s.starts[d] + v[d] * (int)s.steps[d]);
    return at;
  });
}

// out(v) = in(v - begins) inside the input, spec.fparams[0] outside (memory order like slice).
HalideKernel build_pad(const KernelSpec &s, const Knobs &k, const Target &t) {
  const size_t r = s.in_shape.size();
  if (s.pads.size() != 2 * r || s.out_shape.size() != r || s.fparams.size() != 1 || r == 0 || r > 6)
    throw Error("pad kernel: pads and shapes do not match");
  ImageParam in = fixed_param(Float(32), "input", s.in_shape);
  Region inside;
  for (size_t d = 0; d < r; d++) inside.push_back(Range(0, (int)s.in_shape[d]));
  Func padded = BoundaryConditions::constant_exterior(in, s.fparams[0], inside);
  std::vector<Var> v = dim_vars(r);
  std::vector<Expr> at;
  for (size_t d = 0; d < r; d++) at.push_back(v[d] - (int)s.pads[d]);
  Func out("output");
  out(v) = padded(at);
  fix_output(out, s.out_shape);
  schedule_copy(out, v, s.out_shape, k);
  return {Pipeline(out), {in}};
}

HalideKernel build_lut(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t total = numel(s.out_shape);
  ImageParam in = fixed_param(UInt(8), "input", {total});
  ImageParam table = fixed_param(UInt(8), "table", {256});
  Var i("i");
  Func out("output");
  out(i) = table(cast<int32_t>(in(i)));
  fix_output(out, {total});
  int vec = knob(k, "vec", 16), chunk = knob(k, "chunk", 16384);
  Var io("io"), ii("ii");
  if (total >= chunk) out.split(i, io, ii, chunk, TailStrategy::GuardWithIf).parallel(io).vectorize(ii, vec);
  else if (total >= vec) out.vectorize(i, vec, TailStrategy::GuardWithIf);
  return {Pipeline(out), {in, table}};
}

HalideKernel build_softmax(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t K = s.in_shape[0], R = s.in_shape[1];
  ImageParam in = fixed_param(Float(32), "input", {K, R});
  Var c("c"), row("row");
  RDom rk(0, (int)K, "rk");
  Func mx("mx"), e("e"), sum("sum"), out("output");
  mx(row) = maximum(in(rk, row));
  e(c, row) = exp(in(c, row) - mx(row));
  sum(row) = 0.f;
  sum(row) += e(rk, row);
  out(c, row) = e(c, row) / sum(row);
  fix_output(out, {K, R});
  Var ri = schedule_rows(out, K, k);
  mx.compute_at(out, ri);
  e.compute_at(out, ri);
  if (K >= knob(k, "vec", 8)) e.vectorize(c, knob(k, "vec", 8), TailStrategy::GuardWithIf);
  sum.compute_at(out, ri);
  return {Pipeline(out), {in}};
}

static int matmul_columns(int64_t N, const Knobs &k) {
  // Whole vectors, as many as the row holds (the last tile shifts inward).
  const int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), N);
  return vw * (int)std::clamp<int64_t>(N / vw, 1, std::max(1, knob(k, "col_vectors", 2)));
}

HalideKernel build_matmul(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t K = s.in_shape[0], M = s.in_shape[1], B = s.in_shape[2], N = s.in2_shape[0];
  ImageParam a = fixed_param(Float(32), "a", {K, M, B});
  ImageParam b = fixed_param(Float(32), "b", {N, K, B});
  Var j("j"), i("i"), bt("bt");
  RDom r(0, (int)K, "r");
  Func acc("acc"), out("output");
  acc(j, i, bt) = 0.f;
  acc(j, i, bt) += a(r, i, bt) * b(j, r, bt);
  out(j, i, bt) = acc(j, i, bt);
  fix_output(out, {N, M, B});
  // A register tile of `rows` rows by `col_vectors` vectors of columns: per step of the
  // reduction, a vector load of b per column vector and a broadcast of a per row feed
  // rows x col_vectors FMAs into accumulators that stay in registers. Tiles at the ends of the
  // rows and columns shift inward (they recompute a few outputs); a task is a band of rows of
  // one batch entry, its tiles sweeping the columns (a's rows stay in L1, b in L2).
  const int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), N);
  const int cb = matmul_columns(N, k);
  const int rb = (int)std::min<int64_t>(std::max(1, knob(k, "rows", 6)), M);
  Var jo("jo"), ji("ji"), io("io"), ii("ii"), task("task");
  out.split(j, jo, ji, cb, TailStrategy::ShiftInwards)
      .split(i, io, ii, rb, TailStrategy::ShiftInwards)
      .reorder(ji, ii, jo, io, bt)
      .vectorize(ji, vw)
      .fuse(io, bt, task)
      .parallel(task);
  acc.compute_at(out, jo).vectorize(j, vw).unroll(j).unroll(i);
  acc.update().reorder(j, i, r, bt).vectorize(j, vw).unroll(j).unroll(i);
  return {Pipeline(out), {a, b}};
}

HalideKernel build_layernorm(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t K = s.in_shape[0], R = s.in_shape[1];
  const float eps = s.fparams.empty() ? 1e-5f : s.fparams[0];
  ImageParam in = fixed_param(Float(32), "input", {K, R});
  ImageParam gamma = fixed_param(Float(32), "gamma", {K});
  ImageParam beta = fixed_param(Float(32), "beta", {K});
  Var c("c"), row("row");
  RDom rk(0, (int)K, "rk");
  Func mean("mean"), var("var"), out("output");
  mean(row) = 0.f;
  mean(row) += in(rk, row);
  Expr mu = mean(row) / (float)K;
  var(row) = 0.f;
  var(row) += (in(rk, row) - mu) * (in(rk, row) - mu);
  Expr inv = 1.f / sqrt(var(row) / (float)K + eps);
  out(c, row) = (in(c, row) - mu) * inv * gamma(c) + beta(c);
  fix_output(out, {K, R});
  Var ri = schedule_rows(out, K, k);
  mean.compute_at(out, ri);
  var.compute_at(out, ri);
  return {Pipeline(out), {in, gamma, beta}};
}

std::vector<KnobSpace> shape_ops_knob_spaces() {
  KnobDecl vec{"vec", "lanes per vector", {8, 16, 32}, {}};
  KnobDecl rows{"rows", "rows per parallel task", {1, 4, 16, 64}, {}};
  return {{"transpose", "dimension permutation", {vec}},
          {"slice", "strided slice", {vec}},
          {"pad", "constant padding", {vec}},
          {"layernorm", "layer normalization over the innermost dimension", {vec, rows}},
          {"softmax", "softmax over the innermost dimension", {vec, rows}},
          {"lut", "256-entry table lookup of u8", {{"vec", "lanes per vector", {16, 32, 64}, {}},
                                                   {"chunk", "elements per parallel task", {4096, 16384, 65536}, {}}}},
          {"matmul", "batched product of two activations",
           {vec, {"col_vectors", "vectors of output columns per register tile", {1, 2, 3, 4}, {}},
            {"rows", "output rows per register tile", {1, 2, 4, 6, 8}, {}}}}};
}

}  // namespace qnnc
