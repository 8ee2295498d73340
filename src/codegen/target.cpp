#include "codegen/target.h"

#include "ir/graph.h"

namespace qnnc {

TargetInfo resolve_target(const std::string &name) {
  TargetInfo t;
  t.name = name;
  if (name == "host") {
    t.halide = Halide::get_host_target();
    t.cxx = "c++";
    t.is_host = true;
    t.description = "host";
#if defined(__x86_64__)
    // Halide reaches VNNI's vpdpbusd and VPOPCNTDQ's vpopcntd through its Sapphire Rapids
    // feature; only integer kernels
    // get it, so fp32 kernels keep the host's own tuning.
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vpopcntdq"))
      t.int8_features.push_back(Halide::Target::AVX512_SapphireRapids);
#endif
    return t;
  }
  // Raspberry Pi boards, 64-bit Raspberry Pi OS. AT_HWCAP bits: ASIMD 1<<1, FPHP 1<<9,
  // ASIMDHP 1<<10, ASIMDDP 1<<20.
  if (name == "rpi4") {
    t.halide = Halide::Target("arm-64-linux");
    t.cxx = "aarch64-linux-gnu-g++";
    t.cxx_flags = "-mcpu=cortex-a72";
    t.description = "rpi4 (Cortex-A72: NEON, no dot product)";
    t.qemu_cpu = "cortex-a72";
    t.required_hwcap = 1ul << 1;
    t.required_features = "asimd";
    t.is_host = false;
    return t;
  }
  if (name == "rpi5") {
    t.halide = Halide::Target("arm-64-linux-arm_dot_prod-arm_fp16");
    t.cxx = "aarch64-linux-gnu-g++";
    t.cxx_flags = "-mcpu=cortex-a76";
    t.description = "rpi5 (Cortex-A76: NEON, dot product, fp16)";
    t.qemu_cpu = "cortex-a76";
    t.required_hwcap = (1ul << 1) | (1ul << 9) | (1ul << 10) | (1ul << 20);
    t.required_features = "asimd, fphp, asimdhp, asimddp (dot product)";
    t.is_host = false;
    return t;
  }
  // Any x86-64 with AVX2 and FMA but without AVX-512: the int8 kernels fall back from VNNI to
  // vpmaddubsw/vpmaddwd pairs. Runs in place on an AVX2 host (this one included), which is how
  // the fallback is tested.
  if (name == "x86-avx2") {
    t.halide = Halide::Target("x86-64-linux-sse41-avx-avx2-f16c-fma");
    t.cxx = "c++";
    t.description = "x86-avx2 (x86-64 with AVX2 and FMA, no AVX-512)";
#if defined(__x86_64__)
    t.is_host = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return t;
  }
  throw Error("unknown target '" + name + "' (known: host, x86-avx2, rpi4, rpi5)");
}

std::string host_features_line() {
  Halide::Target t = Halide::get_host_target();
  std::string s = t.arch == Halide::Target::X86 ? "x86-64" : (t.arch == Halide::Target::ARM ? "arm64" : "other");
  struct F { Halide::Target::Feature f; const char *name; };
  const F feats[] = {{Halide::Target::AVX2, "avx2"}, {Halide::Target::FMA, "fma"},
                     {Halide::Target::AVX512, "avx512"}, {Halide::Target::AVX512_SapphireRapids, "avx512-vnni(sapphirerapids)"},
                     {Halide::Target::AVXVNNI, "avx-vnni"}, {Halide::Target::ARMDotProd, "dotprod"}};
  for (const auto &f : feats)
    if (t.has_feature(f.f)) s += std::string(" ") + f.name;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512vnni")) s += " avx512-vnni";
#endif
  return s + "  [halide target " + t.to_string() + "]";
}

}  // namespace qnnc
