// Kernel specs and target strings for the default-knob tests, which choose knobs by target
// string, whatever CPU runs them.
#pragma once
#include <string>

#include "kernels/kernel_spec.h"
#include <Halide.h>

namespace spec_helpers {

// A square convolution of kind `kind` (conv2d: fp32; conv2d_q: u8): k x k window (3x3 padded to
// the same size), stride 1, batch 1.
inline qnnc::KernelSpec square_conv(const std::string &kind, int64_t C, int64_t M, int64_t HW, int64_t k) {
  qnnc::KernelSpec s;
  s.kind = kind;
  if (kind == "conv2d_q") s.dtype = "u8";
  s.in_shape = {1, C, HW, HW};
  s.out_shape = {1, M, HW, HW};
  s.kernel = {k, k};
  if (k == 3) s.pads = {1, 1, 1, 1};
  return s;
}

inline const Halide::Target kAvx2("x86-64-linux-avx2-fma-f16c-sse41"),
    kAvx512("x86-64-linux-avx512-avx512_skylake-avx2-fma-f16c-sse41"), kArmDot("arm-64-linux-arm_dot_prod");

}  // namespace spec_helpers
