#include "kernels/requantize.h"

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

Expr requantize_fixed_point(Expr x, Expr multiplier, Expr shift, const std::string &rounding) {
  if (rounding != "tonearest") {
    // (p + 2^(shift-1)) >> shift on the exact 64-bit product: one add and one shift per lane
    // (|p| < 2^62, so the add cannot overflow; shift 0 adds 1 >> 1 = 0).
    Expr p = i64(x) * i64(multiplier), q = i64(shift);
    return saturating_cast(Int(32), (p + (i64(1) << (q - 1))) >> q);
  }
  // Ties to even: floor the exact 64-bit product, then add one when the remainder is above half
  // of 2^shift, or exactly half and the floor is odd.
  Expr p = i64(x) * i64(multiplier), q = i64(shift);
  Expr fl = p >> q;
  Expr rem2 = (p - (fl << q)) * 2, unit = i64(1) << q;
  Expr up = rem2 > unit || (rem2 == unit && (fl & 1) == 1);
  return saturating_cast(Int(32), fl + select(up, i64(1), i64(0)));
}

Expr requantize_fixed_point_narrow(Expr x, Expr multiplier, Expr shift, const std::string &rounding) {
  Expr p = x * multiplier;
  if (rounding != "tonearest") return rounding_shift_right(p, shift);
  Expr fl = p >> shift, rem2 = (p - (fl << shift)) * 2, unit = 1 << shift;
  return fl + select(rem2 > unit || (rem2 == unit && (fl & 1) == 1), 1, 0);
}

Expr round_float(Expr f, const std::string &rounding) {
  if (rounding == "tonearest") return strict_float(round(f));  // Halide's round(): ties to even
  Expr fl = floor(f);
  return strict_float(select(f - fl >= 0.5f, fl + 1.0f, fl));
}

}  // namespace qnnc
