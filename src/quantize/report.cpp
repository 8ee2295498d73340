#include "quantize/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>

namespace qnnc {

double sqnr_db(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0, e = 0;
  for (size_t i = 0; i < a.size(); i++) {
    s += a[i] * a[i];
    e += (a[i] - b[i]) * (a[i] - b[i]);
  }
  if (e == 0) return INFINITY;
  return 10 * std::log10(s / e);
}

namespace {

double cosine(const std::vector<double> &a, const std::vector<double> &b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

std::vector<size_t> topk(const std::vector<double> &v, size_t k) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, v.size());
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](size_t a, size_t b) { return v[a] > v[b]; });
  idx.resize(k);
  return idx;
}

// Metrics over per-input logit rows.
void score(const std::vector<std::vector<double>> &ref, const std::vector<std::vector<double>> &q, double &sq,
           double &cos, double &t1, double &t5) {
  std::vector<double> fa, fb;
  double c = 0, a1 = 0, a5 = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    fa.insert(fa.end(), ref[i].begin(), ref[i].end());
    fb.insert(fb.end(), q[i].begin(), q[i].end());
    c += cosine(ref[i], q[i]);
    size_t r1 = topk(ref[i], 1)[0];
    a1 += topk(q[i], 1)[0] == r1;
    auto q5 = topk(q[i], 5);
    a5 += std::find(q5.begin(), q5.end(), r1) != q5.end();
  }
  sq = sqnr_db(fa, fb);
  cos = c / ref.size();
  t1 = a1 / ref.size();
  t5 = a5 / ref.size();
}

std::vector<std::vector<double>> centered(const std::vector<std::vector<double>> &rows) {
  std::vector<double> mean(rows[0].size(), 0.0);
  for (const auto &r : rows)
    for (size_t j = 0; j < r.size(); j++) mean[j] += r[j] / rows.size();
  auto out = rows;
  for (auto &r : out)
    for (size_t j = 0; j < r.size(); j++) r[j] -= mean[j];
  return out;
}

// Every activation a step writes, as real numbers (integers dequantized), keyed by name.
std::map<std::string, std::vector<double>> capture(Module &m, const std::vector<Tensor> &in,
                                                   std::vector<std::string> *order, Tensor *y) {
  std::map<std::string, std::vector<double>> out;
  const auto &steps = m.manifest()["steps"];
  const auto &vals = m.manifest()["values"];
  *y = m.run(in, [&](size_t k) {
    for (int w : steps[k]["writes"]) {
      const auto &jv = vals[w];
      std::string name = jv["name"];
      auto shape = m.value_shape(w);
      int64_t n = 1;
      for (auto d : shape) n *= d;
      std::vector<double> v(n);
      if (jv.value("dtype", std::string("f32")) == "u8") {
        const uint8_t *p = (const uint8_t *)m.value_data(w);
        double s = jv.value("scale", 1.0);
        int zp = jv.value("zero_point", 0);
        for (int64_t i = 0; i < n; i++) v[i] = (p[i] - zp) * s;
        if (order) order->push_back(name);
      } else {
        const float *p = m.value_data(w);
        for (int64_t i = 0; i < n; i++) v[i] = p[i];
      }
      out[name] = std::move(v);
    }
  })[0];
  return out;
}

}  // namespace

AccuracyReport compare_modules(Module &ref, Module &q, int count, uint64_t seed) {
  AccuracyReport rep;
  rep.inputs = count;
  std::vector<std::vector<double>> lr, lq;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> layer_acc;
  std::vector<std::string> order;
  for (int i = 0; i < count; i++) {
    std::vector<Tensor> in;
    for (const auto &s : ref.input_shapes()) in.push_back(random_tensor(s, seed + i));
    Tensor ya, yb;
    auto a = capture(ref, in, nullptr, &ya);
    auto b = capture(q, in, i == 0 ? &order : nullptr, &yb);
    int64_t classes = ya.shape.back(), rows = ya.numel() / classes;
    for (int64_t r = 0; r < rows; r++) {
      lr.emplace_back(ya.data.begin() + r * classes, ya.data.begin() + (r + 1) * classes);
      lq.emplace_back(yb.data.begin() + r * classes, yb.data.begin() + (r + 1) * classes);
    }
    for (const auto &name : order) {
      auto ia = a.find(name), ib = b.find(name);
      if (ia == a.end() || ib == b.end() || ia->second.size() != ib->second.size()) continue;
      auto &acc = layer_acc[name];
      acc.first.insert(acc.first.end(), ia->second.begin(), ia->second.end());
      acc.second.insert(acc.second.end(), ib->second.begin(), ib->second.end());
    }
  }
  score(lr, lq, rep.sqnr_db, rep.cosine, rep.top1, rep.top5);
  score(centered(lr), centered(lq), rep.centered_sqnr_db, rep.centered_cosine, rep.centered_top1, rep.centered_top5);
  for (const auto &name : order) {
    auto it = layer_acc.find(name);
    if (it != layer_acc.end()) rep.layers.push_back({name, sqnr_db(it->second.first, it->second.second)});
  }
  return rep;
}

std::string AccuracyReport::format() const {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf, "accuracy vs fp32 on %d seeded random inputs:\n", inputs);
  os << buf;
  std::snprintf(buf, sizeof buf, "  logits            SQNR %6.2f dB  cosine %.5f  top-1 agree %5.1f%%  top-5 %5.1f%%\n",
                sqnr_db, cosine, 100 * top1, 100 * top5);
  os << buf;
  std::snprintf(buf, sizeof buf, "  centered logits   SQNR %6.2f dB  cosine %.5f  top-1 agree %5.1f%%  top-5 %5.1f%%\n",
                centered_sqnr_db, centered_cosine, 100 * centered_top1, 100 * centered_top5);
  os << buf;
  os << "  (centered = each logit minus its mean over these inputs: with random weights most of the\n"
        "   logits do not depend on the input, which makes the raw numbers look better than they are)\n";
  if (!layers.empty()) {
    os << "  per-layer SQNR (dB) of the integer activations:\n";
    for (const auto &l : layers) {
      std::snprintf(buf, sizeof buf, "    %-48.48s %7.2f\n", l.name.c_str(), l.sqnr_db);
      os << buf;
    }
  }
  return os.str();
}

nlohmann::json AccuracyReport::to_json() const {
  // JSON has no infinity: an exact layer (SQNR inf) is written as null.
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j{{"schema", 1}, {"inputs", inputs}};
  j["raw"] = {{"sqnr_db", num(sqnr_db)}, {"cosine", cosine}, {"top1", top1}, {"top5", top5}};
  j["centered"] = {{"sqnr_db", num(centered_sqnr_db)}, {"cosine", centered_cosine}, {"top1", centered_top1},
                   {"top5", centered_top5}};
  nlohmann::json ls = nlohmann::json::array();
  for (const auto &l : layers) ls.push_back({{"name", l.name}, {"sqnr_db", num(l.sqnr_db)}});
  j["layers"] = ls;
  return j;
}

}  // namespace qnnc
