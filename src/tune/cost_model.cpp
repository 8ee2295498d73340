#include "tune/cost_model.h"

#include "kernels/conv2d.h"
#include "kernels/conv2d_q.h"
#include "kernels/register_tile.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <xgboost/c_api.h>

#include "ir/graph.h"
#include "kernels/knob_space.h"

namespace qnnc {

namespace {

void xgb_check(int rc, const char *what) {
  if (rc != 0) {
    const char *e = XGBGetLastError();
    throw Error(std::string("cost model: XGBoost ") + what + " failed: " + printable(e ? e : "unknown error", 400));
  }
}

// RAII owners of XGBoost's handles.
struct DMatrix {
  DMatrixHandle h = nullptr;
  DMatrix(const std::vector<float> &rows, size_t nrow, size_t ncol, int threads) {
    xgb_check(XGDMatrixCreateFromMat_omp(rows.data(), (bst_ulong)nrow, (bst_ulong)ncol,
                                         std::numeric_limits<float>::quiet_NaN(), &h, threads),
              "XGDMatrixCreateFromMat");
  }
  ~DMatrix() {
    if (h) XGDMatrixFree(h);
  }
  DMatrix(const DMatrix &) = delete;
  DMatrix &operator=(const DMatrix &) = delete;
};

struct Booster {
  BoosterHandle h = nullptr;
  explicit Booster(const DMatrix &train) { xgb_check(XGBoosterCreate(&train.h, 1, &h), "XGBoosterCreate"); }
  ~Booster() {
    if (h) XGBoosterFree(h);
  }
  Booster(const Booster &) = delete;
  Booster &operator=(const Booster &) = delete;
  void set(const std::string &name, const std::string &value) {
    xgb_check(XGBoosterSetParam(h, name.c_str(), value.c_str()), ("XGBoosterSetParam " + name).c_str());
  }
};

double lg(double x) { return std::log2(std::max(1.0, x)); }

int64_t elems_of(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (auto d : s) n *= std::max<int64_t>(1, d);
  return n;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / std::max<int64_t>(1, b); }

// Families with tunable knobs, and every tunable knob name, sorted.
struct FeatureLayout {
  std::vector<std::string> families, knobs, names;
};

const FeatureLayout &layout() {
  static const FeatureLayout l = [] {
    FeatureLayout l;
    std::set<std::string> knobs;
    for (const auto &[name, sp] : knob_spaces()) {
      auto t = sp.tunable();
      if (t.empty()) continue;
      l.families.push_back(name);
      knobs.insert(t.begin(), t.end());
    }
    l.knobs.assign(knobs.begin(), knobs.end());
    for (const auto &f : l.families) l.names.push_back("kind=" + f);
    for (const char *n : {"log2_n", "log2_c_in", "log2_c_out", "log2_h", "log2_w", "log2_oh", "log2_ow",
                          "log2_in_elems", "log2_out_elems", "rank", "kernel_h", "kernel_w", "stride_h", "stride_w",
                          "log2_group", "depthwise", "dtype_u8", "relu", "residual", "log2_work"})
      l.names.push_back(n);
    for (const auto &k : l.knobs) l.names.push_back("knob=" + k);
    for (const char *n : {"lanes", "tile_channels", "x_tile_eff", "x_tiles", "channel_waste", "column_waste",
                          "log2_tasks", "log2_work_per_task", "acc_lanes", "acc_vectors", "unroll_divides"})
      l.names.push_back(n);
    return l;
  }();
  return l;
}

// A knob's value as the family's schedule reads it (its default where the candidate leaves it out).
int knob_or(const Knobs &k, const std::string &name, int dflt) {
  auto it = k.find(name);
  return it == k.end() ? dflt : it->second;
}

int default_vec(const std::string &kind) {
  if (kind == "conv2d_q" || kind == "conv2d_bs" || kind == "quantize" || kind == "dequantize" || kind == "lut")
    return 16;
  return 8;
}

}  // namespace

struct CostModel::Impl {
  DMatrix train;
  Booster booster;
  Impl(std::vector<float> rows, size_t nrow, size_t ncol, int threads) : train(rows, nrow, ncol, threads), booster(train) {}
};

CostModel::CostModel(CostModelOptions o) : opt_(o) {}
CostModel::~CostModel() = default;
CostModel::CostModel(CostModel &&) noexcept = default;
CostModel &CostModel::operator=(CostModel &&) noexcept = default;

int CostModel::feature_count() { return (int)layout().names.size(); }
const std::vector<std::string> &CostModel::feature_names() { return layout().names; }

std::vector<float> CostModel::features(const KernelSpec &s, const Knobs &k) {
  const FeatureLayout &l = layout();
  auto fam = std::find(l.families.begin(), l.families.end(), s.kind);
  if (fam == l.families.end())
    throw Error("cost model: kernel family '" + printable(s.kind) + "' has no tunable knobs");
  std::vector<float> f;
  f.reserve(l.names.size());
  // 1. kind
  for (const auto &name : l.families) f.push_back(name == s.kind ? 1.f : 0.f);

  // 2. logical shapes
  const bool memory_order = s.kind == "transpose" || s.kind == "slice" || s.kind == "pad";
  int64_t N = 1, C = 1, H = 1, W = 1, M = 1, OH = 1, OW = 1;
  if (!memory_order && s.in_shape.size() == 4 && s.out_shape.size() == 4) {
    N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
    M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  } else if (s.kind == "dense" && s.in_shape.size() == 2 && s.out_shape.size() == 2) {
    N = s.in_shape[0], C = s.in_shape[1], M = s.out_shape[1];
  }
  const int64_t in_elems = elems_of(s.in_shape), out_elems = elems_of(s.out_shape);
  for (int64_t v : {N, C, M, H, W, OH, OW, in_elems, out_elems}) f.push_back((float)lg((double)v));
  f.push_back((float)s.out_shape.size());

  // 3. the computation
  const int64_t KH = s.kernel.size() > 0 ? s.kernel[0] : 1, KW = s.kernel.size() > 1 ? s.kernel[1] : 1;
  const int64_t group = std::max<int64_t>(1, s.group);
  const bool depthwise = group > 1 && group == C && group == M;
  const bool conv = s.kind.rfind("conv2d", 0) == 0 || s.kind == "dwconv2d_q";
  double work = (double)out_elems;
  if (conv)
    work = (double)N * OH * OW * M * std::max<int64_t>(1, C / group) * KH * KW;
  else if (s.kind == "dense")
    work = (double)N * C * M;
  else if (s.kind == "matmul" && !s.in_shape.empty())
    work = (double)out_elems * s.in_shape[0];
  f.push_back((float)KH);
  f.push_back((float)KW);
  f.push_back((float)(s.stride.size() > 0 ? s.stride[0] : 1));
  f.push_back((float)(s.stride.size() > 1 ? s.stride[1] : 1));
  f.push_back((float)lg((double)group));
  f.push_back(depthwise ? 1.f : 0.f);
  f.push_back(s.dtype == "u8" ? 1.f : 0.f);
  f.push_back(s.relu ? 1.f : 0.f);
  f.push_back(s.residual ? 1.f : 0.f);
  f.push_back((float)lg(work));

  // 4. knobs, 0 where absent
  for (const auto &name : l.knobs) f.push_back((float)knob_or(k, name, 0));

  // 5. derived, as the schedules compute them
  const int vec = std::max(1, knob_or(k, "vec", default_vec(s.kind)));
  int64_t lane_dim = std::max<int64_t>(1, out_elems), channels = 1, cols = 1;
  int64_t tile_ch = 1, xt = 1, tasks = 1;
  const bool register_tile = s.kind == "conv2d" || s.kind == "conv2d_q" || s.kind == "conv2d_bs";
  const bool grouped = s.kind == "conv2d_grouped" || s.kind == "dwconv2d_q";
  if (register_tile) {
    // With pixel_row (conv2d_pixel_row, conv2d_q_pixel_row), tiles run along one row of all
    // pixels, in runs of kRowRunTiles tiles per task.
    const bool row = (s.kind == "conv2d" && conv2d_pixel_row(s, k)) || (s.kind == "conv2d_q" && conv2d_q_pixel_row(s, k));
    lane_dim = channels = M, cols = row ? OH * OW : OW;
    const int64_t vw = std::min<int64_t>(vec, M);
    tile_ch = std::min<int64_t>(vw * std::max(1, knob_or(k, "co_vectors", 2)), std::max<int64_t>(vw, (M / vw) * vw));
    xt = std::min<int64_t>(std::max(1, knob_or(k, "x_tile", 4)), OW);
    tasks = N * (row ? ceil_div(ceil_div(cols, xt), kRowRunTiles) : OH) * ceil_div(M, tile_ch);
    if (const int kt = knob_or(k, "tasks", 0); kt > 0 && kt < tasks) tasks = kt;
  } else if (grouped) {
    const int64_t Mg = depthwise ? M : std::max<int64_t>(1, M / group);
    lane_dim = channels = Mg, cols = OW;
    tile_ch = std::min<int64_t>(vec, Mg);
    xt = std::clamp<int64_t>(knob_or(k, "x_tile", 4), 1, OW);
    tasks = N * OH;
  } else if (s.kind == "dense") {
    lane_dim = channels = M;
    const int64_t vw = std::min<int64_t>(vec, M);
    tile_ch = vw * std::min<int64_t>(std::max(1, knob_or(k, "o_vectors", 4)), ceil_div(M, vw));
    tasks = ceil_div(M, tile_ch);
  } else if (s.kind == "matmul" && s.in2_shape.size() >= 1 && s.in_shape.size() >= 3) {
    const int64_t Nc = s.in2_shape[0];
    lane_dim = channels = Nc;
    const int64_t vw = std::min<int64_t>(vec, Nc);
    tile_ch = vw * std::clamp<int64_t>(Nc / vw, 1, std::max(1, knob_or(k, "col_vectors", 2)));
    tasks = s.in_shape[2] * ceil_div(s.in_shape[1], std::max(1, knob_or(k, "rows", 6)));
  } else if (k.count("chunk") || s.kind == "add" || s.kind == "unary" || s.kind == "lut") {
    const int64_t chunk = std::max(1, knob_or(k, "chunk", s.kind == "lut" ? 16384 : 4096));
    tile_ch = std::min<int64_t>(vec, out_elems);
    tasks = out_elems >= chunk ? ceil_div(out_elems, chunk) : 1;
  } else if (k.count("rows") || s.kind == "softmax" || s.kind == "layernorm") {
    const int64_t K = s.in_shape.empty() ? 1 : std::max<int64_t>(1, s.in_shape[0]);
    lane_dim = K;
    tile_ch = std::min<int64_t>(vec, K);
    tasks = ceil_div(std::max<int64_t>(1, in_elems / K), std::max(1, knob_or(k, "rows", 16)));
  } else {
    // Pools, layout, shape and quantization ops: vectors of `vec` lanes, rows in parallel.
    if (M > 1) lane_dim = channels = M;
    tile_ch = std::min<int64_t>(vec, lane_dim);
    tasks = std::max<int64_t>(1, N * OH);
  }
  const int64_t lanes = std::min<int64_t>(vec, lane_dim);
  const int64_t x_tiles = ceil_div(cols, xt);
  const double ch_waste = channels > 1 ? 1.0 - (double)channels / (double)(ceil_div(channels, tile_ch) * tile_ch) : 0.0;
  const double col_waste = cols > 1 ? 1.0 - (double)cols / (double)(x_tiles * xt) : 0.0;
  const int uci = knob_or(k, "unroll_ci", 1);
  f.push_back((float)lanes);
  f.push_back((float)tile_ch);
  f.push_back((float)xt);
  f.push_back((float)x_tiles);
  f.push_back((float)ch_waste);
  f.push_back((float)col_waste);
  f.push_back((float)lg((double)tasks));
  f.push_back((float)lg(work / (double)std::max<int64_t>(1, tasks)));
  f.push_back((float)(tile_ch * xt));
  f.push_back((float)(ceil_div(tile_ch, lanes) * xt));
  f.push_back(uci > 1 && C % uci == 0 ? 1.f : 0.f);
  return f;
}

CostModelFit CostModel::fit(const std::vector<TuningRecord> &records, const std::string &target) {
  impl_.reset();
  CostModelFit r;
  const size_t ncol = (size_t)feature_count();
  std::vector<float> rows, labels;
  std::map<std::string, double> default_ms;          // task -> latest default before this record
  std::map<std::string, KernelSpec> specs;           // parsed tasks
  std::set<std::string> bad, used;                   // tasks that do not parse / have no features
  int candidates = 0;                                // rows that are not default records
  for (const auto &rec : records) {
    if (rec.status != "ok" || (!target.empty() && rec.target != target)) continue;
    if (rec.is_default && rec.median_ms > 0) default_ms[rec.task] = rec.median_ms;
    auto d = default_ms.find(rec.task);
    if (d == default_ms.end() || !(rec.median_ms > 0) || bad.count(rec.task)) {
      r.skipped++;
      continue;
    }
    auto sp = specs.find(rec.task);
    if (sp == specs.end()) {
      try {
        sp = specs.emplace(rec.task, KernelSpec::from_json(nlohmann::json::parse(rec.task))).first;
        (void)features(sp->second, rec.knobs);
      } catch (const std::exception &) {  // another qnnc's spec format, or an untunable family
        if (sp != specs.end()) specs.erase(sp);
        bad.insert(rec.task);
        r.skipped++;
        continue;
      }
    }
    std::vector<float> f = features(sp->second, rec.knobs);
    rows.insert(rows.end(), f.begin(), f.end());
    labels.push_back((float)std::log(rec.median_ms / d->second));
    used.insert(rec.task);
    candidates += !rec.is_default;
  }
  r.rows = (int)labels.size();
  r.tasks = (int)used.size();
  // Default records alone (label 0) teach nothing about the knobs.
  if (candidates < std::max(1, opt_.min_records)) return r;

  auto impl = std::make_unique<Impl>(std::move(rows), labels.size(), ncol, opt_.threads);
  xgb_check(XGDMatrixSetFloatInfo(impl->train.h, "label", labels.data(), (bst_ulong)labels.size()),
            "XGDMatrixSetFloatInfo label");
  Booster &b = impl->booster;
  b.set("booster", "gbtree");
  b.set("objective", "reg:squarederror");
  b.set("tree_method", "hist");
  b.set("max_depth", std::to_string(opt_.max_depth));
  b.set("eta", std::to_string(opt_.eta));
  b.set("seed", std::to_string(opt_.seed));
  b.set("nthread", std::to_string(std::max(1, opt_.threads)));
  b.set("verbosity", "0");
  for (int it = 0; it < opt_.rounds; it++) xgb_check(XGBoosterUpdateOneIter(b.h, it, impl->train.h), "XGBoosterUpdateOneIter");
  impl_ = std::move(impl);
  return r;
}

bool CostModel::trained() const { return impl_ != nullptr; }

std::vector<float> CostModel::predict(const KernelSpec &spec, const std::vector<Knobs> &candidates) const {
  if (!impl_ || candidates.empty()) {
    if (!candidates.empty()) (void)features(spec, candidates[0]);  // the same errors either way
    return std::vector<float>(candidates.size(), 0.f);
  }
  const size_t ncol = (size_t)feature_count();
  std::vector<float> rows;
  rows.reserve(candidates.size() * ncol);
  for (const auto &k : candidates) {
    auto f = features(spec, k);
    rows.insert(rows.end(), f.begin(), f.end());
  }
  DMatrix m(rows, candidates.size(), ncol, opt_.threads);
  const char *config = R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false})";
  bst_ulong const *shape = nullptr;
  bst_ulong dim = 0;
  const float *out = nullptr;
  xgb_check(XGBoosterPredictFromDMatrix(impl_->booster.h, m.h, config, &shape, &dim, &out), "XGBoosterPredictFromDMatrix");
  bst_ulong n = 1;
  for (bst_ulong i = 0; i < dim; i++) n *= shape[i];
  if (n != candidates.size())
    throw Error("cost model: XGBoost predicted " + std::to_string(n) + " values for " +
                std::to_string(candidates.size()) + " candidates");
  return std::vector<float>(out, out + n);
}

}  // namespace qnnc
