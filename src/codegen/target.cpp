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
#if defined(__x86_64__)
    // Halide names VNNI's vpdpbusd through its Sapphire Rapids feature; only integer kernels
    // get it, so fp32 kernels keep the host's own tuning.
    if (__builtin_cpu_supports("avx512vnni")) t.int8_features.push_back(Halide::Target::AVX512_SapphireRapids);
#endif
    return t;
  }
  throw Error("unknown target '" + name + "' (known: host)");
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
