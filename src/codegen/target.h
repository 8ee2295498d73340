// Compilation targets: which Halide target kernels are generated for and how they are linked.
#pragma once
#include <Halide.h>

#include <string>
#include <vector>

namespace qnnc {

struct TargetInfo {
  std::string name;          // "host", "rpi4", "rpi5"
  Halide::Target halide;     // features used for kernels (runtime built separately)
  std::string cxx;           // compiler driver used to link the kernel library
  bool is_host = true;       // kernels can be loaded into this process
  // Extra features for integer kernels (e.g. the 4-way u8 x i8 dot product of AVX512-VNNI).
  std::vector<Halide::Target::Feature> int8_features;
};

// Throws qnnc::Error for an unknown name, listing the known ones.
TargetInfo resolve_target(const std::string &name);

// One line naming the host CPU's SIMD features that qnnc uses, e.g. "x86-64 avx2 avx512 vnni".
std::string host_features_line();

}  // namespace qnnc
