// Batch-norm re-estimation: compile the network with batch norms kept as per-channel affine
// steps, run it once on a seeded random batch, and before each of those steps replace its
// scale/shift by the statistics of the activation it is about to normalize.
#include <cmath>
#include <map>

#include "codegen/compile.h"
#include "frontend/builtin_models.h"
#include "ir/shape_infer.h"

namespace qnnc {

void reestimate_batchnorm(Graph &g, int batch, uint64_t seed, const std::function<void(const std::string &)> &log) {
  Graph cal = g;
  for (int in : cal.inputs) cal.values[in].type.shape[0] = batch;
  infer_shapes(cal);
  CompileOptions opt;
  opt.passes.fold_batchnorm = false;
  if (log) log("re-estimating batch-norm statistics on " + std::to_string(batch) + " random inputs (seed " +
               std::to_string(seed) + ")");
  Module m = compile(cal, opt);

  // Which affine steps read the value each step writes.
  const auto &steps = m.manifest()["steps"];
  std::map<int, std::vector<size_t>> readers;
  for (size_t j = 0; j < steps.size(); j++)
    if (steps[j]["op"] == "scale_shift") readers[steps[j]["args"][0]["value"].get<int>()].push_back(j);
  std::map<std::string, int> bn_nodes;
  for (size_t i = 0; i < g.nodes.size(); i++)
    if (g.nodes[i].op == "BatchNormalization") bn_nodes[g.nodes[i].name] = (int)i;

  int updated = 0;
  auto hook = [&](size_t k) {
    for (int w : steps[k]["writes"]) {
      auto it = readers.find(w);
      if (it == readers.end()) continue;
      auto shape = m.value_shape(w);  // N,C,H,W logical; stored NHWC (channels innermost)
      int64_t C = shape[1], rows = shape[0] * shape[2] * shape[3];
      const float *x = m.value_data(w);
      std::vector<double> sum(C, 0.0), sq(C, 0.0);
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) {
          double v = x[r * C + c];
          sum[c] += v;
          sq[c] += v * v;
        }
      for (size_t j : it->second) {
        const auto &st = steps[j];
        auto bn = bn_nodes.find(st["name"].get<std::string>());
        if (bn == bn_nodes.end()) continue;
        Node &node = g.nodes[bn->second];
        float eps = node.f("epsilon", 1e-5f);
        auto &gamma = *g.values[node.inputs[1]].data, &beta = *g.values[node.inputs[2]].data;
        std::vector<float> mean(C), var(C);
        float *scale = m.value_data(st["args"][1]["value"]), *shift = m.value_data(st["args"][2]["value"]);
        for (int64_t c = 0; c < C; c++) {
          double mu = sum[c] / rows;
          mean[c] = (float)mu;
          var[c] = (float)std::max(0.0, sq[c] / rows - mu * mu);
          scale[c] = gamma[c] / std::sqrt(var[c] + eps);
          shift[c] = beta[c] - mean[c] * scale[c];
        }
        g.values[node.inputs[3]].data = std::make_shared<std::vector<float>>(mean);
        g.values[node.inputs[4]].data = std::make_shared<std::vector<float>>(var);
        updated++;
      }
    }
  };
  std::vector<Tensor> inputs;
  for (const auto &s : m.input_shapes()) inputs.push_back(random_tensor(s, seed));
  m.run(inputs, hook);
  if (log) log("  updated " + std::to_string(updated) + " batch norms");
}

}  // namespace qnnc
