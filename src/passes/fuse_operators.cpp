// Turns ONNX-level operators into qnnc's fused kernels. Order matters: ops are first renamed
// to their kernel families, then residual Adds are absorbed into the conv that feeds them, then
// ReLUs into whatever produced their input.
#include <algorithm>
#include <cmath>

#include "passes/passes.h"

namespace qnnc {

namespace {

bool single_use(const Graph &g, const std::vector<std::vector<int>> &cons, int v);

// Zero Pad(x) of the spatial axes of an image feeding one Conv (or one AveragePool without pads
// of its own) becomes that op's padding: Conv reads zeros there anyway, and the average then
// counts the padded taps. Any other Pad runs as a pad kernel.
void fold_pads(Graph &g) {
  auto cons = g.consumers();
  for (auto &p : g.nodes) {
    if (p.op != "Pad") continue;
    int v = p.outputs[0];
    auto pp = p.ints("pads");  // begins, then ends, of every axis
    bool spatial = pp.size() == 8 && !pp[0] && !pp[1] && !pp[4] && !pp[5] && p.f("value", 0.f) == 0.f &&
                   std::all_of(pp.begin(), pp.end(), [](int64_t e) { return e >= 0; });
    Node *c = spatial && single_use(g, cons, v) ? &g.nodes[cons[v][0]] : nullptr;
    auto cp = c ? c->ints("pads", {0, 0, 0, 0}) : std::vector<int64_t>();
    if (!c || c->inputs[0] != v ||
        !(c->op == "Conv" || (c->op == "AveragePool" && cp == std::vector<int64_t>{0, 0, 0, 0}))) {
      p.op = "pad";
      continue;
    }
    const int64_t add[4] = {pp[2], pp[3], pp[6], pp[7]};  // top, left, bottom, right
    for (int k = 0; k < 4; k++) cp[k] += add[k];
    c->set_ints("pads", cp);
    if (c->op == "AveragePool") c->set_i("count_include_pad", 1);
    c->inputs[0] = p.inputs[0];
    p.op.clear();
  }
  compact(g);
}

void rename_to_families(Graph &g) {
  for (size_t i = 0; i < g.nodes.size(); i++) {
    Node &n = g.nodes[i];
    if (n.op == "Conv") {
      n.op = "conv2d";
      if (n.inputs.size() < 3) {
        int64_t M = g.values[n.inputs[1]].type.shape[0];
        std::string nm = n.name + ".bias.zero";
        int b = g.add_const(nm, {M}, std::vector<float>(M, 0.f));
        g.nodes[i].inputs.push_back(b);
      }
    } else if (n.op == "Gemm") {
      n.op = "dense";
      if (n.inputs.size() < 3) {
        int64_t M = g.values[n.inputs[1]].type.shape[0];
        std::string nm = n.name + ".bias.zero";
        int b = g.add_const(nm, {M}, std::vector<float>(M, 0.f));
        g.nodes[i].inputs.push_back(b);
      }
    } else if (n.op == "BatchNormalization") {
      // Not folded: per-channel affine with constants named after the node.
      auto d = [&](int k) { return *g.values[n.inputs[k]].data; };
      auto gamma = d(1), beta = d(2), mean = d(3), var = d(4);
      float eps = n.f("epsilon", 1e-5f);
      std::vector<float> scale(gamma.size()), shift(gamma.size());
      for (size_t c = 0; c < gamma.size(); c++) {
        scale[c] = gamma[c] / std::sqrt(var[c] + eps);
        shift[c] = beta[c] - mean[c] * scale[c];
      }
      int64_t C = (int64_t)scale.size();
      std::string base = n.name, x = std::to_string(n.inputs[0]);
      int sv = g.add_const(base + ".scale", {C}, std::move(scale));
      int hv = g.add_const(base + ".shift", {C}, std::move(shift));
      Node &m = g.nodes[i];
      m.op = "scale_shift";
      m.inputs = {m.inputs[0], sv, hv};
    } else if (n.op == "MaxPool") {
      n.op = "maxpool";
    } else if (n.op == "GlobalAveragePool") {
      n.op = "global_avgpool";
    } else if (n.op == "Flatten" || n.op == "Reshape") {
      // [N, ...] -> [N, features] is a flatten (which the layout pass handles for NHWC input);
      // any other reshape is a view of the row-major input.
      const auto &s = g.values[n.inputs[0]].type.shape;
      const auto &o = g.values[n.outputs[0]].type.shape;
      n.op = o.size() == 2 && o[0] == s[0] ? "flatten" : "reshape";
      n.attrs.clear();
      if (n.op == "reshape") n.set_ints("shape", o);
    } else if (n.op == "Transpose" || n.op == "Slice") {
      n.op = n.op == "Transpose" ? "transpose" : "slice";
    } else if (n.op == "LayerNorm" || n.op == "Softmax" || n.op == "MatMul") {
      n.op = n.op == "LayerNorm" ? "layernorm" : n.op == "Softmax" ? "softmax" : "matmul";
    } else if (n.op == "ReduceMean") {
      throw Error("node '" + n.name + "' (ReduceMean): a mean over the last axis is only supported as part of a layer "
                  "normalization (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div)");
    } else if (n.op == "Add" && g.values[n.inputs[0]].type.shape == g.values[n.inputs[1]].type.shape &&
               !g.values[n.inputs[0]].is_const() && !g.values[n.inputs[1]].is_const()) {
      n.op = "add";
    } else if (n.op == "Add" || n.op == "Mul" || n.op == "Sub" || n.op == "Div") {
      std::string fn = n.op == "Add" ? "add" : n.op == "Mul" ? "mul" : n.op == "Sub" ? "sub" : "div";
      n.op = "binary";
      n.attrs["fn"].s = fn;
    } else if (n.op == "Sigmoid" || n.op == "Tanh" || n.op == "HardSwish" || n.op == "HardSigmoid" || n.op == "Erf" ||
               n.op == "Sqrt" || n.op == "Gelu") {
      static const std::map<std::string, std::string> fns{{"Sigmoid", "sigmoid"}, {"Tanh", "tanh"},
                                                          {"HardSwish", "hardswish"}, {"HardSigmoid", "hardsigmoid"},
                                                          {"Erf", "erf"}, {"Sqrt", "sqrt"}, {"Gelu", "gelu"}};
      std::string fn = fns.at(n.op);
      n.op = "unary";
      n.attrs["fn"].s = fn;
    } else if (n.op == "Relu") {
      n.op = "relu";
    } else if (n.op == "Clip") {
      // Clip(0, m) is a ReLU bounded at m (ReLU6 for m = 6); other bounds have no kernel.
      float lo = n.f("min", 0.f), hi = n.f("max", 0.f);
      if (lo != 0.f)
        throw Error("node '" + n.name + "' (Clip): only Clip(0, max) (ReLU, ReLU6) is supported, got min " +
                    std::to_string(lo));
      if (!(hi > 0.f))
        throw Error("node '" + n.name + "' (Clip): max must be positive, got " + std::to_string(hi));
      n.op = "relu";
      n.attrs.clear();
      if (std::isfinite(hi)) n.set_f("relu_max", hi);
    } else if (n.op == "AveragePool") {
      n.op = "avgpool";
    } else if (n.op == "Concat") {
      n.op = "concat";
    } else if (n.op == "BatchNormalization") {
    }
  }
}

bool single_use(const Graph &g, const std::vector<std::vector<int>> &cons, int v) {
  for (int o : g.outputs)
    if (o == v) return false;
  return cons[v].size() == 1;
}

// add(conv(x), r) -> conv2d(x, w, b, residual=r) placed where the add was.
void fuse_residual_adds(Graph &g) {
  auto cons = g.consumers();
  for (size_t a = 0; a < g.nodes.size(); a++) {
    Node &add = g.nodes[a];
    if (add.op != "add") continue;
    for (int side = 0; side < 2; side++) {
      int v = add.inputs[side];
      int p = g.values[v].producer;
      if (p < 0 || g.nodes[p].op != "conv2d" || g.nodes[p].i("relu", 0) || g.nodes[p].inputs.size() > 3 ||
          !single_use(g, cons, v))
        continue;
      Node fused = g.nodes[p];
      fused.inputs.push_back(add.inputs[1 - side]);
      fused.outputs = add.outputs;
      fused.name = fused.name + "+" + add.name;
      g.nodes[p].op.clear();
      g.nodes[a] = fused;
      break;
    }
  }
  compact(g);
}

// binary mul(x, f(x)) -> unary g(x) for the gates that ONNX exports as two nodes: SiLU / Swish
// (x * sigmoid(x)) and, before opset 14, HardSwish (x * HardSigmoid(x) with alpha 1/6, beta 1/2).
// One node computes the same operations and, in int8, becomes one exact table instead of a table
// whose rounded output is then multiplied.
void fuse_self_gates(Graph &g) {
  auto cons = g.consumers();
  auto gate_of = [](const Node &u) -> std::string {
    if (u.op != "unary" || u.i("relu", 0)) return "";
    const std::string &fn = u.attrs.at("fn").s;
    if (fn == "sigmoid") return "silu";
    if (fn == "hardsigmoid" && u.f("alpha", 0.2f) == 1.f / 6.f && u.f("beta", 0.5f) == 0.5f) return "hardswish";
    return "";
  };
  for (auto &m : g.nodes) {
    if (m.op != "binary" || m.attrs["fn"].s != "mul" || m.i("relu", 0)) continue;
    for (int side = 0; side < 2; side++) {
      int s = m.inputs[side], x = m.inputs[1 - side];
      int p = g.values[s].producer;
      if (p < 0 || g.nodes[p].inputs[0] != x || !single_use(g, cons, s)) continue;
      std::string fn = gate_of(g.nodes[p]);
      if (fn.empty()) continue;
      g.nodes[p].op.clear();
      m.op = "unary";
      m.attrs.clear();
      m.attrs["fn"].s = fn;
      m.inputs = {x};
      break;
    }
  }
  compact(g);
}

void fuse_relus(Graph &g) {
  auto cons = g.consumers();
  for (auto &r : g.nodes) {
    if (r.op != "relu") continue;
    int v = r.inputs[0];
    int p = g.values[v].producer;
    if (p < 0 || !single_use(g, cons, v)) continue;
    Node &prod = g.nodes[p];
    const std::string &op = prod.op;
    if ((op != "conv2d" && op != "dense" && op != "add" && op != "scale_shift") || prod.i("relu", 0)) continue;
    prod.set_i("relu", 1);
    if (r.f("relu_max", 0.f) > 0) prod.set_f("relu_max", r.f("relu_max", 0.f));
    prod.outputs = r.outputs;
    for (int o : prod.outputs) g.values[o].producer = p;
    r.op.clear();
  }
  compact(g);
}

// A node of one input and one output whose integer attribute `attr` is v (views: transpose,
// reshape).
Node view_node(const std::string &name, const std::string &op, int in, int out, const char *attr,
               const std::vector<int64_t> &v) {
  Node r;
  r.name = name;
  r.op = op;
  r.inputs = {in};
  r.outputs = {out};
  r.set_ints(attr, v);
  return r;
}

// transpose -> conv2d -> transpose for the dense node n over the 4-D value x, writing y.
void emit_dense_as_conv(Graph &g, const Node &n, int x, int y, std::vector<Node> &out) {
  const std::vector<int64_t> xs = g.values[x].type.shape;
  const int64_t N = xs[0], H = xs[1], W = xs[2], K = xs[3], M = g.values[n.inputs[1]].type.shape[0];
  TensorType tx = g.values[x].type, ty = tx;
  tx.shape = {N, K, H, W};
  ty.shape = {N, M, H, W};
  const int xv = g.add_value(n.name + ".as_nchw", tx);
  const int yv = g.add_value(n.name + ".conv", ty);
  const int wv = g.add_const(n.name + ".weight_1x1", {M, K, 1, 1}, *g.values[n.inputs[1]].data);
  Node c = n;
  c.op = "conv2d";
  c.inputs = {xv, wv, n.inputs[2]};
  c.outputs = {yv};
  c.set_ints("kernel_shape", {1, 1});
  out.push_back(view_node(n.name + "_to_conv", "transpose", x, xv, "perm", {0, 3, 1, 2}));
  out.push_back(std::move(c));
  out.push_back(view_node(n.name + "_from_conv", "transpose", yv, y, "perm", {0, 2, 3, 1}));
}

// A dense layer over the last axis of a 4-D tensor [N, H, W, K] (ConvNeXt's and Swin's MLPs,
// between NCHW <-> NHWC permutes) is a 1x1 convolution: rewritten as transpose to [N, K, H, W],
// conv2d with weights [M, K, 1, 1], transpose back. The layout pass makes both transposes views
// (NHWC memory of [N, K, H, W] is the row-major memory of [N, H, W, K]), so the layer runs the
// convolution's register tiles, and in int8 the integer 1x1 kernel (a dense layer over a >2-D
// tensor has no integer kernel). A 3-D input [A, B, K] (a transformer's tokens) is first viewed
// as [1, 1, A B, K] (a reshape of row-major memory: no step), and the output viewed back: all
// tokens as one row of pixels.
void dense_as_conv(Graph &g) {
  std::vector<Node> out;
  for (auto &n : g.nodes) {
    const size_t rank = n.inputs.empty() ? 0 : g.values[n.inputs[0]].type.shape.size();
    const bool nd = n.op == "dense" && n.inputs.size() == 3 && (rank == 4 || rank == 3) &&
                    !g.values[n.inputs[0]].is_const() && g.values[n.inputs[1]].is_const() &&
                    g.values[n.inputs[1]].type.shape.size() == 2 && g.values[n.inputs[1]].data && !n.i("relu", 0) &&
                    !n.has("act") && g.values[n.inputs[1]].type.shape[1] == g.values[n.inputs[0]].type.shape.back();
    if (!nd) {
      out.push_back(std::move(n));
      continue;
    }
    if (rank == 4) {
      emit_dense_as_conv(g, n, n.inputs[0], n.outputs[0], out);
      continue;
    }
    TensorType x4 = g.values[n.inputs[0]].type, y4 = g.values[n.outputs[0]].type;
    const std::vector<int64_t> ys = y4.shape;
    x4.shape = {1, 1, x4.shape[0] * x4.shape[1], x4.shape[2]};
    y4.shape = {1, 1, ys[0] * ys[1], ys[2]};
    const int xv = g.add_value(n.name + ".rows", x4), yv = g.add_value(n.name + ".rows_out", y4);
    out.push_back(view_node(n.name + "_rows", "reshape", n.inputs[0], xv, "shape", x4.shape));
    emit_dense_as_conv(g, n, xv, yv, out);
    out.push_back(view_node(n.name + "_tokens", "reshape", yv, n.outputs[0], "shape", ys));
  }
  g.nodes = std::move(out);
  compact(g);
}

}  // namespace

void fuse_operators(Graph &g) {
  fold_pads(g);
  fuse_patterns(g);
  rename_to_families(g);
  compact(g);
  dense_as_conv(g);
  fuse_residual_adds(g);
  fuse_self_gates(g);
  fuse_relus(g);
}


void fuse_activations(Graph &g) {
  auto cons = g.consumers();
  for (auto &u : g.nodes) {
    if (u.op != "unary" || u.i("relu", 0)) continue;
    int v = u.inputs[0];
    int p = g.values[v].producer;
    if (p < 0 || !single_use(g, cons, v)) continue;
    // Through a transpose and a reshape (an elementwise function commutes with them): ConvNeXt's
    // MLP is a 1x1 convolution between two permutes (dense_as_conv), its GELU after the second;
    // a transformer's adds a view back to tokens. The convolution takes the function and the
    // view nearest the unary then writes the unary's output.
    int t = -1;
    bool through = true;
    for (int hop = 0; hop < 2; hop++) {
      const Node &view = g.nodes[p];
      if ((view.op != "transpose" && view.op != "reshape") || view.inputs.size() != 1) break;
      const int x = view.inputs[0], q = g.values[x].producer;
      if (q < 0 || !single_use(g, cons, x)) {
        through = false;
        break;
      }
      if (t < 0) t = p;
      p = q;
      v = x;
    }
    if (!through) continue;
    Node &prod = g.nodes[p];
    if ((prod.op != "conv2d" && prod.op != "dense") || prod.i("relu", 0) || prod.has("act")) continue;
    if (g.values[v].type.dtype != DType::f32 || g.values[u.outputs[0]].type.dtype != DType::f32) continue;
    prod.attrs["act"].s = u.attrs.at("fn").s;
    if (u.attrs.at("fn").s == "hardsigmoid") prod.attrs["act"].floats = {u.f("alpha", 0.2f), u.f("beta", 0.5f)};
    const int writer = t >= 0 ? t : p;
    g.nodes[writer].outputs = u.outputs;
    for (int o : u.outputs) g.values[o].producer = writer;
    u.op.clear();
  }
  compact(g);
}

}  // namespace qnnc
