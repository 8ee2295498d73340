// Layout choice: qnnc's CPU kernels vectorize over channels, so 4-D activations are NHWC
// wherever a kernel family wants them so. Each op says what it needs of its 4-D inputs:
// - NHWC (convolutions, pools, concat, ...: the default);
// - "follow" (elementwise ops, slices, pads): any layout, the output keeps it;
// - row-major (reshape, flatten, layer norm, dense over the last axis): the logical order;
// - transpose: any input; its output takes the layout that makes it a free view when one does.
// Transposes (layout ops) are inserted where a value's layout and a reader's need differ, and
// where the graph meets the outside world (NCHW inputs and outputs).
#include <algorithm>
#include <map>
#include <set>

#include "passes/passes.h"

namespace qnnc {

namespace {

enum class Need { nhwc, follow, row_major, transpose };

Need need_of(const Graph &g, const Node &n) {
  static const std::set<std::string> follow{"relu", "unary", "lut", "binary", "add", "quantize", "dequantize", "slice", "pad"};
  if (follow.count(n.op)) return Need::follow;
  if (n.op == "reshape" || n.op == "flatten" || n.op == "layernorm" || n.op == "softmax" || n.op == "matmul")
    return Need::row_major;
  if (n.op == "dense" && g.values[n.inputs[0]].type.shape.size() > 2) return Need::row_major;
  if (n.op == "transpose") return Need::transpose;
  return Need::nhwc;
}

bool rank4_act(const Graph &g, int v) { return g.values[v].type.shape.size() == 4 && !g.values[v].is_const(); }

struct LayoutPass {
  Graph &g;
  std::vector<Node> out;
  std::map<std::pair<int, bool>, int> converted;  // (value, to NHWC) -> transposed twin

  int convert(int v, bool to_nhwc) {
    auto key = std::make_pair(v, to_nhwc);
    if (auto it = converted.find(key); it != converted.end()) return it->second;
    TensorType t = g.values[v].type;
    t.layout = to_nhwc ? Layout::NHWC : Layout::NCHW;
    int nv = g.add_value(g.values[v].name + (to_nhwc ? ".nhwc" : ".nchw"), t);
    Node n;
    n.name = g.values[v].name + (to_nhwc ? "_to_nhwc" : "_to_nchw");
    n.op = "layout";
    n.inputs = {v};
    n.outputs = {nv};
    n.set_i("to_nhwc", to_nhwc ? 1 : 0);
    out.push_back(n);
    converted[key] = nv;
    converted[{nv, !to_nhwc}] = v;
    return nv;
  }
  bool is_nhwc(int v) const { return g.values[v].type.layout == Layout::NHWC; }
  // v with its 4-D data in NHWC (want = true) or row-major order.
  int ensure(int v, bool nhwc) {
    if (!rank4_act(g, v) || is_nhwc(v) == nhwc) return v;
    if (!nhwc) {  // NHWC memory that is already row-major: one channel, or one pixel
      const auto &s = g.values[v].type.shape;
      if (s[1] == 1 || s[2] * s[3] == 1) return v;
    }
    return convert(v, nhwc);
  }
  // Whether a transpose with `perm` from v is a view when its output has layout `l`.
  bool free_transpose(int v, const std::vector<int64_t> &perm, Layout l) const {
    const auto &t = g.values[v].type;
    return transpose_is_view(t, transpose_memory_perm(t, perm, l));
  }
  void set_out_layout(Node &n, Layout l) {
    for (int o : n.outputs)
      if (g.values[o].type.shape.size() == 4) g.values[o].type.layout = l;
    if (g.values[n.outputs[0]].type.shape.size() == 4) n.set_i("out_layout", (int64_t)l);
  }

  void run() {
    // Images enter NHWC at once: the first reader of an image is almost always a convolution,
    // and a quantize of the input must not produce u8 NCHW (the layout kernel is fp32).
    std::map<int, int> entered;
    for (int in : g.inputs)
      if (rank4_act(g, in)) entered[in] = convert(in, true);
    for (auto n : g.nodes) {
      for (auto &v : n.inputs)
        if (entered.count(v)) v = entered[v];
      switch (need_of(g, n)) {
        case Need::nhwc:
          for (auto &v : n.inputs) v = ensure(v, true);
          set_out_layout(n, Layout::NHWC);
          break;
        case Need::follow: {
          bool any_nhwc = false, any4 = false;
          for (int v : n.inputs)
            if (rank4_act(g, v)) any4 = true, any_nhwc = any_nhwc || is_nhwc(v);
          bool nhwc = any_nhwc || !any4;
          for (auto &v : n.inputs) v = ensure(v, nhwc);
          set_out_layout(n, nhwc && g.values[n.outputs[0]].type.shape.size() == 4 && any4 ? Layout::NHWC
                                                                                            : Layout::NCHW);
          break;
        }
        case Need::row_major:
          for (auto &v : n.inputs) v = ensure(v, false);
          set_out_layout(n, Layout::NCHW);
          break;
        case Need::transpose: {
          auto perm = n.ints("perm");
          Layout l = Layout::NHWC;
          if (perm.size() == 4 && !free_transpose(n.inputs[0], perm, Layout::NHWC) &&
              free_transpose(n.inputs[0], perm, Layout::NCHW))
            l = Layout::NCHW;
          set_out_layout(n, l);
          break;
        }
      }
      out.push_back(n);
    }
    for (auto &o : g.outputs)
      if (rank4_act(g, o) && is_nhwc(o)) {
        int nv = convert(o, false);
        // Keep the user-visible name on the NCHW result.
        std::swap(g.values[nv].name, g.values[o].name);
        o = nv;
      }
    // Drop input conversions that no reader ended up using.
    std::set<int> read(g.outputs.begin(), g.outputs.end());
    for (const auto &n : out) read.insert(n.inputs.begin(), n.inputs.end());
    for (auto &n : out)
      if (n.op == "layout" && !read.count(n.outputs[0])) n.op.clear();
    g.nodes = std::move(out);
    compact(g);
  }
};

}  // namespace

void choose_layout(Graph &g) { LayoutPass{g, {}, {}}.run(); }

void fold_input_layout(Graph &g) {
  std::map<int, int> readers;
  std::set<int> concatenated;  // written into a concatenation's buffer: keep the strided kernel
  for (const Node &n : g.nodes)
    for (int v : n.inputs) {
      readers[v]++;
      if (n.op == "concat") concatenated.insert(v);
    }
  for (int v : g.outputs) readers[v] += 2;  // a graph output keeps its producer
  std::map<int, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); i++)
    for (int o : g.nodes[i].outputs) producer[o] = i;
  // A quantize step reads any NCHW activation; an fp32 convolution (not grouped) an image of at
  // most 4 channels, which its padded copy or its loads take a vector of columns at a time.
  auto folds_into = [&](const Node &n) {
    if (n.inputs.empty() || n.outputs.empty() || concatenated.count(n.outputs[0])) return false;
    if (n.op == "quantize") return true;
    const auto &in = g.values[n.inputs[0]].type.shape;
    return n.op == "conv2d" && n.i("group", 1) == 1 && in.size() == 4 && in[1] <= 4 &&
           g.values[n.outputs[0]].type.dtype == DType::f32;
  };
  bool changed = false;
  for (Node &q : g.nodes) {
    if (!folds_into(q)) continue;
    const int v = q.inputs[0];
    auto p = producer.find(v);
    if (p == producer.end() || readers[v] != 1) continue;
    Node &l = g.nodes[p->second];
    if (l.op != "layout" || !l.i("to_nhwc", 1) || g.values[v].type.shape.size() != 4) continue;
    q.inputs[0] = l.inputs[0];
    q.set_i("from_nchw", 1);
    l.op.clear();
    changed = true;
  }
  if (changed) compact(g);
}

}  // namespace qnnc
