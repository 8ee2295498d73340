// Compilation targets: which Halide target kernels are generated for, which CPU features that
// code needs, and how it is linked.
#pragma once
#include <Halide.h>

#include <string>
#include <vector>

#include "runtime/cpu_features.h"

namespace qnnc {

struct TargetInfo {
  std::string name;          // "host", "x86-avx2", "rpi4", "rpi5" or a Halide target string
  Halide::Target halide;     // features used for every kernel (runtime built separately)
  std::string cxx;           // compiler driver used to link the kernel library / bundle
  std::string cxx_flags;     // e.g. -mcpu for the bundle's runtime
  std::string description;   // e.g. "rpi5 (Cortex-A76: NEON, dot product, fp16)"
  std::string qemu_cpu;      // -cpu for qemu-aarch64
  // CPU features (Linux /proc/cpuinfo names) the generated code may use; recorded in the
  // module and checked where it is loaded.
  std::vector<std::string> cpu_features;
  unsigned long required_hwcap = 0;  // arm64: AT_HWCAP bits of cpu_features, checked by a bundle
  std::string required_features;     // cpu_features joined, for the bundle's error message
  bool is_host = true;       // kernels are linked into a kernels.so this process can load
  // For a CPU that no Halide feature set fits (the "icelake" level, see x86_levels): mnemonics
  // of instructions `halide` allows but the CPU lacks. A kernel whose machine code contains one
  // is generated again for `fallback` (kernel_cache.cpp); the Halide runtime is built for it.
  std::vector<std::string> banned_mnemonics;
  Halide::Target fallback;
};

// "host", "x86-avx2", "rpi4" (Cortex-A72), "rpi5" (Cortex-A76), or any Halide target string for
// x86-64 or 64-bit ARM Linux (e.g. "x86-64-linux-avx512_zen4", "arm-64-linux-arm_dot_prod").
// Throws qnnc::Error listing the accepted forms for anything else.
TargetInfo resolve_target(const std::string &name);

// One rung of the x86 ladder qnnc picks host features from: Halide features, all implied ones
// spelled out (Halide's Target::has_feature does not infer them).
struct X86Level {
  std::string name;  // "sapphirerapids", "zen5", "zen4", "icelake", "cannonlake", "skylake", "avx2", ...
  std::vector<Halide::Target::Feature> features;
  std::vector<std::string> cpu_features;      // what its code may use (/proc/cpuinfo names)
  std::vector<std::string> banned_mnemonics;  // see TargetInfo; empty but for "icelake"
  std::string fallback;                       // the level a kernel with a banned mnemonic takes
};
// Best first.
const std::vector<X86Level> &x86_levels();
// The level called `name` (e.g. a level's fallback); throws qnnc::Error for an unknown name.
const X86Level &x86_level_named(const std::string &name);

// The best level whose code runs on a CPU with features cpu. This is the one place that maps
// an x86 CPU to Halide features: e.g. Zen 4 -> avx512_zen4, Sapphire Rapids ->
// avx512_sapphirerapids, Ice Lake (AVX512-VNNI and VPOPCNTDQ, but neither AVX-VNNI nor Zen 4's
// BF16/SSE4a) -> "icelake" (Halide's Zen 4 features with the instructions Ice Lake lacks
// banned), Cascade Lake -> avx512_skylake, AVX2 machines -> avx2.
const X86Level &x86_level_for_cpu(const CpuFeatures &cpu);

// CPU features code generated for t may use, derived as Halide derives LLVM's -mcpu and
// -mattr from t (x86: the -mcpu's vector and bit-manipulation extensions plus the explicit
// attributes; arm64: asimd, plus fphp/asimdhp and asimddp for fp16 and dot products).
std::vector<std::string> required_cpu_features(const Halide::Target &t);

// Adds the features an x86 target's strongest feature implies (as Halide's code generator
// does), so that checks like has_feature(AVX512) hold for an avx512_zen4 target.
Halide::Target complete_x86_features(Halide::Target t);

// One line naming the host CPU's SIMD features and the level qnnc picks for it.
std::string host_features_line();

}  // namespace qnnc
