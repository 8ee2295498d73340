// Compile-time evaluation of nodes that only read constants.
#include "passes/passes.h"
#include "ir/shape_infer.h"

#include <algorithm>

namespace qnnc {

void fold_constants(Graph &g) {
  for (auto &n : g.nodes) {
    bool all_const = !n.inputs.empty();
    for (int v : n.inputs) all_const = all_const && g.values[v].data != nullptr;
    if (!all_const || n.outputs.size() != 1) continue;
    Value &out = g.values[n.outputs[0]];
    const auto &a = *g.values[n.inputs[0]].data;
    std::vector<float> r;
    if (n.op == "Identity" || n.op == "Reshape" || n.op == "Flatten") {
      r = a;
    } else if (n.op == "Relu") {
      r = a;
      for (auto &x : r) x = std::max(x, 0.f);
    } else if (n.op == "Add" && g.values[n.inputs[1]].data->size() == a.size()) {
      r = a;
      const auto &b = *g.values[n.inputs[1]].data;
      for (size_t i = 0; i < r.size(); i++) r[i] += b[i];
    } else {
      continue;
    }
    out.data = std::make_shared<std::vector<float>>(std::move(r));
    out.producer = -1;
    n.op.clear();
  }
  compact(g);
}

void remove_dead_nodes(Graph &g) {
  bool changed = true;
  while (changed) {
    changed = false;
    auto cons = g.consumers();
    std::vector<bool> is_out(g.values.size(), false);
    for (int o : g.outputs) is_out[o] = true;
    for (auto &n : g.nodes) {
      bool used = false;
      for (int o : n.outputs) used = used || is_out[o] || !cons[o].empty();
      if (!used) {
        n.op.clear();
        changed = true;
      }
    }
    compact(g);
  }
}

}  // namespace qnnc
