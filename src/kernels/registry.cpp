// Dispatch from a KernelSpec to its family's algorithm and schedule.
#include <algorithm>

#include "kernels/conv2d.h"
#include "kernels/register_tile.h"
#include "kernels/conv2d_bitserial.h"
#include "kernels/conv2d_grouped.h"
#include "kernels/conv2d_q.h"
#include "kernels/conv2d_winograd.h"
#include "kernels/families.h"
#include "kernels/knob_space.h"
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
  for (const auto &[family, knobs] : overrides) validate_knobs(family, knobs);
}

Knobs default_knobs(const KernelSpec &s, const Target &t) {
  if (s.kind == "conv2d") return conv2d_default_knobs(s, t);
  if (s.kind == "conv2d_grouped") return conv2d_grouped_default_knobs(s, t);
  if (s.kind == "dwconv2d_q") {
    Knobs k = conv2d_grouped_default_knobs(s, t);  // vec: lanes of i32 sums, as of fp32 ones
    // u8 rows are small: padding each task's rows inside it saves the separate parallel pass
    // (MobileNetV2 int8 at 2 threads: 1.88 -> 1.70 ms; 1 thread unchanged).
    k["pad_rows"] = 1;
    // Channel quads on x86 with a u8 x i8 dot product (the Zen 4 / Sapphire Rapids feature
    // levels of Halide 21, as conv2d_q's group 4), where whole vectors of 4 x 16 channels cover
    // the layer. MobileNetV2 int8, one thread, `--profile`: 192-960 channels 15-30% faster;
    // 96 and 144 (vectors shifted inward: a third computed twice) 3-5% slower, 32 (8-lane
    // vectors) 40% slower, so those keep the widening multiplies.
    k["quads"] = x86_has_u8_dot(t) && conv2d_is_depthwise(s) && s.in_shape[1] % (4 * k["vec"]) == 0 ? 1 : 0;
    // Grouped layers: a group's input channels in quads wherever 4 divides them.
    if (x86_has_u8_dot(t) && !conv2d_is_depthwise(s)) {
      Knobs q = k;
      q["quads"] = 1;
      if (dwconv2d_q_grouped_quads(s, q)) k["quads"] = 1;
    }
    // Without a u8 dot product (x86 AVX2): a group's input channels in pairs (vpmaddwd).
    k["pairs"] = 0;
    if (t.arch == Target::X86 && !x86_has_u8_dot(t) && !k["quads"]) {
      Knobs q = k;
      q["pairs"] = 1;
      if (dwconv2d_q_grouped_dot(s, q) == 2) k["pairs"] = 1;
    }
    // Pairs widen a step's weight vectors into registers: columns whose tile fits the 16 of them.
    // RegNet-X-3.2GF int8 (groups of 48: 6 vectors), AMD EPYC Zen 3, one thread,
    // bench/compare_layers.py (4 rounds, per-layer minima, against the tiles that spilled):
    // 3 vectors x 3 columns instead of 6 x 2 at 14x14 0.86-0.98 -> 0.64-0.76 ms, instead of 3 x 4
    // at 56x56 2.96 -> 2.11 ms (112x112 at stride 2: 3.08 -> 2.35), at 28x28 0.98-0.99x, at 7x7
    // 0.95x; 3 x 4 itself (16 registers) was no faster than the spilled tiles.
    if (k["pairs"] && dwconv2d_q_grouped_dot(s, k) == 2) k["x_tile"] = dwconv2d_q_pair_columns(s, k, t);
    // With quads a column takes 4 accumulators: at most 4 columns (16 of the 32 registers).
    if (k["quads"] && k["x_tile"] > 4) {
      const int64_t OW = s.out_shape[3];
      k["x_tile"] = OW % 4 == 0 || OW < 4 ? 4 : OW % 3 == 0 ? 3 : 4;
    }
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
  if (s.kind == "maxpool" && s.dtype == "u8") k["vec"] = t.natural_vector_size<uint8_t>();
  if (s.kind == "dense") k["o_vectors"] = 4;
  if (s.kind == "add" || s.kind == "unary") k["chunk"] = 4096;
  if (s.kind == "layernorm" || s.kind == "softmax") k["rows"] = 16;
  if (s.kind == "matmul") k = {{"vec", t.natural_vector_size<float>()}, {"col_vectors", 2}, {"rows", 6}};
  if (s.kind == "lut") k = {{"vec", t.natural_vector_size<uint8_t>()}, {"chunk", 16384}};
  return k;
}

namespace {

HalideKernel build_conv2d(const KernelSpec &s, const Knobs &k, const Target &t) {
  if (conv2d_uses_winograd(s, k)) return build_conv2d_winograd(s, k);
  const KernelSpec v = conv2d_pixel_row(s, k) ? pixels_as_row(s) : s;
  ConvFuncs f = define_conv2d(v, conv2d_channel_block(v, k), knob(k, "from_nchw", 0),
                              conv2d_chunk_fits(v, k) ? knob(k, "k_chunk", 0) : 0);
  schedule_conv2d(f, v, k, t);
  std::vector<ImageParam> args{f.input, f.weights, f.bias};
  if (s.residual) args.push_back(f.residual);
  return {Pipeline(f.output), args};
}

HalideKernel build_conv2d_q(const KernelSpec &s, const Knobs &k, const Target &t) {
  ConvQFuncs f = define_conv2d_q(s, conv2d_q_channel_block(s, k));
  schedule_conv2d_q(f, s, k, t);
  std::vector<ImageParam> args{f.input, f.weights, f.bias};
  if (f.thresholds) args.push_back(f.thr);
  else args.insert(args.end(), {f.mult, f.shift});
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

std::vector<std::string> kernel_families() {
  std::vector<std::string> r;
  for (const auto &kv : builders()) r.push_back(kv.first);
  return r;
}

HalideKernel build_kernel(const KernelSpec &s, const Target &t) {
  Knobs k = default_knobs(s, t);
  for (const auto &[name, v] : s.knobs) k[name] = v;
  auto it = builders().find(s.kind);
  if (it == builders().end()) throw Error("no kernel family for '" + s.kind + "'");
  HalideKernel hk = it->second(s, k, t);
  // Buffers that are slices of a larger one: their strides replace the dense ones the family
  // declared (the extents stay; only addressing changes).
  if (s.arg_strides.size() > hk.args.size() + 1)
    throw Error("kernel spec gives strides of " + std::to_string(s.arg_strides.size()) + " arguments, '" + s.kind +
                "' takes " + std::to_string(hk.args.size() + 1));
  for (size_t i = 0; i < s.arg_strides.size(); i++) {
    const auto &st = s.arg_strides[i];
    if (st.empty()) continue;
    const bool out = i == hk.args.size();
    const int rank = out ? hk.pipeline.outputs()[0].dimensions() : hk.args[i].dimensions();
    if ((int)st.size() != rank || st[0] != 1)
      throw Error("kernel spec: strides of argument " + std::to_string(i) + " of '" + s.kind + "' must give its " +
                  std::to_string(rank) + " dimensions, the innermost dense");
    for (int d = 1; d < rank; d++) {
      if (out) hk.pipeline.outputs()[0].output_buffer().dim(d).set_stride((int)st[d]);
      else hk.args[i].dim(d).set_stride((int)st[d]);
    }
  }
  return hk;
}

}  // namespace qnnc
