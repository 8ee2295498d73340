#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QNNC_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define QNNC_CPU_RELAX() asm volatile("yield")
#else
#define QNNC_CPU_RELAX() ((void)0)
#endif

namespace qnnc {
namespace {

thread_local bool inside_pool_task = false;

class Pool {
 public:
  Pool() {
    if (const char *s = std::getenv("QNNC_SPIN_US")) spin_us_ = std::max(0, std::atoi(s));
  }
  ~Pool() { resize(1); }

  void resize(int n) {
    if (n <= 0) n = (int)std::max(1u, std::thread::hardware_concurrency());
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    if ((int)workers_.size() == n - 1) return;
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    for (int i = 0; i < n - 1; i++) workers_.emplace_back([this] { worker(); });
  }

  // The caller and the workers (workers_ changes only in resize, never during a loop).
  int threads() const { return (int)workers_.size() + 1; }

  int run(void *uc, ParallelTask task, int min, int size, uint8_t *closure) {
    if (size <= 0) return 0;
    // Nested loops, a single thread, or a pool busy with another caller's loop (a concurrent
    // run, or a resize): run inline. A nested loop never touches run_mutex_, which its own
    // thread may hold, and workers_ is read only under it.
    if (inside_pool_task || size == 1) return serial(uc, task, min, size, closure);
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
    if (!run_lock.owns_lock() || workers_.empty()) return serial(uc, task, min, size, closure);
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = {uc, task, min, size, closure};
      next_.store(0);
      done_.store(0);
      error_.store(0);
      open_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load() > 0) wake_.notify_all();
    work(job_);
    // Every task has been claimed; wait for the last ones to finish, then close the loop and
    // wait for the workers that joined it to leave it.
    for (int k = 1; done_.load(std::memory_order_acquire) < size; k++) relax(k);
    std::unique_lock<std::mutex> lk(m_);
    open_ = false;
    for (int k = 1; active_ > 0; k++) {
      lk.unlock();
      relax(k);
      lk.lock();
    }
    return error_.load();
  }

 private:
  struct Job {
    void *uc = nullptr;
    ParallelTask task = nullptr;
    int min = 0, size = 0;
    uint8_t *closure = nullptr;
  };

  // One polling step: a pause, and every 256th time a yield, so that polling threads give
  // way when there are more threads than cores (a bundle asked for 4 threads under QEMU on a
  // 2-core host, say).
  static void relax(int k) {
    QNNC_CPU_RELAX();
    if ((k & 255) == 0) std::this_thread::yield();
  }

  static int serial(void *uc, ParallelTask task, int min, int size, uint8_t *closure) {
    for (int i = 0; i < size; i++)
      if (int r = task(uc, min + i, closure)) return r;
    return 0;
  }

  void work(const Job &j) {
    bool was_inside = inside_pool_task;
    inside_pool_task = true;
    // Guided self-scheduling: claim a chunk of a quarter of the remaining tasks' fair share,
    // so that the shared counters move once per chunk (each move costs a cache-line transfer
    // between cores) while the last chunks stay small enough to balance.
    const int share = 4 * threads();
    for (;;) {
      int start = next_.load(std::memory_order_relaxed), chunk = 0;
      do {
        if (start >= j.size) break;
        chunk = std::max(1, (j.size - start) / share);
      } while (!next_.compare_exchange_weak(start, start + chunk, std::memory_order_relaxed));
      if (start >= j.size) break;
      for (int i = start; i < start + chunk; i++) {
        int r = error_.load(std::memory_order_relaxed) ? 0 : j.task(j.uc, j.min + i, j.closure);
        if (r) {
          int expected = 0;
          error_.compare_exchange_strong(expected, r);
        }
      }
      done_.fetch_add(chunk, std::memory_order_release);
    }
    inside_pool_task = was_inside;
  }

  void worker() {
    uint64_t seen = generation_.load();
    for (;;) {
      // Poll for the next loop for spin_us_, then sleep until one is announced.
      auto start = std::chrono::steady_clock::now();
      for (int k = 1; generation_.load(std::memory_order_acquire) == seen; k++) {
        relax(k);
        if ((k & 255) == 0 &&
            std::chrono::steady_clock::now() - start > std::chrono::microseconds(spin_us_.load()))
          break;
      }
      std::unique_lock<std::mutex> lk(m_);
      if (generation_.load() == seen && !stop_) {
        sleeping_.fetch_add(1);
        wake_.wait(lk, [&] { return generation_.load() != seen || stop_; });
        sleeping_.fetch_sub(1);
      }
      if (stop_) return;
      seen = generation_.load();
      if (!open_) continue;
      active_++;
      Job j = job_;
      lk.unlock();
      work(j);
      lk.lock();
      active_--;
    }
  }

  std::mutex run_mutex_;            // one loop at a time
  std::mutex m_;                    // guards job_, open_, active_, stop_
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  Job job_;
  bool open_ = false, stop_ = false;
  int active_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0}, done_{0}, error_{0}, sleeping_{0}, spin_us_{2000};
};

Pool &pool() {
  static Pool p;
  return p;
}

}  // namespace

int pool_do_par_for(void *uc, ParallelTask task, int min, int size, uint8_t *closure) {
  return pool().run(uc, task, min, size, closure);
}
void pool_set_threads(int n) { pool().resize(n); }
int pool_threads() { return pool().threads(); }

}  // namespace qnnc
