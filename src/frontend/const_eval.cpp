#include "frontend/const_eval.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "ir/graph.h"

namespace qnnc {

ConstTensor ConstTensor::floats(std::vector<int64_t> dims, std::vector<float> v) {
  ConstTensor t;
  t.type = Type::f32;
  t.dims = std::move(dims);
  t.f = std::move(v);
  return t;
}

ConstTensor ConstTensor::ints(std::vector<int64_t> dims, std::vector<int64_t> v) {
  ConstTensor t;
  t.type = Type::i64;
  t.dims = std::move(dims);
  t.i = std::move(v);
  return t;
}

ConstTensor ConstTensor::bools(std::vector<int64_t> dims, std::vector<int64_t> v) {
  ConstTensor t = ints(std::move(dims), std::move(v));
  t.type = Type::boolean;
  for (auto &e : t.i) e = e != 0;
  return t;
}

const char *const_type_name(ConstTensor::Type t) {
  switch (t) {
    case ConstTensor::Type::f32: return "float";
    case ConstTensor::Type::i64: return "int64";
    case ConstTensor::Type::boolean: return "bool";
  }
  return "?";
}

namespace const_eval {

namespace {

using Type = ConstTensor::Type;

std::string dims_str(const std::vector<int64_t> &s) {
  std::ostringstream os;
  os << "[";
  for (size_t k = 0; k < s.size(); k++) os << (k ? "," : "") << s[k];
  return os.str() + "]";
}

[[noreturn]] void fail(const std::string &msg) { throw Error(msg); }

// Row-major strides.
std::vector<int64_t> strides_of(const std::vector<int64_t> &dims) {
  std::vector<int64_t> st(dims.size(), 1);
  for (size_t d = dims.size(); d-- > 1;) st[d - 1] = st[d] * dims[d];
  return st;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const char *what) {
  if (axis < -rank || axis >= rank)
    fail(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// Visits every element of `out` in row-major order with the offset of the element each operand
// broadcasts to it (operand shapes right-aligned, size-1 axes repeated).
template <typename F>
void broadcast_loop(const std::vector<int64_t> &out, const std::vector<std::vector<int64_t>> &ins, F f) {
  const size_t r = out.size(), n = ins.size();
  std::vector<std::vector<int64_t>> st(n, std::vector<int64_t>(r, 0));
  for (size_t k = 0; k < n; k++) {
    const auto &d = ins[k];
    auto s = strides_of(d);
    for (size_t a = 0; a < d.size(); a++) st[k][r - d.size() + a] = d[a] == 1 ? 0 : s[a];
  }
  const int64_t total = checked_numel(out);
  std::vector<int64_t> idx(r, 0), off(n, 0);
  for (int64_t e = 0; e < total; e++) {
    f(e, off);
    for (size_t a = r; a-- > 0;) {
      for (size_t k = 0; k < n; k++) off[k] += st[k][a];
      if (++idx[a] < out[a]) break;
      for (size_t k = 0; k < n; k++) off[k] -= st[k][a] * out[a];
      idx[a] = 0;
    }
  }
}

// A tensor of x's type whose element e is x's element src[e].
ConstTensor take(const ConstTensor &x, std::vector<int64_t> dims, const std::vector<int64_t> &src) {
  ConstTensor t;
  t.type = x.type;
  t.dims = std::move(dims);
  if (x.is_float()) {
    t.f.reserve(src.size());
    for (int64_t s : src) t.f.push_back(x.f[(size_t)s]);
  } else {
    t.i.reserve(src.size());
    for (int64_t s : src) t.i.push_back(x.i[(size_t)s]);
  }
  return t;
}

void check_consistent(const ConstTensor &x, const char *what) {
  const int64_t want = x.dims.empty() ? 1 : checked_numel(x.dims);
  if (x.numel() != want) fail(std::string(what) + " holds " + std::to_string(x.numel()) + " values for shape " + dims_str(x.dims));
}

// Checked int64 arithmetic.
int64_t add_i(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("int64 overflow in " + std::to_string(a) + " + " + std::to_string(b));
  return r;
}
int64_t sub_i(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) fail("int64 overflow in " + std::to_string(a) + " - " + std::to_string(b));
  return r;
}
int64_t mul_i(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("int64 overflow in " + std::to_string(a) + " * " + std::to_string(b));
  return r;
}
int64_t div_i(int64_t a, int64_t b) {
  if (b == 0) fail("integer division by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) fail("int64 overflow in division");
  return a / b;  // truncates toward zero, as ONNX's integer Div
}
int64_t mod_i(int64_t a, int64_t b, bool fmod) {
  if (b == 0) fail("integer modulo by zero");
  int64_t r = b == -1 ? 0 : a % b;  // sign of the dividend
  if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b;  // sign of the divisor (Python's %)
  return r;
}
int64_t pow_i(int64_t base, int64_t e) {
  if (e < 0) fail("integer Pow with a negative exponent " + std::to_string(e));
  if (e == 0) return 1;
  if (base == 0 || base == 1) return base;
  if (base == -1) return e % 2 ? -1 : 1;
  int64_t r = 1;
  for (; e > 0; e--) r = mul_i(r, base);  // |base| >= 2 overflows within 63 steps
  return r;
}

// v truncated toward zero, when that lies in [lo, hi].
int64_t float_to_int(double v, int64_t lo, int64_t hi) {
  const double t = std::trunc(v);
  if (!std::isfinite(v) || !(t >= (double)lo) || !(t < (double)hi + 1.0))
    fail("cannot cast " + std::to_string(v) + " to an integer");
  return (int64_t)t;
}

const std::set<std::string> &binary_ops() {
  static const std::set<std::string> s{"Add",  "Sub",          "Mul",           "Div", "Mod", "Pow", "Equal", "Less",
                                       "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or",  "Xor"};
  return s;
}
const std::set<std::string> &unary_ops() {
  static const std::set<std::string> s{"Neg", "Abs", "Sqrt", "Reciprocal", "Floor", "Ceil", "Not"};
  return s;
}

}  // namespace

int64_t checked_numel(const std::vector<int64_t> &dims) {
  // The non-zero extents are capped too (an empty [0, 2^40] is refused), so that every stride
  // computed from a checked shape fits easily in int64.
  int64_t n = 1;
  bool empty = false;
  for (int64_t d : dims) {
    if (d < 0) fail("negative dimension in shape " + dims_str(dims));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (d > kMaxFoldElements || n * d > kMaxFoldElements)
      fail("shape " + dims_str(dims) + " has more than " + std::to_string(kMaxFoldElements) +
           " elements, more than qnnc computes at compile time");
    n *= d;
  }
  return empty ? 0 : n;
}

std::vector<int64_t> broadcast_shape(const std::vector<std::vector<int64_t>> &shapes) {
  size_t r = 0;
  for (const auto &s : shapes) r = std::max(r, s.size());
  std::vector<int64_t> out(r, 1);
  for (const auto &s : shapes)
    for (size_t a = 0; a < s.size(); a++) {
      int64_t &o = out[r - s.size() + a];
      const int64_t d = s[a];
      if (d < 0) fail("negative dimension in shape " + dims_str(s));
      if (d == o || d == 1) continue;
      if (o != 1) {
        std::string all;
        for (const auto &t : shapes) all += (all.empty() ? "" : " and ") + dims_str(t);
        fail("shapes " + all + " do not broadcast");
      }
      o = d;
    }
  return out;
}

bool is_elementwise(const std::string &op) {
  return binary_ops().count(op) || unary_ops().count(op) || op == "Where" || op == "Min" || op == "Max";
}

ConstTensor elementwise(const std::string &op, const std::vector<const ConstTensor *> &in, int64_t fmod) {
  if (!is_elementwise(op)) fail("'" + op + "' is not an elementwise operator");
  const size_t arity = binary_ops().count(op) ? 2 : unary_ops().count(op) ? 1 : op == "Where" ? 3 : 0;
  if (arity ? in.size() != arity : in.empty())
    fail(op + " takes " + (arity ? std::to_string(arity) : std::string("at least one")) + " operand(s), got " +
         std::to_string(in.size()));
  std::vector<std::vector<int64_t>> shapes;
  for (const ConstTensor *t : in) {
    check_consistent(*t, "operand");
    shapes.push_back(t->dims);
  }
  const std::vector<int64_t> od = broadcast_shape(shapes);
  checked_numel(od);

  auto type_error = [&](const std::string &why) -> void {
    std::string types;
    for (const ConstTensor *t : in) types += (types.empty() ? "" : ", ") + std::string(const_type_name(t->type));
    fail(op + " " + why + " (operands: " + types + ")");
  };
  ConstTensor out;
  out.dims = od;

  if (op == "Where") {
    const ConstTensor &c = *in[0], &x = *in[1], &y = *in[2];
    if (c.type != Type::boolean) type_error("needs a bool condition");
    if (x.type != y.type) type_error("needs operands of one type");
    out.type = x.type;
    broadcast_loop(od, shapes, [&](int64_t, const std::vector<int64_t> &o) {
      const bool take_x = c.i[(size_t)o[0]] != 0;
      if (x.is_float()) out.f.push_back(take_x ? x.f[(size_t)o[1]] : y.f[(size_t)o[2]]);
      else out.i.push_back(take_x ? x.i[(size_t)o[1]] : y.i[(size_t)o[2]]);
    });
    return out;
  }

  if (op == "Not" || op == "And" || op == "Or" || op == "Xor") {
    for (const ConstTensor *t : in)
      if (t->type != Type::boolean) type_error("needs bool operands");
    out.type = Type::boolean;
    broadcast_loop(od, shapes, [&](int64_t, const std::vector<int64_t> &o) {
      const int64_t a = in[0]->i[(size_t)o[0]], b = in.size() > 1 ? in[1]->i[(size_t)o[1]] : 0;
      out.i.push_back(op == "Not" ? !a : op == "And" ? (a && b) : op == "Or" ? (a || b) : (a != b));
    });
    return out;
  }

  const Type t0 = in[0]->type;
  const bool is_pow = op == "Pow";
  for (const ConstTensor *t : in) {
    if (t->type != t0 && !is_pow) type_error("needs operands of one type");
    if (t->type == Type::boolean && op != "Equal") type_error("does not take bool operands");
  }

  if (op == "Equal" || op == "Less" || op == "Greater" || op == "LessOrEqual" || op == "GreaterOrEqual") {
    out.type = Type::boolean;
    broadcast_loop(od, shapes, [&](int64_t, const std::vector<int64_t> &o) {
      // Compared as their own type: floats as floats, integers exactly.
      int cmp;  // -1, 0, 1; 2 when unordered (NaN)
      if (t0 == Type::f32) {
        const float a = in[0]->f[(size_t)o[0]], b = in[1]->f[(size_t)o[1]];
        cmp = a < b ? -1 : a > b ? 1 : a == b ? 0 : 2;
      } else {
        const int64_t a = in[0]->i[(size_t)o[0]], b = in[1]->i[(size_t)o[1]];
        cmp = a < b ? -1 : a > b ? 1 : 0;
      }
      bool r = op == "Equal" ? cmp == 0
               : op == "Less" ? cmp == -1
               : op == "Greater" ? cmp == 1
               : op == "LessOrEqual" ? (cmp == -1 || cmp == 0)
                                      : (cmp == 1 || cmp == 0);
      out.i.push_back(r);
    });
    return out;
  }

  out.type = t0;
  if (t0 == Type::f32) {
    if (op == "Mod" && fmod == 0) type_error("of floats needs fmod=1");
    broadcast_loop(od, shapes, [&](int64_t, const std::vector<int64_t> &o) {
      const float a = in[0]->f[(size_t)o[0]];
      float r;
      if (op == "Neg") r = -a;
      else if (op == "Abs") r = std::fabs(a);
      else if (op == "Sqrt") r = std::sqrt(a);
      else if (op == "Reciprocal") r = 1.f / a;
      else if (op == "Floor") r = std::floor(a);
      else if (op == "Ceil") r = std::ceil(a);
      else if (op == "Min" || op == "Max") {
        r = a;
        for (size_t k = 1; k < in.size(); k++) {
          const float b = in[k]->f[(size_t)o[k]];
          if (std::isnan(b) || std::isnan(r)) r = std::numeric_limits<float>::quiet_NaN();
          else r = op == "Min" ? std::min(r, b) : std::max(r, b);
        }
      } else if (is_pow) {
        const float b = in[1]->is_float() ? in[1]->f[(size_t)o[1]] : (float)in[1]->i[(size_t)o[1]];
        r = std::pow(a, b);
      } else {
        const float b = in[1]->f[(size_t)o[1]];
        r = op == "Add" ? a + b : op == "Sub" ? a - b : op == "Mul" ? a * b : op == "Div" ? a / b : std::fmod(a, b);
      }
      out.f.push_back(r);
    });
    return out;
  }

  if (op == "Sqrt" || op == "Reciprocal" || op == "Floor" || op == "Ceil") type_error("needs float operands");
  broadcast_loop(od, shapes, [&](int64_t, const std::vector<int64_t> &o) {
    const int64_t a = in[0]->i[(size_t)o[0]];
    int64_t r;
    if (op == "Neg") r = sub_i(0, a);
    else if (op == "Abs") r = a < 0 ? sub_i(0, a) : a;
    else if (op == "Min" || op == "Max") {
      r = a;
      for (size_t k = 1; k < in.size(); k++) {
        const int64_t b = in[k]->i[(size_t)o[k]];
        r = op == "Min" ? std::min(r, b) : std::max(r, b);
      }
    } else if (is_pow && in[1]->is_float()) {
      const double p = std::pow((double)a, (double)in[1]->f[(size_t)o[1]]);
      r = float_to_int(p, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
    } else {
      const int64_t b = in[1]->i[(size_t)o[1]];
      r = op == "Add" ? add_i(a, b)
          : op == "Sub" ? sub_i(a, b)
          : op == "Mul" ? mul_i(a, b)
          : op == "Div" ? div_i(a, b)
          : op == "Mod" ? mod_i(a, b, fmod != 0)
                        : pow_i(a, b);
    }
    out.i.push_back(r);
  });
  return out;
}

ConstTensor cast(const ConstTensor &x, int64_t to) {
  enum { FLOAT = 1, INT32 = 6, INT64 = 7, BOOL = 9 };
  check_consistent(x, "input");
  ConstTensor out;
  out.dims = x.dims;
  const int64_t n = x.numel();
  if (to == FLOAT) {
    out.type = Type::f32;
    if (x.is_float()) out.f = x.f;
    else
      for (int64_t v : x.i) out.f.push_back((float)v);
  } else if (to == INT64 || to == INT32) {
    out.type = Type::i64;
    const int64_t lo = to == INT32 ? INT32_MIN : std::numeric_limits<int64_t>::min();
    const int64_t hi = to == INT32 ? INT32_MAX : std::numeric_limits<int64_t>::max();
    for (int64_t k = 0; k < n; k++) {
      if (x.is_float()) out.i.push_back(float_to_int(x.f[(size_t)k], lo, hi));
      else out.i.push_back(to == INT32 ? (int64_t)(int32_t)(uint32_t)(uint64_t)x.i[(size_t)k] : x.i[(size_t)k]);
    }
  } else if (to == BOOL) {
    out.type = Type::boolean;
    for (int64_t k = 0; k < n; k++) out.i.push_back(x.is_float() ? x.f[(size_t)k] != 0.f : x.i[(size_t)k] != 0);
  } else {
    fail("casts of compile-time values to ONNX type " + std::to_string(to) +
         " are not supported (only FLOAT, INT32, INT64 and BOOL)");
  }
  return out;
}

ConstTensor reshape(const ConstTensor &x, std::vector<int64_t> shape, bool allowzero) {
  check_consistent(x, "input");
  const int64_t n = x.numel();
  int infer = -1;
  int64_t known = 1;
  for (size_t k = 0; k < shape.size(); k++) {
    int64_t &s = shape[k];
    if (s == 0 && !allowzero) {
      if (k >= x.dims.size())
        fail("target shape copies dimension " + std::to_string(k) + " of " + dims_str(x.dims) + ", which it does not have");
      s = x.dims[k];
    }
    if (s == -1) {
      if (infer >= 0) fail("target shape has more than one -1");
      infer = (int)k;
      continue;
    }
    if (s < 0 || (s == 0 && !allowzero)) fail("invalid target shape " + dims_str(shape));
    if (s > kMaxFoldElements || known * s > kMaxFoldElements) fail("target shape " + dims_str(shape) + " is too large");
    known *= s;
  }
  if (infer >= 0) {
    if (known == 0 || n % known != 0) fail("cannot reshape " + dims_str(x.dims) + " to " + dims_str(shape));
    shape[(size_t)infer] = n / known;
    known = n;
  }
  if (known != n) fail("cannot reshape " + dims_str(x.dims) + " (" + std::to_string(n) + " values) to " + dims_str(shape));
  ConstTensor out = x;
  out.dims = shape;
  return out;
}

ConstTensor transpose(const ConstTensor &x, std::vector<int64_t> perm) {
  check_consistent(x, "input");
  const int64_t r = (int64_t)x.dims.size();
  if (perm.empty())
    for (int64_t a = r - 1; a >= 0; a--) perm.push_back(a);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  bool ok = (int64_t)perm.size() == r;
  for (int64_t a = 0; ok && a < r; a++) ok = sorted[(size_t)a] == a;
  if (!ok) fail("perm " + dims_str(perm) + " is not a permutation of the " + std::to_string(r) + " axes");
  std::vector<int64_t> od, st = strides_of(x.dims), pst;
  for (int64_t p : perm) od.push_back(x.dims[(size_t)p]), pst.push_back(st[(size_t)p]);
  std::vector<int64_t> src;
  src.reserve((size_t)x.numel());
  // The output in row-major order reads the input at sum(i[d] * stride[perm[d]]).
  std::vector<int64_t> idx(od.size(), 0);
  int64_t at = 0;
  for (int64_t e = 0, total = x.dims.empty() ? 1 : checked_numel(od); e < total; e++) {
    src.push_back(at);
    for (size_t a = od.size(); a-- > 0;) {
      at += pst[a];
      if (++idx[a] < od[a]) break;
      at -= pst[a] * od[a];
      idx[a] = 0;
    }
  }
  return take(x, od, src);
}

ConstTensor concat(const std::vector<const ConstTensor *> &in, int64_t axis) {
  if (in.empty()) fail("Concat needs at least one input");
  const ConstTensor &a = *in[0];
  const int64_t r = (int64_t)a.dims.size();
  if (r == 0) fail("cannot concatenate scalars");
  axis = normalize_axis(axis, r, "axis");
  std::vector<int64_t> od = a.dims;
  od[(size_t)axis] = 0;
  for (const ConstTensor *t : in) {
    check_consistent(*t, "input");
    if (t->type != a.type) fail("cannot concatenate " + std::string(const_type_name(a.type)) + " and " + const_type_name(t->type));
    bool same = (int64_t)t->dims.size() == r;
    for (int64_t d = 0; same && d < r; d++) same = d == axis || t->dims[(size_t)d] == a.dims[(size_t)d];
    if (!same) fail("cannot concatenate " + dims_str(a.dims) + " and " + dims_str(t->dims) + " along axis " + std::to_string(axis));
    od[(size_t)axis] += t->dims[(size_t)axis];
  }
  checked_numel(od);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; d++) outer *= od[(size_t)d];
  for (int64_t d = axis + 1; d < r; d++) inner *= od[(size_t)d];
  ConstTensor out;
  out.type = a.type;
  out.dims = od;
  for (int64_t o = 0; o < outer; o++)
    for (const ConstTensor *t : in) {
      const int64_t run = t->dims[(size_t)axis] * inner, from = o * run;
      if (t->is_float()) out.f.insert(out.f.end(), t->f.begin() + from, t->f.begin() + from + run);
      else out.i.insert(out.i.end(), t->i.begin() + from, t->i.begin() + from + run);
    }
  return out;
}

ConstTensor gather(const ConstTensor &data, const ConstTensor &indices, int64_t axis) {
  check_consistent(data, "data");
  check_consistent(indices, "indices");
  if (indices.type != Type::i64) fail("indices must be integers, got " + std::string(const_type_name(indices.type)));
  const int64_t r = (int64_t)data.dims.size();
  if (r == 0) fail("cannot gather from a scalar");
  axis = normalize_axis(axis, r, "axis");
  std::vector<int64_t> od(data.dims.begin(), data.dims.begin() + axis);
  od.insert(od.end(), indices.dims.begin(), indices.dims.end());
  od.insert(od.end(), data.dims.begin() + axis + 1, data.dims.end());
  if (!od.empty()) checked_numel(od);
  int64_t outer = 1, inner = 1;
  const int64_t d = data.dims[(size_t)axis];
  for (int64_t k = 0; k < axis; k++) outer *= data.dims[(size_t)k];
  for (int64_t k = axis + 1; k < r; k++) inner *= data.dims[(size_t)k];
  std::vector<int64_t> src;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j : indices.i) {
      if (j < -d || j >= d) fail("index " + std::to_string(j) + " is out of range for an axis of size " + std::to_string(d));
      const int64_t base = (o * d + (j < 0 ? j + d : j)) * inner;
      for (int64_t e = 0; e < inner; e++) src.push_back(base + e);
    }
  return take(data, od, src);
}

ConstTensor slice(const ConstTensor &x, const std::vector<int64_t> &starts, const std::vector<int64_t> &ends,
                  std::vector<int64_t> axes, std::vector<int64_t> steps) {
  check_consistent(x, "input");
  const int64_t r = (int64_t)x.dims.size();
  if (r == 0) fail("cannot slice a scalar");
  if (axes.empty())
    for (int64_t a = 0; a < (int64_t)starts.size(); a++) axes.push_back(a);
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    fail("starts, ends, axes and steps must have the same length");
  std::vector<int64_t> st(r, 0), sp(r, 1), sz = x.dims;
  std::vector<bool> seen(r, false);
  for (size_t k = 0; k < starts.size(); k++) {
    const int64_t a = normalize_axis(axes[k], r, "axis");
    if (seen[(size_t)a]) fail("axis " + std::to_string(a) + " is sliced twice");
    seen[(size_t)a] = true;
    const int64_t d = x.dims[(size_t)a], s = steps[k];
    if (s == 0) fail("a step of 0 is not allowed");
    int64_t lo = starts[k] < 0 ? starts[k] + d : starts[k], hi = ends[k] < 0 ? ends[k] + d : ends[k];
    // Elements lo, lo + s, ... before hi, with the bounds clamped as ONNX does.
    if (s > 0 || d == 0) {
      lo = std::clamp<int64_t>(lo, 0, d);
      hi = s > 0 ? std::clamp<int64_t>(hi, 0, d) : lo;
    } else {
      lo = std::clamp<int64_t>(lo, 0, d - 1);
      hi = std::clamp<int64_t>(hi, -1, d - 1);
    }
    const uint64_t span = s > 0 ? (uint64_t)(hi - lo) : (uint64_t)(lo - hi), step = s > 0 ? (uint64_t)s : 0 - (uint64_t)s;
    const int64_t n = (s > 0 ? hi > lo : lo > hi) ? (int64_t)((span - 1) / step + 1) : 0;
    st[(size_t)a] = lo, sp[(size_t)a] = n > 1 ? s : 1, sz[(size_t)a] = n;
  }
  checked_numel(sz);
  const std::vector<int64_t> xs = strides_of(x.dims);
  std::vector<int64_t> src, idx(r, 0);
  int64_t base = 0;
  for (int64_t a = 0; a < r; a++) base += st[(size_t)a] * xs[(size_t)a];
  int64_t at = base;
  for (int64_t e = 0, total = checked_numel(sz); e < total; e++) {
    src.push_back(at);
    for (size_t a = (size_t)r; a-- > 0;) {
      at += sp[a] * xs[a];
      if (++idx[a] < sz[a]) break;
      at -= sp[a] * xs[a] * sz[a];
      idx[a] = 0;
    }
  }
  return take(x, sz, src);
}

ConstTensor expand(const ConstTensor &x, const std::vector<int64_t> &shape) {
  check_consistent(x, "input");
  std::vector<int64_t> od = broadcast_shape({x.dims, shape});
  std::vector<int64_t> src;
  broadcast_loop(od, {x.dims}, [&](int64_t, const std::vector<int64_t> &o) { src.push_back(o[0]); });
  return take(x, od, src);
}

ConstTensor range(const ConstTensor &start, const ConstTensor &limit, const ConstTensor &delta) {
  for (const ConstTensor *t : {&start, &limit, &delta}) {
    check_consistent(*t, "operand");
    if (t->numel() != 1) fail("start, limit and delta must be scalars, got shape " + dims_str(t->dims));
    if (t->type != start.type || t->type == Type::boolean) fail("start, limit and delta must be numbers of one type");
  }
  if (start.is_float()) {
    const float s = start.f[0], l = limit.f[0], d = delta.f[0];
    if (d == 0.f || !std::isfinite(s) || !std::isfinite(l) || !std::isfinite(d)) fail("Range needs finite bounds and a non-zero delta");
    const double n = std::max(std::ceil(((double)l - (double)s) / (double)d), 0.0);
    if (n > (double)kMaxFoldElements) fail("Range would have more than " + std::to_string(kMaxFoldElements) + " elements");
    std::vector<float> v;
    for (int64_t k = 0; k < (int64_t)n; k++) v.push_back(s + (float)k * d);
    return ConstTensor::floats({(int64_t)v.size()}, std::move(v));
  }
  const int64_t s = start.i[0], l = limit.i[0], d = delta.i[0];
  if (d == 0) fail("Range needs a non-zero delta");
  uint64_t n = 0;
  if ((d > 0 && l > s) || (d < 0 && l < s)) {
    const uint64_t span = d > 0 ? (uint64_t)l - (uint64_t)s : (uint64_t)s - (uint64_t)l;
    const uint64_t step = d > 0 ? (uint64_t)d : 0 - (uint64_t)d;
    n = (span - 1) / step + 1;
  }
  if (n > (uint64_t)kMaxFoldElements) fail("Range would have more than " + std::to_string(kMaxFoldElements) + " elements");
  std::vector<int64_t> v;
  for (uint64_t k = 0; k < n; k++) v.push_back(s + (int64_t)k * d);
  return ConstTensor::ints({(int64_t)n}, std::move(v));
}

ConstTensor constant_of_shape(const std::vector<int64_t> &shape, const ConstTensor &value) {
  check_consistent(value, "value");
  if (value.numel() != 1) fail("value must hold one element, got " + std::to_string(value.numel()));
  const int64_t n = shape.empty() ? 1 : checked_numel(shape);
  ConstTensor out;
  out.type = value.type;
  out.dims = shape;
  if (value.is_float()) out.f.assign((size_t)n, value.f[0]);
  else out.i.assign((size_t)n, value.i[0]);
  return out;
}

ConstTensor scatter_nd(const ConstTensor &data, const ConstTensor &indices, const ConstTensor &updates,
                       const std::string &reduction) {
  check_consistent(data, "data");
  check_consistent(indices, "indices");
  check_consistent(updates, "updates");
  if (reduction != "none" && reduction != "add" && reduction != "mul" && reduction != "max" && reduction != "min")
    fail("unknown reduction '" + printable(reduction) + "'");
  if (indices.type != Type::i64) fail("indices must be integers, got " + std::string(const_type_name(indices.type)));
  if (updates.type != data.type) fail("updates must have the data's type");
  if (data.type == Type::boolean && reduction != "none") fail("reduction '" + reduction + "' of bool data");
  const size_t r = data.dims.size(), q = indices.dims.size();
  if (r == 0 || q == 0) fail("data and indices must have rank 1 or more");
  const int64_t k = indices.dims.back();
  if (k < 1 || k > (int64_t)r)
    fail("the last dimension of indices " + dims_str(indices.dims) + " must be between 1 and the data rank " + std::to_string(r));
  std::vector<int64_t> want(indices.dims.begin(), indices.dims.end() - 1);
  want.insert(want.end(), data.dims.begin() + k, data.dims.end());
  if (updates.dims != want)
    fail("updates have shape " + dims_str(updates.dims) + ", expected " + dims_str(want) + " for data " +
         dims_str(data.dims) + " and indices " + dims_str(indices.dims));
  const std::vector<int64_t> st = strides_of(data.dims);
  const int64_t run = k == (int64_t)r ? 1 : st[(size_t)k - 1], count = indices.numel() / k;
  ConstTensor out = data;
  for (int64_t j = 0; j < count; j++) {
    int64_t at = 0;
    for (int64_t a = 0; a < k; a++) {
      int64_t v = indices.i[(size_t)(j * k + a)];
      const int64_t d = data.dims[(size_t)a];
      if (v < -d || v >= d) fail("index " + std::to_string(v) + " is out of range for an axis of size " + std::to_string(d));
      at += (v < 0 ? v + d : v) * st[(size_t)a];
    }
    for (int64_t e = 0; e < run; e++) {
      const size_t o = (size_t)(at + e), u = (size_t)(j * run + e);
      if (out.is_float()) {
        float &x = out.f[o];
        const float y = updates.f[u];
        x = reduction == "none" ? y : reduction == "add" ? x + y : reduction == "mul" ? x * y
            : reduction == "max" ? std::max(x, y) : std::min(x, y);
      } else {
        int64_t &x = out.i[o];
        const int64_t y = updates.i[u];
        x = reduction == "none" ? y : reduction == "add" ? add_i(x, y) : reduction == "mul" ? mul_i(x, y)
            : reduction == "max" ? std::max(x, y) : std::min(x, y);
      }
    }
  }
  return out;
}

}  // namespace const_eval
}  // namespace qnnc
