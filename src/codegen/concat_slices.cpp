#include "codegen/concat_slices.h"

#include <algorithm>
#include <map>
#include <set>

#include "kernels/families.h"

namespace qnnc {

namespace {

using Dims = std::vector<std::array<int64_t, 3>>;

// Halide dims of an N,C,H,W value in NHWC memory whose pixels lie `pitch` elements apart.
Dims nhwc_view(const std::vector<int64_t> &s, int64_t pitch) {
  return {{0, s[1], 1}, {0, s[3], pitch}, {0, s[2], pitch * s[3]}, {0, s[0], pitch * s[3] * s[2]}};
}
// ... and as (channel, pixel) rows, for flat elementwise kernels (kernels/families.h
// takes_channel_rows); dense, that is their usual one dimension of N*C*H*W.
Dims rows_view(const std::vector<int64_t> &s, int64_t pitch) { return {{0, s[1], 1}, {0, s[0] * s[2] * s[3], pitch}}; }
Dims flat_view(const std::vector<int64_t> &s) { return {{0, s[0] * s[1] * s[2] * s[3], 1}}; }
// ... and with its pixels as one row, (c, x + W y, 0, n), as AMX 1x1 convolutions take them
// (kernels/conv2d_q.h conv2d_q_amx_flat).
Dims pixel_row_view(const std::vector<int64_t> &s, int64_t pitch) {
  return {{0, s[1], 1}, {0, s[2] * s[3], pitch}, {0, 1, pitch * s[3] * s[2]}, {0, s[0], pitch * s[3] * s[2]}};
}
// A concat step's inputs: every argument but the last (its output).
std::vector<int> concat_inputs(const PlanStep &st) {
  std::vector<int> ins;
  for (size_t i = 0; i + 1 < st.args.size(); i++) ins.push_back(st.args[i].value);
  return ins;
}

struct Placer {
  LoweredModule &lm;
  std::vector<int> writer;                 // step writing each value (-1: none)
  std::vector<std::vector<int>> readers;   // steps reading it
  std::vector<bool> viewed;                // some view (alias) value is made of it
  std::set<int> outputs;
  std::map<int, std::pair<int, int64_t>> home;  // slice -> (value it is part of, first channel)
  std::set<int> joins;                     // concat steps that become joins

  explicit Placer(LoweredModule &m) : lm(m) {
    const size_t nv = lm.values.size();
    writer.assign(nv, -1);
    readers.resize(nv);
    viewed.assign(nv, false);
    for (const auto &v : lm.values)
      if (v.alias_of >= 0) viewed[(size_t)v.alias_of] = true;
    for (size_t k = 0; k < lm.steps.size(); k++) {
      for (int w : lm.steps[k].writes) writer[(size_t)w] = (int)k;
      for (int r : lm.steps[k].reads) readers[(size_t)r].push_back((int)k);
    }
    outputs.insert(lm.outputs.begin(), lm.outputs.end());
  }

  bool nhwc4(int v) const {
    const PlanValue &p = lm.values[(size_t)v];
    return p.kind == "act" && p.alias_of < 0 && p.shape.size() == 4 && p.layout == "NHWC";
  }
  // Kernels read v only through its dense 4-D view (which a strided view can replace); no view
  // is made of it and it is not a model output.
  bool kernels_read_dense(int v) const {
    if (!nhwc4(v) || viewed[(size_t)v] || outputs.count(v)) return false;
    for (int k : readers[(size_t)v]) {
      const PlanStep &st = lm.steps[(size_t)k];
      if (st.alias) return false;
      for (const auto &a : st.args)
        if (a.value == v && !viewable(st, a)) return false;
    }
    return true;
  }
  // A kernel argument a strided view can replace: the dense 4-D view, or the flat one of a
  // kernel that also runs over channel rows.
  bool viewable(const PlanStep &st, const PlanArg &a) const {
    const auto &s = lm.values[(size_t)a.value].shape;
    if (s.size() != 4) return false;
    return a.dims == nhwc_view(s, s[1]) || a.dims == pixel_row_view(s, s[1]) ||
           (takes_channel_rows(st.spec.kind) && a.dims == flat_view(s));
  }
  // v may be written into a slice: also, one kernel writes it, as its last argument, densely.
  bool sliceable(int v) const {
    if (!kernels_read_dense(v) || home.count(v)) return false;
    const int w = writer[(size_t)v];
    if (w < 0) return false;
    const PlanStep &st = lm.steps[(size_t)w];
    return !st.alias && !st.args.empty() && st.args.back().value == v && viewable(st, st.args.back()) &&
           std::count(st.writes.begin(), st.writes.end(), v) == 1;
  }
  // The value owning v's storage, and v's first channel in it.
  std::pair<int, int64_t> resolve(int v) const {
    int64_t c = 0;
    for (auto it = home.find(v); it != home.end(); it = home.find(v)) {
      c += it->second.second;
      v = it->second.first;
    }
    return {v, c};
  }
  bool is_channel_concat(const PlanStep &st) const {
    if (st.alias || st.spec.kind != "concat" || st.spec.axis >= 0 || st.args.size() < 2) return false;
    for (const auto &a : st.args)
      if (!nhwc4(a.value)) return false;
    return true;
  }

  void place(int k) {
    const PlanStep &st = lm.steps[(size_t)k];
    const int out = st.args.back().value;
    const std::vector<int> ins = concat_inputs(st);
    if (std::set<int>(ins.begin(), ins.end()).size() != ins.size()) return;
    // Inputs already side by side in one buffer, in order: the output is a slice of it.
    if (std::all_of(ins.begin(), ins.end(), [&](int v) { return home.count(v) > 0; })) {
      auto [root, first] = resolve(ins[0]);
      int64_t at = first;
      bool adjacent = true;
      for (int v : ins) {
        auto [r, c] = resolve(v);
        adjacent = adjacent && r == root && c == at;
        at += lm.values[(size_t)v].shape[1];
      }
      if (adjacent && root != out && !home.count(out) && kernels_read_dense(out)) {
        home[out] = {root, first};
        joins.insert(k);
      }
      return;
    }
    // Otherwise each input written into its channel range of the output.
    if (!std::all_of(ins.begin(), ins.end(), [&](int v) { return sliceable(v); })) return;
    int64_t c = 0;
    for (int v : ins) {
      home[v] = {out, c};
      c += lm.values[(size_t)v].shape[1];
    }
    joins.insert(k);
  }

  void rewrite() {
    for (const auto &[v, h] : home) {
      lm.values[(size_t)v].alias_of = h.first;
      lm.values[(size_t)v].channel_offset = h.second;
    }
    for (size_t k = 0; k < lm.steps.size(); k++) {
      PlanStep &st = lm.steps[k];
      if (joins.count((int)k)) {
        st.alias = true;
        st.reads = concat_inputs(st);
        st.writes = {st.args.back().value};
        st.args.clear();
        continue;
      }
      const bool touches = std::any_of(st.args.begin(), st.args.end(), [&](const PlanArg &a) { return home.count(a.value); });
      if (!touches) continue;
      // A flat kernel runs over channel rows: all its arguments take that form.
      const bool rows = takes_channel_rows(st.spec.kind) && st.args[0].dims.size() == 1;
      st.spec.arg_strides.assign(st.args.size(), {});
      for (size_t i = 0; i < st.args.size(); i++) {
        const int v = st.args[i].value;
        if (!home.count(v) && !rows) continue;
        const auto &s = lm.values[(size_t)v].shape;
        const int64_t pitch = lm.values[(size_t)resolve(v).first].shape[1];
        const bool pixel_row = st.args[i].dims == pixel_row_view(s, s[1]);
        st.args[i].dims = rows ? rows_view(s, pitch) : pixel_row ? pixel_row_view(s, pitch) : nhwc_view(s, pitch);
        st.spec.arg_strides[i] = rows        ? std::vector<int64_t>{1, pitch}
                                 : pixel_row ? std::vector<int64_t>{1, pitch, pitch * s[3] * s[2], pitch * s[3] * s[2]}
                                             : std::vector<int64_t>{1, pitch, pitch * s[3], pitch * s[3] * s[2]};
      }
    }
  }
};

}  // namespace

ConcatPlacement place_concat_slices(LoweredModule &lm, bool place) {
  Placer p(lm);
  std::vector<int> concats;
  for (size_t k = 0; k < lm.steps.size(); k++)
    if (p.is_channel_concat(lm.steps[k])) concats.push_back((int)k);
  // Widest first: an input read by several concatenations (DenseNet) lives in the widest, and
  // a concatenation nested in another is placed inside it.
  std::stable_sort(concats.begin(), concats.end(), [&](int a, int b) {
    return lm.values[(size_t)lm.steps[(size_t)a].args.back().value].shape[1] >
           lm.values[(size_t)lm.steps[(size_t)b].args.back().value].shape[1];
  });
  if (!place) return {(int)concats.size(), 0};
  for (int k : concats) p.place(k);
  p.rewrite();
  return {(int)concats.size(), (int)p.joins.size()};
}

}  // namespace qnnc
