#include "kernels/requantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

Expr requantize_scaled(Expr x, Expr multiplier, Expr shift, const std::string &rounding, Expr lo, Expr hi, Expr term) {
  Expr pow2 = reinterpret(Float(32), (127 - shift) << 23);  // 2^-shift
  Expr f = f32(x) * (f32(multiplier) * pow2);
  // The sum stays two rounded products and one rounded add: no fused multiply-add, on any target.
  if (term.defined()) f = strict_float(f + term);
  f = clamp(f, lo, hi);
  // 1.5 * 2^23 + f (|f| <= 2^22) lies in [2^23, 2^24], where floats are the integers: the
  // sum is f rounded to nearest, ties to even, and its bits minus the constant's are that
  // integer. No rounding instruction, no float-to-int conversion.
  Expr r = reinterpret(Int(32), strict_float(f + 12582912.f)) - 0x4B400000;
  if (rounding == "tonearest") return r;
  // Ties up: where f is exactly half-way and went down to the even neighbour, add one.
  return r + select(strict_float(f - f32(r)) == 0.5f, 1, 0);
}

Expr requantized_level(Expr acc, Expr multiplier, Expr shift, Expr res, const ImageParam &qp,
                       const std::string &rounding) {
  Expr term;
  if (res.defined()) {
    Expr res_scale = strict_float(f32(qp(3)) * reinterpret(Float(32), (127 - qp(4)) << 23));  // res_mult 2^-res_shift
    term = strict_float(f32(i32(res) - qp(2)) * res_scale);
  }
  return requantize_scaled(acc, multiplier, shift, rounding, f32(qp(5) - qp(1)), f32(qp(6) - qp(1)), term) + qp(1);
}

int32_t requantize_scaled_value(int64_t x, int32_t multiplier, int32_t shift, const std::string &rounding, float term,
                                float lo, float hi) {
  const float m = (float)multiplier * std::ldexp(1.0f, -shift);
  volatile float p = (float)x * m;  // rounded on its own: never fused with the add below
  const float f = std::clamp(p + term, lo, hi);
  float r = std::nearbyint(f);  // the default rounding mode: ties to even
  if (rounding != "tonearest" && f - r == 0.5f) r += 1;
  return (int32_t)r;
}

Expr round_float(Expr f, const std::string &rounding) {
  if (rounding == "tonearest") return strict_float(round(f));  // Halide's round(): ties to even
  Expr fl = floor(f);
  return strict_float(select(f - fl >= 0.5f, fl + 1.0f, fl));
}

Expr quantize_level(Expr x, float scale, int zero_point, int qmax, const std::string &rounding) {
  return u8(clamp(i32(round_float(x * (1.0f / scale), rounding)) + zero_point, 0, qmax));
}

Expr dequantize_level(Expr q, int zero_point, float scale) {
  return f32(i32(q) - zero_point) * scale;
}

Expr threshold_level(Expr total, Expr res, const ImageParam &thr, Expr co, int R, int levels) {
  Expr level = 0;
  for (int l = 0; l < levels; l++) {
    Expr t = thr(co, 0, l);
    for (int q = 1; q < R; q++) t = select(res == q, thr(co, q, l), t);
    level += select(total >= t, 1, 0);
  }
  return level;
}

float residual_term_value(int32_t diff, int32_t res_mult, int32_t res_shift) {
  volatile float scale = (float)res_mult * std::ldexp(1.0f, -res_shift);
  return (float)diff * scale;
}

std::vector<int32_t> epilogue_thresholds(const ThresholdEpilogue &e, const std::vector<int64_t> &s_lo,
                                          const std::vector<int64_t> &s_hi, int R) {
  const size_t M = e.bias.size();
  const int L = e.qmax;
  std::vector<int32_t> t(M * R * L);
  for (size_t m = 0; m < M; m++) {
    if (e.mult[m] <= 0) return {};
    // The accumulator (bias + s) must stay inside int32 over the whole range: then the level is
    // non-decreasing in s and a binary search finds each threshold.
    if (e.bias[m] + s_lo[m] < INT32_MIN || e.bias[m] + s_hi[m] > INT32_MAX || s_hi[m] + 1 > INT32_MAX ||
        s_lo[m] < INT32_MIN)
      return {};
    for (int r = 0; r < R; r++) {
      const float term = e.res_mult ? residual_term_value(r - e.res_zp, e.res_mult, e.res_shift) : 0.f;  // 0 without one
      auto level = [&](int64_t s) {
        return (int64_t)requantize_scaled_value(e.bias[m] + s, e.mult[m], e.shift[m], e.rounding, term,
                                                (float)(e.lo - e.out_zp), (float)(e.hi - e.out_zp)) +
               e.out_zp;
      };
      for (int l = 1; l <= L; l++) {
        int64_t lo = s_lo[m], hi = s_hi[m] + 1;  // the answer is in [lo, hi]
        while (lo < hi) {
          int64_t mid = lo + (hi - lo) / 2;
          if (level(mid) >= l) hi = mid;
          else lo = mid + 1;
        }
        t[((size_t)(l - 1) * R + r) * M + m] = (int32_t)lo;
      }
    }
  }
  return t;
}

}  // namespace qnnc
