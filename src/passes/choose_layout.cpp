// Layout choice: qnnc's CPU kernels vectorize over channels, so every 4-D activation inside the
// graph is NHWC. Transposes are inserted where the graph meets the outside world (NCHW inputs
// and outputs) and before a flatten that would otherwise see channels in the wrong order.
#include "passes/passes.h"

namespace qnnc {

namespace {
int insert_transpose(Graph &g, std::vector<Node> &out, int v, bool to_nhwc) {
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
  return nv;
}
}  // namespace

void choose_layout(Graph &g) {
  std::vector<Node> out;
  std::map<int, int> renamed;  // NCHW value -> NHWC twin
  for (int in : g.inputs)
    if (g.values[in].type.shape.size() == 4) renamed[in] = insert_transpose(g, out, in, true);
  for (auto n : g.nodes) {
    for (auto &v : n.inputs)
      if (renamed.count(v)) v = renamed[v];
    if (n.op == "flatten") {
      const auto &s = g.values[n.inputs[0]].type.shape;
      if (s.size() == 4 && s[2] * s[3] > 1 && g.values[n.inputs[0]].type.layout == Layout::NHWC)
        n.inputs[0] = insert_transpose(g, out, n.inputs[0], false);
    }
    for (int o : n.outputs)
      if (g.values[o].type.shape.size() == 4) g.values[o].type.layout = Layout::NHWC;
    out.push_back(n);
  }
  for (auto &o : g.outputs)
    if (g.values[o].type.shape.size() == 4 && g.values[o].type.layout == Layout::NHWC) {
      int nv = insert_transpose(g, out, o, false);
      // Keep the user-visible name on the NCHW result.
      std::swap(g.values[nv].name, g.values[o].name);
      o = nv;
    }
  g.nodes = std::move(out);
  compact(g);
}

}  // namespace qnnc
