// Compile-time evaluation of ONNX operators (frontend/const_eval.h) and the importer's constant
// folding: every operator against a naive reference written here (multi-index loops, modular
// broadcasting, the ONNX spec's rules spelled out), on odd shapes with negative indices, empty
// results and the error cases; then whole ONNX models whose constant subgraphs qnnc folds
// (Swin's shifted-window attention mask and relative-position bias, shape arithmetic with Mod
// and empty shape vectors feeding a Pad), compiled and run against references.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <functional>
#include <string>

#include "expect_error.h"
#include "frontend/const_eval.h"
#include "frontend/onnx_loader.h"
#include "onnx/onnx.pb.h"
#include "reference.h"

namespace {

using qnnc::ConstTensor;
namespace ce = qnnc::const_eval;
using Dims = std::vector<int64_t>;

int64_t count_of(const Dims &d) {
  int64_t n = 1;
  for (int64_t e : d) n *= e;
  return n;
}

// Multi-index of element e of a row-major tensor of shape d.
Dims unravel(int64_t e, const Dims &d) {
  Dims i(d.size());
  for (size_t a = d.size(); a-- > 0;) {
    i[a] = e % d[a];
    e /= d[a];
  }
  return i;
}

// Row-major element of shape d at multi-index i, where the trailing axes of i are aligned with
// d and size-1 axes of d repeat (i[a] % d[a]): numpy broadcasting, computed independently of
// the product's stride arithmetic.
int64_t ravel_broadcast(const Dims &i, const Dims &d) {
  int64_t e = 0;
  for (size_t a = 0; a < d.size(); a++) e = e * d[a] + i[i.size() - d.size() + a] % d[a];
  return e;
}

ConstTensor iota_f(const Dims &d, float scale = 1.f, float offset = 0.f) {
  std::vector<float> v;
  for (int64_t e = 0; e < count_of(d); e++) v.push_back(offset + scale * (float)e);
  return ConstTensor::floats(d, v);
}

ConstTensor iota_i(const Dims &d, int64_t offset = 0) {
  std::vector<int64_t> v;
  for (int64_t e = 0; e < count_of(d); e++) v.push_back(offset + e);
  return ConstTensor::ints(d, v);
}

// ---------------------------------------------------------------------------------------------
// Elementwise operators

TEST(ConstEval, BinaryFloatBroadcasting) {
  struct Case {
    Dims a, b, out;
  };
  const Case cases[] = {
      {{3, 1, 5}, {4, 1}, {3, 4, 5}}, {{2, 3}, {}, {2, 3}}, {{1}, {7, 1, 1}, {7, 1, 1}}, {{5, 1, 3}, {5, 2, 1}, {5, 2, 3}}};
  ref::Rng rng(5);
  for (const auto &c : cases) {
    ConstTensor a = ConstTensor::floats(c.a, ref::randn(count_of(c.a), rng));
    ConstTensor b = ConstTensor::floats(c.b, ref::randn(count_of(c.b), rng));
    for (const std::string op : {"Add", "Sub", "Mul", "Div", "Pow", "Min", "Max"}) {
      SCOPED_TRACE(op + " " + ref::shape_str(c.a) + " " + ref::shape_str(c.b));
      ConstTensor y = ce::elementwise(op, {&a, &b});
      ASSERT_EQ(y.dims, c.out);
      ASSERT_TRUE(y.is_float());
      for (int64_t e = 0; e < count_of(c.out); e++) {
        Dims i = unravel(e, c.out);
        float x = a.f[ravel_broadcast(i, c.a)], z = b.f[ravel_broadcast(i, c.b)];
        float want = op == "Add" ? x + z : op == "Sub" ? x - z : op == "Mul" ? x * z : op == "Div" ? x / z
                     : op == "Pow" ? std::pow(x, z) : op == "Min" ? std::min(x, z) : std::max(x, z);
        if (std::isnan(want)) EXPECT_TRUE(std::isnan(y.f[e])) << e;
        else EXPECT_EQ(y.f[e], want) << e;
      }
    }
  }
}

TEST(ConstEval, IntegerArithmeticFollowsOnnx) {
  ConstTensor a = ConstTensor::ints({6}, {7, -7, 7, -7, 0, 9});
  ConstTensor b = ConstTensor::ints({6}, {3, 3, -3, -3, 5, 1});
  // Div truncates toward zero; Mod (fmod 0) takes the divisor's sign, fmod 1 the dividend's.
  EXPECT_EQ(ce::elementwise("Div", {&a, &b}).i, (Dims{2, -2, -2, 2, 0, 9}));
  EXPECT_EQ(ce::elementwise("Mod", {&a, &b}, 0).i, (Dims{1, 2, -2, -1, 0, 0}));
  EXPECT_EQ(ce::elementwise("Mod", {&a, &b}, 1).i, (Dims{1, -1, 1, -1, 0, 0}));
  EXPECT_EQ(ce::elementwise("Add", {&a, &b}).i, (Dims{10, -4, 4, -10, 5, 10}));
  ConstTensor e = ConstTensor::ints({3}, {0, 1, 5});
  ConstTensor base = ConstTensor::ints({3}, {-3, -1, 2});
  EXPECT_EQ(ce::elementwise("Pow", {&base, &e}).i, (Dims{1, -1, 32}));
  EXPECT_EQ(ce::elementwise("Neg", {&a}).i, (Dims{-7, 7, -7, 7, 0, -9}));
  EXPECT_EQ(ce::elementwise("Abs", {&a}).i, (Dims{7, 7, 7, 7, 0, 9}));
  // The Swin export's pad arithmetic: (window - size % window) % window.
  ConstTensor w = ConstTensor::ints({}, {7}), sizes = ConstTensor::ints({4}, {16, 8, 4, 14});
  ConstTensor m = ce::elementwise("Mod", {&sizes, &w});
  ConstTensor d = ce::elementwise("Sub", {&w, &m});
  EXPECT_EQ(ce::elementwise("Mod", {&d, &w}).i, (Dims{5, 6, 3, 0}));
}

TEST(ConstEval, IntegerErrors) {
  ConstTensor big = ConstTensor::ints({}, {INT64_MAX}), one = ConstTensor::ints({}, {1}), zero = ConstTensor::ints({}, {0});
  ConstTensor minus = ConstTensor::ints({}, {-1}), lowest = ConstTensor::ints({}, {INT64_MIN});
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Add", {&big, &one}); }), "int64 overflow");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Mul", {&big, &big}); }), "int64 overflow");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Div", {&lowest, &minus}); }), "overflow");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Neg", {&lowest}); }), "overflow");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Div", {&one, &zero}); }), "division by zero");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Mod", {&one, &zero}); }), "modulo by zero");
  EXPECT_EQ(ce::elementwise("Mod", {&lowest, &minus}).i, (Dims{0}));
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Pow", {&big, &minus}); }), "negative exponent");
  ConstTensor two = ConstTensor::ints({}, {2}), e64 = ConstTensor::ints({}, {64});
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Pow", {&two, &e64}); }), "int64 overflow");
  ConstTensor f = ConstTensor::floats({}, {1.f});
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Add", {&one, &f}); }), "one type");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Mod", {&f, &f}); }), "fmod=1");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Sqrt", {&one}); }), "float");
  ConstTensor a = iota_i({2, 3}), b = iota_i({4});
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Add", {&a, &b}); }), "do not broadcast");
}

TEST(ConstEval, ComparisonsLogicAndWhere) {
  ConstTensor a = ConstTensor::floats({2, 3}, {0.f, -1.f, 2.f, NAN, 3.f, 0.f});
  ConstTensor zero = ConstTensor::floats({}, {0.f});
  ConstTensor eq = ce::elementwise("Equal", {&a, &zero});
  EXPECT_EQ(eq.type, ConstTensor::Type::boolean);
  EXPECT_EQ(eq.i, (Dims{1, 0, 0, 0, 0, 1}));
  EXPECT_EQ(ce::elementwise("Less", {&a, &zero}).i, (Dims{0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(ce::elementwise("GreaterOrEqual", {&a, &zero}).i, (Dims{1, 0, 1, 0, 1, 1}));
  ConstTensor ne = ce::elementwise("Not", {&eq});
  EXPECT_EQ(ne.i, (Dims{0, 1, 1, 1, 1, 0}));
  ConstTensor row = ConstTensor::bools({3}, {1, 0, 1});
  EXPECT_EQ(ce::elementwise("And", {&ne, &row}).i, (Dims{0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(ce::elementwise("Or", {&ne, &row}).i, (Dims{1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(ce::elementwise("Xor", {&ne, &row}).i, (Dims{1, 1, 0, 0, 1, 1}));
  // masked_fill as exported: Where(mask != 0, -100, mask), broadcasting a [3] condition.
  ConstTensor fill = ConstTensor::floats({}, {-100.f});
  ConstTensor w = ce::elementwise("Where", {&row, &fill, &a});
  ASSERT_EQ(w.dims, (Dims{2, 3}));
  for (int64_t e = 0; e < 6; e++) {
    if (e % 3 == 1) {
      if (std::isnan(a.f[e])) EXPECT_TRUE(std::isnan(w.f[e]));
      else EXPECT_EQ(w.f[e], a.f[e]);
    } else {
      EXPECT_EQ(w.f[e], -100.f);
    }
  }
  ConstTensor ints = iota_i({3});
  EXPECT_EQ(ce::elementwise("Equal", {&ints, &ints}).i, (Dims{1, 1, 1}));
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Where", {&a, &a, &a}); }), "bool condition");
  EXPECT_CONTAINS(qnnc_error([&] { ce::elementwise("Not", {&a}); }), "bool");
}

TEST(ConstEval, Cast) {
  ConstTensor f = ConstTensor::floats({5}, {-2.7f, 2.7f, 0.f, -0.f, 3e9f});
  EXPECT_EQ(ce::cast(f, 7).i, (Dims{-2, 2, 0, 0, 3000000000}));
  EXPECT_CONTAINS(qnnc_error([&] { ce::cast(f, 6); }), "cannot cast");  // 3e9 is not an int32
  EXPECT_EQ(ce::cast(f, 9).i, (Dims{1, 1, 0, 0, 1}));
  ConstTensor nan = ConstTensor::floats({}, {NAN});
  EXPECT_CONTAINS(qnnc_error([&] { ce::cast(nan, 7); }), "cannot cast");
  ConstTensor i = ConstTensor::ints({3}, {-5, 0, (int64_t)1 << 40});
  ConstTensor back = ce::cast(i, 1);
  EXPECT_EQ(back.f, (std::vector<float>{-5.f, 0.f, 1099511627776.f}));
  EXPECT_EQ(ce::cast(i, 6).i, (Dims{-5, 0, 0}));  // int64 -> int32 wraps as C and numpy do
  EXPECT_CONTAINS(qnnc_error([&] { ce::cast(i, 11); }), "not supported");
}

// ---------------------------------------------------------------------------------------------
// Structural operators

TEST(ConstEval, ReshapeZeroesAndMinusOne) {
  ConstTensor x = iota_f({2, 3, 4});
  EXPECT_EQ(ce::reshape(x, {0, -1}, false).dims, (Dims{2, 12}));
  EXPECT_EQ(ce::reshape(x, {4, 0, 2}, false).dims, (Dims{4, 3, 2}));
  EXPECT_EQ(ce::reshape(x, {-1}, false).f, x.f);
  EXPECT_CONTAINS(qnnc_error([&] { ce::reshape(x, {-1, -1}, false); }), "more than one -1");
  EXPECT_CONTAINS(qnnc_error([&] { ce::reshape(x, {5, -1}, false); }), "cannot reshape");
  EXPECT_CONTAINS(qnnc_error([&] { ce::reshape(x, {0, 0, 0, 0}, false); }), "does not have");
}

TEST(ConstEval, TransposeMatchesReference) {
  const std::pair<Dims, Dims> cases[] = {{{3, 5}, {}}, {{2, 3, 5, 7}, {2, 0, 3, 1}}, {{3, 1, 4, 2, 3}, {4, 2, 0, 3, 1}}};
  for (const auto &[d, perm] : cases) {
    ConstTensor x = iota_i(d, 100);
    ConstTensor y = ce::transpose(x, perm);
    Dims p = perm;
    if (p.empty())
      for (int64_t a = (int64_t)d.size() - 1; a >= 0; a--) p.push_back(a);
    Dims od;
    for (int64_t a : p) od.push_back(d[a]);
    ASSERT_EQ(y.dims, od);
    for (int64_t e = 0; e < count_of(od); e++) {
      Dims i = unravel(e, od), src(d.size());
      for (size_t a = 0; a < p.size(); a++) src[p[a]] = i[a];
      EXPECT_EQ(y.i[e], x.i[ravel_broadcast(src, d)]) << ref::shape_str(d);
    }
  }
  EXPECT_CONTAINS(qnnc_error([&] { ce::transpose(iota_f({2, 3}), {0, 0}); }), "not a permutation");
}

TEST(ConstEval, ConcatAlongEachAxis) {
  for (int64_t axis : {0, 1, 2, -1}) {
    const int64_t a = axis < 0 ? axis + 3 : axis;
    Dims d1{2, 3, 4}, d2{2, 3, 4}, d3{2, 3, 4};
    d2[a] = 1, d3[a] = 3;
    ConstTensor x = iota_f(d1), y = iota_f(d2, 1.f, 100.f), z = iota_f(d3, 1.f, 1000.f);
    ConstTensor out = ce::concat({&x, &y, &z}, axis);
    Dims od = d1;
    od[a] = d1[a] + d2[a] + d3[a];
    ASSERT_EQ(out.dims, od);
    for (int64_t e = 0; e < count_of(od); e++) {
      Dims i = unravel(e, od);
      const ConstTensor *src = &x;
      if (i[a] >= d1[a] + d2[a]) i[a] -= d1[a] + d2[a], src = &z;
      else if (i[a] >= d1[a]) i[a] -= d1[a], src = &y;
      EXPECT_EQ(out.f[e], src->f[ravel_broadcast(i, src->dims)]) << "axis " << axis << " element " << e;
    }
  }
  ConstTensor a = iota_i({2, 3}), b = iota_i({3, 3}), f = iota_f({2, 3});
  EXPECT_CONTAINS(qnnc_error([&] { ce::concat({&a, &b}, 1); }), "cannot concatenate");
  EXPECT_CONTAINS(qnnc_error([&] { ce::concat({&a, &f}, 0); }), "cannot concatenate int64 and float");
  // Shape vectors: an empty one joins as nothing.
  ConstTensor s = ConstTensor::ints({2}, {21, 21}), none = ConstTensor::ints({0}, {});
  EXPECT_EQ(ce::concat({&s, &none}, 0).i, (Dims{21, 21}));
}

TEST(ConstEval, GatherMatchesReference) {
  // Swin's relative-position bias: table[index] with a 2-D index and negative entries.
  ConstTensor table = iota_f({5, 3, 2}, 0.5f, -3.f);
  ConstTensor idx = ConstTensor::ints({2, 3}, {0, -1, 2, 4, -5, 1});
  for (int64_t axis : {0, 1, 2, -1}) {
    const int64_t a = axis < 0 ? axis + 3 : axis, d = table.dims[a];
    ConstTensor ix = ConstTensor::ints({2, 3}, {0, -1, 1 % d, (d - 1), -d, 0});
    ConstTensor y = ce::gather(table, ix, axis);
    Dims od(table.dims.begin(), table.dims.begin() + a);
    od.insert(od.end(), {2, 3});
    od.insert(od.end(), table.dims.begin() + a + 1, table.dims.end());
    ASSERT_EQ(y.dims, od);
    for (int64_t e = 0; e < count_of(od); e++) {
      Dims i = unravel(e, od), src;
      for (int64_t k = 0; k < a; k++) src.push_back(i[k]);
      int64_t j = ix.i[i[a] * 3 + i[a + 1]];
      src.push_back(j < 0 ? j + d : j);
      for (size_t k = a + 2; k < i.size(); k++) src.push_back(i[k]);
      EXPECT_EQ(y.f[e], table.f[ravel_broadcast(src, table.dims)]) << "axis " << axis;
    }
  }
  EXPECT_EQ(ce::gather(table, idx, 0).dims, (Dims{2, 3, 3, 2}));
  ConstTensor scalar = ConstTensor::ints({}, {-2});
  ConstTensor shape = ConstTensor::ints({4}, {1, 21, 21, 96});
  ConstTensor g = ce::gather(shape, scalar, 0);
  EXPECT_TRUE(g.dims.empty());
  EXPECT_EQ(g.i, (Dims{21}));
  ConstTensor bad = ConstTensor::ints({1}, {5});
  EXPECT_CONTAINS(qnnc_error([&] { ce::gather(table, bad, 0); }), "out of range");
  EXPECT_CONTAINS(qnnc_error([&] { ce::gather(table, table, 0); }), "indices must be integers");
}

// The elements a 1-D ONNX Slice selects from an axis of size d, the spec's rules written out.
Dims slice_indices(int64_t d, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start += d;
  if (end < 0) end += d;
  Dims out;
  if (step > 0) {
    start = std::max<int64_t>(0, std::min(start, d));
    end = std::max<int64_t>(0, std::min(end, d));
    for (int64_t j = start; j < end; j += step) out.push_back(j);
  } else {
    start = std::max<int64_t>(0, std::min(start, d - 1));
    end = std::max<int64_t>(-1, std::min(end, d - 1));
    for (int64_t j = start; j > end; j += step) out.push_back(j);
  }
  return out;
}

TEST(ConstEval, SliceMatchesReference) {
  struct Case {
    Dims x, starts, ends, axes, steps;
  };
  const Case cases[] = {
      {{7, 5}, {1, -4}, {INT64_MAX, -1}, {}, {}},
      {{7, 5}, {-1}, {INT64_MIN}, {0}, {-2}},  // reversed, every second
      {{3, 4, 5}, {2, 0}, {-INT64_MAX, 9}, {-1, 0}, {-1, 2}},
      {{3, 4, 5}, {1}, {3}, {1}, {5}},
      {{6}, {4}, {2}, {0}, {1}},  // empty
  };
  for (const auto &c : cases) {
    ConstTensor x = iota_i(c.x);
    ConstTensor y = ce::slice(x, c.starts, c.ends, c.axes, c.steps);
    std::vector<Dims> sel;
    for (int64_t a = 0; a < (int64_t)c.x.size(); a++) {
      Dims all;
      for (int64_t j = 0; j < c.x[a]; j++) all.push_back(j);
      sel.push_back(all);
    }
    for (size_t k = 0; k < c.starts.size(); k++) {
      int64_t a = c.axes.empty() ? (int64_t)k : c.axes[k];
      if (a < 0) a += (int64_t)c.x.size();
      sel[a] = slice_indices(c.x[a], c.starts[k], c.ends[k], c.steps.empty() ? 1 : c.steps[k]);
    }
    Dims od;
    for (const auto &s : sel) od.push_back((int64_t)s.size());
    ASSERT_EQ(y.dims, od) << ref::shape_str(c.x);
    for (int64_t e = 0; e < count_of(od); e++) {
      Dims i = unravel(e, od), src;
      for (size_t a = 0; a < i.size(); a++) src.push_back(sel[a][i[a]]);
      EXPECT_EQ(y.i[e], x.i[ravel_broadcast(src, c.x)]);
    }
  }
  // Shape(x)[2:] of a 2-D x: empty, as the Swin export computes it.
  ConstTensor s = ConstTensor::ints({2}, {21, 21});
  ConstTensor tail = ce::slice(s, {2}, {INT64_MAX}, {0}, {});
  EXPECT_EQ(tail.dims, (Dims{0}));
  EXPECT_CONTAINS(qnnc_error([&] { ce::slice(s, {0}, {1}, {0}, {0}); }), "step of 0");
  EXPECT_CONTAINS(qnnc_error([&] { ce::slice(s, {0, 0}, {1, 1}, {0, 0}, {}); }), "twice");
}

TEST(ConstEval, ExpandRangeConstantOfShape) {
  ConstTensor x = iota_f({3, 1});
  ConstTensor y = ce::expand(x, {2, 1, 4});
  ASSERT_EQ(y.dims, (Dims{2, 3, 4}));
  for (int64_t e = 0; e < 24; e++) EXPECT_EQ(y.f[e], x.f[unravel(e, y.dims)[1]]);
  EXPECT_EQ(ce::expand(x, {1}).dims, (Dims{3, 1}));  // bidirectional: the input's shape wins
  EXPECT_CONTAINS(qnnc_error([&] { ce::expand(x, {2, 4}); }), "do not broadcast");

  auto r = [](int64_t s, int64_t l, int64_t d) {
    ConstTensor a = ConstTensor::ints({}, {s}), b = ConstTensor::ints({}, {l}), c = ConstTensor::ints({}, {d});
    return ce::range(a, b, c).i;
  };
  EXPECT_EQ(r(0, 5, 1), (Dims{0, 1, 2, 3, 4}));
  EXPECT_EQ(r(-3, 7, 4), (Dims{-3, 1, 5}));
  EXPECT_EQ(r(10, 4, -3), (Dims{10, 7}));
  EXPECT_EQ(r(5, 5, 1), Dims{});
  EXPECT_EQ(r(INT64_MAX - 2, INT64_MAX, 1), (Dims{INT64_MAX - 2, INT64_MAX - 1}));
  EXPECT_CONTAINS(qnnc_error([&] { r(0, 5, 0); }), "non-zero delta");
  EXPECT_CONTAINS(qnnc_error([&] { r(INT64_MIN, INT64_MAX, 1); }), "more than");
  ConstTensor fs = ConstTensor::floats({}, {1.f}), fl = ConstTensor::floats({}, {2.f}), fd = ConstTensor::floats({}, {0.25f});
  EXPECT_EQ(ce::range(fs, fl, fd).f, (std::vector<float>{1.f, 1.25f, 1.5f, 1.75f}));

  ConstTensor v = ConstTensor::floats({1}, {-100.f});
  ConstTensor c = ce::constant_of_shape({2, 3}, v);
  EXPECT_EQ(c.dims, (Dims{2, 3}));
  EXPECT_EQ(c.f, std::vector<float>(6, -100.f));
  ConstTensor scalar = ce::constant_of_shape({}, ConstTensor::ints({1}, {7}));
  EXPECT_TRUE(scalar.dims.empty());
  EXPECT_EQ(scalar.i, (Dims{7}));
  EXPECT_CONTAINS(qnnc_error([&] { ce::constant_of_shape({1 << 13, 1 << 13}, v); }), "more than");
  EXPECT_EQ(ce::constant_of_shape({3, 0}, v).f.size(), 0u);
  // An empty shape is bounded too: strides from its other extents must stay small.
  EXPECT_CONTAINS(qnnc_error([&] { ce::constant_of_shape({0, 1 << 20, 1 << 20}, v); }), "more than");
}

TEST(ConstEval, ScatterNDMatchesReference) {
  // Element updates (k = rank), row updates (k < rank), negative indices, and reductions.
  ConstTensor data = iota_f({4, 5, 3}, 1.f, 0.f);
  ConstTensor idx = ConstTensor::ints({2, 2, 2}, {0, 1, 3, -1, -4, 0, 2, 2});
  ConstTensor upd = iota_f({2, 2, 3}, -1.f, -1.f);
  for (const std::string red : {"none", "add", "mul", "max"}) {
    ConstTensor y = ce::scatter_nd(data, idx, upd, red);
    std::vector<float> want = data.f;
    for (int64_t j = 0; j < 4; j++) {
      int64_t a = idx.i[j * 2], b = idx.i[j * 2 + 1];
      a = a < 0 ? a + 4 : a, b = b < 0 ? b + 5 : b;
      for (int64_t c = 0; c < 3; c++) {
        float &w = want[(a * 5 + b) * 3 + c];
        const float u = upd.f[j * 3 + c];
        w = red == "none" ? u : red == "add" ? w + u : red == "mul" ? w * u : std::max(w, u);
      }
    }
    EXPECT_EQ(y.f, want) << red;
  }
  // Full-rank indices on a 2-D mask, as Swin's attn_mask[h0:h1, w0:w1] = count exports.
  ConstTensor mask = ce::constant_of_shape({3, 4}, ConstTensor::floats({1}, {0.f}));
  ConstTensor cells = ConstTensor::ints({1, 2, 2}, {1, 2, 2, 3});
  ConstTensor vals = ConstTensor::floats({1, 2}, {5.f, 6.f});
  EXPECT_EQ(ce::scatter_nd(mask, cells, vals, "none").f,
            (std::vector<float>{0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 6}));
  ConstTensor wrong = ConstTensor::floats({2}, {1.f, 2.f});
  EXPECT_CONTAINS(qnnc_error([&] { ce::scatter_nd(mask, cells, wrong, "none"); }), "updates have shape");
  ConstTensor far = ConstTensor::ints({1, 2}, {3, 0});
  ConstTensor one = ConstTensor::floats({1}, {1.f});
  EXPECT_CONTAINS(qnnc_error([&] { ce::scatter_nd(mask, far, one, "none"); }), "out of range");
}

// ---------------------------------------------------------------------------------------------
// The importer's folding, on whole models

// Builds a single-input ONNX model node by node; constants are Constant nodes.
struct OnnxModel {
  onnx::ModelProto m;
  int counter = 0;

  OnnxModel(const Dims &input, int opset = 13) {
    m.set_ir_version(8);
    m.add_opset_import()->set_version(opset);
    onnx::GraphProto *g = m.mutable_graph();
    g->set_name("fold");
    onnx::ValueInfoProto *x = g->add_input();
    x->set_name("x");
    x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : input) x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::NodeProto *add(const std::string &op, const std::vector<std::string> &in, std::string *out) {
    onnx::NodeProto *n = m.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(counter));
    for (const auto &i : in) n->add_input(i);
    *out = "t" + std::to_string(counter++);
    n->add_output(*out);
    return n;
  }
  // op(inputs) with attributes set by `attrs`; returns the output name.
  std::string op(const std::string &type, const std::vector<std::string> &in,
                 const std::function<void(onnx::NodeProto *)> &attrs = {}) {
    std::string out;
    onnx::NodeProto *n = add(type, in, &out);
    if (attrs) attrs(n);
    return out;
  }
  std::string tensor(const onnx::TensorProto &t) {
    return op("Constant", {}, [&](onnx::NodeProto *n) {
      onnx::AttributeProto *a = n->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      *a->mutable_t() = t;
    });
  }
  std::string ints(const Dims &v, bool scalar = false) {
    onnx::TensorProto t;
    t.set_data_type(onnx::TensorProto::INT64);
    if (!scalar) t.add_dims((int64_t)v.size());
    for (int64_t e : v) t.add_int64_data(e);
    return tensor(t);
  }
  std::string floats(const Dims &dims, const std::vector<float> &v) {
    onnx::TensorProto t;
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t.add_dims(d);
    for (float e : v) t.add_float_data(e);
    return tensor(t);
  }
  void output(const std::string &name) { m.mutable_graph()->add_output()->set_name(name); }
  qnnc::Graph load() const { return qnnc::load_onnx_bytes(m.SerializeAsString(), "fold.onnx"); }
};

void set_int(onnx::NodeProto *n, const std::string &key, int64_t v) {
  onnx::AttributeProto *a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void set_ints(onnx::NodeProto *n, const std::string &key, const Dims &v) {
  onnx::AttributeProto *a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t e : v) a->add_ints(e);
}
void set_fill(onnx::NodeProto *n, float v) {
  onnx::AttributeProto *a = n->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_float_data(v);
}

// torchvision's shifted-window attention mask (swin_transformer.py), written as plain loops:
// [num_windows, ws*ws, ws*ws] with 0 inside a region and -100 across regions.
std::vector<float> swin_mask_ref(int64_t pH, int64_t pW, int64_t ws, int64_t shift) {
  std::vector<int64_t> region((size_t)(pH * pW));
  auto band = [&](int64_t i, int64_t n) { return i < n - ws ? 0 : i < n - shift ? 1 : 2; };
  for (int64_t h = 0; h < pH; h++)
    for (int64_t w = 0; w < pW; w++) region[h * pW + w] = band(h, pH) * 3 + band(w, pW);
  const int64_t nh = pH / ws, nw = pW / ws, N = ws * ws;
  std::vector<float> out;
  for (int64_t a = 0; a < nh; a++)
    for (int64_t b = 0; b < nw; b++)
      for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
          int64_t ri = region[(a * ws + i / ws) * pW + b * ws + i % ws];
          int64_t rj = region[(a * ws + j / ws) * pW + b * ws + j % ws];
          out.push_back(ri == rj ? 0.f : -100.f);
        }
  return out;
}

// The mask built as the Swin export builds it: zeros, one ScatterND per region with index grids
// from Range/Reshape/Expand/Concat, window partition by Reshape/Transpose, pairwise differences,
// then masked_fill as Equal/Not/Where; added to the input. Nothing of it may reach the graph but
// one constant.
TEST(ConstFold, SwinShiftedWindowMask) {
  const int64_t pH = 6, pW = 9, ws = 3, shift = 1, nW = (pH / ws) * (pW / ws), N = ws * ws;
  OnnxModel om({1, nW, N, N});
  std::string mask = om.op("ConstantOfShape", {om.ints({pH, pW})}, [](onnx::NodeProto *n) { set_fill(n, 0.f); });
  const int64_t hb[4] = {0, pH - ws, pH - shift, pH}, wb[4] = {0, pW - ws, pW - shift, pW};
  int count = 0;
  for (int hi = 0; hi < 3; hi++)
    for (int wi = 0; wi < 3; wi++, count++) {
      const int64_t nr = hb[hi + 1] - hb[hi], nc = wb[wi + 1] - wb[wi];
      std::string rows = om.op("Range", {om.ints({hb[hi]}, true), om.ints({hb[hi + 1]}, true), om.ints({1}, true)});
      std::string cols = om.op("Range", {om.ints({wb[wi]}, true), om.ints({wb[wi + 1]}, true), om.ints({1}, true)});
      std::string r3 = om.op("Expand", {om.op("Reshape", {rows, om.ints({nr, 1, 1})}), om.ints({nr, nc, 1})});
      std::string c3 = om.op("Expand", {om.op("Unsqueeze", {om.op("Unsqueeze", {cols, om.ints({0})}), om.ints({-1})}),
                                        om.ints({nr, nc, 1})});
      std::string idx = om.op("Concat", {r3, c3}, [](onnx::NodeProto *n) { set_int(n, "axis", -1); });
      std::string upd =
          om.op("ConstantOfShape", {om.ints({nr, nc})}, [&](onnx::NodeProto *n) { set_fill(n, (float)count); });
      mask = om.op("ScatterND", {mask, idx, upd});
    }
  std::string win = om.op("Reshape", {mask, om.ints({pH / ws, ws, pW / ws, ws})});
  win = om.op("Transpose", {win}, [](onnx::NodeProto *n) { set_ints(n, "perm", {0, 2, 1, 3}); });
  win = om.op("Reshape", {win, om.ints({nW, N})});
  std::string diff = om.op("Sub", {om.op("Unsqueeze", {win, om.ints({1})}), om.op("Unsqueeze", {win, om.ints({2})})});
  std::string zero = om.floats({}, {0.f});
  std::string ne = om.op("Not", {om.op("Equal", {diff, zero})});
  std::string filled = om.op("Where", {ne, om.floats({}, {-100.f}), diff});
  filled = om.op("Where", {om.op("Equal", {filled, zero}), zero, filled});
  std::string y = om.op("Add", {"x", om.op("Unsqueeze", {filled, om.ints({0})})});
  om.output(y);

  qnnc::Graph g = om.load();
  ASSERT_EQ(g.nodes.size(), 1u) << qnnc::print_graph(g);
  EXPECT_EQ(g.nodes[0].op, "Add");
  std::vector<float> want = swin_mask_ref(pH, pW, ws, shift);
  int c = g.nodes[0].inputs[1];
  ASSERT_TRUE(g.values[c].is_const());
  EXPECT_EQ(g.values[c].type.shape, (Dims{1, nW, N, N}));
  EXPECT_EQ(*g.values[c].data, want);

  qnnc::Module m = ref::compile(g);
  ref::Rng rng(8);
  qnnc::Tensor x = ref::random_tensor({1, nW, N, N}, rng);
  qnnc::Tensor expect = x;
  for (size_t e = 0; e < want.size(); e++) expect.data[e] += want[e];
  EXPECT_TRUE(ref::Close(m.run({x})[0], expect, 0));
}

// Relative-position bias: Gather from a float table by a constant 1-D index, Reshape, Transpose,
// Unsqueeze; the Cast/Pow of Swin's q scale (a shape value to float, ** -0.5) folds too.
TEST(ConstFold, SwinRelativePositionBiasAndScale) {
  const int64_t ws = 2, N = ws * ws, heads = 3, T = (2 * ws - 1) * (2 * ws - 1);
  OnnxModel om({1, heads, N, N});
  std::vector<float> table;
  for (int64_t e = 0; e < T * heads; e++) table.push_back(0.01f * (float)(e * 7 % 23) - 0.1f);
  Dims index;  // torchvision's define_relative_position_index
  for (int64_t i = 0; i < N; i++)
    for (int64_t j = 0; j < N; j++)
      index.push_back((i / ws - j / ws + ws - 1) * (2 * ws - 1) + (i % ws - j % ws + ws - 1));
  std::string t = om.floats({T, heads}, table);
  std::string bias = om.op("Gather", {t, om.ints(index)}, [](onnx::NodeProto *n) { set_int(n, "axis", 0); });
  bias = om.op("Reshape", {bias, om.ints({N, N, -1})});
  bias = om.op("Transpose", {bias}, [](onnx::NodeProto *n) { set_ints(n, "perm", {2, 0, 1}); });
  bias = om.op("Unsqueeze", {bias, om.ints({0})});
  std::string c = om.op("Gather", {om.op("Shape", {"x"}), om.ints({1}, true)});  // 3 heads
  std::string scale = om.op("Pow", {om.op("Cast", {c}, [](onnx::NodeProto *n) { set_int(n, "to", 1); }),
                                    om.floats({}, {-0.5f})});
  std::string y = om.op("Add", {om.op("Mul", {"x", scale}), bias});
  om.output(y);

  qnnc::Graph g = om.load();
  ASSERT_EQ(g.nodes.size(), 2u) << qnnc::print_graph(g);
  qnnc::Module m = ref::compile(g);
  ref::Rng rng(9);
  qnnc::Tensor x = ref::random_tensor({1, heads, N, N}, rng), want = x;
  const float s = std::pow(3.f, -0.5f);
  for (int64_t h = 0; h < heads; h++)
    for (int64_t i = 0; i < N; i++)
      for (int64_t j = 0; j < N; j++) {
        float &w = want.data[(h * N + i) * N + j];
        w = w * s + table[index[i * N + j] * heads + h];
      }
  EXPECT_TRUE(ref::Close(m.run({x})[0], want, 1e-6));
}

// Swin's padding to whole windows: pads computed from Shape(x) with Gather, Mod, Sub, Mod,
// Concat with a ConstantOfShape and an empty Slice of a shape, reversed into ONNX order as the
// exporter does; then a Pad of the H and W axes of a [N, H, W, C] activation (a pad kernel).
TEST(ConstFold, SwinWindowPaddingFromShapeArithmetic) {
  const int64_t H = 5, W = 8, C = 3, ws = 3;
  OnnxModel om({1, H, W, C});
  std::string shape = om.op("Shape", {"x"});
  auto pad_of = [&](int64_t axis) {
    std::string size = om.op("Gather", {shape, om.ints({axis}, true)});
    std::string w = om.ints({ws}, true);
    return om.op("Mod", {om.op("Sub", {w, om.op("Mod", {size, w})}), w});
  };
  std::string pad_b = pad_of(1), pad_r = pad_of(2);
  auto u = [&](const std::string &s) { return om.op("Unsqueeze", {s, om.ints({0})}); };
  // F.pad(x, (0, 0, 0, pad_r, 0, pad_b)): pairs from the last axis, then zeros for the rest.
  std::string torch_pads = om.op("Concat", {om.ints({0, 0, 0}), u(pad_r), om.ints({0}), u(pad_b)},
                                 [](onnx::NodeProto *n) { set_int(n, "axis", 0); });
  std::string empty = om.op("Slice", {om.op("Shape", {om.op("ConstantOfShape", {om.ints({2, 2})})}), om.ints({2}),
                                      om.ints({INT64_MAX}), om.ints({0})});
  std::string rest = om.op("ConstantOfShape", {om.ints({2})}, [](onnx::NodeProto *n) {
    onnx::AttributeProto *a = n->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    a->mutable_t()->set_data_type(onnx::TensorProto::INT64);
    a->mutable_t()->add_dims(1);
    a->mutable_t()->add_int64_data(0);
  });
  std::string all = om.op("Concat", {torch_pads, rest, empty}, [](onnx::NodeProto *n) { set_int(n, "axis", 0); });
  std::string pairs = om.op("Reshape", {all, om.ints({-1, 2})});
  std::string rev = om.op("Slice", {pairs, om.ints({-1}), om.ints({INT64_MIN}), om.ints({0}), om.ints({-1})});
  std::string onnx_pads = om.op("Reshape", {om.op("Transpose", {rev}, [](onnx::NodeProto *n) { set_ints(n, "perm", {1, 0}); }),
                                            om.ints({-1})});
  std::string y = om.op("Pad", {"x", om.op("Cast", {onnx_pads}, [](onnx::NodeProto *n) { set_int(n, "to", 7); })});
  om.output(y);

  qnnc::Graph g = om.load();
  ASSERT_EQ(g.nodes.size(), 1u) << qnnc::print_graph(g);
  EXPECT_EQ(g.nodes[0].ints("pads"), (Dims{0, 0, 0, 0, 0, 1, 1, 0}));
  qnnc::Module m = ref::compile(g);
  EXPECT_EQ(ref::count(ref::step_ops(m), "pad"), 1);
  ref::Rng rng(10);
  qnnc::Tensor x = ref::random_tensor({1, H, W, C}, rng);
  qnnc::Tensor want{{1, H + 1, W + 1, C}, std::vector<float>((size_t)((H + 1) * (W + 1) * C), 0.f)};
  for (int64_t h = 0; h < H; h++)
    for (int64_t w = 0; w < W; w++)
      for (int64_t c = 0; c < C; c++) want.data[(h * (W + 1) + w) * C + c] = x.data[(h * W + w) * C + c];
  EXPECT_TRUE(ref::Close(m.run({x})[0], want, 0));
}

// Flatten, Unsqueeze, Squeeze, Shape, Gather, Concat and Cast of constants fold into a constant
// operand and a Reshape's shape.
TEST(ConstFold, StructuralOpsOnConstants) {
  OnnxModel om({1, 24});
  std::vector<float> c;
  for (int e = 0; e < 24; e++) c.push_back(0.5f * (float)e - 3.f);
  std::string t = om.op("Flatten", {om.floats({2, 3, 4}, c)}, [](onnx::NodeProto *n) { set_int(n, "axis", 2); });
  t = om.op("Squeeze", {om.op("Unsqueeze", {t, om.ints({0, -1})}), om.ints({0, 3})});
  std::string four = om.op("Gather", {om.op("Shape", {t}), om.ints({1}, true)});
  std::string shape = om.op("Concat", {om.ints({-1}), om.op("Unsqueeze", {four, om.ints({0})})},
                            [](onnx::NodeProto *n) { set_int(n, "axis", 0); });
  shape = om.op("Cast", {om.op("Cast", {shape}, [](onnx::NodeProto *n) { set_int(n, "to", 1); })},
                [](onnx::NodeProto *n) { set_int(n, "to", 7); });
  om.output(om.op("Add", {om.op("Reshape", {"x", shape}), t}));
  qnnc::Graph g = om.load();
  ASSERT_EQ(g.nodes.size(), 2u) << qnnc::print_graph(g);
  EXPECT_EQ(g.nodes[0].op, "Reshape");
  EXPECT_EQ(g.nodes[0].ints("shape"), (Dims{-1, 4}));
  EXPECT_EQ(g.values[g.nodes[1].inputs[1]].type.shape, (Dims{6, 4}));
  EXPECT_EQ(*g.values[g.nodes[1].inputs[1]].data, c);
}

TEST(ConstFold, RuntimeOperandsAndBadValuesAreClearErrors) {
  {  // Mod of an activation: compile-time only.
    OnnxModel om({1, 4});
    om.output(om.op("Mod", {"x", om.floats({}, {2.f})}, [](onnx::NodeProto *n) { set_int(n, "fmod", 1); }));
    std::string e = qnnc_error([&] { om.load(); });
    EXPECT_CONTAINS(e, "(Mod)");
    EXPECT_CONTAINS(e, "only when all its inputs are known at compile time");
    EXPECT_CONTAINS(e, "input 'x' is computed at run time");
  }
  {  // Overflow in shape arithmetic.
    OnnxModel om({1, 4});
    std::string big = om.op("Mul", {om.ints({INT64_MAX / 2}), om.ints({3})});
    om.output(om.op("Reshape", {"x", big}));
    std::string e = qnnc_error([&] { om.load(); });
    EXPECT_CONTAINS(e, "node 'Mul_2' (Mul): evaluating it at compile time: int64 overflow");
  }
  {  // A bad operand of a folded node: named once, with the node.
    OnnxModel om({1, 4});
    std::string r = om.op("Reshape", {om.ints({2, 2}), om.floats({2}, {4.f, 1.f})});
    om.output(om.op("Reshape", {"x", r}));
    std::string e = qnnc_error([&] { om.load(); });
    EXPECT_CONTAINS(e, "node 'Reshape_2' (Reshape): shape must be a 1-D integer tensor, got float [2]");
    EXPECT_EQ(e.find("node '", 1), std::string::npos) << e;
  }
  {  // A folded tensor too large to compute.
    OnnxModel om({1, 4});
    std::string huge = om.op("ConstantOfShape", {om.ints({1 << 20, 1 << 10})});
    om.output(om.op("Add", {"x", huge}));
    EXPECT_CONTAINS(qnnc_error([&] { om.load(); }), "more than qnnc computes at compile time");
  }
  {  // An empty folded value read by the graph.
    OnnxModel om({1, 4});
    std::string none = om.op("Slice", {om.op("Shape", {"x"}), om.ints({2}), om.ints({9}), om.ints({0})});
    om.output(om.op("Reshape", {"x", none}));
    EXPECT_CONTAINS(qnnc_error([&] { om.load(); }), "empty");
  }
  {  // Training-mode Dropout with a non-zero ratio is random; a zero ratio is the identity.
    for (float ratio : {0.f, 0.1f}) {
      OnnxModel om({1, 4});
      onnx::TensorProto yes;
      yes.set_data_type(onnx::TensorProto::BOOL);
      yes.add_int32_data(1);
      std::string d = om.op("Dropout", {"x", om.floats({}, {ratio}), om.tensor(yes)});
      om.output(om.op("Relu", {d}));
      if (ratio == 0.f) EXPECT_EQ(om.load().nodes.size(), 1u);
      else EXPECT_CONTAINS(qnnc_error([&] { om.load(); }), "training-mode Dropout");
    }
  }
}

// Pad's axes input (opset 18), constant values and crops, from an ONNX model.
TEST(ConstFold, PadWithAxesValueAndCrop) {
  OnnxModel om({2, 3, 4}, 18);
  std::string p = om.op("Pad", {"x", om.ints({1, -1, 2, 0}), om.floats({}, {1.5f}), om.ints({2, 0})});
  om.output(p);
  qnnc::Graph g = om.load();
  // axes {2, 0}: axis 2 gets (1, 2), axis 0 gets (-1, 0).
  EXPECT_EQ(g.nodes[0].ints("pads"), (Dims{-1, 0, 1, 0, 0, 2}));
  EXPECT_EQ(g.values[g.outputs[0]].type.shape, (Dims{1, 3, 7}));
  qnnc::Module m = ref::compile(g);
  ref::Rng rng(11);
  qnnc::Tensor x = ref::random_tensor({2, 3, 4}, rng);
  qnnc::Tensor want{{1, 3, 7}, {}};
  for (int64_t c = 0; c < 3; c++)
    for (int64_t k = 0; k < 7; k++) want.data.push_back(k >= 1 && k < 5 ? x.data[(3 + c) * 4 + k - 1] : 1.5f);
  EXPECT_TRUE(ref::Close(m.run({x})[0], want, 0));
}

}  // namespace
