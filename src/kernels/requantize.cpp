#include "kernels/requantize.h"

#include <algorithm>
#include <cstdint>

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

namespace {
// round(p / 2^q), ties to the even neighbour: floor, then one more when the remainder is above
// half of 2^q, or exactly half and the floor is odd. p and q share p's integer type.
Expr shift_right_ties_to_even(Expr p, Expr q) {
  Expr one = cast(p.type(), 1), zero = cast(p.type(), 0);
  Expr fl = p >> q, rem2 = (p - (fl << q)) * 2, unit = one << q;
  return fl + select(rem2 > unit || (rem2 == unit && (fl & 1) == 1), one, zero);
}
}  // namespace

Expr requantize_fixed_point(Expr x, Expr multiplier, Expr shift, const std::string &rounding) {
  Expr p = i64(x) * i64(multiplier), q = i64(shift);
  // Ties up: (p + 2^(shift-1)) >> shift on the exact 64-bit product, one add and one shift per
  // lane (|p| < 2^62, so the add cannot overflow; shift 0 adds 1 >> 1 = 0).
  Expr r = rounding == "tonearest" ? shift_right_ties_to_even(p, q) : (p + (i64(1) << (q - 1))) >> q;
  return saturating_cast(Int(32), r);
}

Expr requantize_fixed_point_narrow(Expr x, Expr multiplier, Expr shift, const std::string &rounding) {
  Expr p = x * multiplier;
  if (rounding != "tonearest") return rounding_shift_right(p, shift);
  return shift_right_ties_to_even(p, shift);
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

namespace {
// The kernel's integer arithmetic (kernels/requantize.cpp), in plain C++. Halide's shifts by a
// negative amount shift the other way, so (1 << (q - 1)) is 0 for q = 0.
int64_t shift_right_rounded(int64_t p, int q, bool even) {
  if (q <= 0) return p << -q;
  int64_t fl = p >> q;
  if (!even) return (p + (int64_t(1) << (q - 1))) >> q;
  int64_t rem2 = (p - (fl << q)) * 2, unit = int64_t(1) << q;
  return fl + ((rem2 > unit || (rem2 == unit && (fl & 1))) ? 1 : 0);
}
}  // namespace

std::vector<int32_t> epilogue_thresholds(const ThresholdEpilogue &e, const std::vector<int64_t> &s_lo,
                                          const std::vector<int64_t> &s_hi, int R) {
  const size_t M = e.bias.size();
  const bool even = e.rounding == "tonearest";
  const int L = e.qmax;
  std::vector<int32_t> t(M * R * L);
  for (size_t m = 0; m < M; m++) {
    if (e.mult[m] <= 0) return {};
    // The main term over the whole range must stay inside int32 (no saturation): then the
    // level is non-decreasing in s and a binary search finds each threshold.
    auto main = [&](int64_t s) { return shift_right_rounded((e.bias[m] + s) * e.mult[m], e.shift[m], even); };
    const int64_t a = main(s_lo[m]), b = main(s_hi[m]);
    if (a <= INT32_MIN || b >= INT32_MAX || s_hi[m] + 1 > INT32_MAX || s_lo[m] < INT32_MIN) return {};
    for (int r = 0; r < R; r++) {
      const int64_t res = shift_right_rounded((int64_t)(r - e.res_zp) * e.res_mult, e.res_shift, even);  // 0 without one
      auto level = [&](int64_t s) { return std::clamp<int64_t>(main(s) + res + e.out_zp, e.lo, e.hi); };
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
