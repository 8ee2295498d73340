// Dispatch from a KernelSpec to its family's algorithm and schedule.
#include <algorithm>

#include "kernels/conv2d.h"
#include "kernels/conv2d_bitserial.h"
#include "kernels/conv2d_q.h"
#include "kernels/families.h"
#include "ir/graph.h"

using namespace Halide;

namespace qnnc {

int knob(const Knobs &k, const std::string &name, int dflt) {
  auto it = k.find(name);
  return it == k.end() ? dflt : it->second;
}

ImageParam fixed_param(Type t, const std::string &name, const std::vector<int64_t> &extents) {
  ImageParam p(t, (int)extents.size(), name);
  int64_t stride = 1;
  for (size_t i = 0; i < extents.size(); i++) {
    p.dim((int)i).set_min(0).set_extent((int)extents[i]).set_stride((int)stride);
    stride *= extents[i];
  }
  return p;
}

void fix_output(Func f, const std::vector<int64_t> &extents) {
  auto ob = f.output_buffer();
  int64_t stride = 1;
  for (size_t i = 0; i < extents.size(); i++) {
    ob.dim((int)i).set_min(0).set_extent((int)extents[i]).set_stride((int)stride);
    stride *= extents[i];
  }
}

void validate_knob_overrides(const std::map<std::string, Knobs> &overrides) {
  // Knobs a user may set, per family, with the values each accepts (empty: any positive int).
  using Allowed = std::map<std::string, std::vector<int>>;
  const Allowed tile{{"vec", {}}, {"co_vectors", {}}, {"x_tile", {}}};
  Allowed conv = tile, convq = tile, bs = tile;
  conv["unroll_ci"] = {};
  convq["signed_input"] = {0, 1};
  convq["bitserial"] = {0, 1};
  convq["group"] = {2, 4};
  convq["weights_per_byte"] = {1, 2, 4};
  const std::map<std::string, Allowed> families{
      {"conv2d", conv}, {"conv2d_q", convq}, {"conv2d_bs", bs}, {"dense", {{"vec", {}}, {"o_vectors", {}}}},
      {"add", {{"vec", {}}, {"chunk", {}}}}, {"relu", {{"vec", {}}}}, {"scale_shift", {{"vec", {}}}},
      {"maxpool", {{"vec", {}}}}, {"global_avgpool", {{"vec", {}}}}, {"global_avgpool_q", {{"vec", {}}}},
      {"quantize", {{"vec", {}}}}, {"dequantize", {{"vec", {}}}}, {"layout", {{"vec", {}}}}};
  auto names = [](const auto &m) {
    std::string s;
    for (const auto &kv : m) s += (s.empty() ? "" : ", ") + kv.first;
    return s;
  };
  for (const auto &[family, knobs] : overrides) {
    auto f = families.find(family);
    if (f == families.end())
      throw Error("unknown kernel family '" + family + "' in --knob (families: " + names(families) + ")");
    for (const auto &[name, v] : knobs) {
      auto k = f->second.find(name);
      if (k == f->second.end())
        throw Error("unknown knob '" + family + "." + name + "' (" + family + " knobs: " + names(f->second) + ")");
      const auto &ok = k->second;
      bool fine = ok.empty() ? v >= 1 : std::find(ok.begin(), ok.end(), v) != ok.end();
      if (!fine) {
        std::string allowed = "a positive integer";
        if (!ok.empty()) {
          allowed.clear();
          for (int a : ok) allowed += (allowed.empty() ? "" : "|") + std::to_string(a);
        }
        throw Error("knob '" + family + "." + name + "' = " + std::to_string(v) + ": expected " + allowed);
      }
    }
  }
}

Knobs default_knobs(const KernelSpec &s, const Target &t) {
  if (s.kind == "conv2d") return conv2d_default_knobs(s, t);
  if (s.kind == "conv2d_q") return conv2d_q_default_knobs(s, t);
  if (s.kind == "conv2d_bs") {
    Knobs k = conv2d_q_default_knobs(s, t);
    k.erase("signed_input");
    k.erase("group");
    k["vec"] = t.natural_vector_size<uint32_t>();
    return k;
  }
  Knobs k{{"vec", t.natural_vector_size<float>()}};
  if (s.kind == "dense") k["o_vectors"] = 4;
  if (s.kind == "add") k["chunk"] = 4096;
  return k;
}

HalideKernel build_kernel(const KernelSpec &s, const Target &t) {
  Knobs k = default_knobs(s, t);
  for (const auto &[name, v] : s.knobs) k[name] = v;
  if (s.kind == "conv2d") {
    ConvFuncs f = define_conv2d(s, conv2d_channel_block(s, k));
    schedule_conv2d(f, s, k, t);
    std::vector<Argument> args{f.input, f.weights, f.bias};
    if (s.residual) args.push_back(f.residual);
    return {Pipeline(f.output), args};
  }
  if (s.kind == "conv2d_q") {
    ConvQFuncs f = define_conv2d_q(s, conv2d_q_channel_block(s, k));
    schedule_conv2d_q(f, s, k, t);
    std::vector<Argument> args{f.input, f.weights, f.bias, f.mult, f.shift};
    if (s.residual) args.push_back(f.residual);
    args.push_back(f.qparams);
    return {Pipeline(f.output), args};
  }
  if (s.kind == "bitpack") return build_bitpack(s, k, t);
  if (s.kind == "conv2d_bs") return build_conv2d_bitserial(s, k, t);
  if (s.kind == "quantize") return build_quantize(s, k, t);
  if (s.kind == "dequantize") return build_dequantize(s, k, t);
  if (s.kind == "dense") return build_dense(s, k, t);
  if (s.kind == "maxpool") return build_maxpool(s, k, t);
  if (s.kind == "global_avgpool" || s.kind == "global_avgpool_q") return build_global_avgpool(s, k, t);
  if (s.kind == "add") return build_add(s, k, t);
  if (s.kind == "relu") return build_relu(s, k, t);
  if (s.kind == "scale_shift") return build_scale_shift(s, k, t);
  if (s.kind == "layout") return build_layout(s, k, t);
  throw Error("no kernel family for '" + s.kind + "'");
}

}  // namespace qnnc
