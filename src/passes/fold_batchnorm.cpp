// Folds inference-mode batch normalization into the preceding convolution:
// w' = w * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * that + beta.
#include <cmath>

#include "passes/passes.h"

namespace qnnc {

void fold_batchnorm(Graph &g) {
  auto cons = g.consumers();
  std::vector<bool> is_out(g.values.size(), false);
  for (int o : g.outputs) is_out[o] = true;
  for (auto &bn : g.nodes) {
    if (bn.op != "BatchNormalization") continue;
    int x = bn.inputs[0];
    int p = g.values[x].producer;
    if (p < 0 || g.nodes[p].op != "Conv" || cons[x].size() != 1 || is_out[x]) continue;
    Node &conv = g.nodes[p];
    if (!g.values[conv.inputs[1]].is_const()) continue;
    bool params_const = true;
    for (int k = 1; k < 5; k++) params_const = params_const && g.values[bn.inputs[k]].is_const();
    if (!params_const) continue;

    const auto &gamma = *g.values[bn.inputs[1]].data, &beta = *g.values[bn.inputs[2]].data;
    const auto &mean = *g.values[bn.inputs[3]].data, &var = *g.values[bn.inputs[4]].data;
    float eps = bn.f("epsilon", 1e-5f);
    const Value &wv = g.values[conv.inputs[1]];
    int64_t M = wv.type.shape[0], per = wv.type.numel() / M;
    std::vector<float> w = *wv.data, b(M, 0.f);
    if (conv.inputs.size() > 2) b = *g.values[conv.inputs[2]].data;
    for (int64_t m = 0; m < M; m++) {
      float s = gamma[m] / std::sqrt(var[m] + eps);
      for (int64_t i = 0; i < per; i++) w[m * per + i] *= s;
      b[m] = (b[m] - mean[m]) * s + beta[m];
    }
    int nw = g.add_const(wv.name + ".bnfold", wv.type.shape, std::move(w));
    int nb = g.add_const(conv.name + ".bias.bnfold", {M}, std::move(b));
    conv.inputs = {conv.inputs[0], nw, nb};
    conv.outputs = bn.outputs;
    for (int o : conv.outputs) g.values[o].producer = p;
    bn.op.clear();
  }
  compact(g);
}

}  // namespace qnnc
