#include "runtime/peak.h"

#include "runtime/cpu_features.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qnnc {

namespace {

// Each probe runs `iters` rounds of 12 independent accumulator updates and returns the number
// of multiply-accumulates done (the result is folded into `sink` so nothing is optimized away).
using Probe = double (*)(int64_t iters, volatile double *sink);

#if defined(__x86_64__)
__attribute__((target("avx512f"))) double fma_zmm(int64_t iters, volatile double *sink) {
  __m512 a[12], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
  for (int64_t n = 0; n < iters; n++)
    for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
  float s = 0;
  for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
  *sink = s;
  return double(iters) * 12 * 16;
}

__attribute__((target("avx2,fma"))) double fma_ymm(int64_t iters, volatile double *sink) {
  __m256 a[12], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
  for (int64_t n = 0; n < iters; n++)
    for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
  alignas(32) float t[8];
  float s = 0;
  for (int i = 0; i < 12; i++) {
    _mm256_store_ps(t, a[i]);
    for (float v : t) s += v;
  }
  *sink = s;
  return double(iters) * 12 * 8;
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double vnni_zmm(int64_t iters, volatile double *sink) {
  __m512i a[12], u = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-2);
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
  for (int64_t n = 0; n < iters; n++)
    for (int i = 0; i < 12; i++) a[i] = _mm512_dpbusd_epi32(a[i], u, w);
  int64_t s = 0;
  for (int i = 0; i < 12; i++) s += _mm512_reduce_add_epi32(a[i]);
  *sink = (double)s;
  return double(iters) * 12 * 64;
}

// AVX2 without VNNI: u8 x i8 pairs to i16 (vpmaddubsw), pairs of those to i32 (vpmaddwd), add.
__attribute__((target("avx2"))) double maddubs_ymm(int64_t iters, volatile double *sink) {
  __m256i a[12], u = _mm256_set1_epi8(3), w = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_epi32(i);
  for (int64_t n = 0; n < iters; n++)
    for (int i = 0; i < 12; i++)
      a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(u, w), one));
  alignas(32) int32_t t[8];
  int64_t s = 0;
  for (int i = 0; i < 12; i++) {
    _mm256_store_si256((__m256i *)t, a[i]);
    for (int32_t v : t) s += v;
  }
  *sink = (double)s;
  return double(iters) * 12 * 32;
}

__attribute__((target("avx512f,avx512vpopcntdq"))) double popcnt_zmm(int64_t iters, volatile double *sink) {
  __m512i a[12], m = _mm512_set1_epi64(0x5555);
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi64(i);
  for (int64_t n = 0; n < iters; n++)
    for (int i = 0; i < 12; i++) a[i] = _mm512_add_epi64(a[i], _mm512_popcnt_epi64(_mm512_xor_si512(a[i], m)));
  int64_t s = 0;
  for (int i = 0; i < 12; i++) s += _mm512_reduce_add_epi64(a[i]);
  *sink = (double)s;
  return double(iters) * 12 * 512;
}

__attribute__((target("popcnt"))) double popcnt_scalar(int64_t iters, volatile double *sink) {
  uint64_t a[12];
  for (int i = 0; i < 12; i++) a[i] = i;
  for (int64_t n = 0; n < iters; n++)
    for (int i = 0; i < 12; i++) a[i] += (uint64_t)__builtin_popcountll(a[i] ^ 0x5555u);
  uint64_t s = 0;
  for (uint64_t v : a) s += v;
  *sink = (double)s;
  return double(iters) * 12 * 64;
}

// AMX (Sapphire Rapids): 4 independent 16x16 i32 accumulator tiles, each updated per round by
// a tile product of two register-resident 16x64 u8 / 64x16 i8 tiles (16 x 16 x 64 multiply-adds).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-int8"))) double amx_tiles(int64_t iters, volatile double *sink) {
  TileConfig cfg;
  for (int t = 0; t < 8; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) int8_t ones[16 * 64];
  for (auto &v : ones) v = 1;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  for (int64_t n = 0; n < iters; n++) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  alignas(64) int32_t out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  *sink = (double)out[0];
  return double(iters) * 4 * 16 * 16 * 64;
}
#endif

// Rate of `probe` run on `threads` threads at once: total multiply-accumulates over wall time,
// the best of three rounds of about 30 ms each.
double rate(Probe probe, int threads) {
  volatile double sink = 0;
  // Size one round on a single thread.
  int64_t iters = 1 << 16;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    probe(iters, &sink);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.01 || iters > (int64_t(1) << 34)) {
      iters = std::max<int64_t>(1, int64_t(iters * 0.03 / std::max(s, 1e-6)));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int round = 0; round < 3; round++) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<double> macs(threads);
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; t++)
      pool.emplace_back([&, t] {
        volatile double local = 0;
        ready++;
        while (!go) std::this_thread::yield();
        macs[t] = probe(iters, &local);
      });
    while (ready < threads - 1) std::this_thread::yield();
    auto t0 = std::chrono::steady_clock::now();
    go = true;
    macs[0] = probe(iters, &sink);
    for (auto &th : pool) th.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double total = 0;
    for (double m : macs) total += m;
    best = std::max(best, total / s);
  }
  return best;
}

}  // namespace

std::map<std::string, Peak> measure_peaks(int threads) {
  if (threads <= 0) threads = (int)std::max(1u, std::thread::hardware_concurrency());
  static std::mutex mu;
  static std::map<int, std::map<std::string, Peak>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto hit = cache.find(threads);
  if (hit != cache.end()) return hit->second;
  std::map<std::string, Peak> r;
  std::string on = threads == 1 ? ", 1 thread" : ", " + std::to_string(threads) + " threads";
  auto add = [&](const std::string &key, Probe p, const std::string &what) {
    r[key] = Peak{2 * rate(p, threads) / 1e9, what + on};
  };
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    add("fp32", fma_zmm, "fp32 FMA zmm");
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    add("fp32", fma_ymm, "fp32 FMA ymm");
  if (__builtin_cpu_supports("avx512vnni"))
    add("int8", vnni_zmm, "int8 vpdpbusd zmm");
  else if (__builtin_cpu_supports("avx2"))
    add("int8", maddubs_ymm, "int8 vpmaddubsw+vpmaddwd ymm");
  if (detect_cpu_features().count("amx_int8") && enable_amx_tiles().empty())
    add("amx", amx_tiles, "int8 AMX tdpbusd");
  if (__builtin_cpu_supports("avx512vpopcntdq"))
    add("binary", popcnt_zmm, "1-bit xor+vpopcntq zmm");
  else if (__builtin_cpu_supports("popcnt"))
    add("binary", popcnt_scalar, "1-bit xor+popcnt 64-bit");
#endif
  cache[threads] = r;
  return r;
}

}  // namespace qnnc
