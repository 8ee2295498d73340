// Scratch memory for generated kernels' own buffers (Halide's halide_malloc / halide_free),
// installed in each kernel library's runtime like the thread pool. Freed blocks stay in a small
// per-thread cache and serve the next request of about their size: a kernel that allocates
// the same buffers on every call, in every parallel task (Winograd's transformed input and
// products), reuses them instead of growing and trimming the heap each time (glibc returns
// memory above its trim threshold, and the fresh pages fault in again on the next call).
#pragma once
#include <cstddef>

namespace qnnc {

void *scratch_malloc(void *user_context, size_t bytes);
void scratch_free(void *user_context, void *ptr);

}  // namespace qnnc
