// Compilation targets: which Halide target kernels are generated for and how they are linked.
#pragma once
#include <Halide.h>

#include <string>
#include <vector>

namespace qnnc {

struct TargetInfo {
  std::string name;          // "host", "rpi4", "rpi5"
  Halide::Target halide;     // features used for kernels (runtime built separately)
  std::string cxx;           // compiler driver used to link the kernel library / bundle
  std::string cxx_flags;     // e.g. -mcpu for the bundle's runtime
  std::string description;   // e.g. "rpi5 (Cortex-A76: NEON, dot product, fp16)"
  std::string qemu_cpu;      // -cpu for qemu-aarch64
  unsigned long required_hwcap = 0;  // AT_HWCAP bits the bundle checks at start-up
  std::string required_features;     // their names, for the error message
  bool is_host = true;       // kernels can be loaded into this process
  // Extra features for integer kernels (e.g. the 4-way u8 x i8 dot product of AVX512-VNNI).
  std::vector<Halide::Target::Feature> int8_features;
};

// Known names: host, rpi4 (Cortex-A72), rpi5 (Cortex-A76). Throws qnnc::Error for others.
TargetInfo resolve_target(const std::string &name);

// One line naming the host CPU's SIMD features that qnnc uses, e.g. "x86-64 avx2 avx512 vnni".
std::string host_features_line();

}  // namespace qnnc
