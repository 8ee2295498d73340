#include "passes/passes.h"
#include "ir/shape_infer.h"

namespace qnnc {

void compact(Graph &g) {
  std::vector<Node> kept;
  for (auto &n : g.nodes)
    if (!n.op.empty()) kept.push_back(std::move(n));
  g.nodes = std::move(kept);
  for (auto &v : g.values) v.producer = -1;
  for (size_t i = 0; i < g.nodes.size(); i++)
    for (int o : g.nodes[i].outputs) g.values[o].producer = (int)i;
}

void run_graph_passes(Graph &g, const PassOptions &opt) {
  fold_constants(g);
  if (opt.fold_batchnorm) fold_batchnorm(g);
  fuse_operators(g);
  remove_dead_nodes(g);
  infer_shapes(g);
  g.verify();
}

void run_layout_passes(Graph &g, const PassOptions &opt) {
  if (opt.fuse_activations) fuse_activations(g);
  if (opt.nhwc) {
    choose_layout(g);
    fold_input_layout(g);
  }
  infer_shapes(g);
  g.verify();
}

void run_passes(Graph &g, const PassOptions &opt) {
  run_graph_passes(g, opt);
  run_layout_passes(g, opt);
}

}  // namespace qnnc
