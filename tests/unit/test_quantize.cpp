// Quantization support: the fixed-point multiplier and the integer rounding function the
// kernels share, precision parsing, and end-to-end accuracy of a quantized built-in ResNet-18
// against its fp32 twin (compare_modules) at 8, 4, 2 and 1 bits.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>

#include "codegen/compile.h"
#include "expect_error.h"
#include "frontend/builtin_models.h"
#include "qreference.h"
#include "reference.h"
#include "quantize/calibrate.h"
#include "quantize/qconfig.h"
#include "kernels/requantize.h"
#include "quantize/report.h"

namespace {

using qref::Rng;

// ---------------------------------------------------------------------------------------------
// to_fixed_point / rounding_mul_shift_right

void expect_fixed_point(double real) {
  qnnc::FixedPoint fp = qnnc::to_fixed_point(real);
  ASSERT_GE(fp.multiplier, 1 << 30) << real;   // a normalized 31-bit mantissa
  ASSERT_LE(fp.multiplier, INT32_MAX) << real;
  ASSERT_GE(fp.shift, 0) << real;
  ASSERT_LE(fp.shift, 62) << real;
  double approx = fp.multiplier / std::ldexp(1.0, fp.shift);
  EXPECT_LT(std::fabs(approx - real) / real, 1e-9) << real << " -> " << fp.multiplier << " / 2^" << fp.shift;
}

TEST(QuantFixedPoint, NormalizedMantissaAndSmallRelativeError) {
  Rng rng(1);
  for (int i = 0; i < 20000; i++) {
    double real = std::exp2(-31.0 + 31.0 * rng.uniform());  // log-uniform over [2^-31, 1)
    expect_fixed_point(real);
  }
  // Powers of two, values just below them (the mantissa rounds up to 2^31 and renormalizes),
  // and the extremes of the representable range.
  for (int e = -31; e <= 30; e++) {
    expect_fixed_point(std::ldexp(1.0, e));
    expect_fixed_point(std::ldexp(1.0, e) * (1 - 1e-12));
    expect_fixed_point(std::ldexp(1.0, e) * (1 + 1e-12));
  }
  expect_fixed_point(2147483647.0);  // the largest representable: 31-bit mantissa, shift 0
  qnnc::FixedPoint top = qnnc::to_fixed_point(2147483647.0);
  EXPECT_EQ(top.multiplier, INT32_MAX);
  EXPECT_EQ(top.shift, 0);
  qnnc::FixedPoint one = qnnc::to_fixed_point(1.0);
  EXPECT_EQ(one.multiplier, 1 << 30);
  EXPECT_EQ(one.shift, 30);
  qnnc::FixedPoint below = qnnc::to_fixed_point(std::nextafter(1.0, 0.0));  // rounds to 2^31 -> 2^30
  EXPECT_EQ(below.multiplier, 1 << 30);
  EXPECT_EQ(below.shift, 30);
}

TEST(QuantFixedPoint, NarrowMantissaForResiduals) {
  Rng rng(3);
  for (int i = 0; i < 20000; i++) {
    double real = std::exp2(-8.0 + 12.0 * rng.uniform());  // residual rescales: 2^-8 .. 2^4
    qnnc::FixedPoint fp = qnnc::to_fixed_point(real, qnnc::kResidualMultiplierBits);
    ASSERT_GE(fp.multiplier, 1 << 21) << real;
    ASSERT_LT(fp.multiplier, 1 << 22) << real;
    ASSERT_GE(fp.shift, 0) << real;
    EXPECT_LT(std::fabs(fp.multiplier / std::ldexp(1.0, fp.shift) - real) / real, std::ldexp(1.0, -22)) << real;
    // A difference of two u8 levels times the mantissa fits in int32.
    EXPECT_LT(255.0 * fp.multiplier, 2147483648.0);
  }
  EXPECT_THROW(qnnc::to_fixed_point(std::ldexp(1.0, 22), 22), qnnc::Error);
}

TEST(QuantFixedPoint, DegenerateMultipliers) {
  // Zero, negative, NaN, inf and values below 2^-32 contribute nothing (multiplier 0).
  for (double r : {0.0, -0.5, std::nan(""), std::numeric_limits<double>::infinity(), 1e-30})
    EXPECT_EQ(qnnc::to_fixed_point(r).multiplier, 0) << r;
  // A multiplier that needs a left shift is rejected.
  EXPECT_THROW(qnnc::to_fixed_point(std::ldexp(1.0, 31)), qnnc::Error);
  // (also just below 2^31, where the mantissa rounds up to 2^31)
  EXPECT_THROW(qnnc::to_fixed_point(std::nextafter(std::ldexp(1.0, 31), 0.0)), qnnc::Error);
  EXPECT_THROW(qnnc::to_fixed_point(1e12), qnnc::Error);
}

TEST(QuantFixedPoint, RoundingMulShiftRightMatches128BitFormula) {
  Rng rng(2);
  for (int i = 0; i < 200000; i++) {
    int32_t x, m;
    int q = (int)rng.integer(0, 62);
    switch (i % 3) {
      case 0:  // accumulators and multipliers as the kernels see them
        x = (int32_t)rng.integer(-(1 << 24), 1 << 24);
        m = (int32_t)rng.integer(1ll << 30, (1ll << 31) - 1);
        break;
      case 1:  // anything (saturation at both ends)
        x = (int32_t)(uint32_t)rng.next();
        m = (int32_t)(uint32_t)rng.next();
        break;
      default:  // small values: ties are frequent
        x = (int32_t)rng.integer(-64, 64);
        m = (int32_t)rng.integer(-64, 64);
        q = (int)rng.integer(0, 8);
    }
    ASSERT_EQ(qnnc::rounding_mul_shift_right(x, m, q), qref::rmsr(x, m, q)) << x << " * " << m << " >> " << q;
  }
  // Ties round up (towards +infinity), not away from zero, and not to even.
  EXPECT_EQ(qnnc::rounding_mul_shift_right(3, 1 << 30, 31), 2);    // 1.5 -> 2
  EXPECT_EQ(qnnc::rounding_mul_shift_right(-3, 1 << 30, 31), -1);  // -1.5 -> -1
  EXPECT_EQ(qnnc::rounding_mul_shift_right(-5, 1 << 30, 31), -2);  // -2.5 -> -2
  EXPECT_EQ(qnnc::rounding_mul_shift_right(5, 1 << 30, 31), 3);    // 2.5 -> 3
  EXPECT_EQ(qnnc::rounding_mul_shift_right(-7, 1, 0), -7);         // shift 0: the product
  EXPECT_EQ(qnnc::rounding_mul_shift_right(INT32_MAX, INT32_MAX, 0), INT32_MAX);
  EXPECT_EQ(qnnc::rounding_mul_shift_right(INT32_MIN, INT32_MAX, 0), INT32_MIN);
  EXPECT_EQ(qnnc::rounding_mul_shift_right(INT32_MIN, INT32_MIN, 31), INT32_MAX);  // 2^31 saturates
  EXPECT_EQ(qnnc::rounding_mul_shift_right(INT32_MIN, INT32_MIN, 32), 1 << 30);
}

// The kernels' requantization (float multiply, kernels/requantize.h) against its definition
// in the tests' reference: random accumulators and multipliers, both tie rules, exact ties, the
// clamp at +-2^22; and 24-bit multipliers are exact floats.
TEST(QuantFixedPoint, FloatRequantizationMatchesItsDefinition) {
  Rng rng(4);
  for (int i = 0; i < 200000; i++) {
    int64_t x = i % 2 ? rng.integer(-(1 << 24), 1 << 24) : (int64_t)(int32_t)(uint32_t)rng.next();
    int32_t m = (int32_t)rng.integer(1ll << 23, (1ll << 31) - 1);
    int32_t q = (int32_t)rng.integer(20, 62);
    for (bool even : {false, true})
      ASSERT_EQ(qnnc::requantize_scaled_value(x, m, q, even ? "tonearest" : "upward"),
                qref::requantize_value(x, m, q, even))
          << x << " * " << m << " / 2^" << q;
  }
  // Multiplier 1/4 (2^22 / 2^24): x = 2, 6, -2, -6 are ties.
  const int32_t m = 1 << 22, q = 24;
  EXPECT_EQ(qnnc::requantize_scaled_value(2, m, q, "tonearest"), 0);  // 0.5 -> 0
  EXPECT_EQ(qnnc::requantize_scaled_value(6, m, q, "tonearest"), 2);  // 1.5 -> 2
  EXPECT_EQ(qnnc::requantize_scaled_value(-2, m, q, "tonearest"), 0);
  EXPECT_EQ(qnnc::requantize_scaled_value(-6, m, q, "tonearest"), -2);
  EXPECT_EQ(qnnc::requantize_scaled_value(2, m, q, "upward"), 1);   // 0.5 -> 1
  EXPECT_EQ(qnnc::requantize_scaled_value(-2, m, q, "upward"), 0);  // -0.5 -> 0
  EXPECT_EQ(qnnc::requantize_scaled_value(-6, m, q, "upward"), -1);
  EXPECT_EQ(qnnc::requantize_scaled_value(INT32_MAX, 1 << 23, 23, "upward"), 1 << 22);  // clamped
  EXPECT_EQ(qnnc::requantize_scaled_value(INT32_MIN, 1 << 23, 23, "upward"), -(1 << 22));
  for (int i = 0; i < 20000; i++) {
    double real = std::exp2(-30.0 + 30.0 * rng.uniform());
    qnnc::FixedPoint fp = qnnc::to_fixed_point(real, qnnc::kScaleMantissaBits);
    ASSERT_LT(fp.multiplier, 1 << 24) << real;
    ASSERT_EQ((double)(float)fp.multiplier, (double)fp.multiplier) << real;
  }
}

TEST(QuantFixedPoint, RoundTripOfRealMultipliers) {
  // x * real for |x| < 2^24 through the fixed point lands on round(x * real) or next to it
  // (only where x * real is within the mantissa's error of a .5).
  Rng rng(3);
  for (int i = 0; i < 20000; i++) {
    double real = std::exp2(-20.0 + 20.0 * rng.uniform());
    int32_t x = (int32_t)rng.integer(-(1 << 24), 1 << 24);
    qnnc::FixedPoint fp = qnnc::to_fixed_point(real);
    int32_t got = qnnc::rounding_mul_shift_right(x, fp.multiplier, fp.shift);
    double exact = x * real;
    EXPECT_LE(std::fabs(got - exact), 0.5 + std::fabs(exact) * 1e-9 + 1e-12) << x << " * " << real;
  }
}

// ---------------------------------------------------------------------------------------------
// QConfig::parse_precision

TEST(QuantConfig, ParsePrecision) {
  struct Ok {
    const char *p;
    int w, a;
    const char *canonical;
  };
  for (Ok o : {Ok{"int8", 8, 8, "int8"}, Ok{"int4", 4, 4, "int4"}, Ok{"int2", 2, 2, "int2"}, Ok{"int1", 1, 1, "int1"},
               Ok{"w4a8", 4, 8, "w4a8"}, Ok{"w1a2", 1, 2, "w1a2"}, Ok{"w8a8", 8, 8, "int8"}, Ok{"w8a4", 8, 4, "w8a4"},
               Ok{"w7a8", 7, 8, "w7a8"}}) {
    qnnc::QConfig q = qnnc::QConfig::parse_precision(o.p);
    EXPECT_EQ(q.weight_bits, o.w) << o.p;
    EXPECT_EQ(q.activation_bits, o.a) << o.p;
    EXPECT_EQ(q.precision(), o.canonical) << o.p;
    EXPECT_NO_THROW(q.validate()) << o.p;
  }
  for (const char *bad : {"int3", "fp16", "w8", "int", "int08", "int16", "w3a8", "w4a", "wa8", "w4a8x", "a8w4",
                          "INT8", "", "fp32", "w4b8", "int8 ", "w-4a8", "int7", "w8a7"})
    EXPECT_THROW(qnnc::QConfig::parse_precision(bad), qnnc::Error) << "'" << bad << "'";
}

TEST(QuantConfig, ValidateRejectsBadSettings) {
  qnnc::QConfig q;
  q.calibrate_mode = "entropy";
  EXPECT_THROW(q.validate(), qnnc::Error);
  q = {};
  q.weight_scale = "max";
  EXPECT_THROW(q.validate(), qnnc::Error);
  q = {};
  q.percentile = 0;
  EXPECT_THROW(q.validate(), qnnc::Error);
  q = {};
  q.weight_bits = 3;
  EXPECT_THROW(q.validate(), qnnc::Error);
  q = {};
  q.calibration_samples = 0;
  EXPECT_THROW(q.validate(), qnnc::Error);
}

// ---------------------------------------------------------------------------------------------
// End to end: built-in ResNet-18 at 1x3x64x64, quantized vs its fp32 twin.

class QuantResnet18 : public ::testing::Test {
 protected:
  static constexpr int kInputs = 8;
  static constexpr uint64_t kSeed = 77;
  static std::unique_ptr<qnnc::Graph> graph;
  static std::unique_ptr<qnnc::Module> fp32;

  static void SetUpTestSuite() {
    graph = std::make_unique<qnnc::Graph>(qnnc::builtin_model("resnet18", {1, 3, 64, 64}));
    fp32 = std::make_unique<qnnc::Module>(qnnc::compile(*graph));
  }
  static void TearDownTestSuite() {
    fp32.reset();
    graph.reset();
    reports.clear();
  }
  // Compiles the quantized model (once per precision) and compares it with the fp32 twin.
  static const qnnc::AccuracyReport &report(const std::string &precision) {
    auto it = reports.find(precision);
    if (it != reports.end()) return it->second;
    qnnc::CompileOptions opt;
    opt.quantize = true;
    opt.qconfig = qnnc::QConfig::parse_precision(precision);
    std::string dir = (std::filesystem::temp_directory_path() /
                       ("qnnc-test-quant-" + precision + "-" + std::to_string(::getpid()))).string();
    summaries[precision] = qnnc::compile_to_dir(*graph, opt, dir).quant;
    qnnc::Module q = qnnc::Module::load(dir);
    std::filesystem::remove_all(dir);
    qnnc::AccuracyReport r = qnnc::compare_modules(*fp32, q, kInputs, kSeed);
    std::printf("%s %s", precision.c_str(), r.format().c_str());
    return reports[precision] = r;
  }
  static std::map<std::string, qnnc::AccuracyReport> reports;
  static std::map<std::string, qnnc::QuantizeSummary> summaries;
};
std::map<std::string, qnnc::AccuracyReport> QuantResnet18::reports;
std::map<std::string, qnnc::QuantizeSummary> QuantResnet18::summaries;
std::unique_ptr<qnnc::Graph> QuantResnet18::graph;
std::unique_ptr<qnnc::Module> QuantResnet18::fp32;

void expect_finite_layers(const qnnc::AccuracyReport &r) {
  ASSERT_FALSE(r.layers.empty());
  for (const auto &l : r.layers) EXPECT_FALSE(std::isnan(l.sqnr_db)) << l.name;
}

TEST_F(QuantResnet18, Int8CloseToFp32) {
  const qnnc::AccuracyReport &r = report("int8");
  const qnnc::QuantizeSummary &qs = summaries["int8"];
  // Default config: the first conv (stem) and the dense layer stay fp32, the other 19 convs
  // (16 in the blocks + 3 downsamples) run in integers.
  EXPECT_EQ(qs.quantized, 19);
  EXPECT_GE(qs.kept_fp32, 2);
  EXPECT_EQ(r.inputs, kInputs);
  // Measured (8 inputs, seed 77, AVX-512 VNNI host): logits SQNR 22.9 dB, cosine 0.9974, top-1
  // agreement 100%; centered SQNR 16.4 dB, centered cosine 0.988, centered top-1 87.5%;
  // per-layer SQNR from 34.0 dB (layer1.0.relu1) down to 19.1 dB (layer4.1.relu1).
  // Bounds leave about 6 dB of headroom.
  EXPECT_GT(r.sqnr_db, 17.0);
  EXPECT_GT(r.cosine, 0.99);
  EXPECT_GE(r.top1, 0.75);
  EXPECT_GT(r.centered_sqnr_db, 10.0);
  EXPECT_GT(r.centered_cosine, 0.95);
  EXPECT_GE(r.centered_top1, 0.5);
  EXPECT_EQ(r.layers.size(), 19u);  // one integer activation per quantized conv
  if (!r.layers.empty()) EXPECT_GT(r.layers.front().sqnr_db, 28.0);
  for (const auto &l : r.layers) EXPECT_GT(l.sqnr_db, 13.0) << l.name;
  expect_finite_layers(r);
  for (const auto &l : r.layers) EXPECT_TRUE(std::isfinite(l.sqnr_db)) << l.name;
}

// Non-default configurations: the stem quantized too (its u8 input is calibrated on the model
// input itself), the dense layer quantized too (a 1x1 integer convolution), and ties rounded to
// even. Each must stay about as close to fp32 as the default int8.
TEST_F(QuantResnet18, StemDenseAndRoundingVariants) {
  const qnnc::AccuracyReport &base = report("int8");
  struct Variant {
    const char *name;
    bool skip_first, skip_dense;
    const char *rounding;
  };
  for (Variant v : {Variant{"stem int8", false, true, "upward"}, Variant{"dense int8", true, false, "upward"},
                    Variant{"tonearest", true, true, "tonearest"}}) {
    SCOPED_TRACE(v.name);
    qnnc::CompileOptions opt;
    opt.quantize = true;
    opt.qconfig = qnnc::QConfig::parse_precision("int8");
    opt.qconfig.skip_first_conv = v.skip_first;
    opt.qconfig.skip_dense = v.skip_dense;
    opt.qconfig.rounding = v.rounding;
    std::string dir = (std::filesystem::temp_directory_path() /
                       ("qnnc-test-quant-variant-" + std::to_string(::getpid()))).string();
    qnnc::QuantizeSummary qs = qnnc::compile_to_dir(*graph, opt, dir).quant;
    qnnc::Module q = qnnc::Module::load(dir);
    std::filesystem::remove_all(dir);
    EXPECT_EQ(qs.quantized, 19 + !v.skip_first + !v.skip_dense);
    qnnc::AccuracyReport r = qnnc::compare_modules(*fp32, q, kInputs, kSeed);
    std::printf("%s: %s", v.name, r.format().c_str());
    // Measured (8 inputs, seed 77): default int8 centered SQNR 16.3 dB, cosine 0.988; with the
    // stem quantized 14.9 dB / 0.984; with the dense layer quantized 16.2 dB / 0.988; rounding
    // to even 16.35 dB / 0.988. Bounds: within 4 dB.
    EXPECT_GT(r.centered_cosine, 0.95);
    EXPECT_GT(r.centered_sqnr_db, base.centered_sqnr_db - 4.0);
  }
}

// Low-bit modes run the stem and the dense layer at 8 bits by default (--lowbit-edges int8): 8-bit
// weights and input, while the stem's output takes the model's activation bits (it feeds the
// low-bit layers) and the dense layer's output (the logits) 8 bits. "fp32" keeps them fp32 as
// at int8; "same" quantizes them at the model's bits.
TEST_F(QuantResnet18, LowBitModesRunStemAndDenseAtInt8) {
  auto node = [](const qnnc::Graph &g, const std::string &name) -> const qnnc::Node * {
    for (const auto &n : g.nodes)
      if (n.name == name) return &n;
    return nullptr;
  };
  for (const char *edges : {"int8", "fp32", "same"}) {
    SCOPED_TRACE(edges);
    qnnc::CompileOptions opt;
    opt.quantize = true;
    opt.qconfig = qnnc::QConfig::parse_precision("w2a2");
    opt.qconfig.lowbit_edges = edges;
    qnnc::QuantizeSummary qs;
    qnnc::Graph g = qnnc::prepare_for_codegen(*graph, opt, &qs);
    const qnnc::Node *stem = node(g, "conv1"), *fc = node(g, "fc");
    ASSERT_TRUE(stem && fc);
    if (std::string(edges) == "fp32") {
      EXPECT_EQ(stem->op, "conv2d");
      EXPECT_EQ(qs.quantized, 19);
      EXPECT_TRUE(qs.int8_reasons.empty());
      continue;
    }
    const int bits = std::string(edges) == "int8" ? 8 : 2;
    EXPECT_EQ(qs.quantized, 21);
    EXPECT_EQ(qs.kept_fp32, 0);
    EXPECT_EQ(qs.int8_reasons.size(), bits == 8 ? 2u : 0u);
    ASSERT_EQ(stem->op, "conv2d_q");
    EXPECT_EQ(stem->i("weight_bits", -1), bits);
    EXPECT_EQ(stem->i("activation_bits", -1), bits);
    EXPECT_EQ(stem->i("qmax", -1), 3);  // its output feeds 2-bit layers
    ASSERT_EQ(fc->op, "conv2d_q");
    EXPECT_EQ(fc->i("weight_bits", -1), bits);
    EXPECT_EQ(fc->i("activation_bits", -1), bits);
    EXPECT_EQ(fc->i("qmax", -1), 255);  // 8-bit logits
    // The 8-bit input quantize step feeds the stem with 255 levels.
    if (bits == 8) {
      int quant8 = 0;
      for (const auto &n : g.nodes) quant8 += n.op == "quantize" && n.i("qmax", -1) == 255;
      EXPECT_GE(quant8, 2);  // the image and the pooled features
    }
  }
  // And the module runs: finite logits.
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("w2a2");
  qnnc::Module q = qnnc::compile(*graph, opt);
  auto y = q.run({qnnc::random_tensor({1, 3, 64, 64}, 5)});
  for (float v : y.at(0).data) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(QuantResnet18, Int4RunsAndIsWorseThanInt8) {
  const qnnc::AccuracyReport &r8 = report("int8");
  const qnnc::AccuracyReport &r4 = report("int4");
  // Measured: int4 logits SQNR 2.1 dB, cosine 0.84, top-1 50%; centered SQNR -3.0 dB, centered
  // cosine 0.29 (int8: 22.9 / 16.4 dB). Minmax-calibrated 4-bit is far worse than 8-bit but
  // still correlated with fp32.
  EXPECT_TRUE(std::isfinite(r4.sqnr_db));
  EXPECT_TRUE(std::isfinite(r4.centered_sqnr_db));
  EXPECT_LT(r4.centered_sqnr_db, r8.centered_sqnr_db - 6.0);
  EXPECT_LT(r4.sqnr_db, r8.sqnr_db - 6.0);
  EXPECT_GT(r4.cosine, 0.6);
  expect_finite_layers(r4);
}

TEST_F(QuantResnet18, Int2AndInt1RunWithoutNaN) {
  for (const char *p : {"int2", "int1", "w4a8"}) {
    qnnc::CompileOptions opt;
    opt.quantize = true;
    opt.qconfig = qnnc::QConfig::parse_precision(p);
    qnnc::Module q = qnnc::compile(*graph, opt);
    for (uint64_t s = 0; s < 2; s++) {
      auto y = q.run({qnnc::random_tensor({1, 3, 64, 64}, 100 + s)});
      ASSERT_EQ(y.size(), 1u);
      ASSERT_EQ(y[0].shape, (std::vector<int64_t>{1, 1000}));
      for (float v : y[0].data) ASSERT_TRUE(std::isfinite(v)) << p;
    }
    qnnc::AccuracyReport r = qnnc::compare_modules(*fp32, q, 4, kSeed);
    std::printf("%s %s", p, r.format().c_str());
    EXPECT_FALSE(std::isnan(r.sqnr_db)) << p;
    EXPECT_FALSE(std::isnan(r.centered_cosine)) << p;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Calibration thresholds on hand-built histograms: a ReLU-like activation (half exact zeros,
// half |N(0, 1)|) with 0.01% outliers at 20 sigma.
namespace {
qnnc::ActivationStats relu_like_stats() {
  qnnc::ActivationStats s;
  s.min = 0;
  s.max = 20;
  const int bins = 2048;
  s.hist.assign(bins, 0.0);
  const double n = 1e6;
  for (int b = 0; b < bins; b++) {
    double lo = 20.0 * b / bins, hi = 20.0 * (b + 1) / bins;  // mass of |N(0,1)| in the bin
    s.hist[b] = n * (std::erf(hi / std::sqrt(2.0)) - std::erf(lo / std::sqrt(2.0)));
  }
  s.hist[bins - 1] += n * 1e-4;  // the outliers
  s.zeros = n;
  return s;
}
}  // namespace

TEST(QuantCalibration, ThresholdsOfAReluLikeActivation) {
  qnnc::ActivationStats s = relu_like_stats();
  qnnc::QConfig cfg;
  cfg.calibrate_mode = "minmax";
  EXPECT_FLOAT_EQ(qnnc::choose_threshold(s, cfg, 255), 20.f);
  // 99.99% of all |x| (zeros included) lie below about 3.9 sigma.
  cfg.calibrate_mode = "percentile";
  cfg.percentile = 99.99f;
  float tp = qnnc::choose_threshold(s, cfg, 255);
  EXPECT_GT(tp, 3.5f);
  EXPECT_LT(tp, 4.5f);
  // KL: clips the rare outliers but keeps the bulk of the half-normal (a few sigma), and is not
  // dragged to the smallest candidate by the spike of zeros.
  cfg.calibrate_mode = "kl_divergence";
  float tk = qnnc::choose_threshold(s, cfg, 255);
  std::printf("thresholds: percentile %.3f, kl %.3f (sigma 1, outliers at 20)\n", tp, tk);
  EXPECT_GT(tk, 2.5f);
  EXPECT_LT(tk, 10.f);
  cfg.calibrate_mode = "global_scale";
  cfg.global_scale = 8.f;
  EXPECT_FLOAT_EQ(qnnc::choose_threshold(s, cfg, 255), 8.f);
}

// At 8 bits a signed activation's levels span its calibrated range (asymmetric zero point):
// SiLU's output, about [-0.28, max], gets a zero point near the bottom, not 128. Below 8 bits
// the zero point stays in the middle.
TEST(QuantCalibration, SignedRangesAreAsymmetricAtEightBits) {
  ref::Rng rng(21);
  ref::GraphBuilder gb;
  int x = gb.input("x", {1, 3, 12, 12});
  int y = gb.conv(x, gb.constant("w1", {8, 3, 3, 3}, ref::randn(8 * 27, rng, 0.5f)),
                  gb.constant("b1", {8}, ref::randn(8, rng)), {1, 1}, {1, 1, 1, 1}, {1, 1});
  int s = gb.node("Mul", {y, gb.node("Sigmoid", {y})});
  gb.output(gb.conv(s, gb.constant("w2", {5, 8, 1, 1}, ref::randn(40, rng, 0.5f)), gb.constant("b2", {5}, ref::randn(5, rng)),
                    {1, 1}, {0, 0, 0, 0}, {1, 1}));
  qnnc::Graph g = gb.finish();
  const std::string silu_name = g.values[s].name;
  for (const char *precision : {"int8", "int4"}) {
    qnnc::CompileOptions opt;
    opt.quantize = true;
    opt.qconfig = qnnc::QConfig::parse_precision(precision);
    opt.qconfig.skip_first_conv = false;
    qnnc::Graph fused = g;
    qnnc::run_graph_passes(fused, opt.passes);
    auto stats = qnnc::collect_stats(fused, qnnc::calibration_inputs(fused, opt.qconfig), nullptr, nullptr);
    qnnc::Graph q = qnnc::prepare_for_codegen(g, opt);
    const bool int8 = std::string(precision) == "int8";
    const int qmax = (1 << opt.qconfig.activation_bits) - 1;
    int signed_values = 0;
    bool silu_seen = false;
    for (const auto &v : q.values) {
      auto it = stats.find(v.name);
      if (v.type.dtype != qnnc::DType::u8 || it == stats.end() || it->second.min >= 0) continue;
      signed_values++;
      const double lo = -v.zero_point * (double)v.scale, hi = (qmax - v.zero_point) * (double)v.scale;
      if (int8) {
        // Within a level of the calibrated range at both ends.
        EXPECT_NEAR(lo, it->second.min, v.scale) << v.name;
        EXPECT_NEAR(hi, it->second.max, v.scale) << v.name;
      } else {
        EXPECT_EQ(v.zero_point, (qmax + 1) / 2) << v.name;
      }
      if (int8 && v.name == silu_name) {
        EXPECT_LT(v.zero_point, 40) << "SiLU output " << v.name;
        silu_seen = true;
      }
    }
    EXPECT_GE(signed_values, int8 ? 2 : 1) << precision;
    if (int8) EXPECT_TRUE(silu_seen);
  }
}

// Forced on 8-bit weights, 16-bit pair sums could saturate: lowering refuses, naming the layer
// and the remedy, instead of computing something else.
TEST(QuantW7, PairSumsInSixteenBitsRefuseWiderWeights) {
  ref::GraphBuilder gb;
  ref::Rng rng(5);
  gb.output(gb.conv(gb.input("x", {1, 8, 6, 6}), gb.constant("w", {16, 8, 3, 3}, ref::randn(16 * 8 * 9, rng)),
                    gb.constant("b", {16}, ref::randn(16, rng)), {1, 1}, {1, 1, 1, 1}, {1, 1}));
  const qnnc::Graph g = gb.finish();
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  opt.qconfig.skip_first_conv = false;
  opt.knobs["conv2d_q"]["madd_u8"] = 1;
  opt.knobs["conv2d_q"]["group"] = 4;
  opt.target = "x86-avx2";
  const std::string msg = qnnc_error([&] { qnnc::compile(g, opt); });
  EXPECT_CONTAINS(msg, "madd_u8");
  EXPECT_CONTAINS(msg, "w7a8");
  opt.qconfig = qnnc::QConfig::parse_precision("w7a8");
  opt.qconfig.skip_first_conv = false;
  EXPECT_NO_THROW(qnnc::compile(g, opt));
}
