#include "quantize/qconfig.h"

#include <cmath>
#include <limits>

#include "ir/graph.h"

namespace qnnc {

namespace {
bool valid_bits(int b) { return b == 1 || b == 2 || b == 4 || b == 8; }
// Weights also take 7 bits ([-63, 63]): int8's layers and kernels, with pairs of u8 x i8
// products that fit 16 bits (x86 without VNNI sums them with vpmaddubsw).
bool valid_weight_bits(int b) { return valid_bits(b) || b == 7; }
}  // namespace

QConfig QConfig::parse_precision(const std::string &p) {
  QConfig q;
  auto bad = [&]() {
    return Error("unknown precision '" + p + "': use int8, int4, int2, int1 or wXaY with X in {1,2,4,7,8} and Y in {1,2,4,8} (e.g. w4a8; w7a8: int8 with 7-bit weights)");
  };
  if (p.size() > 3 && p.compare(0, 3, "int") == 0) {
    int b = std::atoi(p.c_str() + 3);
    if (!valid_bits(b) || std::to_string(b) != p.substr(3)) throw bad();
    q.weight_bits = q.activation_bits = b;
  } else if (p.size() >= 4 && p[0] == 'w' && p.find('a') != std::string::npos) {
    size_t a = p.find('a');
    std::string wb = p.substr(1, a - 1), ab = p.substr(a + 1);
    if (wb.empty() || ab.empty() || wb.find_first_not_of("0123456789") != std::string::npos ||
        ab.find_first_not_of("0123456789") != std::string::npos)
      throw bad();
    q.weight_bits = std::stoi(wb);
    q.activation_bits = std::stoi(ab);
    if (!valid_weight_bits(q.weight_bits) || !valid_bits(q.activation_bits)) throw bad();
  } else {
    throw bad();
  }
  return q;
}

std::string QConfig::precision() const {
  if (weight_bits == activation_bits) return "int" + std::to_string(weight_bits);
  return "w" + std::to_string(weight_bits) + "a" + std::to_string(activation_bits);
}

void QConfig::validate() const {
  if (!valid_weight_bits(weight_bits) || !valid_bits(activation_bits))
    throw Error("weight bits must be 1, 2, 4, 7 or 8, activation bits 1, 2, 4 or 8");
  if (calibrate_mode != "global_scale" && calibrate_mode != "minmax" && calibrate_mode != "percentile" &&
      calibrate_mode != "kl_divergence")
    throw Error("unknown calibration mode '" + calibrate_mode + "' (global_scale, minmax, percentile, kl_divergence)");
  if (weight_scale != "channel_max" && weight_scale != "power2" && weight_scale != "mse")
    throw Error("unknown weight scale '" + weight_scale + "' (channel_max, power2, mse)");
  if (rounding != "upward" && rounding != "tonearest")
    throw Error("unknown rounding '" + rounding + "' (upward, tonearest)");
  if (percentile <= 0 || percentile > 100) throw Error("--percentile must be in (0, 100]");
  if (calibration_samples < 1) throw Error("--calib-samples must be at least 1");
  if (lowbit_edges != "int8" && lowbit_edges != "fp32" && lowbit_edges != "same")
    throw Error("unknown --lowbit-edges '" + lowbit_edges + "' (int8, fp32, same)");
}

FixedPoint to_fixed_point(double real, int bits) {
  FixedPoint fp;
  if (bits < 2 || bits > 31) throw Error("fixed-point mantissa of " + std::to_string(bits) + " bits");
  if (!(real > 0) || !std::isfinite(real)) return fp;  // multiplier 0: contributes nothing
  int e = 0;
  double f = std::frexp(real, &e);  // real = f * 2^e, f in [0.5, 1)
  const int64_t one = int64_t(1) << bits;
  int64_t m = std::llround(f * (double)one);
  if (m == one) {
    m /= 2;
    e++;
  }
  int shift = bits - e;
  if (shift > 62) return fp;  // below the smallest representable multiplier
  if (shift < 0) throw Error("requantization multiplier too large (" + std::to_string(real) + ")");
  fp.multiplier = (int32_t)m;
  fp.shift = shift;
  return fp;
}

int32_t rounding_mul_shift_right(int32_t x, int32_t multiplier, int32_t shift) {
  __int128 p = (__int128)x * multiplier;
  if (shift > 0) p = (p + ((__int128)1 << (shift - 1))) >> shift;
  if (p > std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  if (p < std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  return (int32_t)p;
}

}  // namespace qnnc
