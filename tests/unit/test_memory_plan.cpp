// Activation memory planning: lifetimes from step reads/writes (with aliases folded onto their
// source) and first-fit offsets. Tensors alive at the same step never share bytes, offsets are
// 64-byte aligned, and the arena holds at least the peak of simultaneously live bytes.
#include <gtest/gtest.h>

#include "reference.h"
#include "runtime/memory_plan.h"

namespace {

using qnnc::Interval;

int64_t aligned(int64_t b) { return (b + 63) / 64 * 64; }

// Checks every invariant of a placed plan; returns the peak live bytes.
int64_t check_plan(const std::vector<Interval> &ivs, int64_t arena) {
  for (size_t i = 0; i < ivs.size(); i++) {
    const Interval &a = ivs[i];
    EXPECT_EQ(a.offset % 64, 0) << "value " << a.value;
    EXPECT_GE(a.offset, 0);
    EXPECT_LE(a.offset + a.bytes, arena) << "value " << a.value << " exceeds the arena";
    for (size_t j = i + 1; j < ivs.size(); j++) {
      const Interval &b = ivs[j];
      bool time = a.first <= b.last && b.first <= a.last;
      bool space = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      EXPECT_FALSE(time && space) << "values " << a.value << " [" << a.first << "," << a.last << "] @" << a.offset
                                  << "+" << a.bytes << " and " << b.value << " [" << b.first << "," << b.last << "] @"
                                  << b.offset << "+" << b.bytes << " overlap";
    }
  }
  int64_t peak = 0;
  int lo = 0, hi = 0;
  for (const auto &iv : ivs) lo = std::min(lo, iv.first), hi = std::max(hi, iv.last);
  for (int t = lo; t <= hi; t++) {
    int64_t live = 0;
    for (const auto &iv : ivs)
      if (iv.first <= t && t <= iv.last) live += iv.bytes;
    peak = std::max(peak, live);
  }
  EXPECT_GE(arena, peak);
  return peak;
}

TEST(MemoryPlan, RandomLifetimesNeverCollide) {
  ref::Rng rng(40);
  for (int trial = 0; trial < 200; trial++) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    std::vector<Interval> ivs;
    int n = (int)rng.integer(1, 40), steps = (int)rng.integer(1, 30);
    int64_t total = 0;
    for (int v = 0; v < n; v++) {
      Interval iv;
      iv.value = v;
      iv.first = (int)rng.integer(-1, steps - 1);
      iv.last = (int)rng.integer(iv.first, steps);
      // Mix of tiny, odd and large sizes (alignment padding matters for the small ones).
      iv.bytes = rng.integer(0, 3) == 0 ? rng.integer(1, 100) : rng.integer(1, 1 << 20);
      total += aligned(iv.bytes);
      ivs.push_back(iv);
    }
    int64_t arena = qnnc::assign_offsets(ivs);
    int64_t peak = check_plan(ivs, arena);
    EXPECT_LE(arena, total) << "never worse than giving every tensor its own bytes";
    EXPECT_GT(arena, 0);
    (void)peak;
  }
}

TEST(MemoryPlan, DisjointLifetimesShareBytes) {
  // A chain: each tensor lives from the step writing it to the next step reading it.
  std::vector<Interval> ivs;
  for (int v = 0; v < 10; v++) ivs.push_back(Interval{v, v - 1, v, 1000});
  int64_t arena = qnnc::assign_offsets(ivs);
  check_plan(ivs, arena);
  EXPECT_EQ(arena, 2 * aligned(1000)) << "a chain needs two buffers, ping-pong";
}

TEST(MemoryPlan, SameStepOverlapCounts) {
  // Ending at step 3 and starting at step 3 overlap: a step reads its input while writing its output.
  std::vector<Interval> ivs{{0, 0, 3, 256}, {1, 3, 5, 256}};
  int64_t arena = qnnc::assign_offsets(ivs);
  check_plan(ivs, arena);
  EXPECT_EQ(arena, 512);
}

TEST(MemoryPlan, LifetimesFromStepsWithAliasAndConstants) {
  // values: 0 input, 1 const, 2 act (step 0), 3 alias of 2 (step 1, a view), 4 act (step 2), 5 output (step 3)
  std::vector<std::vector<int>> reads{{0}, {2}, {3}, {4}};
  std::vector<std::vector<int>> writes{{2}, {3}, {4}, {5}};
  std::vector<int> alias{-1, -1, -1, 2, -1, -1};
  std::vector<int64_t> bytes{100, 400, 200, 200, 300, 50};
  std::vector<Interval> out;
  qnnc::plan_lifetimes(
      {0}, {5}, reads, writes, [](int v) { return v != 1; }, [&](int v) { return alias[v]; },
      [&](int v) { return bytes[v]; }, out);
  std::map<int, Interval> by;
  for (const auto &iv : out) by[iv.value] = iv;
  EXPECT_EQ(by.count(1), 0u) << "constants are not planned";
  EXPECT_EQ(by.count(3), 0u) << "aliases fold onto their source";
  ASSERT_EQ(by.count(0), 1u);
  EXPECT_EQ(by[0].first, -1);
  EXPECT_EQ(by[0].last, 0);
  ASSERT_EQ(by.count(2), 1u);
  EXPECT_EQ(by[2].first, 0);
  EXPECT_EQ(by[2].last, 2) << "the alias's read at step 2 keeps its source alive";
  ASSERT_EQ(by.count(5), 1u);
  EXPECT_EQ(by[5].first, 3);
  EXPECT_EQ(by[5].last, 4) << "outputs live to the end";
  int64_t arena = qnnc::assign_offsets(out);
  check_plan(out, arena);
}

// A compiled chain of ReLUs reuses its activation memory.
TEST(MemoryPlan, ModuleReusesActivationMemory) {
  const ref::Shape s{4, 1000};
  ref::GraphBuilder b;
  int y = b.input("x", s);
  for (int k = 0; k < 6; k++) y = b.node("Relu", {y});
  b.output(y);
  auto m = ref::compile(b.finish());
  const size_t one = 4 * 1000 * sizeof(float);
  EXPECT_GE(m.arena_bytes(), 2 * one);
  EXPECT_LE(m.arena_bytes(), 2 * aligned(one)) << "7 tensors of a chain fit in two buffers";
  ref::Rng rng(41);
  qnnc::Tensor x = ref::random_tensor(s, rng);
  auto out = m.run({x});
  EXPECT_TRUE(ref::Close(out[0], ref::relu(x), 0.0));
  // Running again gives the same result (buffers reused between runs are fully rewritten).
  auto again = m.run({x});
  EXPECT_EQ(again[0].data, out[0].data);
}

}  // namespace
