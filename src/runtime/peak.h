// The arithmetic peaks of the CPU this process runs on, measured: how many fp32 multiply-adds,
// int8 dot-product multiply-adds and 1-bit xor+popcount multiply-adds per second the widest
// available instructions sustain on `threads` cores at once. Profiles divide a layer's rate by
// the peak of its precision to show how close a kernel comes to the machine.
//
// These probes are measurement instruments, not kernels of a model: each is a loop of
// independent register-resident multiply-adds (x86: AVX-512 or AVX2/FMA; VNNI vpdpbusd or
// vpmaddubsw+vpmaddwd; VPOPCNTDQ; AMX tile products). Other CPUs report no peak.
#pragma once
#include <map>
#include <string>

namespace qnnc {

struct Peak {
  double gops = 0;      // giga multiply-accumulates x 2 per second (GFLOP/s for fp32, GOP/s otherwise)
  std::string what;     // instruction and width, e.g. "fp32 FMA zmm"
};

// Keys "fp32", "int8", "binary", "amx" (those this CPU has; int8 layers on AMX tiles are
// measured against "amx"); threads <= 0: all cores. Takes about
// 0.1 s per key. Results are cached per thread count for the life of the process.
std::map<std::string, Peak> measure_peaks(int threads);

}  // namespace qnnc
