// A lowering pass for kernels that pack 0/1 values into words: Halide writes a word of L lanes
// as the horizontal sum of (bit << lane index), which LLVM compiles to a tree of shuffles and
// adds (about 8 instructions per 32-bit word on AVX-512). The pass rewrites that sum as the
// reinterpretation of an L-lane boolean vector to an L-bit integer, which LLVM compiles to a
// mask move (vptestmd / vpcmpd into a mask register, kunpck, kmov on AVX-512; vmovmskps on AVX2).
// The integers are the same: lane b of a boolean vector is bit b of its reinterpretation.
#pragma once
#include <Halide.h>

namespace qnnc {

// Adds the pass to `p` (for x86 targets; others keep Halide's reduction).
void pack_bits_as_masks(Halide::Pipeline &p, const Halide::Target &t);

}  // namespace qnnc
