#include "tune/measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "ir/graph.h"

namespace qnnc {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

std::vector<int> parse_step_list(const std::string &list) {
  std::vector<int> steps;
  std::stringstream ss(list);
  for (std::string tok; std::getline(ss, tok, ',');)
    if (!tok.empty()) steps.push_back(std::stoi(tok));
  return steps;
}

nlohmann::json measure_against_reference(Module &cand, Module &ref, const std::vector<int> &steps, int repeat,
                                         uint64_t seed) {
  const auto &rs = ref.manifest()["steps"], &cs = cand.manifest()["steps"];
  const auto &vals = ref.manifest()["values"];
  if (rs.size() != cs.size()) throw Error("candidate and reference modules have different steps");
  std::vector<Tensor> in;
  for (const auto &s : ref.input_shapes()) in.push_back(random_tensor(s, seed));
  std::vector<bool> listed(rs.size(), false);
  for (int k : steps) {
    if (k < 0 || k >= (int)rs.size()) throw Error("step " + std::to_string(k) + " is not in the module");
    listed[k] = true;
  }
  // Reference outputs of the listed steps.
  std::map<int, std::vector<uint8_t>> expect;
  ref.run(in, [&](size_t k) {
    if (!listed[k]) return;
    for (int w : rs[k]["writes"]) {
      size_t n = vals[w]["bytes"].get<size_t>();
      const uint8_t *p = (const uint8_t *)ref.value_data(w);
      expect[w].assign(p, p + n);
    }
  });
  nlohmann::json out{{"ok", true}, {"why", ""}};
  nlohmann::json per = nlohmann::json::array();
  std::map<int, nlohmann::json> diffs;
  cand.run(in, [&](size_t k) {
    if (!listed[k]) return;
    for (int w : cs[k]["writes"]) {
      const auto &e = expect[w];
      const uint8_t *p = (const uint8_t *)cand.value_data(w);
      bool is_f32 = vals[w].value("dtype", "f32") == "f32";
      double max_abs = 0, num = 0, den = 0;
      bool exact = std::memcmp(p, e.data(), e.size()) == 0;
      if (is_f32) {
        const float *a = (const float *)p, *b = (const float *)e.data();
        for (size_t i = 0; i < e.size() / 4; i++) {
          double d = (double)a[i] - b[i];
          max_abs = std::max(max_abs, std::fabs(d));
          num += d * d;
          den += (double)b[i] * b[i];
        }
      } else {
        for (size_t i = 0; i < e.size(); i++) max_abs = std::max(max_abs, std::fabs((double)p[i] - e[i]));
      }
      double rel = den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0);
      bool fine = is_f32 ? rel <= 1e-4 : exact;
      diffs[(int)k] = {{"max_abs_diff", max_abs}, {"rel_l2", std::isfinite(rel) ? rel : 1e30}, {"exact", exact}};
      if (!fine && out["ok"].get<bool>()) {
        out["ok"] = false;
        out["why"] = "wrong output at step " + std::to_string(k) + " ('" + printable(rs[k].value("name", "")) + "'): " +
                     (is_f32 ? "relative L2 error " + std::to_string(rel) : "integers differ by up to " +
                                                                               std::to_string((int)max_abs));
      }
    }
  });
  // Timing: interleaved runs, per-step times from the hooks.
  std::map<int, std::vector<double>> tc, tr;
  auto timed = [&](Module &m, std::map<int, std::vector<double>> &t) {
    auto last = std::chrono::steady_clock::now();
    m.run(in, [&](size_t k) {
      auto now = std::chrono::steady_clock::now();
      if (listed[k]) t[(int)k].push_back(std::chrono::duration<double, std::milli>(now - last).count());
      last = now;
    });
  };
  timed(ref, tr);  // warm-up
  timed(cand, tc);
  tc.clear(), tr.clear();
  for (int i = 0; i < repeat; i++) {
    timed(ref, tr);
    timed(cand, tc);
  }
  double csum = 0, rsum = 0, cmin = 0;
  for (int k : steps) {
    double c = median(tc[k]), r = median(tr[k]);
    double lo = tc[k].empty() ? 0 : *std::min_element(tc[k].begin(), tc[k].end());
    csum += c, rsum += r, cmin += lo;
    nlohmann::json j{{"step", k}, {"ms", c}, {"min_ms", lo}, {"ref_ms", r}};
    j.update(diffs[k]);
    per.push_back(j);
  }
  out["steps"] = per;
  out["candidate_ms"] = steps.empty() ? 0 : csum / steps.size();
  out["reference_ms"] = steps.empty() ? 0 : rsum / steps.size();
  out["candidate_min_ms"] = steps.empty() ? 0 : cmin / steps.size();
  return out;
}

}  // namespace qnnc
