// Activation memory planning: each tensor lives from the step that writes it to the last step
// that reads it; tensors whose lifetimes do not overlap share arena bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace qnnc {

struct Interval {
  int value;
  int first, last;    // step indices (inputs start at -1, outputs end at the last step)
  int64_t bytes;
  int64_t offset = 0;
};

// Lifetimes of every planned value (is_planned) with aliases folded onto their source.
void plan_lifetimes(const std::vector<int> &inputs, const std::vector<int> &outputs,
                    const std::vector<std::vector<int>> &reads, const std::vector<std::vector<int>> &writes,
                    const std::function<bool(int)> &is_planned, const std::function<int(int)> &alias_of,
                    const std::function<int64_t(int)> &bytes, std::vector<Interval> &out);

// First-fit offsets (64-byte aligned) such that overlapping lifetimes never share bytes.
// Returns the arena size.
int64_t assign_offsets(std::vector<Interval> &intervals);

}  // namespace qnnc
