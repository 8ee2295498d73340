#include "kernels/requantize.h"

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

}  // namespace qnnc
