#include "quantize/calibrate.h"

#include <algorithm>
#include <cmath>

#include "codegen/compile.h"
#include "runtime/npy.h"

namespace qnnc {

namespace {
constexpr int kBins = 2048;
}

std::vector<std::vector<Tensor>> calibration_inputs(const Graph &g, const QConfig &cfg) {
  std::vector<std::vector<Tensor>> out;
  if (g.inputs.size() != 1) throw Error("quantization supports models with one input");
  std::vector<int64_t> shape = g.values[g.inputs[0]].type.shape;
  if (!cfg.calibration_data.empty()) {
    std::vector<Tensor> arrays;
    const std::string &p = cfg.calibration_data;
    if (p.size() > 4 && p.substr(p.size() - 4) == ".npz") {
      for (auto &kv : read_npz(p)) arrays.push_back(std::move(kv.second));
    } else {
      arrays.push_back(read_npy(p));
    }
    // Samples, whatever the arrays' batch sizes: each array is N samples of the model input's
    // per-sample shape (or one sample without the batch dimension).
    int64_t per = 1;
    for (size_t i = 1; i < shape.size(); i++) per *= shape[i];
    std::vector<const float *> samples;
    for (auto &a : arrays) {
      bool batched = a.shape.size() == shape.size() && std::equal(a.shape.begin() + 1, a.shape.end(), shape.begin() + 1);
      bool single = a.shape.size() + 1 == shape.size() && std::equal(a.shape.begin(), a.shape.end(), shape.begin() + 1);
      if (!batched && !single) {
        std::vector<int64_t> sample(shape.begin() + 1, shape.end());
        throw Error("calibration data of shape " + shape_string(a.shape) + " does not fit the model input " +
                    shape_string(shape) + ": expected N samples of " + shape_string(sample));
      }
      int64_t n = batched ? a.shape[0] : 1;
      for (int64_t i = 0; i < n; i++) samples.push_back(a.data.data() + i * per);
    }
    if (samples.empty()) throw Error("calibration data holds no sample");
    // Batches of the compiled batch size; the last one is completed with samples from the start
    // (so a batch larger than the data repeats samples; ranges are unchanged by repeats).
    const int64_t batch = shape[0];
    const size_t batches = (samples.size() + batch - 1) / batch;
    for (size_t k = 0; k < batches; k++) {
      Tensor t;
      t.shape = shape;
      t.data.resize(batch * per);
      for (int64_t j = 0; j < batch; j++) {
        const float *src = samples[(k * batch + j) % samples.size()];
        std::copy(src, src + per, t.data.begin() + j * per);
      }
      out.push_back({t});
    }
    if (out.empty()) throw Error("calibration data holds no sample");
    return out;
  }
  for (int i = 0; i < cfg.calibration_samples; i++) out.push_back({random_tensor(shape, cfg.calibration_seed + i)});
  return out;
}

std::map<std::string, ActivationStats> collect_stats(const Graph &g, const std::vector<std::vector<Tensor>> &inputs,
                                                     const std::function<void(const std::string &)> &log,
                                                     const ProgressFn &progress) {
  if (log) log("calibrating on " + std::to_string(inputs.size()) + " input(s)");
  CompileOptions co;
  co.passes.fuse_activations = false;  // every value quantization may read is observed
  co.progress = progress;
  co.progress_task = "calibration kernels";
  Module m = compile(g, co);
  const auto &steps = m.manifest()["steps"];
  const auto &vals = m.manifest()["values"];
  std::map<std::string, ActivationStats> st;
  // Pass 1: ranges. Pass 2: histograms of |x| over each range.
  auto record = [&](int pass, const std::string &name, const float *x, int64_t n) {
    ActivationStats &s = st[name];
    if (pass == 0) {
      auto [lo, hi] = std::minmax_element(x, x + n);
      s.min = std::min(s.min, *lo);
      s.max = std::max(s.max, *hi);
    } else {
      if (s.hist.empty()) s.hist.assign(kBins, 0.0);
      float am = s.absmax();
      if (am <= 0) return;
      float k2 = kBins / am;
      // Exact zeros (half of every ReLU output) are exact at any threshold; left in, their spike
      // would make the KL search keep the first bin alone in its level, i.e. clip at the
      // smallest candidate threshold.
      for (int64_t i = 0; i < n; i++) {
        if (x[i] != 0.f) s.hist[std::min(kBins - 1, (int)(std::fabs(x[i]) * k2))] += 1;
        else s.zeros += 1;
      }
    }
  };
  int runs = 0, total_runs = 2 * (int)inputs.size();
  for (int pass = 0; pass < 2; pass++) {
    for (const auto &in : inputs) {
      if (progress) progress({"calibration", runs++, total_runs, 0, pass == 0 ? "ranges" : "histograms"});
      // The model inputs themselves (a quantized first layer reads them), then every step's output.
      for (size_t i = 0; i < in.size() && i < g.inputs.size(); i++)
        record(pass, g.values[g.inputs[i]].name, in[i].data.data(), (int64_t)in[i].data.size());
      m.run(in, [&](size_t k) {
        for (int w : steps[k]["writes"]) {
          const std::string &name = vals[w]["name"].get_ref<const std::string &>();
          auto shape = m.value_shape(w);
          int64_t n = 1;
          for (auto d : shape) n *= d;
          record(pass, name, m.value_data(w), n);
        }
      });
    }
  }
  if (progress) progress({"calibration", total_runs, total_runs, 0, "done"});
  return st;
}

namespace {

// Threshold minimizing KL(P || Q) between the clipped histogram and its quantization to
// `levels` levels (the TensorRT/TVM entropy calibration idea).
float kl_threshold(const ActivationStats &s, int levels) {
  const auto &h = s.hist;
  int nb = (int)h.size();
  double best = 1e300;
  int best_i = nb;
  for (int i = std::max(levels, nb / 16); i <= nb; i += std::max(1, nb / 256)) {
    std::vector<double> p(h.begin(), h.begin() + i);
    for (int j = i; j < nb; j++) p[i - 1] += h[j];
    double psum = 0;
    for (double v : p) psum += v;
    if (psum <= 0) continue;
    // Q: the first i bins merged into `levels` groups, each group's mass spread over the bins
    // where P is non-zero. Q's mass comes from the histogram without the clipped tail, so that
    // the tail P piles into its last bin counts against clipping.
    std::vector<double> q(i, 0.0);
    for (int l = 0; l < levels; l++) {
      int a = (int)((int64_t)l * i / levels), b = (int)((int64_t)(l + 1) * i / levels);
      double mass = 0;
      int nz = 0;
      for (int j = a; j < b; j++) {
        mass += h[j];
        nz += p[j] > 0;
      }
      for (int j = a; j < b; j++)
        if (p[j] > 0) q[j] = mass / nz;
    }
    double qsum = 0;
    for (double v : q) qsum += v;
    double kl = 0;
    for (int j = 0; j < i; j++) {
      if (p[j] <= 0) continue;
      double pj = p[j] / psum, qj = q[j] / qsum;
      kl += pj * std::log(pj / std::max(qj, 1e-12));
    }
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return s.absmax() * best_i / nb;
}

}  // namespace

float choose_threshold(const ActivationStats &s, const QConfig &cfg, int levels) {
  float am = s.absmax();
  if (am <= 0) return 1e-6f;
  if (cfg.calibrate_mode == "minmax") return am;
  if (cfg.calibrate_mode == "global_scale") return cfg.global_scale;
  if (s.hist.empty()) return am;
  if (cfg.calibrate_mode == "percentile") {
    double total = s.zeros;  // the percentile is over all |x|, zeros included
    for (double v : s.hist) total += v;
    double want = total * cfg.percentile / 100.0, acc = s.zeros;
    for (size_t i = 0; i < s.hist.size(); i++) {
      acc += s.hist[i];
      if (acc >= want) return am * float(i + 1) / s.hist.size();
    }
    return am;
  }
  return kl_threshold(s, levels);
}

}  // namespace qnnc
