// Dispatch from a KernelSpec to its family's algorithm and schedule.
#include <algorithm>

#include "kernels/conv2d.h"
#include "kernels/conv2d_bitserial.h"
#include "kernels/conv2d_grouped.h"
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
      {"conv2d", conv}, {"conv2d_q", convq}, {"conv2d_bs", bs}, {"conv2d_grouped", {{"vec", {}}, {"x_tile", {}}}},
      {"dwconv2d_q", {{"vec", {}}, {"x_tile", {}}}}, {"dense", {{"vec", {}}, {"o_vectors", {}}}},
      {"add", {{"vec", {}}, {"chunk", {}}}}, {"relu", {{"vec", {}}}}, {"unary", {{"vec", {}}, {"chunk", {}}}},
      {"binary", {{"vec", {}}}}, {"avgpool", {{"vec", {}}}}, {"concat", {{"vec", {}}}}, {"scale_shift", {{"vec", {}}}},
      {"maxpool", {{"vec", {}}}}, {"global_avgpool", {{"vec", {}}}}, {"global_avgpool_q", {{"vec", {}}}},
      {"quantize", {{"vec", {}}}}, {"dequantize", {{"vec", {}}}}, {"layout", {{"vec", {}}}},
      {"transpose", {{"vec", {}}}}, {"slice", {{"vec", {}}}}, {"pad", {{"vec", {}}}}, {"layernorm", {{"vec", {}}, {"rows", {}}}},
      {"lut", {{"vec", {}}, {"chunk", {}}}}, {"softmax", {{"vec", {}}, {"rows", {}}}},
      {"matmul", {{"vec", {}}, {"col_vectors", {}}}}};
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
  if (s.kind == "conv2d_grouped") return conv2d_grouped_default_knobs(s, t);
  if (s.kind == "dwconv2d_q") {
    Knobs k = conv2d_grouped_default_knobs(s, t);
    k["vec"] = t.natural_vector_size<int32_t>();
    return k;
  }
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
  if (s.kind == "add" || s.kind == "unary") k["chunk"] = 4096;
  if (s.kind == "layernorm" || s.kind == "softmax") k["rows"] = 16;
  if (s.kind == "matmul") k["col_vectors"] = 2;
  if (s.kind == "lut") k = {{"vec", t.natural_vector_size<uint8_t>()}, {"chunk", 16384}};
  return k;
}

namespace {

HalideKernel build_conv2d(const KernelSpec &s, const Knobs &k, const Target &t) {
  ConvFuncs f = define_conv2d(s, conv2d_channel_block(s, k));
  schedule_conv2d(f, s, k, t);
  std::vector<Argument> args{f.input, f.weights, f.bias};
  if (s.residual) args.push_back(f.residual);
  return {Pipeline(f.output), args};
}

HalideKernel build_conv2d_q(const KernelSpec &s, const Knobs &k, const Target &t) {
  ConvQFuncs f = define_conv2d_q(s, conv2d_q_channel_block(s, k));
  schedule_conv2d_q(f, s, k, t);
  std::vector<Argument> args{f.input, f.weights, f.bias, f.mult, f.shift};
  if (s.residual) args.push_back(f.residual);
  args.push_back(f.qparams);
  return {Pipeline(f.output), args};
}

// Each kernel kind's builder (algorithm + schedule); a new family registers here.
using Builder = HalideKernel (*)(const KernelSpec &, const Knobs &, const Target &);
const std::map<std::string, Builder> &builders() {
  static const std::map<std::string, Builder> table = {
      {"conv2d", build_conv2d},
      {"conv2d_q", build_conv2d_q},
      {"conv2d_grouped", build_conv2d_grouped},
      {"dwconv2d_q", build_dwconv2d_q},
      {"bitpack", build_bitpack},
      {"conv2d_bs", build_conv2d_bitserial},
      {"quantize", build_quantize},
      {"dequantize", build_dequantize},
      {"dense", build_dense},
      {"maxpool", build_maxpool},
      {"avgpool", build_avgpool},
      {"concat", build_concat},
      {"global_avgpool", build_global_avgpool},
      {"global_avgpool_q", build_global_avgpool},
      {"add", build_add},
      {"relu", build_relu},
      {"unary", build_unary},
      {"binary", build_binary},
      {"scale_shift", build_scale_shift},
      {"layout", build_layout},
      {"transpose", build_transpose},
      {"slice", build_slice},
      {"pad", build_pad},
      {"layernorm", build_layernorm},
      {"lut", build_lut},
      {"softmax", build_softmax},
      {"matmul", build_matmul},
  };
  return table;
}

}  // namespace

HalideKernel build_kernel(const KernelSpec &s, const Target &t) {
  Knobs k = default_knobs(s, t);
  for (const auto &[name, v] : s.knobs) k[name] = v;
  auto it = builders().find(s.kind);
  if (it == builders().end()) throw Error("no kernel family for '" + s.kind + "'");
  return it->second(s, k, t);
}

}  // namespace qnnc
