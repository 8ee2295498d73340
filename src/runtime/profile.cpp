#include "runtime/profile.h"

#include "kernels/knob_space.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "ir/graph.h"
#include "kernels/kernel_spec.h"

namespace qnnc {

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      auto c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  }
  return "unknown CPU";
}

// Weight and activation bits of a precision name: int8 -> 8,8; w4a8 -> 4,8.
std::pair<int, int> precision_bits(const std::string &p) {
  int w = 8, a = 8;
  if (std::sscanf(p.c_str(), "int%d", &w) == 1) return {w, w};
  if (std::sscanf(p.c_str(), "w%da%d", &w, &a) == 2) return {w, a};
  return {8, 8};
}

}  // namespace

double step_macs(const nlohmann::json &st) {
  return st.contains("spec") ? spec_macs(KernelSpec::from_json(st["spec"])) : 0;
}

double spec_macs(const KernelSpec &s) {
  const auto &o = s.out_shape, &i = s.in_shape;
  if (s.kind == "conv2d" || s.kind == "conv2d_q" || s.kind == "conv2d_bs" || s.kind == "conv2d_grouped" ||
      s.kind == "dwconv2d_q")
    return double(o[0]) * o[1] * o[2] * o[3] * (i[1] / std::max<int64_t>(1, s.group)) * s.kernel[0] * s.kernel[1];
  if (s.kind == "dense") return double(o[0]) * o[1] * i[1];
  if (s.kind == "matmul" && s.in_shape.size() == 3 && s.in2_shape.size() == 3)  // {K, M, B} x {N, K, B}
    return double(s.in_shape[0]) * s.in_shape[1] * s.in_shape[2] * s.in2_shape[0];
  return 0;
}

RunTiming time_runs(Module &m, const std::vector<Tensor> &in, int warmup, int repeat) {
  if (repeat < 1) throw Error("repeat must be at least 1");
  for (int i = 0; i < warmup; i++) m.run(in);
  std::vector<double> s;
  for (int i = 0; i < repeat; i++) {
    auto t0 = std::chrono::steady_clock::now();
    m.run(in);
    s.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(s.begin(), s.end());
  RunTiming t;
  t.median = s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  t.min = s.front();
  t.max = s.back();
  for (double v : s) t.mean += v / s.size();
  for (double v : s) t.stddev += (v - t.mean) * (v - t.mean) / s.size();
  t.stddev = std::sqrt(t.stddev);
  return t;
}

Profile profile_module(Module &m, const std::vector<Tensor> &in, int repeat, int warmup, bool peaks) {
  if (repeat < 1) throw Error("profile: repeat must be at least 1");
  const auto &man = m.manifest();
  const auto &steps = man["steps"];
  for (int i = 0; i < warmup; i++) m.run(in);
  std::vector<std::vector<double>> t(steps.size());
  for (int r = 0; r < repeat; r++) {
    auto last = std::chrono::steady_clock::now();
    m.run(in, [&](size_t k) {
      auto now = std::chrono::steady_clock::now();
      t[k].push_back(std::chrono::duration<double, std::milli>(now - last).count());
      last = now;
    });
  }
  Profile p;
  p.threads = m.threads();
  p.repeat = repeat;
  p.machine = cpu_model() + " (" + man.value("target", "host") + ", " + man.value("halide_target", "") + ")";
  if (peaks) p.peaks = measure_peaks(p.threads);
  std::string precision = man.value("precision", "fp32");
  auto [wb, ab] = precision_bits(precision);
  for (size_t k = 0; k < steps.size(); k++) {
    const auto &st = steps[k];
    if (t[k].empty()) continue;
    std::sort(t[k].begin(), t[k].end());
    double ms = t[k][t[k].size() / 2];
    p.total_ms += ms;
    if (st.value("alias", false) || !st.contains("spec")) continue;
    ProfileRow r;
    r.step = k;
    r.name = st.value("name", "");
    r.kernel = st.value("describe", "");
    r.ms = ms;
    r.macs = step_macs(st);
    KernelSpec s = KernelSpec::from_json(st["spec"]);
    r.kind = s.kind;
    r.schedule = st.value("tuned", false) ? "tuned" : has_tunable_knobs(s.kind) ? "default" : "";
    bool integer = s.kind == "conv2d_q" || s.kind == "dwconv2d_q" || s.kind == "conv2d_bs" || s.kind == "bitpack" ||
                   s.kind == "global_avgpool_q" || s.kind == "lut" || s.dtype == "u8";
    r.precision = s.kind == "quantize" ? "fp32 -> " + precision
                  : s.kind == "dequantize" ? precision + " -> fp32"
                  : integer ? precision : "fp32";
    if (r.macs > 0) {
      r.gops = 2 * r.macs / (ms * 1e6);
      r.peak = s.kind == "conv2d_bs"                              ? "binary"
               : s.kind == "conv2d_q" && s.knobs.count("amx") && s.knobs.at("amx") ? "amx"
               : (s.kind == "conv2d_q" || s.kind == "dwconv2d_q")     ? "int8"
                                                                      : "fp32";
      auto pk = p.peaks.find(r.peak);
      if (pk != p.peaks.end() && pk->second.gops > 0) {
        // A bit-serial layer does wb x ab binary multiply-accumulates per weight-activation pair.
        double need = r.peak == "binary" ? r.gops * wb * ab : r.gops;
        r.peak_pct = 100 * need / pk->second.gops;
      }
    }
    p.rows.push_back(r);
  }
  return p;
}

nlohmann::json Profile::to_json() const {
  nlohmann::json j{{"schema", 1}, {"threads", threads}, {"repeat", repeat}, {"machine", machine}, {"total_ms", total_ms}};
  nlohmann::json pk = nlohmann::json::object();
  for (const auto &[k, v] : peaks)
    pk[k] = {{"gops", v.gops}, {"unit", k == "fp32" ? "GFLOP/s" : "GOP/s"}, {"what", v.what}};
  j["peaks"] = pk;
  nlohmann::json rs = nlohmann::json::array();
  for (const auto &r : rows) {
    nlohmann::json jr{{"step", r.step}, {"name", r.name}, {"kernel", r.kernel}, {"kind", r.kind},
                      {"precision", r.precision}, {"ms", r.ms}, {"macs", r.macs}, {"gops", r.gops}};
    jr["peak"] = r.peak.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.peak);
    jr["peak_pct"] = r.peak_pct < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.peak_pct);
    jr["schedule"] = r.schedule;
    rs.push_back(jr);
  }
  j["rows"] = rs;
  return j;
}

std::string Profile::format() const {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-4s %-32s %-40s %9s %6s %8s %7s %-8s\n", "step", "name", "kernel", "ms", "%", "GOP/s",
                "%peak", "schedule");
  out += buf;
  double total_macs = 0;
  for (const auto &r : rows) {
    total_macs += r.macs;
    std::string pct = r.peak_pct >= 0 ? std::to_string((int)(r.peak_pct + 0.5)) + "%" : "";
    std::snprintf(buf, sizeof buf, "%-4zu %-32.32s %-40.40s %9.3f %5.1f%% %8.1f %7s %-8s\n", r.step,
                  printable(r.name, 32).c_str(), printable(r.kernel, 40).c_str(), r.ms, 100 * r.ms / total_ms,
                  r.gops, pct.c_str(), r.schedule.c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "total %.3f ms over %zu kernel steps, %.2f GMAC, %.1f GOP/s overall\n", total_ms,
                rows.size(), total_macs / 1e9, 2 * total_macs / (total_ms * 1e6));
  out += buf;
  for (const auto &[k, v] : peaks) {
    std::snprintf(buf, sizeof buf, "peak %-6s %8.1f %s (%s, measured now)\n", k.c_str(), v.gops,
                  k == "fp32" ? "GFLOP/s" : "GOP/s", v.what.c_str());
    out += buf;
  }
  return out;
}

}  // namespace qnnc
