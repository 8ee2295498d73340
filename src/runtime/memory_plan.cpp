#include "runtime/memory_plan.h"

#include <algorithm>
#include <map>

namespace qnnc {

void plan_lifetimes(const std::vector<int> &inputs, const std::vector<int> &outputs,
                    const std::vector<std::vector<int>> &reads, const std::vector<std::vector<int>> &writes,
                    const std::function<bool(int)> &is_planned, const std::function<int(int)> &alias_of,
                    const std::function<int64_t(int)> &bytes, std::vector<Interval> &out) {
  auto root = [&](int v) {
    while (alias_of(v) >= 0) v = alias_of(v);
    return v;
  };
  const int end = (int)reads.size();
  std::map<int, Interval> iv;
  auto touch = [&](int v, int step) {
    if (!is_planned(v)) return;
    int r = root(v);
    auto it = iv.find(r);
    if (it == iv.end()) iv[r] = Interval{r, step, step, bytes(r)};
    else {
      it->second.first = std::min(it->second.first, step);
      it->second.last = std::max(it->second.last, step);
    }
  };
  for (int v : inputs) touch(v, -1);
  for (int s = 0; s < end; s++) {
    for (int v : writes[s]) touch(v, s);
    for (int v : reads[s]) touch(v, s);
  }
  for (int v : outputs) touch(v, end);
  out.clear();
  for (auto &[k, v] : iv) out.push_back(v);
}

int64_t assign_offsets(std::vector<Interval> &ivs) {
  // Largest first, each placed at the lowest offset that fits beside those already placed
  // and alive at the same time.
  std::vector<size_t> order(ivs.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ivs[a].bytes > ivs[b].bytes; });
  std::vector<size_t> placed;
  int64_t total = 0;
  for (size_t i : order) {
    Interval &c = ivs[i];
    int64_t size = (c.bytes + 63) / 64 * 64;
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const Interval &p = ivs[j];
      if (p.last < c.first || c.last < p.first) continue;
      busy.push_back({p.offset, p.offset + (p.bytes + 63) / 64 * 64});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto &b : busy) {
      if (off + size <= b.first) break;
      off = std::max(off, b.second);
    }
    c.offset = off;
    total = std::max(total, off + size);
    placed.push_back(i);
  }
  return total;
}

}  // namespace qnnc
