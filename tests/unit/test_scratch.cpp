// The kernels' scratch allocator (runtime/scratch.h): aligned blocks, reuse of a freed block for
// a request of about its size on the same thread, no reuse of a block over twice the request.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>

#include "runtime/scratch.h"

TEST(Scratch, AlignedAndReusedOnTheSameThread) {
  void *a = qnnc::scratch_malloc(nullptr, 1000);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 128, 0u);
  std::memset(a, 1, 1000);
  qnnc::scratch_free(nullptr, a);
  void *b = qnnc::scratch_malloc(nullptr, 900);
  EXPECT_EQ(b, a) << "a freed block serves the next request of about its size";
  void *c = qnnc::scratch_malloc(nullptr, 900);
  EXPECT_NE(c, a) << "a block in use is not handed out twice";
  std::memset(c, 2, 900);
  qnnc::scratch_free(nullptr, b);
  qnnc::scratch_free(nullptr, c);

  void *big = qnnc::scratch_malloc(nullptr, 100000);
  qnnc::scratch_free(nullptr, big);
  void *small = qnnc::scratch_malloc(nullptr, 1000);
  EXPECT_NE(small, big) << "a block over twice the request stays cached";
  qnnc::scratch_free(nullptr, small);

  // Another thread has its own cache: it does not take this thread's blocks.
  void *other = nullptr;
  std::thread([&] {
    other = qnnc::scratch_malloc(nullptr, 100000);
    std::memset(other, 3, 100000);
    qnnc::scratch_free(nullptr, other);
  }).join();
  void *again = qnnc::scratch_malloc(nullptr, 100000);
  EXPECT_EQ(again, big) << "this thread's cached block comes back";
  qnnc::scratch_free(nullptr, again);
  qnnc::scratch_free(nullptr, nullptr);  // freeing nothing is allowed, as with free()
}
