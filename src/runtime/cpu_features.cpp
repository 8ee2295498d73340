#include "runtime/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "ir/graph.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace qnnc {

namespace {

#if defined(__x86_64__) || defined(__i386__)
// Register state the OS saves on context switches (XCR0): AVX needs SSE+AVX state, AVX-512
// also the opmask and upper-zmm state, AMX the tile state.
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

CpuFeatures detect_x86() {
  CpuFeatures f;
  unsigned a, b, c, d;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  __cpuid(1, a, b, c, d);
  auto bit = [](unsigned r, int i) { return (r >> i) & 1u; };
  if (bit(d, 26)) f.insert("sse2");
  if (bit(c, 0)) f.insert("pni");
  if (bit(c, 9)) f.insert("ssse3");
  if (bit(c, 19)) f.insert("sse4_1");
  if (bit(c, 20)) f.insert("sse4_2");
  if (bit(c, 22)) f.insert("movbe");
  if (bit(c, 23)) f.insert("popcnt");
  bool osxsave = bit(c, 27);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  bool avx_state = (xcr0 & 0x6) == 0x6;
  bool avx512_state = avx_state && (xcr0 & 0xe0) == 0xe0;
  bool amx_state = (xcr0 & 0x60000) == 0x60000;
  if (avx_state) {
    if (bit(c, 28)) f.insert("avx");
    if (bit(c, 12)) f.insert("fma");
    if (bit(c, 29)) f.insert("f16c");
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    unsigned sub_leaves = a;
    if (bit(b, 3)) f.insert("bmi1");
    if (bit(b, 8)) f.insert("bmi2");
    if (avx_state) {
      if (bit(b, 5)) f.insert("avx2");
      if (bit(c, 8)) f.insert("gfni");
      if (bit(c, 9)) f.insert("vaes");
      if (bit(c, 10)) f.insert("vpclmulqdq");
    }
    if (avx512_state) {
      const std::pair<int, const char *> ebx[] = {{16, "avx512f"}, {17, "avx512dq"}, {21, "avx512ifma"},
                                                  {28, "avx512cd"}, {30, "avx512bw"}, {31, "avx512vl"}};
      for (auto [i, n] : ebx)
        if (bit(b, i)) f.insert(n);
      const std::pair<int, const char *> ecx[] = {{1, "avx512vbmi"},    {6, "avx512_vbmi2"},
                                                  {11, "avx512_vnni"},  {12, "avx512_bitalg"},
                                                  {14, "avx512_vpopcntdq"}};
      for (auto [i, n] : ecx)
        if (bit(c, i)) f.insert(n);
      if (bit(d, 8)) f.insert("avx512_vp2intersect");
      if (bit(d, 23)) f.insert("avx512_fp16");
    }
    if (amx_state) {
      if (bit(d, 22)) f.insert("amx_bf16");
      if (bit(d, 24)) f.insert("amx_tile");
      if (bit(d, 25)) f.insert("amx_int8");
    }
    if (sub_leaves >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      if (avx_state && bit(a, 4)) f.insert("avx_vnni");
      if (avx512_state && bit(a, 5)) f.insert("avx512_bf16");
    }
  }
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000001u) {
    __cpuid(0x80000001u, a, b, c, d);
    if (bit(c, 5)) f.insert("abm");
    if (bit(c, 6)) f.insert("sse4a");
    if (avx_state && bit(c, 16)) f.insert("fma4");
  }
  return f;
}
#endif

CpuFeatures detect_native() {
#if defined(__x86_64__) || defined(__i386__)
  return detect_x86();
#elif defined(__aarch64__) && defined(__linux__)
  CpuFeatures f;
  unsigned long hw = getauxval(AT_HWCAP);
  const std::pair<int, const char *> bits[] = {{1, "asimd"}, {9, "fphp"}, {10, "asimdhp"}, {20, "asimddp"}};
  for (auto [i, n] : bits)
    if (hw & (1ul << i)) f.insert(n);
  return f;
#else
  return {};
#endif
}

// Feature names come from graph.json: keep them printable in messages.
std::string escaped(const std::string &s) {
  std::string o;
  for (unsigned char ch : s.substr(0, 64)) {
    if (ch >= 0x20 && ch < 0x7f) {
      o += (char)ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      o += buf;
    }
  }
  return s.size() > 64 ? o + "..." : o;
}

}  // namespace

CpuFeatures detect_cpu_features() {
  if (const char *e = std::getenv("QNNC_CPU_FEATURES")) {
    CpuFeatures f;
    std::stringstream ss(e);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) f.insert(item);
    return f;
  }
  static const CpuFeatures native = detect_native();
  return native;
}

std::vector<std::string> missing_cpu_features(const std::vector<std::string> &required, const CpuFeatures &have) {
  std::vector<std::string> miss;
  for (const auto &r : required)
    if (!have.count(r)) miss.push_back(r);
  return miss;
}

void require_cpu_features(const std::vector<std::string> &required, const std::string &what, const std::string &hint) {
  auto miss = missing_cpu_features(required, detect_cpu_features());
  if (!miss.empty()) {
    std::string list;
    for (const auto &m : miss) list += (list.empty() ? "" : ", ") + escaped(m);
    throw Error(what + " needs CPU features this machine lacks: " + list + (hint.empty() ? "" : " (" + hint + ")"));
  }
  for (const auto &r : required)
    if (r == "amx_tile" || r == "amx_int8") {
      std::string err = enable_amx_tiles();
      if (!err.empty()) throw Error(what + " uses AMX tiles, but " + err + (hint.empty() ? "" : " (" + hint + ")"));
      break;
    }
}

std::string enable_amx_tiles() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
  // Linux (5.16 and later) hands out the tile registers' 8 kB of state only to processes that
  // ask for it (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); without it the first tile
  // instruction faults. The permission is process-wide and holds for threads started later.
  static const std::string result = [] {
    const long kReqXcompPerm = 0x1023, kXtileData = 18;
    if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) != 0)
      return std::string("the operating system refused the tile state (arch_prctl ARCH_REQ_XCOMP_PERM; Linux 5.16 or "
                         "later is needed)");
    return std::string();
  }();
  return result;
#else
  return "this build of qnnc cannot ask the operating system for the tile state";
#endif
}

}  // namespace qnnc
