#include "quantize/quantize_graph.h"

#include <algorithm>
#include <cmath>

#include "passes/passes.h"

namespace qnnc {

namespace {

// The scale of one output channel's weights that minimizes the squared error of
// s * clamp(round(w / s), -qmax, qmax) against w, searched over fractions of amax / qmax. At 2-4
// bits clipping the largest weights pays: with amax / qmax, most of a 2-bit channel rounds to 0.
double mse_weight_scale(const float *w, int64_t n, double amax, int qmax) {
  double best_s = amax / qmax, best_err = -1;
  for (int k = 100; k >= 10; k -= 2) {
    double s = amax / qmax * k / 100.0, err = 0;
    for (int64_t i = 0; i < n; i++) {
      double q = std::clamp<double>(std::nearbyint(w[i] / s), -qmax, qmax);
      err += (w[i] - s * q) * (w[i] - s * q);
    }
    if (best_err < 0 || err < best_err) best_err = err, best_s = s;
  }
  return best_s;
}


struct QParams {
  float scale;
  int zero_point;
};

// 8-bit encoding of the range [lo, hi] widened to include 0: every level spans it and the zero
// point is where 0 falls (asymmetric, as ONNX Runtime's and TFLite's uint8). A range that is
// mostly on one side of 0 (SiLU's and HardSwish's outputs: about [-0.28, t]) keeps nearly all
// 256 levels, where a zero point fixed at 128 would waste half of them.
QParams fit_range(double lo, double hi, int qmax) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  const double scale = std::max((hi - lo) / qmax, 1e-8);
  return {(float)scale, (int)std::clamp<long>(std::lround(-lo / scale), 0, qmax)};
}

struct Rewriter {
  Graph &g;
  const std::map<std::string, ActivationStats> &stats;
  const QConfig &cfg;
  QuantizeSummary sum;
  std::vector<Node> out;
  std::map<int, int> qtwin;   // fp32 value -> u8 twin
  std::map<std::pair<int, int>, int> qtwin_bits;   // (fp32 value, bits) -> u8 twin at other bits
  std::map<int, int> vbits;   // u8 values encoded at other bits than cfg.activation_bits
  std::map<int, int> ftwin;   // value whose producer became integer -> fp32 twin (dequantized)

  int act_qmax() const { return (1 << cfg.activation_bits) - 1; }
  int bits_of(int v) const {
    auto it = vbits.find(v);
    return it == vbits.end() ? cfg.activation_bits : it->second;
  }
  // Low-bit modes run the first convolution and the dense layers at 8 bits (QConfig::lowbit_edges).
  bool lowbit() const { return cfg.weight_bits < 7 || cfg.activation_bits < 8; }  // (w7a8 is int8 with narrower weights)

  // Values joined by concatenations share one encoding, so that the concat copies integers.
  std::map<int, int> concat_group;   // value -> representative
  std::map<int, QParams> group_qp;   // representative -> shared encoding

  int find(int v) {
    auto it = concat_group.find(v);
    if (it == concat_group.end() || it->second == v) return v;
    return it->second = find(it->second);
  }
  void group_concats() {
    // Only concats read by integer kernels (DenseNet's are read by fp32 batch norms, where a
    // block-wide shared encoding would cost accuracy and save nothing).
    auto cons = g.consumers();
    for (const auto &n : g.nodes) {
      if (n.op != "concat") continue;
      bool integer_reader = false;
      for (int c : cons[n.outputs[0]]) {
        const std::string &op = g.nodes[c].op;
        integer_reader = integer_reader || op == "conv2d" || op == "maxpool" || op == "concat";
      }
      if (!integer_reader) continue;
      for (int v : n.inputs)
        if (g.values[v].is_const()) goto next;
      for (int v : n.inputs) concat_group.emplace(v, v);
      concat_group.emplace(n.outputs[0], n.outputs[0]);
      for (int v : n.inputs) concat_group[find(v)] = find(n.outputs[0]);
    next:;
    }
    // The shared encoding covers every member's calibrated range.
    std::map<int, std::pair<double, double>> range;
    for (const auto &[v, _] : concat_group) {
      QParams q = choose_own(v);
      double lo = -q.zero_point * (double)q.scale, hi = (act_qmax() - q.zero_point) * (double)q.scale;
      auto [it, fresh] = range.emplace(find(v), std::make_pair(lo, hi));
      if (!fresh) it->second = {std::min(it->second.first, lo), std::max(it->second.second, hi)};
    }
    for (const auto &[r, lh] : range) {
      const int qmax = act_qmax();
      if (lh.first >= 0) {
        group_qp[r] = {(float)std::max(lh.second / qmax, 1e-8), 0};
      } else if (cfg.activation_bits >= 8) {
        group_qp[r] = fit_range(lh.first, lh.second, qmax);
      } else {
        int zp = (qmax + 1) / 2;
        group_qp[r] = {(float)std::max({lh.second / (qmax - zp), -lh.first / zp, 1e-8}), zp};
      }
    }
  }
  QParams choose(int v, int bits = 0) {
    if (bits && bits != cfg.activation_bits) return choose_own(v, bits);
    if (concat_group.count(v)) return group_qp.at(find(v));
    return choose_own(v);
  }
  QParams choose_own(int v, int bits = 0) {
    if (!bits) bits = cfg.activation_bits;
    auto it = stats.find(g.values[v].name);
    if (it == stats.end()) throw Error("no calibration statistics for '" + g.values[v].name + "'");
    const ActivationStats &s = it->second;
    int qmax = (1 << bits) - 1;
    if (s.min >= 0) {  // non-negative (after ReLU): zero point 0, all levels for [0, t]
      float t = choose_threshold(s, cfg, qmax);
      return {std::max(t, 1e-8f) / qmax, 0};
    }
    int zp = (qmax + 1) / 2;
    float t = choose_threshold(s, cfg, zp);  // of |x|; the range is clipped to [-t, t]
    if (bits >= 8) return fit_range(std::max<double>(s.min, -t), std::min<double>(s.max, t), qmax);
    // Below 8 bits the zero point stays in the middle (levels symmetric about 0).
    return {std::max(t, 1e-8f) / std::max(1, zp - (bits > 1 ? 1 : 0)), zp};
  }

  void mark_u8(int v, QParams q, int bits = 0) {
    g.values[v].type.dtype = DType::u8;
    g.values[v].scale = q.scale;
    g.values[v].zero_point = q.zero_point;
    if (bits && bits != cfg.activation_bits) vbits[v] = bits;
  }

  // u8 version of a value for an integer consumer (at `bits`, default the activation bits; a
  // value that is u8 already keeps its encoding).
  int as_int(int v, int bits = 0) {
    if (g.values[v].type.dtype == DType::u8) return v;
    if (bits && bits != cfg.activation_bits) {
      auto it = qtwin_bits.find({v, bits});
      if (it != qtwin_bits.end()) return it->second;
      return qtwin_bits[{v, bits}] = quantize_to(v, choose(v, bits), bits);
    }
    auto it = qtwin.find(v);
    if (it != qtwin.end()) return it->second;
    return qtwin[v] = quantize_to(v, choose(v));
  }
  // A quantize step of fp32 value v with encoding q.
  int quantize_to(int v, QParams q, int bits = 0) {
    int nv = g.add_value(g.values[v].name + ".q", g.values[v].type);
    mark_u8(nv, q, bits);
    Node n;
    n.name = g.values[v].name + "_quantize";
    n.op = "quantize";
    n.inputs = {v};
    n.outputs = {nv};
    n.set_f("scale", q.scale);
    n.set_i("zero_point", q.zero_point);
    n.set_i("qmax", (1 << (bits ? bits : cfg.activation_bits)) - 1);
    n.attrs["rounding"].s = cfg.rounding;
    out.push_back(n);
    sum.quantize_steps++;
    return nv;
  }

  // fp32 version of a value for an fp32 consumer.
  int as_float(int v) {
    if (g.values[v].type.dtype != DType::u8) return v;
    auto it = ftwin.find(v);
    if (it != ftwin.end()) return it->second;
    TensorType t = g.values[v].type;
    t.dtype = DType::f32;
    int nv = g.add_value(g.values[v].name + ".dq", t);
    Node n;
    n.name = g.values[v].name + "_dequantize";
    n.op = "dequantize";
    n.inputs = {v};
    n.outputs = {nv};
    n.set_f("scale", g.values[v].scale);
    n.set_i("zero_point", g.values[v].zero_point);
    out.push_back(n);
    sum.dequantize_steps++;
    return ftwin[v] = nv;
  }

  // A function of one u8 activation is a table of its 2^bits levels: f of each dequantized
  // level, requantized to the output's parameters. Exact, and the same on every target.
  void quantize_unary(Node n) {
    const int x = n.inputs[0];
    const float sx = g.values[x].scale;
    const int zx = g.values[x].zero_point, qmax = act_qmax();
    QParams qy = choose(n.outputs[0]);
    const std::string fn = n.attrs.count("fn") ? n.attrs.at("fn").s : "";
    std::vector<int64_t> table;
    for (int q = 0; q <= qmax; q++) {
      double y = unary_function(fn, n, (q - zx) * (double)sx) / qy.scale + qy.zero_point;
      double r = cfg.rounding == "tonearest" ? std::nearbyint(y) : std::floor(y + 0.5);
      table.push_back((int64_t)std::clamp(r, 0.0, (double)qmax));
    }
    n.op = "lut";
    n.set_ints("table", table);
    mark_u8(n.outputs[0], qy);
    out.push_back(n);
    sum.lookup_tables++;
  }
  static double unary_function(const std::string &fn, const Node &n, double x) {
    auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    if (fn == "sigmoid") return sigmoid(x);
    if (fn == "silu") return x * sigmoid(x);
    if (fn == "tanh") return std::tanh(x);
    if (fn == "hardsigmoid") return std::clamp(n.f("alpha", 0.2f) * x + n.f("beta", 0.5f), 0.0, 1.0);
    if (fn == "hardswish") return x * std::clamp(x / 6.0 + 0.5, 0.0, 1.0);
    if (fn == "erf") return std::erf(x);
    if (fn == "gelu") return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    if (fn == "sqrt") return std::sqrt(std::max(x, 0.0));
    throw Error("node '" + n.name + "': no integer table for function '" + fn + "'");
  }

  int integer_inputs(const Node &n) {
    int k = 0;
    for (int v : n.inputs) k += g.values[v].type.dtype == DType::u8 || qtwin.count(v);
    return k;
  }

  bool skipped(const Node &n, bool first_conv) {
    if (cfg.skip_first_conv && first_conv) return true;
    return std::find(cfg.skip_layers.begin(), cfg.skip_layers.end(), n.name) != cfg.skip_layers.end();
  }

  // wb: weight bits; in_bits: of the input when it is quantized here; out_bits: of the output.
  void quantize_conv(Node n, int wb, int in_bits, int out_bits) {
    // Copies: adding values below may move g.values.
    std::vector<int64_t> wshape = g.values[n.inputs[1]].type.shape;
    // A dense layer [M, K] runs as a 1x1 convolution over a 1x1 image of K channels.
    if (wshape.size() == 2) wshape = {wshape[0], wshape[1], 1, 1};
    const auto wdata = g.values[n.inputs[1]].data;
    const auto bdata = g.values[n.inputs[2]].data;
    const auto &w = *wdata;
    const auto &b = *bdata;
    int64_t M = wshape[0], per = (int64_t)w.size() / M;
    int x = as_int(n.inputs[0], in_bits);
    float sx = g.values[x].scale;
    int zx = g.values[x].zero_point;
    QParams qy = choose(n.outputs[0], out_bits);

    int qmax_w = wb > 1 ? (1 << (wb - 1)) - 1 : 1;
    std::vector<int32_t> wq(w.size()), bq(M), mult(M), shift(M);
    for (int64_t m = 0; m < M; m++) {
      double amax = 0, asum = 0;
      for (int64_t i = 0; i < per; i++) {
        amax = std::max(amax, (double)std::fabs(w[m * per + i]));
        asum += std::fabs(w[m * per + i]);
      }
      double s;
      if (wb == 1) s = asum / per;  // binary weights: sign(w) * mean|w|
      else s = amax / qmax_w;
      if (cfg.weight_scale == "mse" && wb > 1 && amax > 0) s = mse_weight_scale(&w[m * per], per, amax, qmax_w);
      if (cfg.weight_scale == "power2" && s > 0) s = std::pow(2.0, std::ceil(std::log2(s)));
      if (s <= 0) s = 1.0;
      int64_t wsum = 0;
      for (int64_t i = 0; i < per; i++) {
        float v = w[m * per + i];
        int q = wb == 1 ? (v >= 0 ? 1 : -1) : (int)std::clamp<long>(std::lround(v / s), -qmax_w, qmax_w);
        wq[m * per + i] = q;
        wsum += q;
      }
      double acc_scale = (double)sx * s;
      // Padding and channel padding read the input zero point; subtracting zx * sum(w) makes
      // every tap contribute (x - zx) * w.
      bq[m] = (int32_t)std::llround(b[m] / acc_scale) - (int32_t)(zx * wsum);
      FixedPoint fp = to_fixed_point(acc_scale / qy.scale, kScaleMantissaBits);
      mult[m] = fp.multiplier;
      shift[m] = fp.shift;
    }
    std::string nm = n.name;
    Node q = n;
    q.op = "conv2d_q";
    q.inputs = {x, g.add_iconst(nm + ".weight.q", wshape, DType::i8, std::move(wq)),
                g.add_iconst(nm + ".bias.q", {M}, DType::i32, std::move(bq)),
                g.add_iconst(nm + ".mult", {M}, DType::i32, std::move(mult)),
                g.add_iconst(nm + ".shift", {M}, DType::i32, std::move(shift))};
    q.set_i("in_zp", zx);
    q.set_i("out_zp", qy.zero_point);
    q.set_i("qmax", (1 << out_bits) - 1);
    q.attrs["rounding"].s = cfg.rounding;
    q.set_i("weight_bits", wb);
    q.set_i("activation_bits", bits_of(x));
    if (n.inputs.size() > 3) {
      int r = as_int(n.inputs[3]);
      FixedPoint fp = to_fixed_point((double)g.values[r].scale / qy.scale, kResidualMultiplierBits);
      q.inputs.push_back(r);
      q.set_i("res_zp", g.values[r].zero_point);
      q.set_i("res_mult", fp.multiplier);
      q.set_i("res_shift", fp.shift);
    }
    mark_u8(n.outputs[0], qy, out_bits);
    out.push_back(q);
    sum.quantized++;
    sum.fp32_weight_bytes += (int64_t)w.size() * 4;
    sum.quantized_weight_bytes += ((int64_t)w.size() * wb + 7) / 8 + M * 12;
  }

  // The first convolution or a dense layer in a low-bit mode: at 8 bits (lowbit_edges "int8")
  // or at the model's bits ("same"); its output at out_bits.
  void quantize_edge(const Node &n, int out_bits, const std::string &what) {
    const bool int8 = cfg.lowbit_edges == "int8";
    quantize_conv(n, int8 ? 8 : cfg.weight_bits, int8 ? 8 : cfg.activation_bits, out_bits);
    if (int8) sum.int8_reasons[what + " (low-bit mode; --lowbit-edges fp32|same to change)"]++;
  }

  void run() {
    group_concats();
    bool seen_conv = false;
    for (Node n : g.nodes) {
      if (n.op == "conv2d") {
        bool first = !seen_conv;
        seen_conv = true;
        if (first && lowbit() && cfg.lowbit_edges != "fp32" && !skipped(n, false)) {
          // Its output feeds the low-bit layers: the output takes the model's activation bits.
          quantize_edge(n, cfg.activation_bits, "first convolution");
          continue;
        }
        if (!skipped(n, first)) {
          quantize_conv(n, cfg.weight_bits, cfg.activation_bits, cfg.activation_bits);
          continue;
        } else {
          sum.kept_fp32++;
          sum.kept_reasons[first && cfg.skip_first_conv ? "first convolution (--quantize-first-conv to quantize it)"
                                                         : "skipped by --skip-layer"]++;
        }
      } else if (n.op == "maxpool" && (g.values[n.inputs[0]].type.dtype == DType::u8 || qtwin.count(n.inputs[0]))) {
        // Max commutes with a monotonic quantization: pool the integers, keep the scale.
        int x = as_int(n.inputs[0]);
        n.inputs = {x};
        mark_u8(n.outputs[0], {g.values[x].scale, g.values[x].zero_point}, bits_of(x));
        out.push_back(n);
        continue;
      } else if (n.op == "global_avgpool" && g.values[n.inputs[0]].type.dtype == DType::u8) {
        // Average the integers and dequantize in the same step.
        n.op = "global_avgpool_q";
        n.set_f("scale", g.values[n.inputs[0]].scale);
        n.set_i("zero_point", g.values[n.inputs[0]].zero_point);
        out.push_back(n);
        continue;
      } else if (n.op == "concat" && concat_group.count(n.outputs[0]) && integer_inputs(n) * 2 >= (int)n.inputs.size()) {
        // Mostly integer inputs: all take the shared encoding, and the concat copies bytes.
        // An input already integer in another encoding (a max pool of another concat's
        // output, as in Inception) is requantized through fp32.
        const QParams q = choose(n.outputs[0]);
        for (auto &v : n.inputs) {
          v = as_int(v);
          if (g.values[v].scale != q.scale || g.values[v].zero_point != q.zero_point) v = quantize_to(as_float(v), q);
        }
        mark_u8(n.outputs[0], q);
        out.push_back(n);
        continue;
      } else if (n.op == "unary" && g.values[n.inputs[0]].type.dtype == DType::u8 && !n.i("relu", 0)) {
        quantize_unary(n);
        continue;
      } else if (n.op == "dense") {
        const bool nd = g.values[n.inputs[0]].type.shape.size() > 2;
        if (lowbit() && cfg.lowbit_edges != "fp32" && !nd && !skipped(n, false) && n.inputs.size() == 3) {
          // A dense layer's output is mostly a network's logits: 8 bits out in both cases.
          quantize_edge(n, 8, "dense layer");
          continue;
        }
        if (!cfg.skip_dense && !nd && !skipped(n, false) && n.inputs.size() == 3) {
          quantize_conv(n, cfg.weight_bits, cfg.activation_bits, cfg.activation_bits);
          continue;
        }
        sum.kept_fp32++;
        sum.kept_reasons[nd ? "dense layer over the last axis of a >2-D tensor (no integer kernel yet)"
                         : cfg.skip_dense ? "dense layer (--quantize-dense to quantize it)"
                                          : "skipped by --skip-layer"]++;
      }
      for (auto &v : n.inputs)
        if (!g.values[v].is_const()) v = as_float(v);
      out.push_back(n);
    }
    for (auto &o : g.outputs) o = as_float(o);
    fold_quantize_into_scale_shift();
    fold_gate_product();
    g.nodes = std::move(out);
    compact(g);
  }

  // Of the rewritten nodes: how many read each value (graph outputs count), which node makes it.
  void count_uses(std::map<int, int> &reads, std::map<int, int> &made_by) const {
    for (const auto &n : out)
      for (int v : n.inputs) reads[v]++;
    for (int o : g.outputs) reads[o]++;
    for (size_t i = 0; i < out.size(); i++) made_by[out[i].outputs[0]] = (int)i;
  }

  // Folds quantize step q into `producer`, which then writes q's u8 output itself.
  void take_over_quantize(Node &producer, const Node &q) {
    producer.outputs = q.outputs;
    producer.set_i("qmax", q.i("qmax", 255));
    producer.attrs["rounding"] = q.attrs.at("rounding");
    sum.quantize_steps--;
    sum.quantize_folded++;
  }
  // Removes the rewritten nodes marked in `drop`.
  void drop_nodes(const std::vector<bool> &drop) {
    std::vector<Node> kept;
    for (size_t i = 0; i < out.size(); i++)
      if (!drop[i]) kept.push_back(std::move(out[i]));
    out = std::move(kept);
  }

  // Offers each quantize step q whose fp32 input only q reads to `fold(producer, q, reads,
  // made_by, drop)`; where fold returns true, the producer takes the step over and q goes (fold
  // may mark other nodes in `drop`, and update `reads`).
  template <typename F>
  void fold_quantize_steps(F fold) {
    std::map<int, int> reads, made_by;
    count_uses(reads, made_by);
    std::vector<bool> drop(out.size(), false);
    for (size_t qi = 0; qi < out.size(); qi++) {
      const Node &q = out[qi];
      auto p = q.op == "quantize" ? made_by.find(q.inputs[0]) : made_by.end();
      if (p == made_by.end() || reads[q.inputs[0]] != 1) continue;
      Node &producer = out[(size_t)p->second];
      if (!fold(producer, q, reads, made_by, drop)) continue;
      take_over_quantize(producer, q);
      drop[qi] = true;
    }
    drop_nodes(drop);
  }

  // A quantize step whose input is an fp32 scale_shift that nothing else reads: the scale_shift
  // writes the integers itself (DenseNet's batch norm + ReLU before each integer convolution),
  // so the fp32 tensor is never stored. The arithmetic is the quantize step's, unchanged.
  void fold_quantize_into_scale_shift() {
    fold_quantize_steps([](Node &producer, const Node &, std::map<int, int> &, const std::map<int, int> &,
                           std::vector<bool> &) { return producer.op == "scale_shift"; });
  }

  // Squeeze-and-excitation's gate product, x * gate with x integer and the gate fp32 per channel,
  // runs dequantize -> fp32 multiply -> quantize. Where the product is read only by that
  // quantize step, the multiply reads the integers and writes them (same arithmetic, in the
  // same order); the dequantize step goes where nothing else reads its output.
  void fold_gate_product() {
    fold_quantize_steps([&](Node &mul, const Node &, std::map<int, int> &reads, const std::map<int, int> &made_by,
                            std::vector<bool> &drop) {
      if (mul.op != "binary" || mul.attrs["fn"].s != "mul" || mul.inputs.size() != 2) return false;
      // The operand of the product's full shape comes from a dequantize step.
      const auto &shape = g.values[mul.outputs[0]].type.shape;
      int side = -1;
      for (int k = 0; k < 2 && side < 0; k++) {
        auto d = made_by.find(mul.inputs[(size_t)k]);
        if (d != made_by.end() && out[(size_t)d->second].op == "dequantize" &&
            g.values[mul.inputs[(size_t)k]].type.shape == shape && !g.values[mul.inputs[1 - (size_t)k]].is_const())
          side = k;
      }
      if (side < 0) return false;
      const int dq = mul.inputs[(size_t)side], gate = mul.inputs[1 - (size_t)side];
      const int dqi = made_by.at(dq);
      mul.inputs = {out[(size_t)dqi].inputs[0], gate};  // integers first (the product commutes)
      sum.gates_folded++;
      if (--reads[dq] == 0) {
        drop[(size_t)dqi] = true;
        sum.dequantize_steps--;
      }
      return true;
    });
  }
};

}  // namespace

QuantizeSummary quantize_graph(Graph &g, const std::map<std::string, ActivationStats> &stats, const QConfig &cfg) {
  cfg.validate();
  Rewriter r{g, stats, cfg, {}, {}, {}, {}};
  r.run();
  return r.sum;
}

}  // namespace qnnc
