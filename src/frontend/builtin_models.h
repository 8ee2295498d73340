// Built-in models that need no file: torchvision's ResNet architectures with weights from a
// seeded generator (torchvision's initialization) and batch-norm statistics re-estimated on
// random inputs, so activations are normalized as in a trained network.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace qnnc {

struct BuiltinOptions {
  uint64_t seed = 0;
  bool reestimate_batchnorm = true;
  int calibration_batch = 4;
  std::function<void(const std::string &)> log;
};

// name: resnet18, resnet34, resnet50 (or with a "builtin:" prefix). input_shape N,C,H,W;
// empty = 1,3,224,224.
Graph builtin_model(const std::string &name, std::vector<int64_t> input_shape = {},
                    const BuiltinOptions &opt = {});

std::vector<std::string> builtin_model_names();

// Loads "builtin:NAME" or an ONNX path.
Graph load_model(const std::string &spec, const std::vector<int64_t> &input_shape = {},
                 const BuiltinOptions &opt = {});

// Sets every BatchNormalization's running mean/variance to the statistics of its input on
// seeded standard-normal inputs, layer by layer, running the network with qnnc's own kernels.
void reestimate_batchnorm(Graph &g, int batch, uint64_t seed,
                          const std::function<void(const std::string &)> &log = nullptr);

}  // namespace qnnc
