// Dispatch from a KernelSpec to its family's algorithm and schedule.
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
