#include "codegen/lower_graph.h"

#include "tune/records.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "codegen/concat_slices.h"
#include "codegen/kernel_cache.h"
#include "kernels/knob_space.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_winograd.h"
#include "kernels/conv2d_bitserial.h"
#include "kernels/conv2d_grouped.h"
#include "kernels/conv2d_q.h"
#include "kernels/families.h"
#include "kernels/requantize.h"

#include <cstring>

namespace qnnc {

namespace {

template <typename T>
std::vector<uint8_t> to_bytes(const std::vector<T> &v, DType dt) {
  std::vector<uint8_t> b(v.size() * dtype_bytes(dt));
  for (size_t i = 0; i < v.size(); i++) {
    switch (dt) {
      case DType::f32: {
        float f = (float)v[i];
        std::memcpy(&b[i * 4], &f, 4);
        break;
      }
      case DType::i32: {
        int32_t x = (int32_t)v[i];
        std::memcpy(&b[i * 4], &x, 4);
        break;
      }
      case DType::u32: {
        uint32_t x = (uint32_t)v[i];
        std::memcpy(&b[i * 4], &x, 4);
        break;
      }
      case DType::i8: b[i] = (uint8_t)(int8_t)v[i]; break;
      case DType::u8: b[i] = (uint8_t)v[i]; break;
      default: throw Error("unsupported constant dtype");
    }
  }
  return b;
}

// Rows of a 2-D dense layer's input from which it runs as a 1x1 convolution over one row of
// that many pixels (the dense kernel keeps every row's outputs in its accumulators: a batch of
// a few images; a transformer's tokens are many rows).
constexpr int64_t kDenseRowsAsConv = 8;

std::vector<std::array<int64_t, 3>> packed(const std::vector<int64_t> &extents) {
  std::vector<std::array<int64_t, 3>> d;
  int64_t stride = 1;
  for (auto e : extents) {
    d.push_back({0, e, stride});
    stride *= e;
  }
  return d;
}

struct Lowering {
  const Graph &g;
  const TargetInfo &target;
  const std::map<std::string, Knobs> &overrides;
  const std::map<std::string, Knobs> &tuned;
  const std::map<std::string, Knobs> &tuned_defaults;
  LoweredModule lm;
  std::map<int, int> id;  // graph value -> plan value

  int value(int v) {
    auto it = id.find(v);
    if (it != id.end()) return it->second;
    const Value &gv = g.values[v];
    PlanValue pv;
    pv.name = gv.name;
    pv.shape = gv.type.shape;
    pv.layout = layout_name(gv.type.layout);
    pv.kind = gv.is_const() ? "const" : "act";
    pv.dtype = gv.type.dtype;
    pv.scale = gv.scale;
    pv.zero_point = gv.zero_point;
    if (gv.data) pv.bytes = to_bytes(*gv.data, DType::f32), pv.dtype = DType::f32;
    if (gv.idata) pv.bytes = to_bytes(*gv.idata, gv.type.dtype);
    lm.values.push_back(std::move(pv));
    return id[v] = (int)lm.values.size() - 1;
  }
  template <typename T>
  int new_const(const std::string &name, std::vector<int64_t> shape, const std::vector<T> &data,
                DType dt = DType::f32) {
    PlanValue pv;
    pv.name = name;
    pv.kind = "const";
    pv.shape = std::move(shape);
    pv.layout = "kernel";
    pv.dtype = dt;
    pv.bytes = to_bytes(data, dt);
    lm.values.push_back(std::move(pv));
    return (int)lm.values.size() - 1;
  }
  // Halide view of an activation according to its layout.
  std::vector<std::array<int64_t, 3>> view(int v) {
    const auto &t = g.values[v].type;
    if (t.shape.size() == 4)
      return packed(t.layout == Layout::NHWC ? nhwc_dims(t.shape) : nchw_dims(t.shape));
    std::vector<int64_t> rev(t.shape.rbegin(), t.shape.rend());
    return packed(rev);
  }
  static std::string rounding_of(const Node &n) {
    auto it = n.attrs.find("rounding");
    return it == n.attrs.end() || it->second.s.empty() ? "upward" : it->second.s;
  }
  // `formats`: data-format knobs lowering has decided (0: absent). Neither a --knob nor a record
  // changes them, and they are in place when a record is looked up, because the task a record
  // names is the final kernel's.
  void resolve_knobs(KernelSpec &s, const Knobs &formats = {}) {
    // Defaults for the target the kernel is compiled for (integer kernels get extra features).
    Knobs k = default_knobs(s, Halide::Target(kernel_target_string(s, target)));
    for (const auto &[name, v] : s.knobs) k[name] = v;
    s.knobs = k;
    auto set_formats = [&] {
      for (const auto &[name, v] : formats) {
        s.knobs.erase(name);
        if (v) s.knobs[name] = v;
      }
    };
    // --knob overrides first, so that the task is named as `qnnc tune --knob ...` named it; then
    // the tuned knobs; an explicit --knob still wins over a record.
    auto ov = overrides.find(s.kind);
    if (ov != overrides.end())
      for (const auto &[name, v] : ov->second) s.knobs[name] = v;
    set_formats();
    if (!tuned.empty())
      if (auto it = tuned.find(task_signature(s)); it != tuned.end()) {
        // (A second call for one kernel finds the record's knobs already in place.)
        if (!knob_mismatch(s.knobs, it->second).empty() && default_changed(s, it->first)) {
          lm.stale_tuned[it->first] = s.describe();
          return;
        }
        for (const auto &[name, v] : it->second) s.knobs[name] = v;
        if (ov != overrides.end())
          for (const auto &[name, v] : ov->second) s.knobs[name] = v;
        set_formats();
      }
  }
  // Whether the default knobs that task's records were measured against differ from s's knobs
  // (the default here, with the --knob overrides the tuner also applies) in normal form.
  bool default_changed(const KernelSpec &s, const std::string &task) const {
    auto d = tuned_defaults.find(task);
    auto sp = knob_spaces().find(s.kind);
    if (d == tuned_defaults.end() || sp == knob_spaces().end()) return false;
    const auto names = sp->second.tunable();
    Knobs then = s.knobs;
    for (const auto &n : names) then.erase(n);
    for (const auto &[name, v] : d->second) then[name] = v;
    const Halide::Target kt(kernel_target_string(s, target));
    const Knobs a = normalized_knobs(s, s.knobs, kt), b = normalized_knobs(s, then, kt);
    for (const auto &n : names) {
      auto x = a.find(n), y = b.find(n);
      if ((x == a.end()) != (y == b.end()) || (x != a.end() && x->second != y->second)) return true;
    }
    return false;
  }
  // An activation as (c, x, y, n) for the convolution kernels; a 2-D [N, K] value (the input or
  // output of a dense layer run as a 1x1 convolution) is a 1x1 image of K channels.
  PlanArg act4(int v) {
    const auto &t = g.values[v].type;
    if (t.shape.size() != 2) return act(v);
    int64_t N = t.shape[0], K = t.shape[1];
    return {value(v), {{0, K, 1}, {0, 1, K}, {0, 1, K}, {0, N, K}}};
  }
  // Kernel size, strides, padding and dilation of a convolution node with OIHW weights w.
  static void set_conv_window(KernelSpec &s, const Node &n, const Value &w) {
    s.kernel = {w.type.shape[2], w.type.shape[3]};
    s.stride = n.ints("strides", {1, 1});
    s.pads = n.ints("pads", {0, 0, 0, 0});
    s.dilation = n.ints("dilations", {1, 1});
  }
  // The qparams constant of the integer convolutions' epilogue: input and output zero points,
  // residual zero point and rescale, and the clamp [lo, hi]: ReLU clamps at the output zero
  // point, a bounded ReLU (ReLU6) also at the level of its bound.
  std::vector<int32_t> qparams(const Node &n, const KernelSpec &s, int out, int in_zp) const {
    const int out_zp = (int)n.i("out_zp", 0);
    const int lo = n.i("relu", 0) ? out_zp : 0;
    int hi = s.qmax;
    if (s.relu && s.relu_max > 0 && g.values[out].scale > 0)
      hi = (int)std::min<double>(s.qmax, std::max<double>(lo, out_zp + std::nearbyint(s.relu_max / g.values[out].scale)));
    return {in_zp, out_zp, (int32_t)n.i("res_zp", 0), (int32_t)n.i("res_mult", 0), (int32_t)n.i("res_shift", 0), lo, hi, 0};
  }
  int epilogue_qparams(const Node &n, const KernelSpec &s, int out, int in_zp) {
    return new_const(n.name + ".qparams", {8}, qparams(n, s, out, in_zp), DType::i32);
  }
  // The largest level of an integer value: its producer's qmax, looking through max pooling.
  int value_qmax(int v) const {
    for (const auto &n : g.nodes)
      if (!n.outputs.empty() && n.outputs[0] == v) {
        if (n.has("qmax")) return (int)n.i("qmax", 255);
        if (n.op == "maxpool") return value_qmax(n.inputs[0]);
        break;
      }
    return 255;
  }
  // The threshold epilogue (kernels/requantize.h) of an integer convolution whose output has at
  // most 3 levels above 0 and whose residual (if any) at most 4 levels (rb: residual bit
  // planes, 0 for u8): the thresholds constant and the number of residual levels R; {-1, 0} to
  // keep the multiplier epilogue. The thresholds compare with the accumulator, which holds the
  // bias when `bias_in_acc` (conv2d_q) and not otherwise (conv2d_bs). wbits: how the kernel
  // reads the weights (1: +-1; else two's complement of wbits bits); xmax: the largest input level.
  std::pair<int, int> thresholds_const(const Node &n, const KernelSpec &s, int out, int rb, const std::vector<int32_t> &wq,
                                       int64_t taps, int wbits, int64_t xmax, bool bias_in_acc) {
    if (auto ov = overrides.find(s.kind); ov != overrides.end() && knob(ov->second, "thresholds", 1) == 0) return {-1, 0};
    const int R = !s.residual ? 1 : rb ? 1 << rb : value_qmax(n.inputs[5]) + 1;
    if (s.qmax < 1 || s.qmax > 3 || R > 4) return {-1, 0};
    const auto q = qparams(n, s, out, 0);
    ThresholdEpilogue e;
    e.bias = *g.values[n.inputs[2]].idata;
    e.mult = *g.values[n.inputs[3]].idata;
    e.shift = *g.values[n.inputs[4]].idata;
    e.out_zp = q[1], e.res_zp = q[2], e.res_mult = s.residual ? q[3] : 0, e.res_shift = q[4], e.lo = q[5], e.hi = q[6];
    e.qmax = s.qmax;
    e.rounding = s.rounding;
    // The dot product's range: every input level in [0, xmax] times each weight.
    const int64_t M = (int64_t)e.bias.size();
    std::vector<int64_t> lo(M, 0), hi(M, 0);
    for (int64_t m = 0; m < M; m++)
      for (int64_t i = 0; i < taps; i++) {
        int64_t w = wq[m * taps + i];
        if (wbits == 1) w = w > 0 ? 1 : -1;
        else if ((w &= (1 << wbits) - 1) >= (1 << (wbits - 1))) w -= 1 << wbits;
        (w < 0 ? lo : hi)[m] += w * xmax;
      }
    auto t = epilogue_thresholds(e, lo, hi, R);
    if (t.empty()) return {-1, 0};
    if (bias_in_acc)
      for (size_t i = 0; i < t.size(); i++) {
        const int64_t v = (int64_t)t[i] + e.bias[i % M];
        if (v < INT32_MIN || v > INT32_MAX) return {-1, 0};
        t[i] = (int32_t)v;
      }
    return {new_const(n.name + ".thresholds", {s.qmax, R, M}, t, DType::i32), R};
  }
  // The spec every step starts from (lower_node), before the op's own lowering fills it.
  KernelSpec base_spec(const Node &n) const {
    KernelSpec s;
    s.kind = n.op;
    s.in_shape = g.values[n.inputs[0]].type.shape;
    s.out_shape = g.values[n.outputs[0]].type.shape;
    s.relu = n.i("relu", 0) != 0;
    s.relu_max = n.f("relu_max", 0.f);
    if (n.has("act")) {
      s.act = n.attrs.at("act").s;
      s.act_params = n.attrs.at("act").floats;
    }
    return s;
  }
  // Fills a conv2d_q node's spec up to the choice of kernel; true when the layer runs
  // bit-serially (conv2d_bs). Grouped convolutions stop early (dwconv2d_q).
  bool prepare_conv2d_q(const Node &n, KernelSpec &s) {
    const bool dense = g.values[n.inputs[0]].type.shape.size() == 2;
    if (dense) {
      s.in_shape = {s.in_shape[0], s.in_shape[1], 1, 1};
      s.out_shape = {s.out_shape[0], s.out_shape[1], 1, 1};
    }
    set_conv_window(s, n, g.values[n.inputs[1]]);
    s.residual = n.inputs.size() > 5;
    s.dtype = "u8";
    s.qmax = (int)n.i("qmax", 255);
    s.rounding = rounding_of(n);
    if (n.i("group", 1) != 1) return false;
    int wbits = (int)n.i("weight_bits", 8), abits = (int)n.i("activation_bits", 8);
    // Weights of 1-2 bits are stored four per byte, of 3-4 bits two per byte, where that pays
    // (kernels/conv2d_q.h), unless a --knob says otherwise.
    s.knobs.emplace("weights_per_byte", conv2d_q_default_weights_per_byte(s, wbits, target.halide));
    // Weights of at most 7 bits (within [-64, 63]) on x86 with AVX2 but no u8 dot product: groups
    // of 4 as vpmaddubsw pairs, which cannot saturate with them (kernels/conv2d_q.h).
    const Halide::Target &kt = target.halide;
    if (wbits <= 7 && knob(s.knobs, "weights_per_byte", 1) == 1 && kt.arch == Halide::Target::X86 &&
        kt.has_feature(Halide::Target::AVX2) && !x86_has_u8_dot(kt)) {
      s.knobs.emplace("madd_u8", 1);
      s.knobs.emplace("group", 4);
      s.knobs.emplace("wide_input", 0);  // (widened pairs are the other path's)
    }
    resolve_knobs(s);
    // Bit-serial needs coef x planes popcounts per 32 channels: measured on AVX512-VNNI, W1A1
    // beats the int8 dot product and W2A2 loses to it (bench/RESULTS.md), so x86 takes it only
    // for wbits * abits <= 2; NEON without VNNI-class throughput takes it for all 1-2 bit layers.
    // 3-4 bit layers run it only when the knob asks (it lost to the nibble kernel on x86).
    bool bitserial_default = target.halide.arch == Halide::Target::ARM || wbits * abits <= 2;
    bitserial_default = bitserial_default && wbits <= 2 && abits <= 2;
    return !dense && wbits <= 4 && abits <= 4 && n.i("in_zp", 0) == 0 && knob(s.knobs, "bitserial", bitserial_default);
  }
  // Bit planes between bit-serial layers: a value written by a bit-serial convolution whose
  // every reader is a bit-serial convolution (as its input with as many activation bits, or as
  // its residual) is written as bit planes by its producer, and no bitpack step runs for it.
  // Needs a multiple of 32 channels (whole words per tile); `--knob conv2d_bs.output_bits=0`
  // turns it off.
  void plan_bit_planes() {
    if (auto ov = overrides.find("conv2d_bs"); ov != overrides.end() && knob(ov->second, "output_bits", 1) == 0) return;
    std::map<int, int> abits;  // node index -> activation bits, for nodes that run bit-serially
    for (size_t i = 0; i < g.nodes.size(); i++) {
      const Node &n = g.nodes[i];
      KernelSpec s = base_spec(n);
      if (n.op == "conv2d_q" && prepare_conv2d_q(n, s)) abits[(int)i] = (int)n.i("activation_bits", 8);
    }
    std::map<int, std::vector<std::pair<int, size_t>>> readers;  // value -> (node, input index)
    for (size_t i = 0; i < g.nodes.size(); i++)
      for (size_t k = 0; k < g.nodes[i].inputs.size(); k++) readers[g.nodes[i].inputs[k]].push_back({(int)i, k});
    for (const auto &[i, ab] : abits) {
      const Node &n = g.nodes[i];
      const int v = n.outputs[0];
      const auto &t = g.values[v].type;
      int bits = 0;
      while ((1 << bits) - 1 < n.i("qmax", 255)) bits++;
      bool ok = t.shape.size() == 4 && t.shape[1] % 32 == 0 && bits <= 4 && readers.count(v) &&
                std::find(g.outputs.begin(), g.outputs.end(), v) == g.outputs.end();
      for (const auto &[r, k] : ok ? readers[v] : std::vector<std::pair<int, size_t>>{})
        ok = ok && abits.count(r) && ((k == 0 && abits[r] == bits) || k == 5);
      if (ok) plane_bits[v] = bits;
    }
  }
  std::map<int, int> plane_bits;  // graph value -> bit planes its producer writes
  std::map<std::pair<int, int>, int> planes_of;  // (graph value, bits) -> plan value of its bit planes
  // The plan value of v's bit planes (N, words, planes, H, W), made once.
  int planes_value(int v, int bits) {
    if (auto it = planes_of.find({v, bits}); it != planes_of.end()) return it->second;
    const auto &x = g.values[v].type;
    PlanValue pv;
    pv.name = g.values[v].name + ".planes";
    pv.kind = "act";
    pv.dtype = DType::u32;
    pv.shape = {x.shape[0], (x.shape[1] + 31) / 32, bits, x.shape[2], x.shape[3]};
    pv.layout = "bitplanes";
    lm.values.push_back(pv);
    return planes_of[{v, bits}] = (int)lm.values.size() - 1;
  }
  PlanArg planes_arg(int v, int bits) {
    const auto &x = g.values[v].type;
    return {planes_value(v, bits), packed({(x.shape[1] + 31) / 32, bits, x.shape[3], x.shape[2], x.shape[0]})};
  }
  // The plan value a step reads or writes for graph value v: its bit planes where it has only
  // those.
  int stored(int v) { return plane_bits.count(v) ? planes_value(v, plane_bits[v]) : value(v); }

  void lower_conv2d_q(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    const bool bitserial = prepare_conv2d_q(n, s);
    const Value &w = g.values[n.inputs[1]];
    int64_t M = w.type.shape[0], C = w.type.shape[1], KH = w.type.shape[2], KW = w.type.shape[3];
    if (n.i("group", 1) != 1) {
      lower_dwconv2d_q(n, st, out);
      return;
    }
    int wbits = (int)n.i("weight_bits", 8);
    if (bitserial) {
      lower_conv2d_bitserial(n, st, out, wbits, (int)n.i("activation_bits", 8));
      return;
    }
    const auto &wq = *w.idata;
    const bool dense = g.values[n.inputs[0]].type.shape.size() == 2;
    // With a residual, x86 keeps the multiplier epilogue: one set of thresholds per residual
    // level costs a select per level and set, more than the float requantization. ResNet-50 W2A2
    // at one thread on Ice Lake (`qnnc bench --profile`, --knob conv2d_q.thresholds=0 against
    // the default, two rounds): the residual layers took 0.84-0.87x their time with the
    // multiplier, the others 0.95-1.01x.
    const bool keep_multiplier = dense || (s.residual && target.halide.arch == Halide::Target::X86);
    const auto [tv, R] = keep_multiplier
                             ? std::pair<int, int>{-1, 0}
                             : thresholds_const(n, s, out, 0, wq, C * KH * KW, 8, value_qmax(n.inputs[0]), true);
    resolve_knobs(s, {{"thresholds", R}});  // again, now that the task is known (it may take a record)
    // `--knob conv2d_q.amx=1` asks for AMX tiles where the layer and the target allow them (the
    // knob space's rule for the target, which the tuner applies too).
    s.knobs = knob_spaces().at("conv2d_q").for_target(s, s.knobs, target.halide);
    const int per = conv2d_q_weights_per_byte(s.knobs);
    if (wbits > 8 / per)
      throw Error("layer " + n.name + ": " + std::to_string(wbits) + "-bit weights do not fit " + std::to_string(per) +
                  " to a byte (knob weights_per_byte)");
    // Pairs summed in 16 bits are exact only for weights within [-64, 63] (a --knob can ask for
    // them on any layer).
    if (conv2d_q_madd_u8(s, s.knobs))
      for (int32_t v : *w.idata)
        if (v < -64 || v > 63)
          throw Error("layer " + n.name + ": knob madd_u8=1 sums u8 x i8 pairs in 16 bits, exact only for weights "
                      "within [-64, 63], and this layer has a weight of " + std::to_string(v) +
                      " (7-bit weights: --quantize w7a8)");
    // OIHW -> (ci % G, co % cb, ci / G, kx, ky, co / cb): one output-channel vector of G-channel
    // groups per dot-product step (G = 4, or 2 without VNNI); padded channels are zero. With
    // `per` weights to a byte, groups per j + i share byte j: (ci % G, co % cb, ci / (per G), kx,
    // ky, co / cb), group per j + i in bits [i 8/per, (i+1) 8/per).
    int64_t cb = conv2d_q_channel_block(s, s.knobs), nb = (M + cb - 1) / cb, G = conv2d_q_group(s.knobs);
    int64_t CB = (C + per * G - 1) / (per * G);  // bytes per (co, tap) along the channels, over G
    std::vector<int32_t> pk(nb * KH * KW * CB * cb * G, 0);
    for (int64_t m = 0; m < M; m++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t ky = 0; ky < KH; ky++)
          for (int64_t kx = 0; kx < KW; kx++) {
            int32_t v = wq[((m * C + c) * KH + ky) * KW + kx];
            int64_t gi = c / G, at = (((((m / cb) * KH + ky) * KW + kx) * CB + gi / per) * cb + m % cb) * G + c % G;
            if (per == 1) pk[at] = v;
            else pk[at] |= (v & ((1 << (8 / per)) - 1)) << ((gi % per) * (8 / per));
          }
    int wv = new_const(w.name + (per == 4 ? ".crumbs" : per == 2 ? ".nibbles" : ".packed"), {nb, KH, KW, CB, cb, G}, pk,
                       per > 1 ? DType::u8 : DType::i8);
    int qv = epilogue_qparams(n, s, out, (int)n.i("in_zp", 0));
    int bv = value(n.inputs[2]);
    if (knob(s.knobs, "signed_input", 0)) {
      // The kernel sums (x - 128) * w: add back 128 * sum(w) per output channel.
      std::vector<int32_t> b = *g.values[n.inputs[2]].idata;
      for (int64_t m = 0; m < M; m++) {
        int64_t sw = 0;
        for (int64_t i = 0; i < C * KH * KW; i++) sw += wq[m * C * KH * KW + i];
        b[m] += (int32_t)(128 * sw);
      }
      bv = new_const(g.values[n.inputs[2]].name + ".signed", {M}, b, DType::i32);
    }
    // AMX (blocks of 16 channels) reads the same bytes as (G, 16, CB KW KH nb).
    const std::vector<int64_t> wshape = knob(s.knobs, "amx", 0) ? std::vector<int64_t>{G, cb, CB * KW * KH * nb}
                                                                 : std::vector<int64_t>{G, cb, CB, KW, KH, nb};
    // AMX on a 1x1 layer, or knob pixel_row, reads and writes its pixels as one row
    // (kernels/conv2d_q.h); pixel_row is dropped where an activation is a strided view.
    if (conv2d_q_pixel_row(s, s.knobs) &&
        !(is_row_view(act4(n.inputs[0])) && is_row_view(act4(out)) && (!s.residual || is_row_view(act(n.inputs[5])))))
      s.knobs["pixel_row"] = 0;
    const bool flat = conv2d_q_as_row(s, s.knobs);
    auto pixels = [&](PlanArg a) { return flat ? pixels_as_row(a) : a; };
    st.args = {pixels(act4(n.inputs[0])), {wv, packed(wshape)}, {bv, packed({M})}};
    if (R) {
      st.args.push_back({tv, packed({M, R, s.qmax})});
    } else {
      st.args.push_back({value(n.inputs[3]), packed({M})});
      st.args.push_back({value(n.inputs[4]), packed({M})});
    }
    if (s.residual) st.args.push_back(pixels(act(n.inputs[5])));
    st.args.push_back({qv, packed({8})});
    st.args.push_back(pixels(act4(out)));
  }
  // A dense NHWC view (c, x, y, n) as (c, x + W y, 0, n): one row of all the image's pixels.
  static bool is_row_view(const PlanArg &a) { return a.dims.size() == 4 && a.dims[2][2] == a.dims[1][2] * a.dims[1][1]; }
  static PlanArg pixels_as_row(PlanArg a) {
    if (!is_row_view(a))
      throw Error("internal: pixels of a strided view cannot be one row");
    const int64_t W = a.dims[1][1], H = a.dims[2][1], sp = a.dims[1][2];
    a.dims[1] = {0, W * H, sp};
    a.dims[2] = {0, 1, sp * W * H};
    return a;
  }
  // Integer depthwise and grouped convolution (kernels/conv2d_grouped.h): weights (c, kx, ky), c
  // innermost, or spread over channel quads (knob quads); grouped per vector of a group's output
  // channels (lane, ci % Cg, kx, ky, vector), or with quads (k, lane, quad, kx, ky, vector).
  void lower_dwconv2d_q(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.kind = "dwconv2d_q";
    s.group = n.i("group", 1);
    resolve_knobs(s);
    const Value &w = g.values[n.inputs[1]];
    const int64_t M = w.type.shape[0];
    PlanArg wa;
    if (dwconv2d_q_quad_lanes(s, s.knobs) > 0) {
      // (j, quad, k, kx, ky): channel 4 quad + k's weight where j == k, zeros elsewhere.
      const int64_t KH = w.type.shape[2], KW = w.type.shape[3], Q = M / 4;
      std::vector<int32_t> pk((size_t)(16 * Q * KW * KH), 0);
      for (int64_t m = 0; m < M; m++)
        for (int64_t ky = 0; ky < KH; ky++)
          for (int64_t kx = 0; kx < KW; kx++)
            pk[(size_t)((((ky * KW + kx) * 4 + m % 4) * Q + m / 4) * 4 + m % 4)] = (*w.idata)[(m * KH + ky) * KW + kx];
      wa = {new_const(w.name + ".quads", {KH, KW, 4, Q, 4}, pk, DType::i8), packed({4, Q, 4, KW, KH})};
    } else {
      wa = grouped_weights(w, *w.idata, s, DType::i8, std::max(1, dwconv2d_q_grouped_dot(s, s.knobs)));
    }
    int qv = epilogue_qparams(n, s, out, (int)n.i("in_zp", 0));
    st.args = {act(n.inputs[0]), wa, {value(n.inputs[2]), packed({M})},
               {value(n.inputs[3]), packed({M})}, {value(n.inputs[4]), packed({M})}};
    if (s.residual) st.args.push_back(act(n.inputs[5]));
    st.args.push_back({qv, packed({8})});
    st.args.push_back(act(out));
  }
  // 1-4 bit layers: a popcount convolution reading bit planes, which its producer wrote
  // (plan_bit_planes) or a bitpack step makes from u8; it writes planes or u8 levels.
  void lower_conv2d_bitserial(const Node &n, PlanStep &st, int out, int wbits, int abits) {
    const Value &w = g.values[n.inputs[1]];
    const int xin = n.inputs[0];
    const auto &x = g.values[xin].type;
    int64_t M = w.type.shape[0], C = w.type.shape[1], KH = w.type.shape[2], KW = w.type.shape[3];
    int64_t CW = (C + 31) / 32;
    if (!planes_of.count({xin, abits})) {
      // The input is u8: one bitpack step packs it, shared by every bit-serial reader.
      PlanStep pack;
      pack.name = n.name + ".bitpack";
      pack.op = "bitpack";
      pack.spec.kind = "bitpack";
      pack.spec.in_shape = x.shape;
      pack.spec.out_shape = x.shape;
      pack.spec.dtype = "u8";
      pack.spec.knobs["bits"] = abits;
      resolve_knobs(pack.spec);
      pack.args = {act(xin), planes_arg(xin, abits)};
      pack.reads = {value(xin)};
      pack.writes = {planes_of[{xin, abits}]};
      lm.steps.push_back(pack);
    }
    const int planes = planes_of[{xin, abits}];
    const int ob = plane_bits.count(out) ? plane_bits[out] : 0;
    const int rb = n.inputs.size() > 5 && plane_bits.count(n.inputs[5]) ? plane_bits[n.inputs[5]] : 0;

    KernelSpec &s = st.spec;
    s.kind = "conv2d_bs";
    s.knobs.clear();
    s.knobs["weight_bits"] = wbits;
    s.knobs["activation_bits"] = abits;
    const auto [tv, R] = thresholds_const(n, s, out, rb, *w.idata, C * KH * KW, wbits, (1 << abits) - 1, false);
    resolve_knobs(s, {{"output_bits", ob}, {"residual_bits", rb}, {"thresholds", R}});
    std::vector<int> coef = bitserial_plane_coefficients(wbits);
    int64_t P = (int64_t)coef.size(), cb = conv2d_bitserial_channel_block(s, s.knobs), nb = (M + cb - 1) / cb;
    // Weight bit planes, 32 input channels per word: (co % cb, word, plane, kx, ky, co / cb).
    std::vector<uint32_t> pk(nb * KH * KW * P * CW * cb, 0u);
    const auto &wq = *w.idata;
    for (int64_t m = 0; m < M; m++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t ky = 0; ky < KH; ky++)
          for (int64_t kx = 0; kx < KW; kx++) {
            int32_t v = wq[((m * C + c) * KH + ky) * KW + kx];
            for (int64_t p = 0; p < P; p++) {
              bool bit = wbits == 1 ? v > 0 : ((v >> p) & 1);
              if (bit)
                pk[(((((m / cb) * KH + ky) * KW + kx) * P + p) * CW + c / 32) * cb + m % cb] |= 1u << (c % 32);
            }
          }
    int wv = new_const(w.name + ".bitplanes", {nb, KH, KW, P, CW, cb}, pk, DType::u32);
    st.args = {planes_arg(xin, abits), {wv, packed({cb, CW, P, KW, KH, nb})}};
    if (R) {
      st.args.push_back({tv, packed({M, R, s.qmax})});
    } else {
      st.args.push_back({value(n.inputs[2]), packed({M})});
      st.args.push_back({value(n.inputs[3]), packed({M})});
      st.args.push_back({value(n.inputs[4]), packed({M})});
    }
    if (s.residual) st.args.push_back(rb ? planes_arg(n.inputs[5], rb) : act(n.inputs[5]));
    if (!R) st.args.push_back({epilogue_qparams(n, s, out, 0), packed({8})});
    st.args.push_back(ob ? planes_arg(out, ob) : act(out));
    if (!plane_bits.count(xin)) st.extra_reads.push_back(planes);
  }
  PlanArg act(int v) { return {value(v), view(v)}; }
  PlanArg flat(int v) { return {value(v), packed({g.values[v].type.numel()})}; }

  void lower_conv2d(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    const Value &w = g.values[n.inputs[1]];
    if (!w.is_const()) throw Error("node '" + n.name + "': convolution weights must be constant");
    int64_t M = w.type.shape[0], C = w.type.shape[1], KH = w.type.shape[2], KW = w.type.shape[3];
    set_conv_window(s, n, w);
    s.residual = n.inputs.size() > 3;
    s.group = n.i("group", 1);
    if (s.group != 1) {
      lower_conv2d_grouped(n, st, out);
      return;
    }
    // A stem that reads the model's NCHW input itself (passes: fold_input_layout).
    resolve_knobs(s, {{"from_nchw", (int)n.i("from_nchw", 0)}});
    // A 1x1 layer computed over its pixels as one row (kernels/conv2d.h conv2d_pixel_row), unless
    // one of its activations is a strided view, whose pixels are not one row.
    // Arguments in call order: input, weights, bias, [residual], output.
    st.args = {act(n.inputs[0]), conv_weights(s, w, M, C, KH, KW), {value(n.inputs[2]), packed({M})}};
    if (s.residual) st.args.push_back(act(n.inputs[3]));
    st.args.push_back(act(out));
    const bool asked = conv2d_pixel_row(s, s.knobs);
    const bool row = asked && is_row_view(st.args[0]) && std::all_of(st.args.begin() + 3, st.args.end(), is_row_view);
    if (asked && !row) s.knobs["pixel_row"] = 0;
    if (row) {
      st.args[0] = pixels_as_row(st.args[0]);
      for (auto a = st.args.begin() + 3; a != st.args.end(); ++a) *a = pixels_as_row(*a);
    }
  }
  // Depthwise and grouped convolution weights OIHW (I = C / group, data fp32 or integer) as
  // kernels/conv2d_grouped.h reads them: depthwise (co, kx, ky); grouped per vector of L output
  // channels of a group (grouped_weight_lanes), (lane, ci % Cg, kx, ky, vector) with vector =
  // group * vectors per group + lane block, zeros past a group's end; with D > 1 input channels
  // per dot product (dwconv2d_q_grouped_dot: quads or pairs), (k, lane, ci / D, kx, ky, vector),
  // a lane's D consecutive input channels together.
  template <typename T>
  PlanArg grouped_weights(const Value &w, const std::vector<T> &data, const KernelSpec &s, DType dt, int64_t D = 1) {
    const int64_t M = w.type.shape[0], Cg = w.type.shape[1], taps = w.type.shape[2] * w.type.shape[3];
    const int64_t KH = w.type.shape[2], KW = w.type.shape[3];
    if (conv2d_is_depthwise(s)) {
      std::vector<T> pk((size_t)(M * taps), T(0));
      for (int64_t m = 0; m < M; m++)
        for (int64_t t = 0; t < taps; t++) pk[t * M + m] = data[m * taps + t];
      return {new_const(w.name + ".dw", {KH, KW, M}, pk, dt), packed({M, KW, KH})};
    }
    const int64_t Mg = M / s.group, L = grouped_weight_lanes(s, s.knobs), per = (Mg + L - 1) / L, V = s.group * per;
    const int64_t Q = Cg / D;
    std::vector<T> pk((size_t)(V * L * Cg * taps), T(0));
    for (int64_t m = 0; m < M; m++) {
      const int64_t v = m / Mg * per + m % Mg / L, lane = m % Mg % L;
      for (int64_t c = 0; c < Cg; c++)
        for (int64_t t = 0; t < taps; t++)
          pk[(((v * taps + t) * Q + c / D) * L + lane) * D + c % D] = data[(m * Cg + c) * taps + t];
    }
    if (D > 1) return {new_const(w.name + ".dot", {V, KH, KW, Q, L, D}, pk, dt), packed({D, L, Q, KW, KH, V})};
    return {new_const(w.name + ".grouped", {V, KH, KW, Cg, L}, pk, dt), packed({L, Cg, KW, KH, V})};
  }
  // fp32 convolution weights OIHW -> blocks of cb output channels: (co % cb, ci, kx, ky, co / cb),
  // zero-padded, so a register tile streams its weights contiguously.
  PlanArg conv_weights(const KernelSpec &s, const Value &w, int64_t M, int64_t C, int64_t KH, int64_t KW) {
    int64_t cb = conv2d_channel_block(s, s.knobs), nb = (M + cb - 1) / cb;
    if (conv2d_uses_winograd(s, s.knobs))
      return {new_const(w.name + ".winograd", {nb, 16, C, cb}, winograd_weights(*w.data, M, C, cb)),
              packed({cb, C, 16, nb})};
    std::vector<float> pk(nb * cb * C * KH * KW, 0.f);
    for (int64_t m = 0; m < M; m++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t ky = 0; ky < KH; ky++)
          for (int64_t kx = 0; kx < KW; kx++)
            pk[((((m / cb) * KH + ky) * KW + kx) * C + c) * cb + m % cb] = (*w.data)[((m * C + c) * KH + ky) * KW + kx];
    int wv = new_const(w.name + ".packed", {nb, KH, KW, C, cb}, pk);
    return {wv, packed({cb, C, KW, KH, nb})};
  }
  // Grouped and depthwise convolutions (kernels/conv2d_grouped.h): weights OIHW with I = C / group.
  void lower_conv2d_grouped(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.kind = "conv2d_grouped";
    resolve_knobs(s);
    const Value &w = g.values[n.inputs[1]];
    const int64_t M = w.type.shape[0];
    st.args = {act(n.inputs[0]),
               grouped_weights(w, *w.data, s, DType::f32)};
    st.args.push_back({value(n.inputs[2]), packed({M})});
    if (s.residual) st.args.push_back(act(n.inputs[3]));
    st.args.push_back(act(out));
  }
  // A dense layer's bias as a kernel argument (zeros where the layer has none).
  PlanArg dense_bias(const Node &n, int64_t M) {
    if (n.inputs.size() > 2) return {value(n.inputs[2]), packed({M})};
    return {new_const(n.name + ".bias", {M}, std::vector<float>(M, 0.f)), packed({M})};
  }
  void lower_dense(const Node &n, PlanStep &st, int out) {
    const Value &w = g.values[n.inputs[1]];
    if (!w.is_const()) throw Error("node '" + n.name + "': dense weights must be constant");
    int64_t M = w.type.shape[0], K = w.type.shape[1];
    const auto &xs = g.values[n.inputs[0]].type.shape;
    if (xs.size() > 2 || xs[0] >= kDenseRowsAsConv) {
      // Over the last axis of a row-major [..., K] input that the graph's dense_as_conv left
      // (no bias, or more than 4 dimensions), or of many rows [R, K] (the attention's output
      // projection): a 1x1 convolution of the channels-innermost image whose pixels are all the
      // input's rows, as one row (R wide, 1 high), run by conv2d's register tiles. (With the
      // leading dimensions as the image's height, ViT's attention input [197, 1, 768] made 197
      // rows of one column: tiles of one column, 38% of the fp32 peak against 70-80% in one
      // row; and the dense kernel keeps a block of outputs for every row in its accumulators.)
      KernelSpec &s = st.spec;
      const int64_t R = g.values[n.inputs[0]].type.numel() / K;
      s.kind = "conv2d";
      s.in_shape = {1, K, 1, R};
      s.out_shape = {1, M, 1, R};
      s.kernel = {1, 1};
      resolve_knobs(s);
      st.op = "dense";
      st.args = {{value(n.inputs[0]), packed({K, R, 1, 1})}, conv_weights(s, w, M, K, 1, 1), dense_bias(n, M),
                 {value(out), packed({M, R, 1, 1})}};
      return;
    }
    resolve_knobs(st.spec);
    const int64_t ob = dense_out_block(M, st.spec.knobs), nb = (M + ob - 1) / ob;
    std::vector<float> pk(nb * K * ob, 0.f), bias(nb * ob, 0.f);
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < K; k++) pk[((m / ob) * K + k) * ob + m % ob] = (*w.data)[m * K + k];
    if (n.inputs.size() > 2) {
      const auto &b = *g.values[n.inputs[2]].data;
      std::copy(b.begin(), b.end(), bias.begin());
    }
    int wv = new_const(w.name + ".blocks", {nb, K, ob}, pk);
    int bv = new_const(n.name + ".bias", {nb * ob}, bias);
    st.args = {act(n.inputs[0]), {wv, packed({ob, K, nb})}, {bv, packed({nb * ob})}, act(out)};
  }
  void lower_quantize(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.scale = n.f("scale", 1.f);
    s.zero_point = (int)n.i("zero_point", 0);
    s.qmax = (int)n.i("qmax", 255);
    if (n.op == "quantize") s.rounding = rounding_of(n);
    if (n.i("from_nchw", 0)) {
      // The model's NCHW input, quantized and transposed to NHWC in one pass.
      s.in_shape = g.values[n.inputs[0]].type.shape;
      s.knobs["from_nchw"] = 1;
      resolve_knobs(s);
      st.args = {act(n.inputs[0]), act4(out)};
      return;
    }
    resolve_knobs(s);
    st.args = {flat(n.inputs[0]), flat(out)};
  }
  void lower_global_avgpool_q(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.scale = n.f("scale", 1.f);
    s.zero_point = (int)n.i("zero_point", 0);
    s.dtype = "u8";
    if (s.out_shape.size() == 2) s.out_shape = {s.out_shape[0], s.out_shape[1], 1, 1};
    resolve_knobs(s);
    st.args = {act(n.inputs[0]), act4(out)};
  }
  void lower_maxpool(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.dtype = g.values[n.inputs[0]].type.dtype == DType::u8 ? "u8" : "f32";
    s.kernel = n.ints("kernel_shape");
    s.stride = n.ints("strides", {1, 1});
    s.pads = n.ints("pads", {0, 0, 0, 0});
    resolve_knobs(s);
    st.args = {act(n.inputs[0]), act(out)};
  }
  void lower_unary_act(const Node &n, PlanStep &st, int out) {  // global_avgpool, layout
    st.spec.to_nhwc = n.i("to_nhwc", 1) != 0;
    if (st.spec.out_shape.size() == 2) st.spec.out_shape = {st.spec.out_shape[0], st.spec.out_shape[1], 1, 1};
    resolve_knobs(st.spec);
    st.args = {act(n.inputs[0]), act4(out)};
  }
  void lower_add(const Node &n, PlanStep &st, int out) {
    resolve_knobs(st.spec);
    st.args = {flat(n.inputs[0]), flat(n.inputs[1]), flat(out)};
  }
  void lower_relu(const Node &n, PlanStep &st, int out) {
    resolve_knobs(st.spec);
    st.args = {flat(n.inputs[0]), flat(out)};
  }
  // A kernel with a quantize step folded into its epilogue (quantize_graph.cpp): the u8 output's
  // encoding, and the step's level count and tie rule, kept on the node.
  void quantized_output(const Node &n, KernelSpec &s, int out) {
    s.scale = g.values[out].scale;
    s.zero_point = g.values[out].zero_point;
    s.qmax = (int)n.i("qmax", 255);
    s.rounding = rounding_of(n);
  }
  void lower_scale_shift(const Node &n, PlanStep &st, int out) {
    if (g.values[out].type.dtype == DType::u8) quantized_output(n, st.spec, out);
    resolve_knobs(st.spec);
    int64_t C = g.values[n.inputs[0]].type.shape[1];
    st.args = {act(n.inputs[0]), {value(n.inputs[1]), packed({C})}, {value(n.inputs[2]), packed({C})}, act(out)};
  }
  void lower_unary(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.fn = n.attrs.count("fn") ? n.attrs.at("fn").s : "";
    if (s.fn == "hardsigmoid") s.fparams = {n.f("alpha", 0.2f), n.f("beta", 0.5f)};
    resolve_knobs(s);
    st.args = {flat(n.inputs[0]), flat(out)};
  }
  // Extents of v in memory order (innermost first), its logical shape left-padded with 1s to
  // rank r. A constant whose data is row-major NCHW but meets NHWC operands is repacked.
  std::pair<int, std::vector<int64_t>> broadcast_operand(int v, size_t r, bool nhwc) {
    const Value &gv = g.values[v];
    std::vector<int64_t> sh(r - gv.type.shape.size(), 1);
    sh.insert(sh.end(), gv.type.shape.begin(), gv.type.shape.end());
    if (!nhwc) return {value(v), std::vector<int64_t>(sh.rbegin(), sh.rend())};
    std::vector<int64_t> mem = nhwc_dims(sh);  // (c, w, h, n)
    if (gv.type.layout == Layout::NHWC || !gv.is_const()) return {value(v), mem};
    const int64_t N = sh[0], C = sh[1], H = sh[2], W = sh[3];
    std::vector<float> d(gv.data->size());
    for (int64_t a = 0; a < N; a++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++)
          for (int64_t x = 0; x < W; x++) d[((a * H + y) * W + x) * C + c] = (*gv.data)[((a * C + c) * H + y) * W + x];
    return {new_const(gv.name + ".nhwc", sh, d), mem};
  }
  void lower_binary(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.fn = n.attrs.count("fn") ? n.attrs.at("fn").s : "";
    const auto &ot = g.values[out].type;
    const size_t r = ot.shape.size();
    const bool nhwc = r == 4 && ot.layout == Layout::NHWC;
    // An integer product (quantize_graph.cpp: a gate's dequantize and quantize folded in): u8
    // first operand, fp32 second, u8 output.
    const bool q = ot.dtype == DType::u8;
    if (q) {
      const Value &a = g.values[n.inputs[0]];
      if (s.fn != "mul" || a.type.dtype != DType::u8 || g.values[n.inputs[1]].type.dtype != DType::f32)
        throw Error("node '" + n.name + "': an integer product takes u8 x fp32 operands");
      s.dtype = "u8";
      s.fparams = {a.scale, (float)a.zero_point};
      quantized_output(n, s, out);
    }
    for (int k = q ? 1 : 0; k < 2; k++) {
      const int v = n.inputs[(size_t)k];
      if (g.values[v].type.dtype != DType::f32 || (g.values[v].is_const() && !g.values[v].data))
        throw Error("node '" + n.name + "': " + s.fn + " takes fp32 operands");
    }
    auto [av, ae] = broadcast_operand(n.inputs[0], r, nhwc);
    auto [bv, be] = broadcast_operand(n.inputs[1], r, nhwc);
    s.in_shape = ae;
    s.in2_shape = be;
    s.out_shape = nhwc ? nhwc_dims(ot.shape) : std::vector<int64_t>(ot.shape.rbegin(), ot.shape.rend());
    resolve_knobs(s);
    st.args = {{av, packed(ae)}, {bv, packed(be)}, {value(out), packed(s.out_shape)}};
  }
  void lower_avgpool(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    s.kernel = n.ints("kernel_shape");
    s.stride = n.ints("strides", {1, 1});
    s.pads = n.ints("pads", {0, 0, 0, 0});
    if (n.i("count_include_pad", 0)) s.fn = "count_include_pad";
    resolve_knobs(s);
    st.args = {act(n.inputs[0]), act(out)};
  }
  void lower_concat(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    const auto &ot = g.values[out].type;
    const int64_t r = (int64_t)ot.shape.size();
    int64_t axis = n.i("axis", 1);
    if (axis < 0) axis += r;
    bool any_const = false;
    for (int v : n.inputs) any_const = any_const || g.values[v].is_const();
    if (any_const || !((r == 4 && axis == 1 && ot.layout == Layout::NHWC) || (r == 2 && axis == 1))) {
      // Any other axis: join along its memory dimension; constants (ViT's class token) are
      // row-major, so the general form takes them only in row-major layouts.
      auto order = memory_axes((size_t)r, ot.layout);
      s.axis = std::find(order.begin(), order.end(), axis) - order.begin();
      s.in_shape.clear();
      s.out_shape = mem_extents(out);
      for (int v : n.inputs) {
        const auto &t = g.values[v].type;
        if (t.dtype != DType::f32 || t.layout != ot.layout || (g.values[v].is_const() && ot.layout == Layout::NHWC))
          throw Error("node '" + n.name + "': concat takes fp32 tensors of one layout");
        s.parts.push_back(t.shape[axis]);
        st.args.push_back({value(v), packed(mem_extents(v))});
      }
      resolve_knobs(s);
      st.args.push_back({value(out), packed(s.out_shape)});
      return;
    }
    const DType dt = g.values[n.inputs[0]].type.dtype;
    s.dtype = dt == DType::u8 ? "u8" : "f32";
    for (int v : n.inputs) {
      const auto &t = g.values[v].type;
      if ((t.dtype != DType::f32 && t.dtype != DType::u8) || t.dtype != dt || g.values[v].is_const())
        throw Error("node '" + n.name + "': concat takes activations of one type (fp32, or u8 of one encoding)");
      if (dt == DType::u8 && (g.values[v].scale != g.values[out].scale || g.values[v].zero_point != g.values[out].zero_point))
        throw Error("node '" + n.name + "': integer concat inputs must share the output's encoding");
      s.parts.push_back(t.shape[1]);
    }
    resolve_knobs(s);
    for (int v : n.inputs) st.args.push_back(act(v));
    st.args.push_back(act(out));
  }
  // Row-wise kernels over the innermost (last) axis of a row-major input: K x R elements,
  // input first, then `params` (per-element constants of K values), output last.
  void rows_step(const Node &n, PlanStep &st, int out, const std::vector<int> &params) {
    KernelSpec &s = st.spec;
    const auto &t = g.values[n.inputs[0]].type;
    const int64_t K = t.shape.back(), R = t.numel() / K;
    s.in_shape = {K, R};
    s.out_shape = {K, R};
    resolve_knobs(s);
    st.args = {{value(n.inputs[0]), packed({K, R})}};
    for (int p : params) st.args.push_back({value(p), packed({K})});
    st.args.push_back({value(out), packed({K, R})});
  }
  void lower_softmax(const Node &n, PlanStep &st, int out) { rows_step(n, st, out, {}); }
  // Batched [B, M, K] x [B, K, N] of two row-major activations (leading dimensions flattened).
  void lower_matmul(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    const auto &a = g.values[n.inputs[0]].type, &b = g.values[n.inputs[1]].type;
    const int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back(), N = b.shape.back(), B = a.numel() / (M * K);
    for (int v : n.inputs)
      if (g.values[v].is_const() || g.values[v].type.dtype != DType::f32)
        throw Error("node '" + n.name + "': matmul takes two fp32 activations");
    s.in_shape = {K, M, B};
    s.in2_shape = {N, K, B};
    s.out_shape = {N, M, B};
    resolve_knobs(s);
    st.args = {{value(n.inputs[0]), packed(s.in_shape)}, {value(n.inputs[1]), packed(s.in2_shape)},
               {value(out), packed(s.out_shape)}};
  }
  // u8 -> u8 through a table of 256 levels (quantize/quantize_graph.cpp fills it).
  void lower_lut(const Node &n, PlanStep &st, int out) {
    auto t = n.ints("table");
    std::vector<int32_t> table(256, 0);
    for (size_t i = 0; i < t.size() && i < 256; i++) table[i] = (int32_t)t[i];
    st.spec.dtype = "u8";
    resolve_knobs(st.spec);
    int tv = new_const(n.name + ".table", {256}, table, DType::u8);
    st.args = {flat(n.inputs[0]), {tv, packed({256})}, flat(out)};
  }
  // Memory-order extents (innermost first) of a value.
  std::vector<int64_t> mem_extents(int v) {
    const auto &t = g.values[v].type;
    std::vector<int64_t> e;
    for (int64_t a : memory_axes(t.shape.size(), t.layout)) e.push_back(t.shape[a]);
    return e;
  }
  // A copy that only reorders dimensions: a view when the order of the non-unit dimensions is
  // unchanged, else a transpose kernel (spec.perm: input dimension of each output dimension).
  void lower_transpose(const Node &n, PlanStep &st, int out) {
    const auto &it = g.values[n.inputs[0]].type;
    const auto mperm = transpose_memory_perm(it, n.ints("perm"), g.values[out].type.layout);
    if (transpose_is_view(it, mperm)) {
      lower_flatten(n, st, out);
      return;
    }
    transpose_step(st, n.inputs[0], out, mem_extents(n.inputs[0]), mperm);
  }
  void transpose_step(PlanStep &st, int in, int out, const std::vector<int64_t> &in_ext,
                      const std::vector<int64_t> &mperm) {
    KernelSpec &s = st.spec;
    s.kind = "transpose";
    if (g.values[in].type.dtype != DType::f32) throw Error("step '" + st.name + "': transposes take fp32 tensors");
    s.in_shape = in_ext;
    s.perm = mperm;
    s.out_shape.clear();
    for (int64_t d : mperm) s.out_shape.push_back(in_ext[d]);
    s.relu = false;
    resolve_knobs(s);
    st.args = {{value(in), packed(s.in_shape)}, {value(out), packed(s.out_shape)}};
  }
  // ShuffleNet's channel shuffle of an NHWC image: channels as (C/G, G) -> (G, C/G).
  void lower_channel_shuffle(const Node &n, PlanStep &st, int out) {
    const auto &t = g.values[n.inputs[0]].type;
    if (t.layout != Layout::NHWC) throw Error("node '" + n.name + "': channel shuffle expects an NHWC input");
    const int64_t G = n.i("groups", 1), C = t.shape[1];
    transpose_step(st, n.inputs[0], out, {C / G, G, t.shape[3], t.shape[2], t.shape[0]}, {1, 0, 2, 3, 4});
  }
  // A strided window of the input (same layout in and out): spec.starts/steps per dimension.
  void lower_slice(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    const auto &t = g.values[n.inputs[0]].type;
    auto starts = n.ints("starts"), steps = n.ints("steps");
    if (t.dtype != DType::f32) throw Error("node '" + n.name + "': slices take fp32 tensors");
    s.in_shape = mem_extents(n.inputs[0]);
    s.out_shape = mem_extents(out);
    s.starts.clear();
    s.steps.clear();
    for (int64_t a : memory_axes(t.shape.size(), t.layout)) {
      s.starts.push_back(starts[a]);
      s.steps.push_back(steps[a]);
    }
    resolve_knobs(s);
    st.args = {{value(n.inputs[0]), packed(s.in_shape)}, {value(out), packed(s.out_shape)}};
  }
  // A constant padding (negative pads crop), same layout in and out: spec.pads holds the begins,
  // then the ends, per memory dimension; spec.fparams[0] is the value.
  void lower_pad(const Node &n, PlanStep &st, int out) {
    KernelSpec &s = st.spec;
    const auto &t = g.values[n.inputs[0]].type;
    if (t.dtype != DType::f32 || g.values[n.inputs[0]].is_const())
      throw Error("node '" + n.name + "': pad takes an fp32 activation");
    const auto pads = n.ints("pads");
    const size_t r = t.shape.size();
    s.in_shape = mem_extents(n.inputs[0]);
    s.out_shape = mem_extents(out);
    s.pads.clear();
    const auto order = memory_axes(r, t.layout);
    for (int64_t a : order) s.pads.push_back(pads[(size_t)a]);
    for (int64_t a : order) s.pads.push_back(pads[(size_t)a + r]);
    s.fparams = {n.f("value", 0.f)};
    resolve_knobs(s);
    st.args = {{value(n.inputs[0]), packed(s.in_shape)}, {value(out), packed(s.out_shape)}};
  }
  // Layer normalization over the last axis: gamma and beta of K values.
  void lower_layernorm(const Node &n, PlanStep &st, int out) {
    st.spec.fparams = {n.f("epsilon", 1e-5f)};
    rows_step(n, st, out, {n.inputs[1], n.inputs[2]});
  }
  void lower_flatten(const Node &n, PlanStep &st, int out) {
    st.alias = true;
    int src = value(n.inputs[0]);
    int dst = value(out);
    lm.values[dst].alias_of = src;
  }

  // How each graph op becomes a plan step; a new op registers its lowering here.
  using LowerFn = void (Lowering::*)(const Node &, PlanStep &, int);
  static const std::map<std::string, LowerFn> &lowerings() {
    static const std::map<std::string, LowerFn> table = {
        {"conv2d", &Lowering::lower_conv2d},
        {"conv2d_q", &Lowering::lower_conv2d_q},
        {"dense", &Lowering::lower_dense},
        {"quantize", &Lowering::lower_quantize},
        {"dequantize", &Lowering::lower_quantize},
        {"global_avgpool_q", &Lowering::lower_global_avgpool_q},
        {"maxpool", &Lowering::lower_maxpool},
        {"avgpool", &Lowering::lower_avgpool},
        {"concat", &Lowering::lower_concat},
        {"global_avgpool", &Lowering::lower_unary_act},
        {"layout", &Lowering::lower_unary_act},
        {"add", &Lowering::lower_add},
        {"relu", &Lowering::lower_relu},
        {"unary", &Lowering::lower_unary},
        {"binary", &Lowering::lower_binary},
        {"scale_shift", &Lowering::lower_scale_shift},
        {"flatten", &Lowering::lower_flatten},
        {"reshape", &Lowering::lower_flatten},
        {"transpose", &Lowering::lower_transpose},
        {"channel_shuffle", &Lowering::lower_channel_shuffle},
        {"slice", &Lowering::lower_slice},
        {"pad", &Lowering::lower_pad},
        {"layernorm", &Lowering::lower_layernorm},
        {"lut", &Lowering::lower_lut},
        {"softmax", &Lowering::lower_softmax},
        {"matmul", &Lowering::lower_matmul},
    };
    return table;
  }

  void lower_node(const Node &n) {
    PlanStep st;
    st.name = n.name;
    st.op = n.op;
    st.spec = base_spec(n);
    int out = n.outputs[0];
    auto it = lowerings().find(n.op);
    if (it == lowerings().end()) throw Error("node '" + n.name + "': no code generator for op '" + n.op + "'");
    (this->*(it->second))(n, st, out);
    for (int v : n.inputs)
      if (!g.values[v].is_const()) st.reads.push_back(stored(v));
    for (int v : st.extra_reads) st.reads.push_back(v);
    st.writes.push_back(stored(out));
    lm.steps.push_back(std::move(st));
  }
};

}  // namespace

LoweredModule lower_graph(const Graph &g, const TargetInfo &target, const std::map<std::string, Knobs> &overrides,
                          const std::map<std::string, Knobs> &tuned, const std::map<std::string, Knobs> &tuned_defaults) {
  Lowering L{g, target, overrides, tuned, tuned_defaults, {}, {}};
  for (int v : g.inputs) {
    int p = L.value(v);
    L.lm.values[p].kind = "input";
    L.lm.inputs.push_back(p);
  }
  L.plan_bit_planes();
  for (const auto &n : g.nodes) L.lower_node(n);
  for (int v : g.outputs) L.lm.outputs.push_back(L.value(v));
  // Concatenations in place unless `--knob concat.in_place=0`.
  auto co = overrides.find("concat");
  const ConcatPlacement cp = place_concat_slices(L.lm, co == overrides.end() || knob(co->second, "in_place", 1));
  L.lm.concats = cp.concats;
  L.lm.concats_in_place = cp.joined;
  // A step is tuned when its knobs are those of its task's record (an explicit --knob may have
  // replaced them).
  for (auto &st : L.lm.steps) {
    if (st.alias || tuned.empty()) continue;
    auto it = tuned.find(task_signature(st.spec));
    st.tuned = it != tuned.end() && knob_mismatch(st.spec.knobs, it->second).empty();
  }
  return L.lm;
}

int64_t write_module_files(const LoweredModule &lm, const Graph &g, const TargetInfo &t, const std::string &dir) {
  nlohmann::json m;
  m["format"] = "qnnc-module-1";
  m["model"] = g.name;
  m["target"] = t.name;
  m["halide_target"] = t.halide.to_string();
  m["target_is_host"] = t.is_host;
  m["precision"] = lm.precision;
  m["cpu_features"] = t.cpu_features;
  std::ofstream wf(dir + "/weights.bin", std::ios::binary);
  if (!wf) throw Error("cannot write '" + dir + "/weights.bin'");
  int64_t off = 0;
  nlohmann::json vals = nlohmann::json::array();
  for (const auto &v : lm.values) {
    nlohmann::json jv;
    jv["name"] = v.name;
    jv["kind"] = v.kind;
    jv["shape"] = v.shape;
    jv["layout"] = v.layout;
    jv["dtype"] = dtype_name(v.dtype);
    if (v.scale > 0) {
      jv["scale"] = v.scale;
      jv["zero_point"] = v.zero_point;
    }
    int64_t n = 1;
    for (auto d : v.shape) n *= d;
    jv["bytes"] = n * dtype_bytes(v.dtype);
    if (v.alias_of >= 0) jv["alias_of"] = v.alias_of;
    if (v.channel_offset >= 0) jv["channel_offset"] = v.channel_offset;
    if (v.kind == "const") {
      int64_t aligned = (off + 63) / 64 * 64;
      static const char zeros[64] = {};
      wf.write(zeros, aligned - off);
      jv["offset"] = aligned;
      wf.write((const char *)v.bytes.data(), (std::streamsize)v.bytes.size());
      off = aligned + (int64_t)v.bytes.size();
    }
    vals.push_back(jv);
  }
  m["weights_bytes"] = off;
  m["values"] = vals;
  m["inputs"] = lm.inputs;
  m["outputs"] = lm.outputs;
  nlohmann::json steps = nlohmann::json::array();
  for (const auto &s : lm.steps) {
    nlohmann::json js;
    js["name"] = s.name;
    js["op"] = s.op;
    js["alias"] = s.alias;
    js["reads"] = s.reads;
    js["writes"] = s.writes;
    if (!s.alias) {
      js["fn"] = s.fn;
      js["halide_target"] = s.halide_target;
      js["spec"] = s.spec.to_json();
      js["describe"] = s.spec.describe();
      js["tuned"] = s.tuned;
    }
    nlohmann::json args = nlohmann::json::array();
    for (const auto &a : s.args) args.push_back({{"value", a.value}, {"dims", a.dims}});
    js["args"] = args;
    steps.push_back(js);
  }
  m["steps"] = steps;
  std::ofstream jf(dir + "/graph.json");
  jf << m.dump(1);
  std::ofstream tf(dir + "/graph.txt");
  tf << print_graph(g);
  if (!wf || !jf || !tf) throw Error("writing module files into '" + dir + "' failed");
  return off;
}

}  // namespace qnnc
