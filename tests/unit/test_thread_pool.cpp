// The runtime's thread pool: every task runs exactly once, errors come back, nested loops run
// inline, and resizing between loops keeps it working.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runtime/thread_pool.h"

namespace {

struct Counts {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> nested_calls{0};
  explicit Counts(int n) : hits(n) {}
};

int count_task(void *, int i, uint8_t *closure) {
  auto *c = (Counts *)closure;
  c->hits[i].fetch_add(1);
  return 0;
}

int fail_task(void *, int i, uint8_t *) { return i == 37 ? -7 : 0; }

int nested_task(void *uc, int i, uint8_t *closure) {
  auto *c = (Counts *)closure;
  Counts inner(5);
  int r = qnnc::pool_do_par_for(uc, count_task, 0, 5, (uint8_t *)&inner);
  for (auto &h : inner.hits) EXPECT_EQ(h.load(), 1);
  c->hits[i].fetch_add(1);
  return r;
}

TEST(ThreadPool, EveryTaskOnceAcrossSizesAndThreadCounts) {
  for (int threads : {1, 2, 3, 1, 2}) {
    qnnc::pool_set_threads(threads);
    EXPECT_EQ(qnnc::pool_threads(), threads);
    for (int size : {0, 1, 2, 7, 64, 1000}) {
      for (int rep = 0; rep < 20; rep++) {
        Counts c(size + 3);
        ASSERT_EQ(qnnc::pool_do_par_for(nullptr, count_task, 3, size, (uint8_t *)&c), 0);
        for (int i = 0; i < size + 3; i++) ASSERT_EQ(c.hits[i].load(), i < 3 ? 0 : 1) << "task " << i << " size " << size;
      }
    }
  }
}

TEST(ThreadPool, ReturnsTheTaskError) {
  qnnc::pool_set_threads(2);
  EXPECT_EQ(qnnc::pool_do_par_for(nullptr, fail_task, 0, 100, nullptr), -7);
  Counts c(50);  // the pool still works afterwards
  EXPECT_EQ(qnnc::pool_do_par_for(nullptr, count_task, 0, 50, (uint8_t *)&c), 0);
  for (auto &h : c.hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, NestedLoopsRunInline) {
  qnnc::pool_set_threads(2);
  Counts c(16);
  EXPECT_EQ(qnnc::pool_do_par_for(nullptr, nested_task, 0, 16, (uint8_t *)&c), 0);
  for (auto &h : c.hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, ConcurrentCallersBothComplete) {
  qnnc::pool_set_threads(2);
  Counts a(500), b(500);
  std::thread other([&] { EXPECT_EQ(qnnc::pool_do_par_for(nullptr, count_task, 0, 500, (uint8_t *)&b), 0); });
  EXPECT_EQ(qnnc::pool_do_par_for(nullptr, count_task, 0, 500, (uint8_t *)&a), 0);
  other.join();
  for (int i = 0; i < 500; i++) {
    EXPECT_EQ(a.hits[i].load(), 1);
    EXPECT_EQ(b.hits[i].load(), 1);
  }
}

}  // namespace
