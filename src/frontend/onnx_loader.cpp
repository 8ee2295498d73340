// ONNX importer. Lowers the default-domain ONNX operators that qnnc compiles into canonical qnnc
// nodes: window attributes are made explicit (auto_pad is resolved into pads), Gemm and MatMul
// are normalised to Y = X * W^T + B with a constant [out, in] weight, Identity and Dropout are
// removed by aliasing, and int64 shape tensors are folded into Reshape's "shape" attribute.
// Every node whose inputs are all known at compile time (constants, shapes, earlier such
// results; float, int64 or bool) is evaluated here (fold_const_op, frontend/const_eval.h):
// shape arithmetic, and constant subgraphs such as Swin's attention mask. Constants are added
// to the graph lazily, when a node first reads them, so unused or shape-only tensors never
// become graph values. Every size and index read from the file is
// checked, so a malformed model produces a qnnc::Error rather than a crash.
#include "frontend/onnx_loader.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <climits>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "frontend/const_eval.h"
#include "ir/shape_infer.h"
#include "onnx/onnx.pb.h"

namespace qnnc {
namespace {

constexpr int64_t kMinOpset = 7, kMaxOpset = 21;

// Upper bound on any single dimension, window size, stride or pad read from a model. It keeps
// the shape arithmetic downstream (products, dilated kernel extents) far from int64 overflow.
constexpr int64_t kMaxDim = INT32_MAX;

// Upper bound on the values constant folding computes over a whole model (each result is also
// capped at kMaxFoldElements): keeps a hostile model from exhausting memory at import.
constexpr int64_t kMaxFoldedPerModel = int64_t(1) << 25;

// A name read from the model, quoted and escaped for a message (see printable()).
std::string quote(const std::string &s) { return "'" + printable(s) + "'"; }
// The model's path or label, quoted and escaped but not shortened.
std::string quote_path(const std::string &s) { return "'" + printable(s, std::string::npos) + "'"; }

std::string shape_str(const std::vector<int64_t> &s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); i++) os << (i ? "," : "") << s[i];
  return os.str() + "]";
}

// Name of an ONNX element type, e.g. "FLOAT" or "INT64".
std::string onnx_dtype_name(int32_t t) {
  if (onnx::TensorProto_DataType_IsValid(t)) {
    const std::string &n = onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t));
    if (!n.empty()) return n;
  }
  return "data type " + std::to_string(t);
}

// ---------------------------------------------------------------------------------------------
// Tensor decoding

// Product of dims that are each in [0, kMaxDim]; -1 when one is not or the product overflows.
int64_t checked_product(const std::vector<int64_t> &dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || d > kMaxDim || (d != 0 && n > INT64_MAX / d)) return -1;
    n *= d;
  }
  return n;
}

// Number of elements of a tensor with the given dims, which must not be zero.
int64_t element_count(const std::vector<int64_t> &dims, const std::string &name) {
  int64_t n = checked_product(dims);
  if (n < 0) throw Error("tensor '" + printable(name) + "' has an invalid shape " + shape_str(dims));
  if (n == 0)
    throw Error("tensor '" + printable(name) + "' of shape " + shape_str(dims) +
                " is empty; qnnc does not support empty tensors");
  return n;
}

// Pointer to the little-endian raw_data of a tensor holding `n` elements of `elem_bytes` each,
// or nullptr when the tensor stores its values in the typed repeated field instead.
const unsigned char *raw_elements(const onnx::TensorProto &t, const std::string &name, int64_t n,
                                  size_t elem_bytes, const std::vector<int64_t> &dims) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error("tensor '" + printable(name) +
                "' keeps its data in an external file; load the model from its file (qnnc reads the "
                "external data beside it), or save it with the weights inside");
  if (!t.has_raw_data()) return nullptr;
  const std::string &raw = t.raw_data();
  if (raw.size() % elem_bytes != 0 ||
      static_cast<uint64_t>(raw.size() / elem_bytes) != static_cast<uint64_t>(n))
    throw Error("tensor '" + printable(name) + "' has " + std::to_string(raw.size()) + " bytes of data, but its shape " +
                shape_str(dims) + " needs " + std::to_string(n) + " elements of " +
                std::to_string(elem_bytes) + " bytes");
  return reinterpret_cast<const unsigned char *>(raw.data());
}

void check_value_count(int64_t have, int64_t want, const std::string &name,
                       const std::vector<int64_t> &dims) {
  if (have != want)
    throw Error("tensor '" + printable(name) + "' has " + std::to_string(have) + " values, but its shape " +
                shape_str(dims) + " needs " + std::to_string(want));
}

// Contents of a FLOAT tensor; its dims are stored in *dims.
std::vector<float> decode_floats(const onnx::TensorProto &t, const std::string &name,
                                 std::vector<int64_t> *dims) {
  dims->assign(t.dims().begin(), t.dims().end());
  int64_t n = element_count(*dims, name);
  if (const unsigned char *p = raw_elements(t, name, n, 4, *dims)) {
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++, p += 4) {
      uint32_t bits = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      std::memcpy(&out[i], &bits, 4);
    }
    return out;
  }
  check_value_count(t.float_data_size(), n, name, *dims);
  return std::vector<float>(t.float_data().begin(), t.float_data().end());
}

// Contents of an INT64 tensor; its dims are stored in *dims.
std::vector<int64_t> decode_int64s(const onnx::TensorProto &t, const std::string &name,
                                   std::vector<int64_t> *dims) {
  dims->assign(t.dims().begin(), t.dims().end());
  int64_t n = element_count(*dims, name);
  if (const unsigned char *p = raw_elements(t, name, n, 8, *dims)) {
    std::vector<int64_t> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++, p += 8) {
      uint64_t bits = 0;
      for (int b = 7; b >= 0; b--) bits = bits << 8 | p[b];
      std::memcpy(&out[i], &bits, 8);
    }
    return out;
  }
  check_value_count(t.int64_data_size(), n, name, *dims);
  return std::vector<int64_t>(t.int64_data().begin(), t.int64_data().end());
}

// Contents of a FLOAT, INT64, INT32 or BOOL tensor as a compile-time value; false for other
// element types.
bool decode_const(const onnx::TensorProto &t, const std::string &name, ConstTensor *out) {
  std::vector<int64_t> dims;
  const auto type = t.data_type();
  if (checked_product(std::vector<int64_t>(t.dims().begin(), t.dims().end())) == 0) {
    // Empty (shape arithmetic makes them, e.g. Shape(x)[2:] of a 2-D x): no values to read.
    if (type != onnx::TensorProto::FLOAT && type != onnx::TensorProto::INT64 && type != onnx::TensorProto::INT32 &&
        type != onnx::TensorProto::BOOL)
      return false;
    dims.assign(t.dims().begin(), t.dims().end());
    *out = type == onnx::TensorProto::FLOAT  ? ConstTensor::floats(dims, {})
           : type == onnx::TensorProto::BOOL ? ConstTensor::bools(dims, {})
                                             : ConstTensor::ints(dims, {});
    return true;
  }
  switch (type) {
    case onnx::TensorProto::FLOAT: {
      std::vector<float> v = decode_floats(t, name, &dims);
      *out = ConstTensor::floats(dims, std::move(v));
      return true;
    }
    case onnx::TensorProto::INT64: {
      std::vector<int64_t> v = decode_int64s(t, name, &dims);
      *out = ConstTensor::ints(dims, std::move(v));
      return true;
    }
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::BOOL: {  // both in int32_data, or raw (4 bytes / 1 byte each)
      const bool is_bool = t.data_type() == onnx::TensorProto::BOOL;
      dims.assign(t.dims().begin(), t.dims().end());
      const int64_t n = element_count(dims, name);
      std::vector<int64_t> v;
      const size_t width = is_bool ? 1 : 4;
      if (const unsigned char *p = raw_elements(t, name, n, width, dims)) {
        for (int64_t i = 0; i < n; i++, p += width) {
          uint32_t bits = is_bool ? p[0] : uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
          int32_t x;
          std::memcpy(&x, &bits, 4);
          v.push_back(is_bool ? (bits != 0) : x);
        }
      } else {
        check_value_count(t.int32_data_size(), n, name, dims);
        for (int32_t x : t.int32_data()) v.push_back(is_bool ? (x != 0) : x);
      }
      *out = is_bool ? ConstTensor::bools(dims, std::move(v)) : ConstTensor::ints(dims, std::move(v));
      return true;
    }
    default:
      return false;
  }
}

// A compile-time value as a tensor named `name`: FLOAT, INT64 or BOOL, little-endian raw data.
onnx::TensorProto encode_const(const ConstTensor &c, const std::string &name) {
  onnx::TensorProto t;
  t.set_name(name);
  for (int64_t d : c.dims) t.add_dims(d);
  std::string raw;
  if (c.is_float()) {
    t.set_data_type(onnx::TensorProto::FLOAT);
    raw.resize(c.f.size() * 4);
    for (size_t i = 0; i < c.f.size(); i++) {
      uint32_t bits;
      std::memcpy(&bits, &c.f[i], 4);
      for (int b = 0; b < 4; b++) raw[i * 4 + b] = (char)(bits >> (8 * b));
    }
  } else if (c.type == ConstTensor::Type::i64) {
    t.set_data_type(onnx::TensorProto::INT64);
    raw.resize(c.i.size() * 8);
    for (size_t i = 0; i < c.i.size(); i++)
      for (int b = 0; b < 8; b++) raw[i * 8 + b] = (char)((uint64_t)c.i[i] >> (8 * b));
  } else {
    t.set_data_type(onnx::TensorProto::BOOL);
    for (int64_t v : c.i) raw.push_back(v ? 1 : 0);
  }
  t.set_raw_data(std::move(raw));
  return t;
}

// ---------------------------------------------------------------------------------------------
// Node access

// One ONNX node being lowered, with checked access to its inputs, outputs and attributes.
class NodeRef {
 public:
  NodeRef(const onnx::NodeProto &p, int index)
      : p_(p), name_(p.name().empty() ? p.op_type() + "_" + std::to_string(index) : p.name()) {}

  const std::string &op() const { return p_.op_type(); }
  const std::string &name() const { return name_; }
  const std::string &domain() const { return p_.domain(); }

  [[noreturn]] void fail(const std::string &msg) const {
    throw Error("node '" + printable(name_) + "' (" + printable(op()) + "): " + msg);
  }

  // The k-th input or output name; empty when absent (ONNX writes "" for an omitted optional).
  const std::string &input(int k) const { return k < p_.input_size() ? p_.input(k) : empty(); }
  const std::string &output(int k) const { return k < p_.output_size() ? p_.output(k) : empty(); }
  int num_outputs() const { return p_.output_size(); }
  int num_inputs() const { return p_.input_size(); }

  // Requires inputs [0, required) to be present and none at or beyond `max`.
  void expect_inputs(int required, int max) const {
    for (int k = 0; k < required; k++)
      if (input(k).empty()) fail("required input " + std::to_string(k) + " is missing");
    for (int k = max; k < p_.input_size(); k++)
      if (!p_.input(k).empty())
        fail("takes at most " + std::to_string(max) + " inputs, got " + std::to_string(p_.input_size()));
  }

  const onnx::AttributeProto *attr(const std::string &key) const {
    for (const auto &a : p_.attribute())
      if (a.name() == key) return &a;
    return nullptr;
  }

  int64_t get_i(const std::string &key, int64_t dflt) const {
    const auto *a = typed_attr(key, onnx::AttributeProto::INT, "an int");
    return a ? a->i() : dflt;
  }
  float get_f(const std::string &key, float dflt) const {
    const auto *a = typed_attr(key, onnx::AttributeProto::FLOAT, "a float");
    return a ? a->f() : dflt;
  }
  std::string get_s(const std::string &key, const std::string &dflt) const {
    const auto *a = typed_attr(key, onnx::AttributeProto::STRING, "a string");
    return a ? a->s() : dflt;
  }
  std::vector<int64_t> get_ints(const std::string &key, std::vector<int64_t> dflt = {}) const {
    const auto *a = typed_attr(key, onnx::AttributeProto::INTS, "a list of ints");
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : dflt;
  }
  std::vector<float> get_floats(const std::string &key) const {
    const auto *a = typed_attr(key, onnx::AttributeProto::FLOATS, "a list of floats");
    return a ? std::vector<float>(a->floats().begin(), a->floats().end()) : std::vector<float>();
  }
  const onnx::TensorProto *get_t(const std::string &key) const {
    const auto *a = typed_attr(key, onnx::AttributeProto::TENSOR, "a tensor");
    return a ? &a->t() : nullptr;
  }

 private:
  static const std::string &empty() {
    static const std::string e;
    return e;
  }

  // The attribute `key` when present, checked to have type `want`. Very old exporters leave the
  // type field UNDEFINED; such attributes are accepted when the matching field is filled in.
  const onnx::AttributeProto *typed_attr(const std::string &key, onnx::AttributeProto::AttributeType want,
                                         const char *what) const {
    const auto *a = attr(key);
    if (!a || a->type() == want) return a;
    if (a->type() == onnx::AttributeProto::UNDEFINED) {
      bool filled = (want == onnx::AttributeProto::INT && a->has_i()) ||
                    (want == onnx::AttributeProto::FLOAT && a->has_f()) ||
                    (want == onnx::AttributeProto::STRING && a->has_s()) ||
                    (want == onnx::AttributeProto::TENSOR && a->has_t()) ||
                    (want == onnx::AttributeProto::INTS && a->ints_size() > 0) ||
                    (want == onnx::AttributeProto::FLOATS && a->floats_size() > 0);
      if (filled) return a;
    }
    fail("attribute '" + key + "' must be " + what);
  }

  const onnx::NodeProto &p_;
  std::string name_;
};

// The shape after an Unsqueeze (a 1 inserted at each of `axes` of the result) or a Squeeze
// (the listed axes of size 1 removed; no axes: every axis of size 1) of node n.
std::vector<int64_t> squeezed_shape(const NodeRef &n, std::vector<int64_t> s, std::vector<int64_t> axes) {
  if (n.op() == "Unsqueeze") {
    const int64_t r = (int64_t)(s.size() + axes.size());
    for (auto &a : axes) a = a < 0 ? a + r : a;
    std::sort(axes.begin(), axes.end());
    for (int64_t a : axes) {
      if (a < 0 || a > (int64_t)s.size()) n.fail("axes are out of range");
      s.insert(s.begin() + a, 1);
    }
    return s;
  }
  const int64_t r = (int64_t)s.size();
  std::vector<int64_t> kept;
  for (int64_t a = 0; a < r; a++) {
    bool listed = std::count(axes.begin(), axes.end(), a) + std::count(axes.begin(), axes.end(), a - r) > 0;
    if (listed && s[a] != 1) n.fail("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(s[a]));
    if (!(axes.empty() ? s[a] == 1 : listed)) kept.push_back(s[a]);
  }
  return kept;
}

// Resolved sliding-window attributes of a Conv or pooling node.
struct Window {
  std::vector<int64_t> strides, pads, dilations;
};

// ---------------------------------------------------------------------------------------------
// Importer

class Importer {
 public:
  Importer(const onnx::GraphProto &gp, const std::string &what, const std::vector<int64_t> &input_shape)
      : gp_(gp), what_(what), input_shape_(input_shape) {}

  Graph run();

 private:
  using Lowering = void (Importer::*)(const NodeRef &);
  static const std::map<std::string, Lowering> &lowerings();
  static std::string supported_ops();

  [[noreturn]] void fail_at(const NodeRef *n, const std::string &msg) const {
    if (n) n->fail(msg);
    throw Error(quote_path(what_) + ": " + msg);
  }

  void collect_names();
  void add_initializers();
  void add_input();
  std::vector<int64_t> input_dims(const onnx::ValueInfoProto &vi) const;
  void add_outputs();
  void lower(const NodeRef &n);

  // Value table.
  std::string unique_name(const std::string &base);
  void claim(const NodeRef &n, const std::string &name) const;
  int value(const NodeRef *n, const std::string &name);
  int value(const NodeRef &n, const std::string &name) { return value(&n, name); }
  int const_value(const NodeRef &n, const std::string &name, const char *role);
  std::vector<float> const_floats(const NodeRef &n, const std::string &name, std::vector<int64_t> *dims,
                                  const char *role);
  Node make_node(const NodeRef &n, const std::string &op) const;
  int emit(const NodeRef &n, Node node);
  void mark_extra_outputs(const NodeRef &n);
  const std::vector<int64_t> &shape_of(int v);
  void infer();

  // Shared pieces of the lowerings.
  Window window(const NodeRef &n, int x, const std::vector<int64_t> &kernel, bool allow_dilation);
  int dense_weight(const NodeRef &n, const std::string &name, bool transpose, float scale);
  int dense_bias(const NodeRef &n, const std::string &name, int64_t out, float beta);
  bool fold_bias_add(const NodeRef &n);

  // One lowering per supported ONNX operator.
  void lower_conv(const NodeRef &n);
  void lower_batchnorm(const NodeRef &n);
  void lower_unary(const NodeRef &n);
  void lower_clip(const NodeRef &n);
  void lower_activation(const NodeRef &n);
  void lower_binary(const NodeRef &n);
  void lower_reduce_mean(const NodeRef &n);
  void lower_concat(const NodeRef &n);
  void lower_pad(const NodeRef &n);
  void lower_pool(const NodeRef &n);
  void lower_flatten(const NodeRef &n);
  void lower_add(const NodeRef &n);
  void lower_gemm(const NodeRef &n);
  void lower_matmul(const NodeRef &n);
  void lower_reshape(const NodeRef &n);
  void lower_alias(const NodeRef &n);
  void lower_constant(const NodeRef &n);
  void lower_shape(const NodeRef &n);
  void lower_const_only(const NodeRef &n);
  void lower_expand(const NodeRef &n);
  void lower_softmax(const NodeRef &n);
  void lower_cast(const NodeRef &n);
  void lower_transpose(const NodeRef &n);
  void lower_slice(const NodeRef &n);
  void lower_split(const NodeRef &n);
  void lower_gather(const NodeRef &n);
  void lower_squeeze(const NodeRef &n);
  void lower_pow(const NodeRef &n);
  void lower_layernorm(const NodeRef &n);

  // Shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains): int64 tensors
  // known at compile time, evaluated here and never part of the graph.
  bool int_const(const std::string &name, std::vector<int64_t> *dims, std::vector<int64_t> *vals) const;
  std::vector<int64_t> int_input(const NodeRef &n, int k, const char *role);
  void define_int_const(const NodeRef &n, int k, std::vector<int64_t> dims, std::vector<int64_t> vals);
  // Constant folding: any node of a foldable operator whose inputs are all known at compile time
  // (initializers, Constant nodes, shapes, earlier folded results) is evaluated here
  // (frontend/const_eval.h) and its output recorded as a constant; it never reaches the graph.
  bool const_input(const std::string &name, ConstTensor *out) const;
  void define_const(const NodeRef &n, int k, const ConstTensor &c);
  bool fold_const_op(const NodeRef &n);
  ConstTensor evaluate(const NodeRef &n, const std::vector<const ConstTensor *> &in);
  // Emits a Slice of x (full-rank starts/steps, output shape) as output k of n.
  int emit_slice(const NodeRef &n, int k, int x, std::vector<int64_t> starts, std::vector<int64_t> steps,
                 std::vector<int64_t> sizes);
  int emit_reshape(const NodeRef &n, int k, int x, const std::vector<int64_t> &shape);
  int emit_at(const NodeRef &n, int k, Node node);

  const onnx::GraphProto &gp_;
  std::string what_;
  std::vector<int64_t> input_shape_;
  Graph g_;

  std::unordered_map<std::string, int> vals_;                           // ONNX name -> graph value
  std::unordered_map<std::string, const onnx::TensorProto *> tensors_;  // constant tensors by name
  std::deque<onnx::TensorProto> owned_;                                 // tensors made from Constant nodes
  std::unordered_map<const onnx::TensorProto *, int> materialized_;     // constant tensors in the graph
  std::unordered_map<std::string, std::string> unavailable_;            // outputs qnnc does not compute
  std::unordered_set<std::string> names_;      // every value name, taken or generated
  std::unordered_map<std::string, int> uses_;  // ONNX readers of each name
  std::unordered_map<int, int> matmul_bias_;   // Gemm output from MatMul -> its (still zero) bias
  size_t inferred_ = 0;                        // nodes whose output types are known
  int64_t folded_elements_ = 0;                // values computed by fold_const_op so far
};

const std::map<std::string, Importer::Lowering> &Importer::lowerings() {
  static const std::map<std::string, Lowering> table = {
      {"Add", &Importer::lower_add},
      {"AveragePool", &Importer::lower_pool},
      {"And", &Importer::lower_const_only},
      {"Abs", &Importer::lower_const_only},
      {"Ceil", &Importer::lower_const_only},
      {"ConstantOfShape", &Importer::lower_const_only},
      {"Equal", &Importer::lower_const_only},
      {"Floor", &Importer::lower_const_only},
      {"Greater", &Importer::lower_const_only},
      {"GreaterOrEqual", &Importer::lower_const_only},
      {"Less", &Importer::lower_const_only},
      {"LessOrEqual", &Importer::lower_const_only},
      {"Max", &Importer::lower_const_only},
      {"Min", &Importer::lower_const_only},
      {"Mod", &Importer::lower_const_only},
      {"Neg", &Importer::lower_const_only},
      {"Not", &Importer::lower_const_only},
      {"Or", &Importer::lower_const_only},
      {"Range", &Importer::lower_const_only},
      {"Reciprocal", &Importer::lower_const_only},
      {"ScatterND", &Importer::lower_const_only},
      {"Xor", &Importer::lower_const_only},
      {"Erf", &Importer::lower_activation},
      {"Expand", &Importer::lower_expand},
      {"Softmax", &Importer::lower_softmax},
      {"Where", &Importer::lower_const_only},
      {"Gather", &Importer::lower_gather},
      {"LayerNormalization", &Importer::lower_layernorm},
      {"Pow", &Importer::lower_pow},
      {"Shape", &Importer::lower_shape},
      {"Slice", &Importer::lower_slice},
      {"Split", &Importer::lower_split},
      {"Sqrt", &Importer::lower_activation},
      {"Squeeze", &Importer::lower_squeeze},
      {"Transpose", &Importer::lower_transpose},
      {"Unsqueeze", &Importer::lower_squeeze},
      {"BatchNormalization", &Importer::lower_batchnorm},
      {"Clip", &Importer::lower_clip},
      {"Cast", &Importer::lower_cast},
      {"Concat", &Importer::lower_concat},
      {"Constant", &Importer::lower_constant},
      {"Div", &Importer::lower_binary},
      {"HardSigmoid", &Importer::lower_activation},
      {"HardSwish", &Importer::lower_activation},
      {"Mul", &Importer::lower_binary},
      {"ReduceMean", &Importer::lower_reduce_mean},
      {"Sigmoid", &Importer::lower_activation},
      {"Sub", &Importer::lower_binary},
      {"Tanh", &Importer::lower_activation},
      {"Conv", &Importer::lower_conv},
      {"Dropout", &Importer::lower_alias},
      {"Flatten", &Importer::lower_flatten},
      {"Gemm", &Importer::lower_gemm},
      {"GlobalAveragePool", &Importer::lower_unary},
      {"Identity", &Importer::lower_alias},
      {"MatMul", &Importer::lower_matmul},
      {"MaxPool", &Importer::lower_pool},
      {"Pad", &Importer::lower_pad},
      {"Relu", &Importer::lower_unary},
      {"Reshape", &Importer::lower_reshape},
  };
  return table;
}

std::string Importer::supported_ops() {
  std::string s;
  for (const auto &kv : lowerings()) s += (s.empty() ? "" : ", ") + kv.first;
  return s;
}

Graph Importer::run() {
  g_.name = gp_.name();
  collect_names();
  add_initializers();
  add_input();
  for (int i = 0; i < gp_.node_size(); i++) lower(NodeRef(gp_.node(i), i));
  add_outputs();
  infer();
  g_.verify();
  return std::move(g_);
}

void Importer::collect_names() {
  for (const auto &t : gp_.initializer()) names_.insert(t.name());
  for (const auto &vi : gp_.input()) names_.insert(vi.name());
  for (const auto &node : gp_.node()) {
    for (const auto &o : node.output()) names_.insert(o);
    for (const auto &i : node.input())
      if (!i.empty()) uses_[i]++;
  }
  for (const auto &vi : gp_.output()) uses_[vi.name()]++;
}

void Importer::add_initializers() {
  if (gp_.sparse_initializer_size() > 0)
    throw Error(quote_path(what_) + ": sparse initializers are not supported");
  for (const auto &t : gp_.initializer()) {
    if (t.name().empty()) throw Error(quote_path(what_) + ": an initializer has no name");
    if (!tensors_.emplace(t.name(), &t).second)
      throw Error(quote_path(what_) + ": initializer '" + printable(t.name()) + "' is defined twice");
  }
}

// The runtime input is the one graph input that is not also an initializer (older exporters
// list every weight as an input too).
void Importer::add_input() {
  std::vector<const onnx::ValueInfoProto *> ins;
  std::string listed;
  for (const auto &vi : gp_.input()) {
    if (tensors_.count(vi.name())) continue;
    ins.push_back(&vi);
    listed += (listed.empty() ? "" : ", ") + quote(vi.name());
  }
  if (ins.size() != 1)
    throw Error(quote_path(what_) + ": qnnc expects exactly one (image) input, the model has " +
                std::to_string(ins.size()) + (ins.empty() ? "" : " (" + listed + ")"));
  const onnx::ValueInfoProto &vi = *ins[0];
  if (vi.name().empty()) throw Error(quote_path(what_) + ": the model input has no name");
  if (!vi.type().has_tensor_type()) throw Error(quote_path(what_) + ": input '" + printable(vi.name()) + "' is not a tensor");
  int32_t elem = vi.type().tensor_type().elem_type();
  if (elem != onnx::TensorProto::FLOAT)
    throw Error(quote_path(what_) + ": input '" + printable(vi.name()) + "' has element type " + onnx_dtype_name(elem) +
                "; qnnc only supports FLOAT inputs");

  TensorType t;
  t.shape = input_dims(vi);
  const int64_t count = checked_product(t.shape);
  if (count < 0 || count > INT32_MAX)
    throw Error(quote_path(what_) + ": input '" + printable(vi.name()) + "' shape " + shape_str(t.shape) +
                " is too large (at most " + std::to_string(INT32_MAX) + " elements)");
  if (t.shape.size() == 4) t.layout = Layout::NCHW;
  int v = g_.add_value(vi.name(), t);
  vals_[vi.name()] = v;
  g_.inputs = {v};
}

// Input shape: the override when given, else the declared one with a symbolic batch set to 1.
std::vector<int64_t> Importer::input_dims(const onnx::ValueInfoProto &vi) const {
  const auto &tt = vi.type().tensor_type();
  const std::string who = quote_path(what_) + ": input '" + printable(vi.name()) + "'";
  if (!input_shape_.empty()) {
    for (int64_t d : input_shape_)
      if (d <= 0 || d > kMaxDim)
        throw Error("input shape " + shape_str(input_shape_) + " must have positive dimensions");
    if (tt.has_shape() && tt.shape().dim_size() != static_cast<int>(input_shape_.size()))
      throw Error(who + " has rank " + std::to_string(tt.shape().dim_size()) + ", but the input shape " +
                  shape_str(input_shape_) + " has rank " + std::to_string(input_shape_.size()));
    return input_shape_;
  }
  if (!tt.has_shape()) throw Error(who + " has no declared shape; pass --input-shape");
  std::vector<int64_t> dims;
  for (int k = 0; k < tt.shape().dim_size(); k++) {
    const auto &d = tt.shape().dim(k);
    if (d.has_dim_value()) {
      if (d.dim_value() <= 0 || d.dim_value() > kMaxDim)
        throw Error(who + " has invalid dimension " + std::to_string(d.dim_value()) + " at axis " +
                    std::to_string(k));
      dims.push_back(d.dim_value());
    } else if (k == 0) {
      dims.push_back(1);  // symbolic batch: compile for one image
    } else {
      std::string sym = d.has_dim_param() ? " ('" + printable(d.dim_param()) + "')" : "";
      throw Error(who + " has a symbolic dimension" + sym + " at axis " + std::to_string(k) +
                  "; pass --input-shape, e.g. --input-shape 1,3,224,224");
    }
  }
  return dims;
}

void Importer::add_outputs() {
  if (gp_.output_size() == 0) throw Error(quote_path(what_) + ": the graph has no outputs");
  for (const auto &vi : gp_.output()) {
    const std::string &name = vi.name();
    auto u = unavailable_.find(name);
    if (u != unavailable_.end())
      throw Error(quote_path(what_) + ": graph output '" + printable(name) + "' is " + u->second +
                  ", which qnnc does not compute");
    if (!vals_.count(name) && !tensors_.count(name))
      throw Error(quote_path(what_) + ": graph output '" + printable(name) + "' is not produced by any node");
    g_.outputs.push_back(value(nullptr, name));
  }
}

void Importer::lower(const NodeRef &n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx")
    throw Error("operator '" + printable(n.op()) + "' (node '" + printable(n.name()) + "') is from domain '" + printable(n.domain()) +
                "'; qnnc only supports the default ONNX domain");
  auto it = lowerings().find(n.op());
  if (it == lowerings().end())
    throw Error("unsupported operator '" + printable(n.op()) + "' (node '" + printable(n.name()) +
                "'); qnnc supports: " + supported_ops());
  if (n.output(0).empty()) n.fail("has no output");
  if (fold_const_op(n)) return;
  (this->*it->second)(n);
}

// ---------------------------------------------------------------------------------------------
// Value table

std::string Importer::unique_name(const std::string &base) {
  std::string name = base;
  for (int k = 1; names_.count(name); k++) name = base + "_" + std::to_string(k);
  names_.insert(name);
  return name;
}

// Checks that `name` is not defined yet (ONNX graphs are in SSA form).
void Importer::claim(const NodeRef &n, const std::string &name) const {
  if (vals_.count(name) || tensors_.count(name) || unavailable_.count(name))
    n.fail("output '" + printable(name) + "' is already defined elsewhere in the graph");
}

// The graph value named `name`, adding float constants on first use. `n` is the reading node,
// or null for a graph output.
int Importer::value(const NodeRef *n, const std::string &name) {
  auto v = vals_.find(name);
  if (v != vals_.end()) return v->second;
  auto t = tensors_.find(name);
  if (t != tensors_.end()) {
    int32_t type = t->second->data_type();
    if (type == onnx::TensorProto::INT64)
      fail_at(n, "int64 tensor '" + printable(name) + "' can only be used as the shape input of Reshape");
    if (type != onnx::TensorProto::FLOAT)
      fail_at(n, "constant '" + printable(name) + "' has element type " + onnx_dtype_name(type) +
                     "; qnnc supports FLOAT weights (and INT64 Reshape shapes) only");
    auto shared = materialized_.find(t->second);  // another name (alias) of a tensor already added
    if (shared != materialized_.end()) return vals_[name] = shared->second;
    std::vector<int64_t> dims;
    std::vector<float> data = decode_floats(*t->second, name, &dims);
    int c = g_.add_const(name, std::move(dims), std::move(data));
    materialized_[t->second] = c;
    return vals_[name] = c;
  }
  auto u = unavailable_.find(name);
  if (u != unavailable_.end())
    fail_at(n, "reads '" + printable(name) + "', " + u->second + ", which qnnc does not compute");
  fail_at(n,
          "reads unknown value '" + printable(name) + "' (not a graph input, initializer or output of an earlier node)");
}

// The graph value of an operand that later passes read as data (weights, biases, statistics).
int Importer::const_value(const NodeRef &n, const std::string &name, const char *role) {
  int v = value(n, name);
  if (!g_.values[v].is_const())
    n.fail(std::string(role) + " '" + printable(name) + "' must be a constant (initializer or Constant)");
  return v;
}

// Contents of a constant FLOAT operand without adding it to the graph (for operands that are
// transformed before use).
std::vector<float> Importer::const_floats(const NodeRef &n, const std::string &name,
                                          std::vector<int64_t> *dims, const char *role) {
  auto t = tensors_.find(name);
  if (t != tensors_.end() && !vals_.count(name)) {
    if (t->second->data_type() != onnx::TensorProto::FLOAT)
      n.fail(std::string(role) + " '" + printable(name) + "' must be FLOAT, got " +
             onnx_dtype_name(t->second->data_type()));
    return decode_floats(*t->second, name, dims);
  }
  const Value &v = g_.values[const_value(n, name, role)];
  *dims = v.type.shape;
  return *v.data;
}

Node Importer::make_node(const NodeRef &n, const std::string &op) const {
  Node node;
  node.name = n.name();
  node.op = op;
  return node;
}

// Appends `node`, computing the ONNX node's first output; returns that output's value.
int Importer::emit(const NodeRef &n, Node node) {
  const std::string &out = n.output(0);
  claim(n, out);
  int v = g_.add_value(out, TensorType());
  vals_[out] = v;
  node.outputs = {v};
  g_.add_node(std::move(node));
  mark_extra_outputs(n);
  return v;
}

// Optional extra outputs (MaxPool indices, Dropout mask, training statistics) are not computed;
// remember them so that a reader gets a precise error.
void Importer::mark_extra_outputs(const NodeRef &n) {
  for (int k = 1; k < n.num_outputs(); k++) {
    const std::string &name = n.output(k);
    if (name.empty()) continue;
    claim(n, name);
    unavailable_[name] = "output " + std::to_string(k) + " of node '" + printable(n.name()) + "' (" + printable(n.op()) + ")";
  }
}

// Shape of value `v`, running shape inference over the nodes emitted so far when needed.
const std::vector<int64_t> &Importer::shape_of(int v) {
  int producer = g_.values[v].producer;
  if (producer >= 0 && static_cast<size_t>(producer) >= inferred_) infer();
  return g_.values[v].type.shape;
}

void Importer::infer() {
  try {
    infer_shapes(g_);
  } catch (const Error &) {
    throw;
  } catch (const std::exception &e) {
    throw Error(quote_path(what_) + ": shape inference failed: " + e.what());
  }
  inferred_ = g_.nodes.size();
}

// ---------------------------------------------------------------------------------------------
// Shared lowering pieces

// Validates strides/dilations/pads of a window op over input `x` and resolves auto_pad.
Window Importer::window(const NodeRef &n, int x, const std::vector<int64_t> &kernel, bool allow_dilation) {
  const size_t r = kernel.size();
  if (r == 0) n.fail("kernel_shape is empty");
  for (int64_t k : kernel)
    if (k <= 0 || k > kMaxDim) n.fail("kernel_shape " + shape_str(kernel) + " is out of range");
  auto positive_list = [&](const std::string &key) {
    std::vector<int64_t> v = n.get_ints(key, std::vector<int64_t>(r, 1));
    if (v.size() != r)
      n.fail(key + " " + shape_str(v) + " must have " + std::to_string(r) + " entries, one per spatial axis");
    for (int64_t e : v)
      if (e <= 0 || e > kMaxDim) n.fail(key + " " + shape_str(v) + " must be positive");
    return v;
  };
  Window w;
  w.strides = positive_list("strides");
  w.dilations = positive_list("dilations");
  if (!allow_dilation && w.dilations != std::vector<int64_t>(r, 1))
    n.fail("dilations " + shape_str(w.dilations) + " are not supported (only 1)");

  std::string auto_pad = n.get_s("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    w.pads = n.get_ints("pads", std::vector<int64_t>(2 * r, 0));
    if (w.pads.size() != 2 * r)
      n.fail("pads " + shape_str(w.pads) + " must have " + std::to_string(2 * r) +
             " entries (begins, then ends)");
    for (int64_t p : w.pads)
      if (p < 0 || p > kMaxDim) n.fail("pads " + shape_str(w.pads) + " are out of range");
  } else if (auto_pad == "VALID") {
    w.pads.assign(2 * r, 0);
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    // Pad so that out = ceil(in / stride); SAME_UPPER puts the odd pixel at the end.
    const std::vector<int64_t> &xs = shape_of(x);
    if (xs.size() != r + 2)
      n.fail("input " + shape_str(xs) + " does not fit a " + std::to_string(r) + "-D window");
    w.pads.assign(2 * r, 0);
    for (size_t i = 0; i < r; i++) {
      int64_t in = xs[i + 2], s = w.strides[i];
      int64_t out = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (out - 1) * s + w.dilations[i] * (kernel[i] - 1) + 1 - in);
      int64_t small = total / 2, large = total - small;
      w.pads[i] = auto_pad == "SAME_UPPER" ? small : large;
      w.pads[i + r] = total - w.pads[i];
    }
  } else {
    n.fail("unknown auto_pad '" + printable(auto_pad) + "'");
  }
  return w;
}

// Constant [out, in] weight of a canonical Gemm from a 2-D constant, transposed and/or scaled
// when the source is not already in that form (a new constant then; the original is untouched).
int Importer::dense_weight(const NodeRef &n, const std::string &name, bool transpose, float scale) {
  if (!transpose && scale == 1.f) {
    int v = const_value(n, name, "weight");
    const Value &w = g_.values[v];
    if (w.type.shape.size() != 2) n.fail("weight '" + printable(name) + "' must be 2-D, got " + shape_str(w.type.shape));
    return v;
  }
  std::vector<int64_t> dims;
  std::vector<float> data = const_floats(n, name, &dims, "weight");
  if (dims.size() != 2) n.fail("weight '" + printable(name) + "' must be 2-D, got " + shape_str(dims));
  if (transpose) {
    const int64_t rows = dims[0], cols = dims[1];
    std::vector<float> t(data.size());
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) t[j * rows + i] = data[i * cols + j];
    data.swap(t);
    dims = {cols, rows};
  }
  if (scale != 1.f)
    for (float &e : data) e *= scale;
  return g_.add_const(unique_name(name + (transpose ? "_T" : "_scaled")), dims, std::move(data));
}

// 1-D bias of `out` elements for a canonical Gemm: the constant `name` (a scalar, [out] or
// [1,out]) scaled by beta, or zeros when absent.
int Importer::dense_bias(const NodeRef &n, const std::string &name, int64_t out, float beta) {
  if (name.empty())
    return g_.add_const(unique_name(n.name() + "_bias"), {out},
                        std::vector<float>(static_cast<size_t>(out), 0.f));
  std::vector<int64_t> dims;
  std::vector<float> data = const_floats(n, name, &dims, "bias");
  if (beta == 1.f && dims == std::vector<int64_t>{out}) return value(n, name);
  bool row =
      static_cast<int64_t>(data.size()) == out && (dims.size() == 1 || (dims.size() == 2 && dims[0] == 1));
  if (data.size() == 1)
    data.assign(static_cast<size_t>(out), data[0]);
  else if (!row)
    n.fail("bias '" + printable(name) + "' of shape " + shape_str(dims) + " does not broadcast to [" +
           std::to_string(out) + "] (only per-output biases are supported)");
  for (float &e : data) e *= beta;
  return g_.add_const(unique_name(name + "_1d"), {out}, std::move(data));
}

// Add(MatMul(x, W), b) with a constant per-output b: put b into the Gemm that MatMul became
// instead of emitting an Add. Only when the Add is the MatMul result's sole reader.
bool Importer::fold_bias_add(const NodeRef &n) {
  for (int side = 0; side < 2; side++) {
    const std::string &mm = n.input(side), &bias = n.input(1 - side);
    auto y = vals_.find(mm);
    if (y == vals_.end() || g_.values[y->second].name != mm || uses_[mm] != 1) continue;
    auto folded = matmul_bias_.find(y->second);
    auto t = tensors_.find(bias);
    if (folded == matmul_bias_.end() || t == tensors_.end() ||
        t->second->data_type() != onnx::TensorProto::FLOAT)
      continue;
    Value &b = g_.values[folded->second];
    const int64_t out = b.type.shape[0];
    std::vector<int64_t> dims;
    std::vector<float> data = decode_floats(*t->second, bias, &dims);
    if (dims != std::vector<int64_t>{out} && dims != std::vector<int64_t>{1, out}) continue;
    claim(n, n.output(0));
    *b.data = std::move(data);
    int v = y->second;
    vals_.erase(y);
    g_.values[v].name = n.output(0);
    vals_[n.output(0)] = v;
    matmul_bias_.erase(folded);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Lowerings

void Importer::lower_conv(const NodeRef &n) {
  n.expect_inputs(2, 3);
  int x = value(n, n.input(0));
  int w = const_value(n, n.input(1), "weight");
  const std::vector<int64_t> wshape = g_.values[w].type.shape;
  if (wshape.size() < 3)
    n.fail("weight '" + printable(n.input(1)) + "' has shape " + shape_str(wshape) +
           "; expected [out, in/group, kH, kW]");
  std::vector<int64_t> kernel(wshape.begin() + 2, wshape.end());
  if (n.attr("kernel_shape") && n.get_ints("kernel_shape") != kernel)
    n.fail("kernel_shape " + shape_str(n.get_ints("kernel_shape")) + " does not match weight shape " +
           shape_str(wshape));
  int64_t group = n.get_i("group", 1);
  if (group < 1) n.fail("group must be positive, got " + std::to_string(group));
  Window win = window(n, x, kernel, true);

  Node node = make_node(n, "Conv");
  node.inputs = {x, w};
  if (!n.input(2).empty()) node.inputs.push_back(const_value(n, n.input(2), "bias"));
  node.set_ints("kernel_shape", kernel);
  node.set_ints("strides", win.strides);
  node.set_ints("pads", win.pads);
  node.set_ints("dilations", win.dilations);
  node.set_i("group", group);
  emit(n, std::move(node));
}

void Importer::lower_batchnorm(const NodeRef &n) {
  n.expect_inputs(5, 5);
  if (n.get_i("training_mode", 0) != 0)
    n.fail("training_mode=1 is not supported (export the model in eval mode)");
  if (n.get_i("spatial", 1) != 1) n.fail("spatial=0 (per-activation statistics) is not supported");
  Node node = make_node(n, "BatchNormalization");
  node.inputs.push_back(value(n, n.input(0)));
  for (int k = 1; k < 5; k++) node.inputs.push_back(const_value(n, n.input(k), "parameter"));
  node.set_f("epsilon", n.get_f("epsilon", 1e-5f));
  emit(n, std::move(node));
}

// Relu, GlobalAveragePool: one input, no attributes.
void Importer::lower_unary(const NodeRef &n) {
  n.expect_inputs(1, 1);
  Node node = make_node(n, n.op());
  node.inputs = {value(n, n.input(0))};
  emit(n, std::move(node));
}

// Clip(x, min, max): bounds from attributes (opset < 11) or constant scalar inputs (opset >= 11);
// absent bounds are infinite. Kept as Clip {min, max}; fusion turns Clip(0, m) into ReLU-m.
void Importer::lower_clip(const NodeRef &n) {
  n.expect_inputs(1, 3);
  Node node = make_node(n, "Clip");
  node.inputs = {value(n, n.input(0))};
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  if (n.attr("min")) lo = n.get_f("min", lo);
  if (n.attr("max")) hi = n.get_f("max", hi);
  for (int k = 1; k <= 2; k++) {
    if (n.input(k).empty()) continue;
    std::vector<int64_t> dims;
    std::vector<float> v = const_floats(n, n.input(k), &dims, k == 1 ? "min" : "max");
    if (v.size() != 1) n.fail(std::string(k == 1 ? "min" : "max") + " must be a scalar, got " + std::to_string(v.size()) + " values");
    (k == 1 ? lo : hi) = v[0];
  }
  if (!(lo <= hi)) n.fail("min " + std::to_string(lo) + " is above max " + std::to_string(hi));
  node.set_f("min", lo);
  node.set_f("max", hi);
  emit(n, std::move(node));
}

// Sigmoid, Tanh, HardSwish, HardSigmoid {alpha, beta}: one input, elementwise.
void Importer::lower_activation(const NodeRef &n) {
  n.expect_inputs(1, 1);
  Node node = make_node(n, n.op());
  node.inputs = {value(n, n.input(0))};
  if (n.op() == "HardSigmoid") {
    node.set_f("alpha", n.get_f("alpha", 0.2f));
    node.set_f("beta", n.get_f("beta", 0.5f));
  }
  emit(n, std::move(node));
}

// Mul, Sub, Div (and broadcasting Add): two inputs, numpy broadcasting; constants allowed.
void Importer::lower_binary(const NodeRef &n) {
  n.expect_inputs(2, 2);
  Node node = make_node(n, n.op());
  node.inputs = {value(n, n.input(0)), value(n, n.input(1))};
  emit(n, std::move(node));
}

// ReduceMean over the spatial axes of a 4-D tensor is a global average pool (keepdims=0 gives
// [N, C]). Axes come from the attribute (opset < 18) or a constant input (opset >= 18).
void Importer::lower_reduce_mean(const NodeRef &n) {
  n.expect_inputs(1, 2);
  int x = value(n, n.input(0));
  std::vector<int64_t> axes = n.get_ints("axes");
  if (!n.input(1).empty()) {
    auto t = tensors_.find(n.input(1));
    if (t == tensors_.end() || t->second->data_type() != onnx::TensorProto::INT64)
      n.fail("axes input '" + printable(n.input(1)) + "' must be a constant int64 tensor");
    std::vector<int64_t> dims;
    axes = decode_int64s(*t->second, n.input(1), &dims);
  }
  const auto &xs = shape_of(x);
  for (auto &a : axes)
    if (a < 0) a += (int64_t)xs.size();
  std::sort(axes.begin(), axes.end());
  if (xs.size() != 4 || axes != std::vector<int64_t>{2, 3}) {
    // Over the last axis: kept as ReduceMean, which fusion turns into part of a layer norm.
    if (axes != std::vector<int64_t>{(int64_t)xs.size() - 1} || n.get_i("keepdims", 1) == 0)
      n.fail("only ReduceMean over the spatial axes [2, 3] of a 4-D tensor, or over the last axis as part of a "
             "layer normalization, is supported (got axes " + shape_str(axes) + " of " + shape_str(xs) + ")");
    Node node = make_node(n, "ReduceMean");
    node.inputs = {x};
    node.set_ints("axes", axes);
    emit(n, std::move(node));
    return;
  }
  Node node = make_node(n, "GlobalAveragePool");
  node.inputs = {x};
  if (n.get_i("keepdims", 1) == 0) node.set_i("keepdims", 0);
  emit(n, std::move(node));
}

void Importer::lower_concat(const NodeRef &n) {
  if (n.input(0).empty()) n.fail("needs at least one input");
  if (!n.attr("axis")) n.fail("attribute 'axis' is required");
  Node node = make_node(n, "Concat");
  for (int k = 0; !n.input(k).empty(); k++) node.inputs.push_back(value(n, n.input(k)));
  node.set_i("axis", n.get_i("axis", 1));
  emit(n, std::move(node));
}

// Pad (constant mode) of any axes: pads from the attribute (opset < 11) or a compile-time int64
// input, over all axes or those of the axes input (opset 18). Zero pads are an alias; others are
// a Pad node {pads: begins then ends over all axes, value}, which fusion folds into the
// consuming Conv or AveragePool when it is a zero padding of the spatial axes of an image, and
// runs as a pad kernel otherwise. Negative pads crop.
void Importer::lower_pad(const NodeRef &n) {
  n.expect_inputs(1, 4);
  std::string mode = n.attr("mode") ? n.get_s("mode", "constant") : "constant";
  if (mode != "constant") n.fail("only mode 'constant' is supported, got '" + printable(mode) + "'");
  std::vector<int64_t> pads = n.input(1).empty() ? n.get_ints("pads") : int_input(n, 1, "pads");
  float value_f = n.get_f("value", 0.f);
  if (!n.input(2).empty()) {
    std::vector<int64_t> dims;
    std::vector<float> v = const_floats(n, n.input(2), &dims, "constant_value");
    if (v.size() > 1) n.fail("constant_value must be a scalar");
    if (!v.empty()) value_f = v[0];
  }
  int x = value(n, n.input(0));
  const std::vector<int64_t> xs = shape_of(x);
  const int64_t r = (int64_t)xs.size();
  if (!n.input(3).empty()) {  // pads for the listed axes only
    std::vector<int64_t> axes = int_input(n, 3, "axes");
    if (pads.size() != 2 * axes.size())
      n.fail("pads has " + std::to_string(pads.size()) + " entries for " + std::to_string(axes.size()) + " axes");
    std::vector<int64_t> full((size_t)(2 * r), 0);
    std::vector<bool> seen((size_t)r, false);
    for (size_t k = 0; k < axes.size(); k++) {
      int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
      if (a < 0 || a >= r || seen[(size_t)a]) n.fail("axes " + shape_str(axes) + " are out of range or repeated");
      seen[(size_t)a] = true;
      full[(size_t)a] = pads[k];
      full[(size_t)(a + r)] = pads[k + axes.size()];
    }
    pads = full;
  }
  if ((int64_t)pads.size() != 2 * r)
    n.fail("pads has " + std::to_string(pads.size()) + " entries for a rank-" + std::to_string(r) + " input");
  bool zero = std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; });
  if (zero) {
    lower_alias(n);
    return;
  }
  if (r > 6) n.fail("tensors of rank above 6 are not supported");
  for (int64_t d = 0; d < r; d++) {
    const int64_t b = pads[(size_t)d], e = pads[(size_t)(d + r)];
    if (b < -kMaxDim || b > kMaxDim || e < -kMaxDim || e > kMaxDim || xs[(size_t)d] + b + e < 1 ||
        xs[(size_t)d] + b + e > kMaxDim)
      n.fail("pads " + shape_str(pads) + " do not leave a non-empty result for input " + shape_str(xs));
  }
  Node node = make_node(n, "Pad");
  node.inputs = {x};
  node.set_ints("pads", pads);
  node.set_f("value", value_f);
  emit(n, std::move(node));
}

void Importer::lower_pool(const NodeRef &n) {
  n.expect_inputs(1, 1);
  int x = value(n, n.input(0));
  if (!n.attr("kernel_shape")) n.fail("attribute 'kernel_shape' is required");
  std::vector<int64_t> kernel = n.get_ints("kernel_shape");
  Window win = window(n, x, kernel, false);
  int64_t ceil_mode = n.get_i("ceil_mode", 0);
  if (ceil_mode != 0 && ceil_mode != 1) n.fail("ceil_mode must be 0 or 1");

  Node node = make_node(n, n.op());
  node.inputs = {x};
  node.set_ints("kernel_shape", kernel);
  node.set_ints("strides", win.strides);
  node.set_ints("pads", win.pads);
  node.set_i("ceil_mode", ceil_mode);
  if (n.op() == "AveragePool") node.set_i("count_include_pad", n.get_i("count_include_pad", 0) != 0);
  emit(n, std::move(node));
}

void Importer::lower_flatten(const NodeRef &n) {
  n.expect_inputs(1, 1);
  Node node = make_node(n, "Flatten");
  node.inputs = {value(n, n.input(0))};
  node.set_i("axis", n.get_i("axis", 1));
  emit(n, std::move(node));
}

void Importer::lower_add(const NodeRef &n) {
  n.expect_inputs(2, 2);
  if (fold_bias_add(n)) return;
  Node node = make_node(n, "Add");
  node.inputs = {value(n, n.input(0)), value(n, n.input(1))};
  emit(n, std::move(node));
}

// Gemm: Y = alpha * A' * B' + beta * C  ->  Y = X * W^T + B with W = alpha * B' as [out, in].
void Importer::lower_gemm(const NodeRef &n) {
  n.expect_inputs(2, 3);
  if (n.get_i("transA", 0) != 0) n.fail("transA=1 is not supported");
  const bool trans_b = n.get_i("transB", 0) != 0;
  int x = value(n, n.input(0));
  int w = dense_weight(n, n.input(1), !trans_b, n.get_f("alpha", 1.f));
  int b = dense_bias(n, n.input(2), g_.values[w].type.shape[0], n.get_f("beta", 1.f));
  Node node = make_node(n, "Gemm");
  node.inputs = {x, w, b};
  node.set_i("transB", 1);
  emit(n, std::move(node));
}

// MatMul(X, B) with a constant 2-D B [in, out] is a fully-connected layer: Gemm with W = B^T and
// a zero bias, which a following bias Add may fill in (see fold_bias_add).
void Importer::lower_matmul(const NodeRef &n) {
  n.expect_inputs(2, 2);
  int x = value(n, n.input(0));
  const std::string &bname = n.input(1);
  auto v = vals_.find(bname);
  if (!tensors_.count(bname) && v != vals_.end() && !g_.values[v->second].is_const()) {
    // Two activations (attention's Q K^T and P V): a batched matrix product.
    const auto &a = shape_of(x), &b = shape_of(v->second);
    if (a.size() < 2 || a.size() != b.size() || !std::equal(a.begin(), a.end() - 2, b.begin()) ||
        a.back() != b[b.size() - 2])
      n.fail("a product of two activations needs equal batch dimensions and [..., M, K] x [..., K, N] (got " +
             shape_str(a) + " and " + shape_str(b) + ")");
    Node node = make_node(n, "MatMul");
    node.inputs = {x, v->second};
    emit(n, std::move(node));
    return;
  }
  if (shape_of(x).size() < 2)
    n.fail("qnnc supports MatMul only on a left operand of rank 2 or more, got " + shape_str(shape_of(x)));
  int w = dense_weight(n, bname, true, 1.f);
  int b = dense_bias(n, "", g_.values[w].type.shape[0], 1.f);
  Node node = make_node(n, "Gemm");
  node.inputs = {x, w, b};
  node.set_i("transB", 1);
  matmul_bias_[emit(n, std::move(node))] = b;
}

// Reshape(data, shape) with a constant int64 shape -> Reshape(data) {shape=...}. Zeros (copy the
// input dimension) are resolved here; -1 is left for shape inference.
void Importer::lower_reshape(const NodeRef &n) {
  n.expect_inputs(2, 2);
  int x = value(n, n.input(0));
  const std::string &sname = n.input(1);
  auto t = tensors_.find(sname);
  if (t == tensors_.end()) {
    value(n, sname);  // reports unknown names
    n.fail("shape input '" + printable(sname) + "' must be a constant int64 tensor (dynamic shapes are not supported)");
  }
  if (t->second->data_type() != onnx::TensorProto::INT64)
    n.fail("shape input '" + printable(sname) + "' must be INT64, got " + onnx_dtype_name(t->second->data_type()));
  std::vector<int64_t> dims;
  std::vector<int64_t> shape = decode_int64s(*t->second, sname, &dims);
  if (dims.size() != 1) n.fail("shape input '" + printable(sname) + "' must be 1-D, got shape " + shape_str(dims));

  // Entries are -1 (inferred by shape inference), 0 (copy the input dimension) or a size.
  auto check_sizes = [&] {
    std::vector<int64_t> sizes;
    for (int64_t s : shape)
      if (s != -1) sizes.push_back(s);
    if (checked_product(sizes) < 0) n.fail("invalid target shape " + shape_str(shape));
  };
  check_sizes();
  if (std::count(shape.begin(), shape.end(), -1) > 1)
    n.fail("target shape " + shape_str(shape) + " has more than one -1");
  if (std::count(shape.begin(), shape.end(), 0) > 0) {
    if (n.get_i("allowzero", 0) != 0)
      n.fail("allowzero=1 with a 0 in target shape " + shape_str(shape) +
             " (empty tensors) is not supported");
    const std::vector<int64_t> xs = shape_of(x);
    for (size_t k = 0; k < shape.size(); k++) {
      if (shape[k] != 0) continue;
      if (k >= xs.size())
        n.fail("target shape " + shape_str(shape) + " copies dimension " + std::to_string(k) + " of input " +
               shape_str(xs) + ", which it does not have");
      shape[k] = xs[k];
    }
    check_sizes();
  }
  Node node = make_node(n, "Reshape");
  node.inputs = {x};
  node.set_ints("shape", shape);
  emit(n, std::move(node));
}

// Identity and (inference) Dropout: the output is another name for the input. A Dropout whose
// training_mode is a constant true and whose ratio is not 0 would drop values at random: refused.
void Importer::lower_alias(const NodeRef &n) {
  n.expect_inputs(1, n.op() == "Dropout" ? 3 : n.op() == "Pad" ? 4 : 1);
  if (n.op() == "Dropout" && !n.input(2).empty()) {
    ConstTensor training, ratio = ConstTensor::floats({}, {n.get_f("ratio", 0.5f)});
    if (const_input(n.input(2), &training) && training.numel() == 1 && training.i.size() == 1 && training.i[0] &&
        (n.input(1).empty() || const_input(n.input(1), &ratio)) && ratio.is_float() && ratio.f.size() == 1 &&
        ratio.f[0] != 0.f)
      n.fail("training-mode Dropout (ratio " + std::to_string(ratio.f[0]) + ") is random; export the model in eval mode");
  }
  const std::string &in = n.input(0), &out = n.output(0);
  claim(n, out);
  auto t = tensors_.find(in);
  if (t != tensors_.end() && !vals_.count(in))
    tensors_[out] = t->second;  // stays a lazily-added constant (may be a Reshape shape)
  else
    vals_[out] = value(n, in);
  mark_extra_outputs(n);
}

// Constant: recorded like an initializer under its output name.
void Importer::lower_constant(const NodeRef &n) {
  n.expect_inputs(0, 0);
  const std::string &out = n.output(0);
  claim(n, out);
  onnx::TensorProto t;
  if (const onnx::TensorProto *v = n.get_t("value")) {
    t = *v;
  } else if (n.attr("value_float")) {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_float_data(n.get_f("value_float", 0.f));
  } else if (n.attr("value_floats")) {
    std::vector<float> v = n.get_floats("value_floats");
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_dims(static_cast<int64_t>(v.size()));
    for (float e : v) t.add_float_data(e);
  } else if (n.attr("value_int")) {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_int64_data(n.get_i("value_int", 0));
  } else if (n.attr("value_ints")) {
    std::vector<int64_t> v = n.get_ints("value_ints");
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_dims(static_cast<int64_t>(v.size()));
    for (int64_t e : v) t.add_int64_data(e);
  } else {
    n.fail("only 'value', 'value_float(s)' and 'value_int(s)' constants are supported");
  }
  t.set_name(out);
  owned_.push_back(std::move(t));
  tensors_[out] = &owned_.back();
  mark_extra_outputs(n);
}

// ---------------------------------------------------------------------------------------------
// Shape arithmetic and shape operators

bool Importer::int_const(const std::string &name, std::vector<int64_t> *dims, std::vector<int64_t> *vals) const {
  auto t = tensors_.find(name);
  if (name.empty() || t == tensors_.end() || vals_.count(name) || t->second->data_type() != onnx::TensorProto::INT64)
    return false;
  *vals = decode_int64s(*t->second, name, dims);
  return true;
}

// The constant int64 operand k of n (indices, axes, starts, split sizes, ...).
std::vector<int64_t> Importer::int_input(const NodeRef &n, int k, const char *role) {
  std::vector<int64_t> dims, vals;
  if (!int_const(n.input(k), &dims, &vals)) {
    if (!tensors_.count(n.input(k))) value(n, n.input(k));  // reports unknown names
    n.fail(std::string(role) + " '" + printable(n.input(k)) +
           "' must be an int64 value known at compile time (a constant or computed from shapes)");
  }
  return vals;
}

void Importer::define_int_const(const NodeRef &n, int k, std::vector<int64_t> dims, std::vector<int64_t> vals) {
  const std::string &out = n.output(k);
  claim(n, out);
  onnx::TensorProto t;
  t.set_name(out);
  t.set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t.add_dims(d);
  for (int64_t v : vals) t.add_int64_data(v);
  owned_.push_back(std::move(t));
  tensors_[out] = &owned_.back();
}

bool Importer::const_input(const std::string &name, ConstTensor *out) const {
  auto v = vals_.find(name);
  if (v != vals_.end()) {  // a graph constant (float weights, possibly rewritten by a lowering)
    const Value &gv = g_.values[v->second];
    if (!gv.is_const() || !gv.data) return false;
    *out = ConstTensor::floats(gv.type.shape, *gv.data);
    return true;
  }
  auto t = tensors_.find(name);
  return t != tensors_.end() && decode_const(*t->second, name, out);
}

void Importer::define_const(const NodeRef &n, int k, const ConstTensor &c) {
  const std::string &out = n.output(k);
  claim(n, out);
  owned_.push_back(encode_const(c, out));
  tensors_[out] = &owned_.back();
}

bool Importer::fold_const_op(const NodeRef &n) {
  static const std::set<std::string> structural{"Cast",      "Reshape", "Transpose", "Concat",          "Gather",
                                                "Slice",     "Expand",  "Range",     "ConstantOfShape", "ScatterND",
                                                "Unsqueeze", "Squeeze", "Flatten",   "Shape"};
  if (!structural.count(n.op()) && !const_eval::is_elementwise(n.op())) return false;
  if (n.num_outputs() != 1 || n.num_inputs() == 0 || n.input(0).empty()) return false;
  std::vector<ConstTensor> in((size_t)n.num_inputs());
  std::vector<const ConstTensor *> ptrs;
  for (int k = 0; k < n.num_inputs(); k++) {
    if (n.input(k).empty()) {  // an omitted optional input
      ptrs.push_back(nullptr);
      continue;
    }
    if (!const_input(n.input(k), &in[(size_t)k])) return false;
    ptrs.push_back(&in[(size_t)k]);
  }
  ConstTensor out;
  try {
    out = evaluate(n, ptrs);
  } catch (const Error &e) {
    const std::string what = e.what();
    if (what.rfind("node '", 0) == 0) throw;  // already names the node
    n.fail("evaluating it at compile time: " + what);
  }
  folded_elements_ += out.numel();
  if (folded_elements_ > kMaxFoldedPerModel)
    n.fail("the model computes more than " + std::to_string(kMaxFoldedPerModel) +
           " values at compile time, more than qnnc evaluates");
  define_const(n, 0, out);
  return true;
}

// The value of foldable node n from its compile-time inputs (null: an omitted optional input).
ConstTensor Importer::evaluate(const NodeRef &n, const std::vector<const ConstTensor *> &in) {
  namespace ce = const_eval;
  const std::string &op = n.op();
  auto operand = [&](size_t k, const char *role) -> const ConstTensor & {
    if (k >= in.size() || !in[k]) n.fail(std::string("input ") + std::to_string(k) + " (" + role + ") is missing");
    return *in[k];
  };
  // A 1-D (or scalar) integer operand: shape, axes, starts, ...
  auto ints = [&](size_t k, const char *role) {
    const ConstTensor &t = operand(k, role);
    if (t.type != ConstTensor::Type::i64 || t.dims.size() > 1)
      n.fail(std::string(role) + " must be a 1-D integer tensor, got " + const_type_name(t.type) + " " + shape_str(t.dims));
    return t.i;
  };
  const ConstTensor &x = operand(0, "input");
  if (ce::is_elementwise(op)) {
    for (const ConstTensor *t : in)
      if (!t) n.fail("an input is missing");
    return ce::elementwise(op, in, n.get_i("fmod", 0));
  }
  if (op == "Cast") return ce::cast(x, n.get_i("to", 0));
  if (op == "Reshape") return ce::reshape(x, ints(1, "shape"), n.get_i("allowzero", 0) != 0);
  if (op == "Transpose") return ce::transpose(x, n.get_ints("perm"));
  if (op == "Concat") {
    if (!n.attr("axis")) n.fail("attribute 'axis' is required");
    for (const ConstTensor *t : in)
      if (!t) n.fail("an input is missing");
    return ce::concat(in, n.get_i("axis", 0));
  }
  if (op == "Gather") return ce::gather(x, operand(1, "indices"), n.get_i("axis", 0));
  if (op == "Slice") {
    if (in.size() > 1)
      return ce::slice(x, ints(1, "starts"), ints(2, "ends"), in.size() > 3 && in[3] ? ints(3, "axes") : std::vector<int64_t>{},
                       in.size() > 4 && in[4] ? ints(4, "steps") : std::vector<int64_t>{});
    return ce::slice(x, n.get_ints("starts"), n.get_ints("ends"), n.get_ints("axes"), {});
  }
  if (op == "Expand") return ce::expand(x, ints(1, "shape"));
  if (op == "Range") return ce::range(x, operand(1, "limit"), operand(2, "delta"));
  if (op == "ScatterND")
    return ce::scatter_nd(x, operand(1, "indices"), operand(2, "updates"), n.get_s("reduction", "none"));
  if (op == "ConstantOfShape") {
    ConstTensor value = ConstTensor::floats({1}, {0.f});
    if (const onnx::TensorProto *t = n.get_t("value"))
      if (!decode_const(*t, n.name() + ".value", &value))
        n.fail("value of type " + onnx_dtype_name(t->data_type()) + " is not supported (FLOAT, INT32, INT64, BOOL)");
    return ce::constant_of_shape(ints(0, "shape"), value);
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    ConstTensor out = x;
    out.dims = squeezed_shape(n, x.dims, in.size() > 1 && in[1] ? ints(1, "axes") : n.get_ints("axes"));
    return out;
  }
  if (op == "Flatten") {
    const int64_t r = (int64_t)x.dims.size();
    int64_t axis = n.get_i("axis", 1);
    if (axis < -r || axis > r) n.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
    if (axis < 0) axis += r;
    ce::checked_numel(x.dims);  // bounds the products below
    int64_t a = 1, b = 1;
    for (int64_t d = 0; d < r; d++) (d < axis ? a : b) *= x.dims[(size_t)d];
    ConstTensor out = x;
    out.dims = {a, b};
    return out;
  }
  if (op == "Shape") {
    const int64_t r = (int64_t)x.dims.size();
    int64_t b = n.get_i("start", 0), e = n.get_i("end", r);
    b = std::clamp<int64_t>(b < 0 ? b + r : b, 0, r);
    e = std::clamp<int64_t>(e < 0 ? e + r : e, 0, r);
    std::vector<int64_t> v(x.dims.begin() + b, x.dims.begin() + std::max(b, e));
    return ConstTensor::ints({(int64_t)v.size()}, v);
  }
  n.fail("cannot be evaluated at compile time");
}

// Shape(x): the compile-time shape of x (optionally [start, end) of it).
void Importer::lower_shape(const NodeRef &n) {
  n.expect_inputs(1, 1);
  int x = value(n, n.input(0));
  std::vector<int64_t> s = shape_of(x);
  const int64_t r = (int64_t)s.size();
  int64_t b = n.get_i("start", 0), e = n.get_i("end", r);
  b = std::clamp<int64_t>(b < 0 ? b + r : b, 0, r);
  e = std::clamp<int64_t>(e < 0 ? e + r : e, 0, r);
  std::vector<int64_t> v(s.begin() + b, s.begin() + std::max(b, e));
  define_int_const(n, 0, {(int64_t)v.size()}, v);
}

// Cast of a float activation to FLOAT is the identity; other casts only occur in shape
// arithmetic (folded before this is reached).
void Importer::lower_cast(const NodeRef &n) {
  n.expect_inputs(1, 1);
  if (n.get_i("to", 0) != onnx::TensorProto::FLOAT)
    n.fail("only casts to FLOAT of float activations (or of int64 shape values) are supported");
  lower_alias(n);
}

int Importer::emit_at(const NodeRef &n, int k, Node node) {
  const std::string &out = n.output(k);
  claim(n, out);
  int v = g_.add_value(out, TensorType());
  vals_[out] = v;
  node.outputs = {v};
  g_.add_node(std::move(node));
  return v;
}

int Importer::emit_slice(const NodeRef &n, int k, int x, std::vector<int64_t> starts, std::vector<int64_t> steps,
                         std::vector<int64_t> sizes) {
  for (int64_t d : sizes)
    if (d <= 0) n.fail("the result would be empty (shape " + shape_str(sizes) + "), which is not supported");
  Node node = make_node(n, "Slice");
  if (k > 0) node.name += ":" + std::to_string(k);
  node.inputs = {x};
  node.set_ints("starts", std::move(starts));
  node.set_ints("steps", std::move(steps));
  node.set_ints("sizes", std::move(sizes));
  return emit_at(n, k, std::move(node));
}

int Importer::emit_reshape(const NodeRef &n, int k, int x, const std::vector<int64_t> &shape) {
  Node node = make_node(n, "Reshape");
  node.inputs = {x};
  node.set_ints("shape", shape);
  return emit_at(n, k, std::move(node));
}

void Importer::lower_transpose(const NodeRef &n) {
  n.expect_inputs(1, 1);
  int x = value(n, n.input(0));
  const int64_t r = (int64_t)shape_of(x).size();
  std::vector<int64_t> perm = n.get_ints("perm");
  if (perm.empty())
    for (int64_t a = r - 1; a >= 0; a--) perm.push_back(a);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t a = 0; a < r; a++)
    if ((int64_t)sorted.size() != r || sorted[a] != a)
      n.fail("perm " + shape_str(perm) + " is not a permutation of the " + std::to_string(r) + " axes");
  if (r > 6) n.fail("tensors of rank above 6 are not supported");
  Node node = make_node(n, "Transpose");
  node.inputs = {x};
  node.set_ints("perm", perm);
  emit(n, std::move(node));
}

// Slice(data, starts, ends, axes, steps) with compile-time bounds (inputs from opset 10,
// attributes before), normalized as ONNX clamps them into full-rank starts/steps/sizes.
void Importer::lower_slice(const NodeRef &n) {
  n.expect_inputs(1, 5);
  int x = value(n, n.input(0));
  const std::vector<int64_t> xs = shape_of(x);
  const int64_t r = (int64_t)xs.size();
  std::vector<int64_t> b, e, axes, steps;
  if (!n.input(1).empty()) {
    n.expect_inputs(3, 5);
    b = int_input(n, 1, "starts");
    e = int_input(n, 2, "ends");
    if (!n.input(3).empty()) axes = int_input(n, 3, "axes");
    if (!n.input(4).empty()) steps = int_input(n, 4, "steps");
  } else {
    b = n.get_ints("starts");
    e = n.get_ints("ends");
    axes = n.get_ints("axes");
  }
  if (axes.empty())
    for (int64_t a = 0; a < (int64_t)b.size(); a++) axes.push_back(a);
  if (steps.empty()) steps.assign(b.size(), 1);
  if (e.size() != b.size() || axes.size() != b.size() || steps.size() != b.size())
    n.fail("starts, ends, axes and steps must have the same length");
  std::vector<int64_t> st(r, 0), sp(r, 1), sz = xs;
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < b.size(); i++) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
    if (a < 0 || a >= r || seen[a]) n.fail("axes " + shape_str(axes) + " are out of range or repeated");
    seen[a] = true;
    const int64_t d = xs[a], s = steps[i];
    if (s == 0) n.fail("a step of 0 is not allowed");
    int64_t lo = b[i] < 0 ? b[i] + d : b[i], hi = e[i] < 0 ? e[i] + d : e[i];
    if (s > 0) {
      lo = std::clamp<int64_t>(lo, 0, d);
      hi = std::clamp<int64_t>(hi, 0, d);
      sz[a] = hi > lo ? (hi - lo + s - 1) / s : 0;
    } else {
      lo = std::clamp<int64_t>(lo, 0, d - 1);
      hi = std::clamp<int64_t>(hi, -1, d - 1);
      sz[a] = lo > hi ? (lo - hi - s - 1) / -s : 0;
    }
    st[a] = lo;
    sp[a] = s;
  }
  emit_slice(n, 0, x, st, sp, sz);
  mark_extra_outputs(n);
}

// Split along an axis into consecutive Slices: sizes from the input (opset 13), the attribute
// (before) or equal parts (num_outputs, or the number of outputs).
void Importer::lower_split(const NodeRef &n) {
  n.expect_inputs(1, 2);
  int x = value(n, n.input(0));
  const std::vector<int64_t> xs = shape_of(x);
  const int64_t r = (int64_t)xs.size();
  int64_t axis = n.get_i("axis", 0);
  if (axis < -r || axis >= r) n.fail("axis " + std::to_string(axis) + " is out of range");
  if (axis < 0) axis += r;
  std::vector<int64_t> parts = n.input(1).empty() ? n.get_ints("split") : int_input(n, 1, "split");
  const int64_t outs = n.num_outputs(), d = xs[axis];
  if (parts.empty()) {
    const int64_t each = (d + outs - 1) / outs;
    for (int64_t k = 0, left = d; k < outs; k++, left -= each) parts.push_back(std::min(each, left));
  }
  int64_t total = 0;
  for (int64_t p : parts) total += p;
  if ((int64_t)parts.size() != outs || total != d)
    n.fail("split " + shape_str(parts) + " does not divide axis " + std::to_string(axis) + " of " + shape_str(xs) +
           " into " + std::to_string(outs) + " outputs");
  int64_t at = 0;
  for (int64_t k = 0; k < outs; k++) {
    std::vector<int64_t> st(r, 0), sp(r, 1), sz = xs;
    st[axis] = at;
    sz[axis] = parts[k];
    at += parts[k];
    if (n.output(k).empty()) continue;
    emit_slice(n, (int)k, x, st, sp, sz);
  }
}

// Gather on an activation with compile-time indices: a scalar index selects one slice and drops
// the axis; a 1-D run of equally spaced indices is a strided Slice.
void Importer::lower_gather(const NodeRef &n) {
  n.expect_inputs(2, 2);
  int x = value(n, n.input(0));
  std::vector<int64_t> idims, idx;
  if (!int_const(n.input(1), &idims, &idx)) int_input(n, 1, "indices");
  const std::vector<int64_t> xs = shape_of(x);
  const int64_t r = (int64_t)xs.size();
  int64_t axis = n.get_i("axis", 0);
  if (axis < -r || axis >= r) n.fail("axis " + std::to_string(axis) + " is out of range");
  if (axis < 0) axis += r;
  const int64_t d = xs[axis];
  for (auto &i : idx) {
    if (i < -d || i >= d) n.fail("index " + std::to_string(i) + " is out of range for axis of size " + std::to_string(d));
    if (i < 0) i += d;
  }
  if (idims.size() > 1 || idx.empty()) n.fail("only scalar or 1-D indices are supported");
  const int64_t step = idx.size() > 1 ? idx[1] - idx[0] : 1;
  for (size_t k = 1; k < idx.size(); k++)
    if (idx[k] - idx[k - 1] != step || step == 0)
      n.fail("only equally spaced indices are supported (a strided slice)");
  std::vector<int64_t> st(r, 0), sp(r, 1), sz = xs;
  st[axis] = idx[0];
  sp[axis] = step;
  sz[axis] = (int64_t)idx.size();
  if (!idims.empty()) {
    emit_slice(n, 0, x, st, sp, sz);
    return;
  }
  // Scalar index: slice into a temporary, then reshape the axis away.
  Node sl = make_node(n, "Slice");
  sl.inputs = {x};
  sl.set_ints("starts", st);
  sl.set_ints("steps", sp);
  sl.set_ints("sizes", sz);
  TensorType t;
  int tmp = g_.add_value(unique_name(n.output(0) + ".slice"), t);
  sl.outputs = {tmp};
  g_.add_node(std::move(sl));
  std::vector<int64_t> shape = xs;
  shape.erase(shape.begin() + axis);
  emit_reshape(n, 0, tmp, shape);
}

// Squeeze and Unsqueeze of an activation are reshapes: axes from the attribute (opset < 13)
// or a compile-time input.
void Importer::lower_squeeze(const NodeRef &n) {
  n.expect_inputs(1, 2);
  int x = value(n, n.input(0));
  std::vector<int64_t> axes = n.input(1).empty() ? n.get_ints("axes") : int_input(n, 1, "axes");
  emit_reshape(n, 0, x, squeezed_shape(n, shape_of(x), axes));
}

// Pow(x, p) with a constant scalar exponent: 1 is the identity, 2 is x * x, 0.5 is Sqrt.
void Importer::lower_pow(const NodeRef &n) {
  n.expect_inputs(2, 2);
  std::vector<int64_t> dims;
  std::vector<float> p = const_floats(n, n.input(1), &dims, "exponent");
  if (p.size() != 1) n.fail("the exponent must be a scalar constant");
  int x = value(n, n.input(0));
  if (p[0] == 1.f) {
    lower_alias(n);
  } else if (p[0] == 2.f) {
    Node node = make_node(n, "Mul");
    node.inputs = {x, x};
    emit(n, std::move(node));
  } else if (p[0] == 0.5f) {
    Node node = make_node(n, "Sqrt");
    node.inputs = {x};
    emit(n, std::move(node));
  } else {
    n.fail("only exponents 1, 2 and 0.5 are supported, got " + std::to_string(p[0]));
  }
}

// LayerNormalization over the last axis (opset 17): (x - mean) / sqrt(var + epsilon) * scale + bias.
void Importer::lower_layernorm(const NodeRef &n) {
  n.expect_inputs(2, 3);
  int x = value(n, n.input(0));
  const std::vector<int64_t> xs = shape_of(x);
  const int64_t r = (int64_t)xs.size();
  int64_t axis = n.get_i("axis", -1);
  if (axis < 0) axis += r;
  if (axis != r - 1) n.fail("only normalization over the last axis is supported (axis " + std::to_string(axis) + ")");
  const int64_t K = xs[r - 1];
  int gamma = const_value(n, n.input(1), "scale");
  if (g_.values[gamma].type.numel() != K) n.fail("scale must have " + std::to_string(K) + " values");
  int beta = n.input(2).empty() ? g_.add_const(unique_name(n.name() + "_bias"), {K}, std::vector<float>(K, 0.f))
                                : const_value(n, n.input(2), "bias");
  if (g_.values[beta].type.numel() != K) n.fail("bias must have " + std::to_string(K) + " values");
  Node node = make_node(n, "LayerNorm");
  node.inputs = {x, gamma, beta};
  node.set_f("epsilon", n.get_f("epsilon", 1e-5f));
  emit(n, std::move(node));
}

// Operators that qnnc evaluates only at compile time (fold_const_op): reaching here means an
// input is computed at run time.
void Importer::lower_const_only(const NodeRef &n) {
  std::string runtime;
  for (int k = 0; k < n.num_inputs() && runtime.empty(); k++)
    if (!n.input(k).empty() && vals_.count(n.input(k)) && !g_.values[vals_.at(n.input(k))].is_const()) runtime = n.input(k);
  n.fail("qnnc evaluates " + printable(n.op()) + " only when all its inputs are known at compile time (constants and "
         "shapes)" + (runtime.empty() ? std::string() : ", but input '" + printable(runtime) + "' is computed at run time"));
}

// Expand of a constant is evaluated at compile time (fold_const_op); of an activation, it is not
// supported.
void Importer::lower_expand(const NodeRef &n) {
  n.expect_inputs(2, 2);
  value(n, n.input(0));  // reports unknown names
  n.fail("only Expand of a constant (with a compile-time shape) is supported");
}

// Softmax over the last axis (opset 13's default; older opsets' axis = rank - 1 is the same).
void Importer::lower_softmax(const NodeRef &n) {
  n.expect_inputs(1, 1);
  int x = value(n, n.input(0));
  const int64_t r = (int64_t)shape_of(x).size();
  int64_t axis = n.get_i("axis", -1);
  if (axis < 0) axis += r;
  if (axis != r - 1) n.fail("only Softmax over the last axis is supported (axis " + std::to_string(axis) + ")");
  Node node = make_node(n, "Softmax");
  node.inputs = {x};
  emit(n, std::move(node));
}

// Requires an opset import for the default domain within the supported range.
void check_opset(const onnx::ModelProto &m, const std::string &what) {
  int64_t version = -1;
  for (const auto &o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") version = o.version();
  if (version < 0) throw Error(quote_path(what) + " does not import the default ONNX operator set");
  if (version < kMinOpset || version > kMaxOpset)
    throw Error(quote_path(what) + " uses ONNX opset " + std::to_string(version) + "; qnnc supports opsets " +
                std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));
}

// Reads the data of a tensor kept in an external file (keys "location", "offset", "length";
// the location relative to `dir`, inside it) into its raw_data; other tensors stay as they are.
void load_external_tensor(onnx::TensorProto &t, const std::filesystem::path &dir, const std::string &what) {
  if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
  std::string location;
  int64_t offset = 0, length = -1;
  const std::string name = printable(t.name());
  auto number = [&](const std::string &key, const std::string &v) {
    char *end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || n < 0)
      throw Error("tensor '" + name + "': external data " + key + " '" + printable(v) + "' is not a byte count");
    return (int64_t)n;
  };
  for (const auto &e : t.external_data()) {
    if (e.key() == "location") location = e.value();
    else if (e.key() == "offset") offset = number("offset", e.value());
    else if (e.key() == "length") length = number("length", e.value());
  }
  const std::filesystem::path rel(location);
  bool inside = !location.empty() && rel.is_relative();
  for (const auto &part : rel) inside = inside && part != "..";
  if (!inside)
    throw Error("tensor '" + name + "' of " + quote_path(what) + ": external data location '" + printable(location) +
                "' must be a file name relative to the model's directory");
  const std::filesystem::path file = dir / rel;
  std::ifstream f(file, std::ios::binary);
  if (!f) throw Error("tensor '" + name + "': cannot open its external data file '" + file.string() + "'");
  f.seekg(0, std::ios::end);
  const int64_t size = (int64_t)f.tellg();
  if (length < 0) length = size - offset;
  if (offset > size || length > size - offset)
    throw Error("tensor '" + name + "': external data [" + std::to_string(offset) + ", " +
                std::to_string(offset + length) + ") lies beyond the end of '" + file.string() + "' (" +
                std::to_string(size) + " bytes)");
  std::string data((size_t)length, '\0');
  f.seekg(offset);
  if (length > 0 && !f.read(data.data(), length)) throw Error("cannot read external data file '" + file.string() + "'");
  t.set_raw_data(std::move(data));
  t.clear_external_data();
  t.set_data_location(onnx::TensorProto::DEFAULT);
}

// Loads every external tensor of the graph: initializers and Constant nodes' tensors.
void load_external_data(onnx::GraphProto &g, const std::filesystem::path &dir, const std::string &what) {
  for (auto &t : *g.mutable_initializer()) load_external_tensor(t, dir, what);
  for (auto &n : *g.mutable_node())
    for (auto &a : *n.mutable_attribute()) {
      if (a.has_t()) load_external_tensor(*a.mutable_t(), dir, what);
      for (auto &t : *a.mutable_tensors()) load_external_tensor(t, dir, what);
    }
}

}  // namespace

Graph load_onnx_bytes(const std::string &bytes, const std::string &what,
                      const std::vector<int64_t> &input_shape, const std::string &data_dir) {
  auto invalid = [&](const std::string &why) {
    return Error(quote_path(what) + " is not a valid ONNX model: " + why);
  };
  if (bytes.empty()) throw invalid("the file is empty");
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw invalid("it is larger than 2 GiB (save the weights as external data: onnx.save_model(..., "
                  "save_as_external_data=True); qnnc reads them from beside the model)");
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes)) throw invalid("protobuf parsing failed (truncated or not an ONNX file)");
  if (!model.has_graph()) throw invalid("it contains no graph");
  check_opset(model, what);
  if (!data_dir.empty()) load_external_data(*model.mutable_graph(), data_dir, what);
  return Importer(model.graph(), what, input_shape).run();
}

Graph load_onnx(const std::string &path, const std::vector<int64_t> &input_shape) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error("cannot open model file '" + path + "' (it is a directory)");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open model file '" + path + "'");
  std::ostringstream bytes;
  bytes << f.rdbuf();
  if (f.bad()) throw Error("cannot read model file '" + path + "'");
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return load_onnx_bytes(bytes.str(), path, input_shape, dir.empty() ? "." : dir.string());
}

}  // namespace qnnc
