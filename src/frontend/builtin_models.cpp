#include "frontend/builtin_models.h"

#include <cmath>
#include <random>

#include "frontend/onnx_loader.h"
#include "ir/shape_infer.h"
#include "runtime/tensor.h"

namespace qnnc {

namespace {

// Portable seeded normals (Box-Muller over mt19937_64), identical on every platform.
struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t s) : gen(s) {}
  double uniform() { return ((gen() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  float normal() { return (float)(std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform())); }
};

struct ResNetBuilder {
  Graph g;
  Rng rng;
  explicit ResNetBuilder(uint64_t seed) : rng(seed) {}

  int conv(const std::string &name, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad) {
    // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    float std = std::sqrt(2.0f / float(cout * k * k));
    std::vector<float> w(cout * cin * k * k);
    for (auto &v : w) v = rng.normal() * std;
    int wv = g.add_const(name + ".weight", {cout, cin, k, k}, std::move(w));
    Node n;
    n.name = name;
    n.op = "Conv";
    n.inputs = {x, wv};
    n.set_ints("strides", {stride, stride});
    n.set_ints("pads", {pad, pad, pad, pad});
    n.set_ints("dilations", {1, 1});
    n.set_ints("kernel_shape", {k, k});
    n.set_i("group", 1);
    return emit(n);
  }
  int bn(const std::string &name, int x, int64_t c) {
    Node n;
    n.name = name;
    n.op = "BatchNormalization";
    n.inputs = {x, g.add_const(name + ".weight", {c}, std::vector<float>(c, 1.f)),
                g.add_const(name + ".bias", {c}, std::vector<float>(c, 0.f)),
                g.add_const(name + ".running_mean", {c}, std::vector<float>(c, 0.f)),
                g.add_const(name + ".running_var", {c}, std::vector<float>(c, 1.f))};
    n.set_f("epsilon", 1e-5f);
    return emit(n);
  }
  int unary(const std::string &op, const std::string &name, std::vector<int> in) {
    Node n;
    n.name = name;
    n.op = op;
    n.inputs = std::move(in);
    return emit(n);
  }
  int emit(Node n) {
    int out = g.add_value(n.name + ".out", TensorType{});
    n.outputs = {out};
    g.add_node(std::move(n));
    return out;
  }

  int block(const std::string &p, int x, int64_t inplanes, int64_t planes, int64_t stride, bool bottleneck) {
    int64_t exp = bottleneck ? 4 : 1;
    int identity = x;
    int y;
    if (bottleneck) {
      y = unary("Relu", p + ".relu1", {bn(p + ".bn1", conv(p + ".conv1", x, inplanes, planes, 1, 1, 0), planes)});
      y = unary("Relu", p + ".relu2", {bn(p + ".bn2", conv(p + ".conv2", y, planes, planes, 3, stride, 1), planes)});
      y = bn(p + ".bn3", conv(p + ".conv3", y, planes, planes * 4, 1, 1, 0), planes * 4);
    } else {
      y = unary("Relu", p + ".relu1", {bn(p + ".bn1", conv(p + ".conv1", x, inplanes, planes, 3, stride, 1), planes)});
      y = bn(p + ".bn2", conv(p + ".conv2", y, planes, planes, 3, 1, 1), planes);
    }
    if (stride != 1 || inplanes != planes * exp)
      identity = bn(p + ".downsample.1", conv(p + ".downsample.0", x, inplanes, planes * exp, 1, stride, 0), planes * exp);
    return unary("Relu", p + ".relu", {unary("Add", p + ".add", {y, identity})});
  }
};

}  // namespace

std::vector<std::string> builtin_model_names() { return {"resnet18", "resnet34", "resnet50"}; }

Graph builtin_model(const std::string &name_in, std::vector<int64_t> shape, const BuiltinOptions &opt) {
  std::string name = name_in.rfind("builtin:", 0) == 0 ? name_in.substr(8) : name_in;
  std::vector<int> blocks;
  bool bottleneck = false;
  if (name == "resnet18") blocks = {2, 2, 2, 2};
  else if (name == "resnet34") blocks = {3, 4, 6, 3};
  else if (name == "resnet50") blocks = {3, 4, 6, 3}, bottleneck = true;
  else throw Error("unknown built-in model '" + name + "' (known: resnet18, resnet34, resnet50)");
  if (shape.empty()) shape = {1, 3, 224, 224};
  if (shape.size() != 4 || shape[1] != 3 || shape[2] < 32 || shape[3] < 32)
    throw Error("built-in " + name + " takes an input of shape N,3,H,W with H,W >= 32, got " + shape_string(shape));

  ResNetBuilder b(opt.seed);
  b.g.name = name;
  TensorType in;
  in.shape = shape;
  in.layout = Layout::NCHW;
  int x = b.g.add_value("input", in);
  b.g.inputs = {x};
  x = b.unary("Relu", "relu", {b.bn("bn1", b.conv("conv1", x, 3, 64, 7, 2, 3), 64)});
  Node mp;
  mp.name = "maxpool";
  mp.op = "MaxPool";
  mp.inputs = {x};
  mp.set_ints("kernel_shape", {3, 3});
  mp.set_ints("strides", {2, 2});
  mp.set_ints("pads", {1, 1, 1, 1});
  x = b.emit(mp);
  int64_t inplanes = 64, exp = bottleneck ? 4 : 1;
  const int64_t widths[4] = {64, 128, 256, 512};
  for (int l = 0; l < 4; l++) {
    for (int k = 0; k < blocks[l]; k++) {
      int64_t stride = (k == 0 && l > 0) ? 2 : 1;
      x = b.block("layer" + std::to_string(l + 1) + "." + std::to_string(k), x, inplanes, widths[l], stride, bottleneck);
      inplanes = widths[l] * exp;
    }
  }
  x = b.unary("GlobalAveragePool", "avgpool", {x});
  Node fl;
  fl.name = "flatten";
  fl.op = "Flatten";
  fl.inputs = {x};
  fl.set_i("axis", 1);
  x = b.emit(fl);
  // torchvision's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  int64_t fin = 512 * exp;
  float bound = 1.0f / std::sqrt((float)fin);
  std::vector<float> w(1000 * fin), bias(1000);
  for (auto &v : w) v = (float)(b.rng.uniform() * 2 - 1) * bound;
  for (auto &v : bias) v = (float)(b.rng.uniform() * 2 - 1) * bound;
  Node fc;
  fc.name = "fc";
  fc.op = "Gemm";
  fc.inputs = {x, b.g.add_const("fc.weight", {1000, fin}, std::move(w)), b.g.add_const("fc.bias", {1000}, std::move(bias))};
  x = b.emit(fc);
  b.g.values[x].name = "logits";
  b.g.outputs = {x};
  infer_shapes(b.g);
  b.g.verify();
  if (opt.reestimate_batchnorm) reestimate_batchnorm(b.g, opt.calibration_batch, opt.seed + 1, opt.log);
  return b.g;
}

Graph load_model(const std::string &spec, const std::vector<int64_t> &input_shape, const BuiltinOptions &opt) {
  if (spec.rfind("builtin:", 0) == 0) return builtin_model(spec, input_shape, opt);
  return load_onnx(spec, input_shape);
}

}  // namespace qnnc
