#include "codegen/target.h"

#include <algorithm>
#include <map>

#include "ir/graph.h"

namespace qnnc {

using F = Halide::Target::Feature;

namespace {

// Linux /proc/cpuinfo names of what each LLVM -mcpu that Halide picks for x86 enables and
// a compiler may emit in vector or bit-manipulation code (system instructions left out).
const std::vector<std::string> kPenryn = {"ssse3", "sse4_1"};
const std::vector<std::string> kSandyBridge = {"ssse3", "sse4_1", "sse4_2", "popcnt", "avx"};
const std::vector<std::string> kHaswell = {"ssse3", "sse4_1", "sse4_2", "popcnt", "avx", "avx2", "fma",
                                           "f16c", "bmi1", "bmi2", "movbe", "abm"};
const std::vector<std::string> kSkylakeAvx512 = {"avx512f", "avx512cd", "avx512vl", "avx512bw", "avx512dq"};
const std::vector<std::string> kCannonlake = {"avx512ifma", "avx512vbmi"};
// Ice Lake's additions, shared by Zen 4 and Sapphire Rapids.
const std::vector<std::string> kIcelake = {"avx512_vbmi2", "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq",
                                           "gfni", "vaes", "vpclmulqdq"};

std::vector<std::string> join(std::initializer_list<const std::vector<std::string> *> parts,
                              std::initializer_list<const char *> extra = {}) {
  std::vector<std::string> r;
  for (const auto *p : parts) r.insert(r.end(), p->begin(), p->end());
  for (const char *e : extra) r.push_back(e);
  return r;
}

// Halide's choice of -mcpu (strongest feature first) and the CPU features it implies.
std::vector<std::string> mcpu_features(const Halide::Target &t) {
  if (t.has_feature(F::AVX512_SapphireRapids))
    return join({&kHaswell, &kSkylakeAvx512, &kCannonlake, &kIcelake},
                {"avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"});
  // LLVM's znver4/5 include AMD's SSE4a, whose extrq/insertq it may use for byte shuffles.
  if (t.has_feature(F::AVX512_Zen5))
    return join({&kHaswell, &kSkylakeAvx512, &kCannonlake, &kIcelake},
                {"avx512_bf16", "sse4a", "avx_vnni", "avx512_vp2intersect"});
  if (t.has_feature(F::AVX512_Zen4))
    return join({&kHaswell, &kSkylakeAvx512, &kCannonlake, &kIcelake}, {"avx512_bf16", "sse4a"});
  if (t.has_feature(F::AVX512_Cannonlake)) return join({&kHaswell, &kSkylakeAvx512, &kCannonlake});
  if (t.has_feature(F::AVX512_Skylake)) return join({&kHaswell, &kSkylakeAvx512});
  if (t.has_feature(F::AVX512_KNL)) return join({&kHaswell}, {"avx512f", "avx512cd", "avx512er", "avx512pf"});
  if (t.has_feature(F::AVX2)) return kHaswell;
  if (t.has_feature(F::AVX)) return kSandyBridge;
  if (t.has_feature(F::SSE41)) return kPenryn;
  return {};
}

unsigned long arm_hwcap_bit(const std::string &name) {
  // AT_HWCAP bits on arm64 Linux: ASIMD 1<<1, FPHP 1<<9, ASIMDHP 1<<10, ASIMDDP 1<<20.
  static const std::map<std::string, unsigned long> bits = {
      {"asimd", 1ul << 1}, {"fphp", 1ul << 9}, {"asimdhp", 1ul << 10}, {"asimddp", 1ul << 20}};
  auto it = bits.find(name);
  return it == bits.end() ? 0 : it->second;
}

std::string joined(const std::vector<std::string> &v) {
  std::string s;
  for (const auto &x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool is_x86_host_build() {
#if defined(__x86_64__)
  return true;
#else
  return false;
#endif
}

// Fills the link and check fields of a 64-bit ARM Linux target (a static bundle).
void arm_bundle(TargetInfo &t) {
  t.cxx = "aarch64-linux-gnu-g++";
  t.is_host = false;
  t.cpu_features = required_cpu_features(t.halide);
  for (const auto &f : t.cpu_features) t.required_hwcap |= arm_hwcap_bit(f);
  // Named for people: the bundle prints this when the board lacks a feature.
  static const std::map<std::string, std::string> what = {{"asimd", "asimd (NEON)"},
                                                          {"fphp", "fphp (fp16)"},
                                                          {"asimdhp", "asimdhp (fp16 NEON)"},
                                                          {"asimddp", "asimddp (dot product)"}};
  std::vector<std::string> named;
  for (const auto &f : t.cpu_features) named.push_back(what.count(f) ? what.at(f) : f);
  t.required_features = joined(named);
}

const char *kAcceptedTargets =
    "host, x86-avx2, rpi4, rpi5, or a Halide target string for x86-64 or 64-bit ARM Linux such as "
    "x86-64-linux-avx512_zen4, x86-64-linux-avx2-fma-f16c or arm-64-linux-arm_dot_prod";

}  // namespace

Halide::Target complete_x86_features(Halide::Target t) {
  if (t.arch != Halide::Target::X86) return t;
  auto implies = [&](F f, std::initializer_list<F> more) {
    if (t.has_feature(f))
      for (F m : more) t.set_feature(m);
  };
  implies(F::AVX512_SapphireRapids, {F::AVX512_Zen4});
  implies(F::AVX512_Zen5, {F::AVX512_Zen4});
  implies(F::AVX512_Zen4, {F::AVX512_Cannonlake});
  implies(F::AVX512_Cannonlake, {F::AVX512_Skylake});
  implies(F::AVX512_Skylake, {F::AVX512});
  implies(F::AVX512_KNL, {F::AVX512});
  implies(F::AVX512, {F::AVX2});
  implies(F::AVX2, {F::AVX, F::FMA, F::F16C});
  implies(F::AVX, {F::SSE41});
  return t;
}

std::vector<std::string> required_cpu_features(const Halide::Target &t) {
  std::vector<std::string> r;
  auto add = [&](const std::string &f) {
    if (std::find(r.begin(), r.end(), f) == r.end()) r.push_back(f);
  };
  if (t.arch == Halide::Target::X86) {
    Halide::Target c = complete_x86_features(t);
    for (const auto &f : mcpu_features(c)) add(f);
    // Attributes Halide passes besides -mcpu.
    if (c.has_feature(F::FMA)) add("fma");
    if (c.has_feature(F::F16C)) add("f16c");
    if (c.has_feature(F::FMA4)) add("fma4");
    if (c.has_feature(F::AVX512)) {
      add("avx512f");
      add("avx512cd");
    }
    if (c.has_feature(F::AVXVNNI)) add("avx_vnni");
    if (c.has_feature(F::AVX10_1)) add("avx10_1");
    if (c.has_feature(F::X86APX)) add("apx");
  } else if (t.arch == Halide::Target::ARM && t.bits == 64) {
    add("asimd");
    if (t.has_feature(F::ARMFp16)) {
      add("fphp");
      add("asimdhp");
    }
    if (t.has_feature(F::ARMDotProd)) add("asimddp");
  }
  return r;
}

const std::vector<X86Level> &x86_levels() {
  static const std::vector<X86Level> levels = [] {
    const std::vector<std::pair<std::string, std::vector<F>>> tops = {
        {"sapphirerapids", {F::AVX512_SapphireRapids}},
        {"zen5", {F::AVX512_Zen5}},
        {"zen4", {F::AVX512_Zen4}},
        {"icelake", {F::AVX512_Zen4}},
        {"cannonlake", {F::AVX512_Cannonlake}},
        {"skylake", {F::AVX512_Skylake}},
        {"avx2", {F::AVX2}},
        {"avx", {F::AVX}},
        {"sse41", {F::SSE41}},
        {"x86-64", {}}};
    std::vector<X86Level> v;
    for (const auto &[name, fs] : tops) {
      Halide::Target t = complete_x86_features(Halide::Target(Halide::Target::Linux, Halide::Target::X86, 64, fs));
      X86Level l{name, {}, required_cpu_features(t), {}, ""};
      for (int f = 0; f < (int)F::FeatureEnd; f++)
        if (t.has_feature((F)f)) l.features.push_back((F)f);
      if (name == "icelake") {
        // Halide 21 emits vpdpbusd and vpopcnt only for its Zen 4 (or Sapphire Rapids)
        // features, whose LLVM CPU (znver4) also has AMD's SSE4a and AVX512-BF16. Ice Lake has
        // the rest of that set; qnnc uses it and bans those two extensions' instructions.
        l.cpu_features = join({&kHaswell, &kSkylakeAvx512, &kCannonlake, &kIcelake});
        l.banned_mnemonics = {"extrq", "insertq", "movntss", "movntsd", "vdpbf16ps", "vcvtne2ps2bf16", "vcvtneps2bf16"};
        l.fallback = "cannonlake";
      }
      v.push_back(l);
    }
    return v;
  }();
  return levels;
}

const X86Level &x86_level_named(const std::string &name) {
  for (const auto &l : x86_levels())
    if (l.name == name) return l;
  throw Error("no x86 level named '" + name + "'");
}

const X86Level &x86_level_for_cpu(const CpuFeatures &cpu) {
  for (const auto &l : x86_levels())
    if (missing_cpu_features(l.cpu_features, cpu).empty()) return l;
  return x86_levels().back();
}

TargetInfo resolve_target(const std::string &name) {
  TargetInfo t;
  t.name = name;
  if (name == "host") {
    Halide::Target h = Halide::get_host_target();
    t.cxx = "c++";
    t.is_host = true;
    if (h.arch == Halide::Target::X86) {
      // Features from the CPU itself (runtime/cpu_features.h), not from Halide's guess: one
      // table decides what the kernels may use.
      const X86Level &l = x86_level_for_cpu(detect_cpu_features());
      Halide::Target k(h.os, h.arch, h.bits, h.processor_tune, l.features);
      t.halide = k;
      t.description = "host (x86-64, " + l.name + " level)";
      t.cpu_features = l.cpu_features;
      t.banned_mnemonics = l.banned_mnemonics;
      if (!l.fallback.empty())
        t.fallback = Halide::Target(h.os, h.arch, h.bits, h.processor_tune, x86_level_named(l.fallback).features);
    } else {
      t.halide = h;
      t.description = "host";
      t.cpu_features = required_cpu_features(t.halide);
    }
    return t;
  }
  // Raspberry Pi boards, 64-bit Raspberry Pi OS.
  if (name == "rpi4") {
    t.halide = Halide::Target("arm-64-linux");
    t.cxx_flags = "-mcpu=cortex-a72";
    t.description = "rpi4 (Cortex-A72: NEON, no dot product)";
    t.qemu_cpu = "cortex-a72";
    arm_bundle(t);
    return t;
  }
  if (name == "rpi5") {
    t.halide = Halide::Target("arm-64-linux-arm_dot_prod-arm_fp16");
    t.cxx_flags = "-mcpu=cortex-a76";
    t.description = "rpi5 (Cortex-A76: NEON, dot product, fp16)";
    t.qemu_cpu = "cortex-a76";
    arm_bundle(t);
    return t;
  }
  // Any x86-64 with AVX2 and FMA but without AVX-512: the int8 kernels fall back from VNNI to
  // vpmaddubsw/vpmaddwd pairs. Runs in place on an AVX2 host (this one included), which is how
  // the fallback is tested.
  if (name == "x86-avx2") {
    t.halide = complete_x86_features(Halide::Target("x86-64-linux-avx2"));
    t.cxx = "c++";
    t.description = "x86-avx2 (x86-64 with AVX2 and FMA, no AVX-512)";
    t.is_host = is_x86_host_build();
    t.cpu_features = required_cpu_features(t.halide);
    return t;
  }
  // A Halide target string.
  if (name.empty() || !Halide::Target::validate_target_string(name))
    throw Error("unknown target '" + name + "' (accepted: " + kAcceptedTargets + ")");
  Halide::Target h(name);
  if (h.os != Halide::Target::Linux || h.bits != 64 || (h.arch != Halide::Target::X86 && h.arch != Halide::Target::ARM))
    throw Error("target '" + name + "': qnnc builds for x86-64 and 64-bit ARM Linux only (accepted: " +
                kAcceptedTargets + ")");
  if (h.has_gpu_feature())
    throw Error("target '" + name + "': GPU features are not supported (qnnc's kernels are scheduled for CPUs)");
  if (h.arch == Halide::Target::X86) {
    t.halide = complete_x86_features(h);
    t.cxx = "c++";
    t.is_host = is_x86_host_build();
    t.cpu_features = required_cpu_features(t.halide);
    t.description = name + " (x86-64; needs " + joined(t.cpu_features) + ")";
  } else {
    t.halide = h;
    bool dot = h.has_feature(F::ARMDotProd), fp16 = h.has_feature(F::ARMFp16);
    t.cxx_flags = std::string("-march=armv8") + (dot || fp16 ? ".2-a" : "-a") + (dot ? "+dotprod" : "") + (fp16 ? "+fp16" : "");
    t.qemu_cpu = "max";
    arm_bundle(t);
    t.description = name + " (64-bit ARM bundle; needs " + t.required_features + ")";
  }
  return t;
}

std::string host_features_line() {
  Halide::Target h = Halide::get_host_target();
  if (h.arch != Halide::Target::X86) return "host " + h.to_string();
  CpuFeatures cpu = detect_cpu_features();
  std::string s = "x86-64";
  for (const char *f : {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_vpopcntdq", "avx512_bf16", "amx_int8"})
    if (cpu.count(f)) s += std::string(" ") + f;
  const X86Level &l = x86_level_for_cpu(cpu);
  return s + "  [level " + l.name + ", halide target " + resolve_target("host").halide.to_string() + "]";
}

}  // namespace qnnc
