#include "runtime/scratch.h"

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace qnnc {

namespace {

// Blocks are 128-byte aligned (Halide asks for 64 on x86, 32 on ARM); a block's capacity sits in
// the 128 bytes before the address handed out.
constexpr size_t kAlign = 128;
constexpr size_t kMaxBlocks = 16;            // per thread
constexpr size_t kMaxBytes = size_t(64) << 20;  // per thread

struct Cache {
  std::vector<std::pair<size_t, void *>> blocks;  // (capacity, base)
  size_t bytes = 0;
  ~Cache() {
    for (auto &b : blocks) std::free(b.second);
  }
};

Cache &cache() {
  thread_local Cache c;
  return c;
}

size_t &capacity_of(void *base) { return *static_cast<size_t *>(base); }

}  // namespace

void *scratch_malloc(void *, size_t bytes) {
  const size_t cap = (bytes + kAlign - 1) / kAlign * kAlign;
  Cache &c = cache();
  // The smallest cached block that holds the request without wasting more than half of it.
  size_t best = c.blocks.size();
  for (size_t i = 0; i < c.blocks.size(); i++) {
    const size_t have = c.blocks[i].first;
    if (have >= cap && have <= 2 * cap && (best == c.blocks.size() || have < c.blocks[best].first)) best = i;
  }
  void *base;
  if (best < c.blocks.size()) {
    base = c.blocks[best].second;
    c.bytes -= c.blocks[best].first;
    c.blocks[best] = c.blocks.back();
    c.blocks.pop_back();
  } else {
    base = std::aligned_alloc(kAlign, cap + kAlign);
    if (!base) return nullptr;
    capacity_of(base) = cap;
  }
  return static_cast<uint8_t *>(base) + kAlign;
}

void scratch_free(void *, void *ptr) {
  if (!ptr) return;
  void *base = static_cast<uint8_t *>(ptr) - kAlign;
  const size_t cap = capacity_of(base);
  Cache &c = cache();
  if (c.blocks.size() >= kMaxBlocks || c.bytes + cap > kMaxBytes) {
    std::free(base);
    return;
  }
  c.blocks.push_back({cap, base});
  c.bytes += cap;
}

}  // namespace qnnc
