// Integer convolution: u8 activations x i8 weights with i32 accumulation, then fixed-point
// requantization per output channel with the bias, the residual add and ReLU fused, to u8.
// The reduction runs over groups of 4 input channels so that targets with 4-way dot-product
// instructions (x86 VNNI vpdpbusd, ARM sdot/udot) use them.
#pragma once
#include "kernels/halide_kernel.h"

namespace qnnc {

struct ConvQFuncs {
  Halide::ImageParam input, weights, bias, mult, shift, thr, residual, qparams;
  int thresholds = 0;  // R > 0: threshold epilogue with R residual levels (thr replaces mult, shift)
  Halide::Func padded, acc, output;
  Halide::RDom r;
  bool has_padding = false;
  int per_byte = 1;  // weights per byte
  int64_t padded_channels = 0;  // channels the reduction reads (C rounded up to whole groups)
  // AMX through padded rows (conv2d_q_amx_padded_rows): padded_row is the padded image as one
  // row of pixels, and acc is (co, p, n) over that row.
  bool padded_rows = false;
  bool wide_input = false;  // padded is i16 (knob wide_input)
  Halide::Func padded_row;
  // Knob madd_u8 (conv2d_q_madd_u8): pair(q, co, x, y, n, c4, kx, ky) is the saturating i16 sum
  // of the products of channels 4 c4 + 2 q + rp (rp in [0, 2), the RDom rp): vpmaddubsw; acc
  // sums i32(pair) over q (r.x has extent 2): vpmaddwd against ones.
  bool madd_u8 = false;
  Halide::Func pair;
  Halide::RDom rp;
};

// Arguments, in order: input u8 (c,x,y,n); weights i8 packed (g, cb, Cg, kx, ky, M/cb) where g
// is the group (4, or 2 on x86 without VNNI) and Cg = ceil(C/g) -- or, with knob
// weights_per_byte p = 2 (3-4 bit weights) or 4 (1-2 bit weights), u8 (g, cb, ceil(C/(p g)),
// kx, ky, M/cb), channel group p j + i in bits [i 8/p, (i+1) 8/p) of its byte -- or, with knob
// amx, the same bytes as cb = 16, viewed as (g, 16, Cg kx ky M/16); bias i32 (M);
// mult i32 (M); shift i32 (M) -- or, with knob thresholds = R, thresholds i32 (M, R, qmax)
// (kernels/requantize.h); [residual u8 (M,x,y,n)]; qparams i32 (8) = {in_zp, out_zp,
// res_zp, res_mult, res_shift, lo, hi, 0} (the residual rescale res_mult 2^-res_shift, applied
// in the float requantization); output u8. Layers that take their pixels as one row
// (conv2d_q_as_row) view input, residual and output as (c, x + W y, 0, n).
// Knobs: vec, co_vectors, x_tile as for fp32; signed_input (feed activations as x - 128 to
// use i8 x i8 dot products; the lowering adds 128 * sum(w) to the bias); weights_per_byte
// (weights stored 2 or 4 per byte and unpacked in registers before the dot product);
// flat_weights (the weights packed as one block of all M channels, cb = M, so that a register
// tile at any channel offset, such as a last block shifted inward, loads them densely); amx
// (Sapphire Rapids' tile unit: see conv2d_q_amx_unfit).
ConvQFuncs define_conv2d_q(const KernelSpec &s, int cb);
Knobs conv2d_q_default_knobs(const KernelSpec &s, const Halide::Target &t);
int conv2d_q_channel_block(const KernelSpec &s, const Knobs &k);
int conv2d_q_group(const Knobs &k);  // input channels per dot-product group: 4, or 2 (knob "group")
int conv2d_q_weights_per_byte(const Knobs &k);  // 1, 2 or 4 (knob "weights_per_byte")
// The default for weights of `weight_bits`: packed (4 per byte up to 2 bits, 2 up to 4 bits)
// where the layer's weight traffic outweighs unpacking them, else one per byte.
int conv2d_q_default_weights_per_byte(const KernelSpec &s, int weight_bits, const Halide::Target &t);
// Whether knob amx = 1 can run this layer on x86 AMX tiles (tdpbusd): a target with
// AVX512_SapphireRapids, u8 activations, one i8 weight per byte in groups of 4, output channels
// in whole blocks of 16 (one tile's columns), and a reduction of at least 16 channels per tap.
// Returns "" when it can, else why not.
std::string conv2d_q_amx_unfit(const KernelSpec &s, const Knobs &k, const Halide::Target &t);
// AMX on a 1x1, stride-1, unpadded layer whose channels fill groups of 4: its pixels are one
// row of H W (the arguments' dims (C, H W, 1, N), which lowering passes), so tiles take 16
// consecutive pixels across image rows, with no columns past a row's end.
bool conv2d_q_amx_flat(const KernelSpec &s, const Knobs &k);
// Knob pixel_row applies: the vector path (no AMX) on a 1x1 stride-1 unpadded layer, computed
// over its pixels as one row (c, x + W y, 0, n), like conv2d_q_amx_flat; lowering passes those
// views of input, residual and output (or drops the knob where one is a strided view).
bool conv2d_q_pixel_row(const KernelSpec &s, const Knobs &k);
// Either of the two: the kernel is defined over pixels_as_row(s).
bool conv2d_q_as_row(const KernelSpec &s, const Knobs &k);
// Knob wide_input applies: groups of 2 channels, one weight per byte, u8 input, no AMX.
bool conv2d_q_wide_input(const KernelSpec &s, const Knobs &k);
// Knob madd_u8 applies: groups of 4 channels, one weight per byte, u8 input, no AMX. Each group
// is summed as two pairs of u8 x i8 products in saturating 16-bit lanes (x86 vpmaddubsw), then
// the pairs in 32 bits: exact only while a pair cannot pass 2^15 - 1, i.e. for weights within
// [-64, 63] (255 * 64 * 2 = 32640), so lowering sets it for weights of 7 bits or fewer stored
// one per byte (w7a8; also int4/int2 layers on wide outputs), never the tuner. Three
// instructions per 32 products where vpmaddwd on widened pairs takes about five.
bool conv2d_q_madd_u8(const KernelSpec &s, const Knobs &k);
// AMX on a stride-1 layer with a window or padding and outputs narrower than 14 columns: the
// padded image is materialized as one row of pixels (W + pads per image row), output pixel
// (x, y) is tile row x + W_padded y, and a tap (kx, ky) reads kx + W_padded ky further along.
// Each image row computes the padding's columns too (2 of 9 at 7x7 under a 3x3 window),
// against 9 of 16 when a tile took one image row.
bool conv2d_q_amx_padded_rows(const KernelSpec &s, const Knobs &k);
void schedule_conv2d_q(ConvQFuncs &f, const KernelSpec &s, const Knobs &k, const Halide::Target &t);

}  // namespace qnnc
