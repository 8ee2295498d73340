// Fully connected layer (torchvision's final Linear).
#include <algorithm>

#include "kernels/families.h"

using namespace Halide;

namespace qnnc {

HalideKernel build_dense(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], K = s.in_shape[1], M = s.out_shape[1];
  ImageParam x = fixed_param(Float(32), "input", {K, N});
  ImageParam w = fixed_param(Float(32), "weights", {M, K});
  ImageParam b = fixed_param(Float(32), "bias", {M});
  Var o("o"), n("n");
  RDom r(0, (int)K, "r");
  Func acc("acc"), out("output");
  acc(o, n) = b(o);
  acc(o, n) += w(o, r) * x(r, n);
  out(o, n) = fused_activation(acc(o, n), s);
  fix_output(out, {M, N});

  // Schedule: a block of output features per task, accumulators in registers.
  int vec = knob(k, "vec", 8);
  int vw = (int)std::min<int64_t>(vec, M);
  int ob = (int)std::min<int64_t>(vw * knob(k, "o_vectors", 4), (M / vw) * vw);
  Var oo("oo"), oi("oi");
  out.split(o, oo, oi, ob, TailStrategy::ShiftInwards).reorder(oi, n, oo).vectorize(oi, vw).parallel(oo);
  acc.compute_at(out, oo).vectorize(o, vw).unroll(o);
  acc.update().reorder(o, n, r).vectorize(o, vw).unroll(o);
  return {Pipeline(out), {x, w, b}};
}

}  // namespace qnnc
