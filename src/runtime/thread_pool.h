// The thread pool that runs the parallel loops of generated kernels. qnnc installs it in each
// kernel library's Halide runtime (halide_set_custom_do_par_for). Unlike Halide's default pool,
// its workers keep polling for a short while after a loop ends instead of going to sleep at
// once: a network calls dozens of short kernels back to back, and waking a sleeping thread for
// each of them costs a noticeable part of a sub-millisecond kernel (more so in virtual machines).
#pragma once
#include <cstdint>

namespace qnnc {

// Halide's signature of one parallel task and of a whole parallel loop.
using ParallelTask = int (*)(void *user_context, int task_number, uint8_t *closure);
int pool_do_par_for(void *user_context, ParallelTask task, int min, int size, uint8_t *closure);

// Threads that run a loop, the caller included; <= 0 means all cores. Process-wide. Idle
// workers poll for 2000 microseconds (or the environment variable QNNC_SPIN_US) before sleeping.
void pool_set_threads(int n);
int pool_threads();

}  // namespace qnnc
