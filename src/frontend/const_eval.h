// Evaluation of ONNX operators on tensors known at import time. Exporters compute more than
// shapes from shapes: Swin's shifted-window attention mask (ConstantOfShape, ScatterND, Range,
// Mod, Equal, Not, Where on floats) and its relative-position bias (Gather from a parameter
// table by a constant index, Reshape, Transpose) are functions of constants only. The importer
// evaluates every such node here, so it never becomes a graph node or a kernel.
//
// Each function checks its operands and throws qnnc::Error (no node name: the importer adds it).
// Results are capped at kMaxFoldElements elements; they may be empty (shape arithmetic slices
// and concatenates empty shape vectors), but the importer refuses an empty tensor where the
// graph would read it. Integer arithmetic that would overflow int64 is refused, not wrapped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnnc {

// Largest tensor the importer computes at compile time (elements).
constexpr int64_t kMaxFoldElements = int64_t(1) << 24;

// A tensor known at compile time: float32, int64 (also holding INT32 values) or bool.
struct ConstTensor {
  enum class Type { f32, i64, boolean };
  Type type = Type::f32;
  std::vector<int64_t> dims;  // empty: a scalar
  std::vector<float> f;       // f32 values, row-major
  std::vector<int64_t> i;     // i64 and bool (0 or 1) values, row-major

  static ConstTensor floats(std::vector<int64_t> dims, std::vector<float> v);
  static ConstTensor ints(std::vector<int64_t> dims, std::vector<int64_t> v);
  static ConstTensor bools(std::vector<int64_t> dims, std::vector<int64_t> v);

  bool is_float() const { return type == Type::f32; }
  int64_t numel() const { return is_float() ? (int64_t)f.size() : (int64_t)i.size(); }
};

const char *const_type_name(ConstTensor::Type t);

namespace const_eval {

// Number of elements of `dims` (checked: non-negative, at most kMaxFoldElements).
int64_t checked_numel(const std::vector<int64_t> &dims);

// Numpy (multidirectional) broadcasting of shapes.
std::vector<int64_t> broadcast_shape(const std::vector<std::vector<int64_t>> &shapes);

// Elementwise operators with numpy broadcasting:
//   binary  Add Sub Mul Div (integers truncate toward zero) Mod (fmod 0: sign of the divisor,
//           integers only; fmod 1: sign of the dividend) Pow (result has the base's type)
//           Equal Less Greater LessOrEqual GreaterOrEqual (-> bool) And Or Xor (bool)
//           Min Max (two or more operands)
//   unary   Neg Abs Sqrt Reciprocal Floor Ceil (numbers), Not (bool)
//   Where   (condition, x, y)
// Returns false when `op` is none of these.
bool is_elementwise(const std::string &op);
ConstTensor elementwise(const std::string &op, const std::vector<const ConstTensor *> &in, int64_t fmod = 0);

// Cast to an ONNX element type: FLOAT, INT64, INT32 (kept as int64 values in int32 range) or BOOL.
ConstTensor cast(const ConstTensor &x, int64_t onnx_type);
ConstTensor reshape(const ConstTensor &x, std::vector<int64_t> shape, bool allowzero);
ConstTensor transpose(const ConstTensor &x, std::vector<int64_t> perm);  // empty perm: reverse
ConstTensor concat(const std::vector<const ConstTensor *> &in, int64_t axis);
ConstTensor gather(const ConstTensor &data, const ConstTensor &indices, int64_t axis);
// ONNX Slice: starts/ends clamped per axis, negative steps allowed; axes and steps may be empty.
ConstTensor slice(const ConstTensor &x, const std::vector<int64_t> &starts, const std::vector<int64_t> &ends,
                  std::vector<int64_t> axes, std::vector<int64_t> steps);
ConstTensor expand(const ConstTensor &x, const std::vector<int64_t> &shape);
ConstTensor range(const ConstTensor &start, const ConstTensor &limit, const ConstTensor &delta);
ConstTensor constant_of_shape(const std::vector<int64_t> &shape, const ConstTensor &value);
// ScatterND with reduction "none", "add" or "mul".
ConstTensor scatter_nd(const ConstTensor &data, const ConstTensor &indices, const ConstTensor &updates,
                       const std::string &reduction);

}  // namespace const_eval
}  // namespace qnnc
