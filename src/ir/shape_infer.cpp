#include "ir/shape_infer.h"

#include <climits>
#include <sstream>

namespace qnnc {

int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t pb, int64_t pe, int64_t dil,
                   bool ceil_mode) {
  int64_t eff = dil * (k - 1) + 1;
  int64_t span = in + pb + pe - eff;
  if (span < 0) return 0;
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  // As PyTorch and ONNX Runtime: rounding up never adds a window that starts in the end
  // padding (it would cover padding only).
  if (ceil_mode && (out - 1) * stride >= in + pb) out--;
  return out;
}

namespace {

// Largest element count of any value: 2^31 - 1, the extent Halide's int32 buffer indexing can
// address, and small enough that products of two such counts fit in int64.
constexpr int64_t kMaxElements = INT32_MAX;

[[noreturn]] void fail(const Node &n, const std::string &msg) {
  throw Error("node '" + printable(n.name) + "' (" + printable(n.op) + "): " + msg);
}

std::string shape_str(const std::vector<int64_t> &s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); i++) os << (i ? "," : "") << s[i];
  return os.str() + "]";
}

void need_rank(const Node &n, const TensorType &t, size_t r, const char *what) {
  if (t.shape.size() != r)
    fail(n, std::string(what) + " must have rank " + std::to_string(r) + ", got " + shape_str(t.shape));
}

TensorType window_op(const Node &n, const TensorType &x, int64_t out_c, int64_t kh, int64_t kw) {
  auto s = n.ints("strides", {1, 1});
  auto p = n.ints("pads", {0, 0, 0, 0});
  auto d = n.ints("dilations", {1, 1});
  if (s.size() != 2 || p.size() != 4 || d.size() != 2) fail(n, "only 2-D windows are supported");
  bool ceil_mode = n.i("ceil_mode", 0) != 0;
  int64_t oh = window_out(x.shape[2], kh, s[0], p[0], p[2], d[0], ceil_mode);
  int64_t ow = window_out(x.shape[3], kw, s[1], p[1], p[3], d[1], ceil_mode);
  if (oh <= 0 || ow <= 0) fail(n, "window larger than its input " + shape_str(x.shape));
  TensorType t = x;
  t.shape = {x.shape[0], out_c, oh, ow};
  return t;
}

}  // namespace

void infer_shapes(Graph &g) {
  for (auto &n : g.nodes) {
    auto in = [&](size_t k) -> const TensorType & {
      if (k >= n.inputs.size()) fail(n, "missing input " + std::to_string(k));
      return g.values[n.inputs[k]].type;
    };
    TensorType out;
    const std::string &op = n.op;
    if (op == "conv2d_q" && in(0).shape.size() == 2) {
      // A quantized dense layer: [N, K] x [M, K, 1, 1] -> [N, M].
      const auto &x = in(0), &w = in(1);
      need_rank(n, w, 4, "weight");
      if (w.shape[1] != x.shape[1] || w.shape[2] != 1 || w.shape[3] != 1)
        fail(n, "dense weight " + shape_str(w.shape) + " does not fit input " + shape_str(x.shape));
      if (n.inputs.size() > 5) fail(n, "a quantized dense layer takes no residual");
      out = x;
      out.shape = {x.shape[0], w.shape[0]};
      out.dtype = DType::u8;
    } else if (op == "Conv" || op == "conv2d" || op == "conv2d_q") {
      const auto &x = in(0), &w = in(1);
      need_rank(n, x, 4, "input");
      need_rank(n, w, 4, "weight");
      int64_t group = n.i("group", 1);
      if (group < 1 || x.shape[1] % group != 0 || w.shape[0] % group != 0)
        fail(n, "group=" + std::to_string(group) + " does not divide the " + std::to_string(x.shape[1]) +
                    " input and " + std::to_string(w.shape[0]) + " output channels");
      if (w.shape[1] * group != x.shape[1])
        fail(n, "weight " + shape_str(w.shape) + " expects " + std::to_string(w.shape[1] * group) +
                    " input channels (group=" + std::to_string(group) + "), input " + shape_str(x.shape) + " has " +
                    std::to_string(x.shape[1]));
      out = window_op(n, x, w.shape[0], w.shape[2], w.shape[3]);
      if (n.inputs.size() > 2 && in(2).numel() != w.shape[0]) fail(n, "bias size does not match output channels");
      size_t res_at = op == "conv2d_q" ? 5 : 3;
      if (op != "Conv" && n.inputs.size() > res_at && in(res_at).shape != out.shape)
        fail(n, "residual " + shape_str(in(res_at).shape) + " does not match output " + shape_str(out.shape));
      out.dtype = op == "conv2d_q" ? DType::u8 : x.dtype;
    } else if (op == "MaxPool" || op == "AveragePool" || op == "maxpool" || op == "avgpool") {
      const auto &x = in(0);
      need_rank(n, x, 4, "input");
      auto k = n.ints("kernel_shape");
      if (k.size() != 2) fail(n, "kernel_shape must have 2 entries");
      out = window_op(n, x, x.shape[1], k[0], k[1]);
    } else if (op == "GlobalAveragePool" || op == "global_avgpool" || op == "global_avgpool_q") {
      need_rank(n, in(0), 4, "input");
      out = in(0);
      out.shape[2] = out.shape[3] = 1;
      if (op == "global_avgpool_q") out.dtype = DType::f32;
      if (n.i("keepdims", 1) == 0) {  // ReduceMean(axes=[2, 3], keepdims=0)
        out.shape = {out.shape[0], out.shape[1]};
        out.layout = Layout::Plain;
      }
    } else if (op == "quantize" || op == "dequantize") {
      out = in(0);
      out.dtype = op == "quantize" ? DType::u8 : DType::f32;
    } else if (op == "BatchNormalization" || op == "Relu" || op == "Clip" || op == "Identity" || op == "relu" || op == "scale_shift") {
      out = in(0);
      if (op == "BatchNormalization") {
        need_rank(n, in(0), 4, "input");
        for (size_t k = 1; k < 5; k++)
          if (in(k).numel() != in(0).shape[1]) fail(n, "parameter " + std::to_string(k) + " size does not match channels");
      }
      // A scale_shift with a quantize step folded in (quantize_graph.cpp) writes u8.
      if (op == "scale_shift" && n.attrs.count("qmax")) out.dtype = DType::u8;
    } else if (op == "add") {
      if (in(0).shape != in(1).shape)
        fail(n, "operands " + shape_str(in(0).shape) + " and " + shape_str(in(1).shape) + " differ");
      out = in(0);
    } else if (op == "Add" || op == "Mul" || op == "Sub" || op == "Div" || op == "binary") {
      // Numpy broadcasting: align trailing dimensions; each pair is equal or has a 1.
      const auto &a = in(0).shape, &b = in(1).shape;
      size_t r = std::max(a.size(), b.size());
      std::vector<int64_t> o(r);
      for (size_t k = 0; k < r; k++) {
        int64_t da = k + a.size() >= r ? a[k + a.size() - r] : 1, db = k + b.size() >= r ? b[k + b.size() - r] : 1;
        if (da != db && da != 1 && db != 1)
          fail(n, "operands " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
        o[k] = std::max(da, db);
      }
      out = a.size() >= b.size() ? in(0) : in(1);
      out.shape = o;
      // A product with a quantize step folded in (quantize_graph.cpp) writes u8.
      out.dtype = op == "binary" && n.attrs.count("qmax") ? DType::u8 : DType::f32;
    } else if (op == "Sigmoid" || op == "Tanh" || op == "HardSwish" || op == "HardSigmoid" || op == "Erf" ||
               op == "Sqrt" || op == "Gelu" || op == "unary" || op == "lut") {
      out = in(0);
    } else if (op == "Pad" || op == "pad") {
      // pads: the begins, then the ends, of every axis (negative: cropped).
      const auto &x = in(0);
      const size_t r = x.shape.size();
      auto p = n.ints("pads");
      if (p.size() != 2 * r) fail(n, "pads " + shape_str(p) + " do not fit input " + shape_str(x.shape));
      out = x;
      for (size_t k = 0; k < r; k++) {
        out.shape[k] += p[k] + p[k + r];
        if (out.shape[k] < 1) fail(n, "pads " + shape_str(p) + " leave nothing of input " + shape_str(x.shape));
      }
    } else if (op == "Concat" || op == "concat") {
      // Along the channels of 4-D tensors or the last axis of 2-D ones: the axis kernels keep
      // innermost (NHWC), so a concatenation is a copy of contiguous runs.
      const auto &x = in(0);
      const int64_t rank = (int64_t)x.shape.size();
      int64_t axis = n.i("axis", 1);
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank)
        fail(n, "axis " + std::to_string(n.i("axis", 1)) + " is out of range for " + shape_str(x.shape));
      out = x;
      out.shape[axis] = 0;
      for (size_t k = 0; k < n.inputs.size(); k++) {
        const auto &t = in(k);
        for (int64_t d = 0; d < rank; d++)
          if (d != axis && ((int64_t)t.shape.size() != rank || t.shape[d] != x.shape[d]))
            fail(n, "input " + std::to_string(k) + " " + shape_str(t.shape) + " does not match " + shape_str(x.shape) +
                        " outside the concatenated axis");
        out.shape[axis] += t.shape[axis];
      }
      out.dtype = x.dtype;  // f32, or u8 when the quantizer gave the inputs one encoding
    } else if (op == "Flatten" || op == "flatten") {
      const auto &x = in(0);
      const int64_t rank = (int64_t)x.shape.size();
      int64_t axis = n.i("axis", 1);
      if (axis < -rank || axis > rank)
        fail(n, "axis " + std::to_string(axis) + " is out of range for input " + shape_str(x.shape));
      if (axis < 0) axis += rank;
      int64_t a = 1, b = 1;
      for (int64_t k = 0; k < (int64_t)x.shape.size(); k++) (k < axis ? a : b) *= x.shape[k];
      out.dtype = x.dtype;
      out.shape = {a, b};
    } else if (op == "Reshape" || op == "reshape") {
      const auto &x = in(0);
      auto s = n.ints("shape");
      int64_t known = 1, infer = -1;
      for (size_t k = 0; k < s.size(); k++) {
        if (s[k] == 0) {
          if (k >= x.shape.size())
            fail(n, "target shape " + shape_str(n.ints("shape")) + " copies dimension " + std::to_string(k) +
                        " of input " + shape_str(x.shape) + ", which it does not have");
          s[k] = x.shape[k];
        }
        if (s[k] == -1 && infer < 0) {
          infer = (int64_t)k;
        } else if (s[k] <= 0 || s[k] > kMaxElements || known > kMaxElements / s[k]) {
          fail(n, "cannot reshape " + shape_str(x.shape) + " to " + shape_str(n.ints("shape")));
        } else {
          known *= s[k];
        }
      }
      if (infer >= 0) s[infer] = x.numel() / known;
      TensorType t;
      t.dtype = x.dtype;
      t.shape = s;
      if (t.numel() != x.numel()) fail(n, "cannot reshape " + shape_str(x.shape) + " to " + shape_str(s));
      out = t;
    } else if (op == "Gemm" || op == "dense") {
      // Over the last axis of an input of rank >= 2 (MatMul with constant weights).
      const auto &x = in(0), &w = in(1);
      if (x.shape.size() < 2) fail(n, "input must have rank 2 or more, got " + shape_str(x.shape));
      need_rank(n, w, 2, "weight");
      if (w.shape[1] != x.shape.back())
        fail(n, "weight " + shape_str(w.shape) + " does not fit input " + shape_str(x.shape));
      out.dtype = x.dtype;
      out.shape = x.shape;
      out.shape.back() = w.shape[0];
      if (n.inputs.size() > 2 && in(2).numel() != w.shape[0]) fail(n, "bias size does not match outputs");
    } else if (op == "Transpose" || op == "transpose") {
      const auto &x = in(0);
      auto perm = n.ints("perm");
      if (perm.size() != x.shape.size()) fail(n, "perm " + shape_str(perm) + " does not fit input " + shape_str(x.shape));
      out = x;
      for (size_t k = 0; k < perm.size(); k++) {
        if (perm[k] < 0 || perm[k] >= (int64_t)perm.size()) fail(n, "perm " + shape_str(perm) + " is out of range");
        out.shape[k] = x.shape[perm[k]];
      }
    } else if (op == "Slice" || op == "slice") {
      const auto &x = in(0);
      auto st = n.ints("starts"), sp = n.ints("steps"), sz = n.ints("sizes");
      if (st.size() != x.shape.size() || sp.size() != st.size() || sz.size() != st.size())
        fail(n, "starts/steps/sizes do not fit input " + shape_str(x.shape));
      for (size_t k = 0; k < st.size(); k++) {
        int64_t last = st[k] + (sz[k] - 1) * sp[k];
        if (sz[k] < 1 || sp[k] == 0 || st[k] < 0 || st[k] >= x.shape[k] || last < 0 || last >= x.shape[k])
          fail(n, "slice of axis " + std::to_string(k) + " leaves the input " + shape_str(x.shape));
      }
      out = x;
      out.shape = sz;
    } else if (op == "channel_shuffle") {
      need_rank(n, in(0), 4, "input");
      int64_t groups = n.i("groups", 1);
      if (groups < 1 || in(0).shape[1] % groups) fail(n, "groups do not divide the channels");
      out = in(0);
    } else if (op == "LayerNorm" || op == "layernorm") {
      out = in(0);
      if (in(1).numel() != out.shape.back() || in(2).numel() != out.shape.back())
        fail(n, "scale and bias must have one value per element of the last axis");
    } else if (op == "MatMul" || op == "matmul") {
      const auto &a = in(0), &b = in(1);
      if (a.shape.size() < 2 || a.shape.size() != b.shape.size() || a.shape.back() != b.shape[b.shape.size() - 2])
        fail(n, "operands " + shape_str(a.shape) + " and " + shape_str(b.shape) + " do not multiply");
      out = a;
      out.shape.back() = b.shape.back();
    } else if (op == "Softmax" || op == "softmax") {
      out = in(0);
    } else if (op == "ReduceMean") {
      out = in(0);
      out.shape.back() = 1;
    } else if (op == "layout") {
      out = in(0);
      out.layout = n.i("to_nhwc", 1) ? Layout::NHWC : Layout::NCHW;
    } else {
      fail(n, "no shape rule for this op");
    }
    if (op != "layout" && op != "Flatten" && op != "flatten" && op != "Reshape" && op != "reshape" && op != "Gemm" &&
        op != "dense")
      out.layout = in(0).layout;
    // Layouts the layout pass chose for an op's output (see passes/choose_layout.cpp).
    if (n.has("out_layout")) out.layout = static_cast<Layout>(n.i("out_layout", 0));
    // Every dimension positive and the element count within kMaxElements, so that no later
    // product of dimensions (here, in passes, in codegen) can overflow.
    int64_t count = 1;
    for (int64_t d : out.shape) {
      if (d <= 0 || d > kMaxElements / count)
        fail(n, "output shape " + shape_str(out.shape) + (d <= 0 ? " has a dimension below 1" : " is too large") +
                    " (at most " + std::to_string(kMaxElements) + " elements)");
      count *= d;
    }
    for (int o : n.outputs) g.values[o].type = out;
  }
}

}  // namespace qnnc
