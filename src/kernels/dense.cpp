// Fully connected layer (torchvision's final Linear).
#include "kernels/knob_space.h"
#include <algorithm>

#include "kernels/families.h"

using namespace Halide;

namespace qnnc {

int dense_out_block(int64_t M, const Knobs &k) {
  // Whole vectors: up to o_vectors of them, no more than M needs.
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), M);
  return vw * (int)std::min<int64_t>(std::max(1, knob(k, "o_vectors", 4)), (M + vw - 1) / vw);
}

HalideKernel build_dense(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], K = s.in_shape[1], M = s.out_shape[1];
  const int ob = dense_out_block(M, k);
  const int64_t nb = (M + ob - 1) / ob;
  ImageParam x = fixed_param(Float(32), "input", {K, N});
  // Weights in blocks of ob outputs, each block's K x ob values contiguous (zero-padded to
  // nb blocks): a task streams its block from memory in order.
  ImageParam w = fixed_param(Float(32), "weights", {ob, K, nb});
  ImageParam b = fixed_param(Float(32), "bias", {nb * ob});
  Var o("o"), oi("oi"), blk("blk"), n("n");
  RDom r(0, (int)K, "r");
  Func acc("acc"), out("output");
  acc(oi, blk, n) = b(blk * ob + oi);
  acc(oi, blk, n) += w(oi, r, blk) * x(r, n);
  out(o, n) = fused_activation(acc(o % ob, o / ob, n), s);
  fix_output(out, {M, N});

  // Schedule: one output block per task, its accumulators in registers; the last block's
  // padding is computed and not stored.
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), M);
  Var oo("oo"), ox("ox");
  out.split(o, oo, ox, ob, TailStrategy::GuardWithIf).reorder(ox, n, oo).vectorize(ox, vw, TailStrategy::GuardWithIf).parallel(oo);
  acc.compute_at(out, oo).vectorize(oi, vw).unroll(oi);
  acc.update().reorder(oi, n, r, blk).vectorize(oi, vw).unroll(oi);
  return {Pipeline(out), {x, w, b}};
}

KnobSpace dense_knob_space() {
  return {"dense", "fp32 fully connected layer",
          {{"vec", "lanes per vector of outputs", {8, 16, 32}, {}, true},
           {"o_vectors", "vectors of outputs per task (the weights' block)", {1, 2, 4, 8}, {}, true}}};
}

}  // namespace qnnc
