// Integer kernels, bit-exact against naive integer references (qreference.h):
//  - conv2d_q (u8 x i8 -> i32, per-channel fixed-point requantization, bias, residual add,
//    ReLU) on hand-built integer graphs: channel counts around the 4-channel dot-product groups
//    and the output-channel vector blocks, 1x1..7x7 kernels, strides, padding with a non-zero
//    input zero point, dilation, residuals, batch 2, 4-bit levels, and rounding ties;
//  - the border kernels: quantize, dequantize, global_avgpool_q, and maxpool on u8.
// Every graph is f32 input -> quantize(scale 1) -> integer op(s) -> dequantize(scale 1) -> f32,
// so the integers the kernels produce come out unchanged as floats and compare with ==.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "qreference.h"
#include "kernels/halide_kernel.h"
#include "runtime/cpu_features.h"
#include "spec_helpers.h"

namespace {

using qref::ConvQParams;
using qref::ITensor;
using qref::Rng;
using qref::Shape;
using qnnc::DType;
using qnnc::Tensor;

struct QCase {
  int64_t N, C, H, W, M, KH, KW;
  int64_t stride = 1;
  std::array<int64_t, 4> pads{0, 0, 0, 0};
  int64_t dil = 1;
  int in_zp = 0, out_zp = 0;
  bool relu = false;
  bool residual = false;
  int res_zp = 128;
  int qmax = 255;
  bool ties = false;  // power-of-two multipliers and small weights: many exact .5 roundings
  int wbits = 8, abits = 8;  // <= 2 and in_zp 0: the bit-serial kernel (conv2d_bs) runs
  bool even = false;         // rounding "tonearest" (ties to even) instead of "upward"
  bool force_bs = false;     // ask for the bit-serial kernel where it is not the default
  int per_byte = 0;          // > 0: force this many weights per byte (knob weights_per_byte)
  int amx = -1;              // 0 / 1: force knob amx (1 needs a host with AMX; skipped elsewhere)
  int wide_tile = 0;         // > 0: force tiles of 2 vectors of 32 lanes (64 channels) by this many columns
  int flat = 0;              // > 0: force weights packed as one block, tiles of this many 16-lane vectors
  int pixel_row = -1;        // 0 / 1: force knob pixel_row (a 1x1 layer's pixels as one row)
  bool extreme = false;      // every input at qmax, weights at the ends of their range (-64 and 63
                             // at 7 bits): the largest pair sums a 16-bit lane must hold

  std::string name() const {
    std::string s = "n" + std::to_string(N) + "_c" + std::to_string(C) + "_" + std::to_string(H) + "x" +
                    std::to_string(W) + "_m" + std::to_string(M) + "_k" + std::to_string(KH) + "x" + std::to_string(KW);
    if (stride != 1) s += "_s" + std::to_string(stride);
    if (pads[0] == pads[1] && pads[1] == pads[2] && pads[2] == pads[3]) s += "_p" + std::to_string(pads[0]);
    else s += "_p" + std::to_string(pads[0]) + std::to_string(pads[1]) + std::to_string(pads[2]) + std::to_string(pads[3]);
    if (dil != 1) s += "_d" + std::to_string(dil);
    if (in_zp) s += "_izp" + std::to_string(in_zp);
    if (out_zp) s += "_ozp" + std::to_string(out_zp);
    if (residual) s += "_res" + std::to_string(res_zp);
    if (relu) s += "_relu";
    if (qmax != 255) s += "_qmax" + std::to_string(qmax);
    if (ties) s += "_ties";
    if (even) s += "_even";
    if (wide_tile) s += "_w64x" + std::to_string(wide_tile);
    if (flat) s += "_flat" + std::to_string(flat);
    if (wbits != 8 || abits != 8) s += "_w" + std::to_string(wbits) + "a" + std::to_string(abits);
    if (force_bs) s += "_bs";
    if (per_byte) s += "_per" + std::to_string(per_byte);
    if (amx >= 0) s += "_amx" + std::to_string(amx);
    if (extreme) s += "_extreme";
    if (pixel_row >= 0) s += "_row" + std::to_string(pixel_row);
    return s;
  }
};

// gtest prints parameters of failing tests with this (instead of a byte dump).
void PrintTo(const QCase &c, std::ostream *os) { *os << c.name(); }

QCase mk(int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int64_t K, int64_t stride, int64_t pad, int in_zp = 0,
         int out_zp = 0) {
  QCase c{N, C, H, W, M, K, K};
  c.stride = stride;
  c.pads = {pad, pad, pad, pad};
  c.in_zp = in_zp;
  c.out_zp = out_zp;
  return c;
}
QCase with_res(QCase c, bool relu, int res_zp = 128) {
  c.residual = true;
  c.relu = relu;
  c.res_zp = res_zp;
  return c;
}
QCase with_relu(QCase c) {
  c.relu = true;
  return c;
}

// Channel counts straddle the 4-channel dot-product groups (C % 4 != 0 pads channels
// with the zero point) and the 16-lane output-channel vectors (M = 3, 5, 13, 17, 33, ...).
const std::vector<QCase> kCases = [] {
  std::vector<QCase> v = {
      mk(1, 3, 9, 11, 5, 3, 1, 1),                      // tiny, odd spatial
      mk(1, 5, 8, 8, 13, 3, 1, 1, 7),                   // padding reads in_zp = 7
      mk(1, 13, 10, 10, 17, 3, 2, 1, 128),              // stride 2, in_zp 128
      mk(1, 17, 7, 9, 33, 1, 1, 0),                     // 1x1
      mk(1, 33, 6, 6, 17, 1, 2, 0, 128),                // 1x1 stride 2 (no spatial padding, C % 4 != 0)
      mk(1, 3, 16, 16, 16, 7, 2, 3, 128, 5),            // ResNet stem shape
      mk(2, 3, 21, 37, 17, 7, 2, 3, 7),                 // stem: padded copy over 4 channels, tail of 16 columns
      mk(1, 2, 18, 19, 16, 3, 1, 1, 128),               // 2 channels, padded copy
      mk(1, 4, 17, 20, 32, 5, 2, 2, 3),                 // 4 channels: the copy only pads the borders
      mk(1, 5, 11, 11, 3, 7, 1, 3, 7),                  // 7x7 with few output channels
      mk(1, 16, 8, 8, 16, 3, 1, 1),                     // exactly one vector
      mk(1, 64, 7, 7, 64, 3, 1, 1, 128, 3),             // C >= 64: vectorized padding
      mk(1, 64, 8, 8, 32, 1, 1, 0),                     // no padding at all (C % 4 == 0, 1x1)
      mk(2, 17, 6, 7, 13, 3, 1, 1, 7),                  // batch 2
      with_relu(mk(2, 33, 9, 9, 33, 3, 2, 1)),          // batch 2, stride 2, ReLU with out_zp 0
      with_relu(mk(1, 13, 9, 9, 17, 3, 1, 1, 0, 10)),   // ReLU clamps at out_zp 10
      with_res(mk(1, 17, 8, 8, 17, 3, 1, 1), false),    // residual, no ReLU
      with_res(mk(1, 33, 7, 7, 33, 1, 1, 0, 0, 3), true),
      with_res(mk(2, 16, 10, 10, 32, 3, 2, 1, 128), true),
      with_res(mk(1, 64, 8, 8, 128, 1, 2, 0), true),    // ResNet downsample shape
      with_res(mk(1, 128, 4, 4, 96, 3, 1, 1, 128, 7), true, 100),
      with_res(mk(1, 64, 28, 28, 64, 3, 1, 1, 128), true),  // a real-sized layer (many tiles)
      mk(1, 8, 5, 5, 1, 3, 1, 1, 128),                  // one output channel
      mk(1, 1, 9, 9, 7, 3, 1, 1, 128),                  // one input channel
      mk(1, 17, 3, 3, 17, 3, 1, 1, 7),                  // output narrower than the x tile
      mk(1, 16, 5, 13, 48, 3, 1, 1, 128),               // width 13 (tail of the x tiles)
      mk(1, 5, 13, 13, 13, 5, 2, 2, 128),               // 5x5 stride 2
  };
  QCase asym = mk(1, 5, 7, 8, 5, 3, 1, 0, 7);           // asymmetric padding
  asym.pads = {0, 1, 1, 0};
  v.push_back(asym);
  QCase rect = mk(1, 13, 6, 10, 17, 1, 1, 0, 128);      // 1x3 kernel
  rect.KW = 3;
  rect.pads = {0, 1, 0, 1};
  v.push_back(rect);
  QCase dil = mk(1, 13, 11, 11, 13, 3, 1, 2, 128);      // dilation 2
  dil.dil = 2;
  v.push_back(dil);
  QCase dil_s2 = mk(2, 17, 12, 12, 33, 3, 2, 2, 7, 2);  // dilation 2, stride 2
  dil_s2.dil = 2;
  v.push_back(dil_s2);
  QCase q4 = with_relu(mk(1, 13, 8, 8, 17, 3, 1, 1, 8, 8));  // 4-bit levels (qmax 15)
  q4.qmax = 15;
  v.push_back(q4);
  QCase q4r = with_res(mk(1, 16, 6, 6, 16, 1, 1, 0, 8, 8), false, 8);
  q4r.qmax = 15;
  v.push_back(q4r);
  // Bit-serial (1-2 bit) layers: weights {-1,1} or {-1,0,1}, activations 0..2^a-1, words of 32
  // input channels (C = 3, 33, 64 cover a partial word, a word and a tail, exact words).
  auto bits = [](QCase c, int wb, int ab) {
    c.wbits = wb;
    c.abits = ab;
    c.qmax = (1 << ab) - 1;
    return c;
  };
  v.push_back(bits(mk(1, 3, 9, 9, 5, 3, 1, 1), 1, 1));
  v.push_back(bits(with_relu(mk(1, 33, 8, 8, 17, 3, 2, 1)), 1, 2));
  v.push_back(bits(mk(2, 64, 7, 7, 32, 1, 1, 0), 2, 1));
  v.push_back(bits(with_res(mk(1, 33, 9, 9, 33, 3, 1, 1), true, 1), 2, 2));
  v.push_back(bits(with_res(mk(1, 64, 8, 8, 48, 1, 2, 0), false, 2), 1, 2));
  v.push_back(bits(mk(1, 17, 11, 11, 13, 7, 2, 3), 2, 2));
  QCase t1 = mk(1, 3, 12, 12, 5, 1, 1, 0, 0, 128);      // rounding ties in the main term
  t1.ties = true;
  v.push_back(t1);
  QCase t2 = with_res(mk(1, 5, 9, 9, 7, 3, 1, 1, 128, 128), false, 128);  // ... and in the residual
  t2.ties = true;
  v.push_back(t2);
  // The same ties rounded to even, in the int8 and the bit-serial kernels.
  t1.even = t2.even = true;
  v.push_back(t1);
  v.push_back(t2);
  QCase t3 = bits(with_res(mk(1, 33, 9, 9, 17, 3, 1, 1), false, 1), 2, 2);
  t3.ties = true;
  v.push_back(t3);
  t3.even = true;
  v.push_back(t3);
  // Outputs of 1-2 bits on the dot-product kernel: threshold epilogues, with a residual of 4
  // levels, with rounding ties both ways.
  v.push_back(bits(with_res(mk(1, 33, 9, 9, 33, 3, 1, 1), true, 1), 4, 2));
  QCase t5 = bits(with_res(mk(1, 33, 9, 9, 17, 3, 1, 1, 0, 1), false, 2), 8, 2);
  t5.ties = true;
  v.push_back(t5);
  t5.even = true;
  v.push_back(t5);
  // 4-bit weights: two per byte in the dot-product kernel (channel counts around the 8-channel
  // pairs of groups), and the bit-serial kernel with 3-4 planes.
  v.push_back(bits(mk(1, 13, 8, 8, 17, 3, 1, 1, 7), 4, 8));                  // C % 8 != 0, in_zp 7
  v.push_back(bits(with_res(mk(1, 64, 8, 8, 128, 1, 2, 0), true), 4, 8));     // exact groups, residual
  v.push_back(bits(with_relu(mk(2, 33, 9, 9, 33, 3, 2, 1)), 4, 4));          // 4-bit levels, batch 2
  v.push_back(bits(mk(1, 3, 16, 16, 16, 7, 2, 3, 128, 5), 4, 8));             // stem shape
  v.push_back(bits(mk(1, 8, 5, 5, 5, 1, 1, 0), 4, 4));                        // one byte of groups
  QCase t4 = bits(with_res(mk(1, 5, 9, 9, 7, 3, 1, 1, 8, 8), false, 8), 4, 4);  // ties, nibbles
  t4.ties = true;
  v.push_back(t4);
  t4.even = true;
  v.push_back(t4);
  // Outputs of 14 columns or more: on x86 the default stores 2- and 4-bit weights one per byte
  // (unpacking them costs more than their traffic saves there); forced packed, they must give
  // the same integers.
  for (int per : {0, 4}) {
    QCase wide = bits(with_res(mk(1, 19, 16, 16, 21, 3, 1, 1), true, 2), 2, 8);
    wide.per_byte = per;
    v.push_back(wide);
  }
  for (int per : {0, 2}) {
    QCase wide = bits(with_relu(mk(2, 40, 30, 30, 24, 1, 2, 0, 5)), 4, 8);
    wide.per_byte = per;
    v.push_back(wide);
  }
  // The x86 VNNI default for 64-channel multiples (2 vectors of 32 lanes by 4 or 5 columns),
  // forced so that every host runs it: 2 channel blocks with the last column tile shifted
  // inward, stride 2 into 5 columns with batch 2 and a residual, 4-bit weights two per byte.
  auto wide = [](QCase c, int cols) {
    c.wide_tile = cols;
    return c;
  };
  v.push_back(wide(mk(1, 40, 14, 14, 128, 3, 1, 1, 7), 5));
  v.push_back(wide(with_res(mk(2, 64, 11, 9, 64, 3, 2, 1, 128), true), 4));
  QCase wide_packed = wide(bits(with_relu(mk(1, 33, 8, 16, 64, 3, 1, 1, 8, 8)), 4, 8), 4);
  wide_packed.per_byte = 2;
  v.push_back(wide_packed);
  // The VNNI default for output channels that 16 does not divide (3 or 2 vectors of 16 lanes,
  // the last block shifted inward, weights packed as one block), forced so that every host runs
  // it: 72 at stride 2 with batch 2, 168 in a 1x1 with a residual (7-column tiles), 116 (the last
  // block shifted by 12) with 4-bit weights two per byte, 40 (2 vectors, the last block shifted
  // by 8) and 13 (fewer than a vector: one block of all of them either way).
  auto flat = [](QCase c, int vectors) {
    c.flat = vectors;
    return c;
  };
  v.push_back(flat(with_relu(mk(2, 24, 13, 13, 72, 3, 2, 1, 7)), 3));
  v.push_back(flat(with_res(mk(1, 40, 14, 14, 168, 1, 1, 0, 128, 3), true), 3));
  QCase flat_packed = flat(bits(with_relu(mk(1, 33, 8, 19, 116, 3, 1, 1, 8, 8)), 4, 8), 2);
  flat_packed.per_byte = 2;
  v.push_back(flat_packed);
  v.push_back(flat(mk(1, 17, 9, 9, 40, 1, 1, 0), 3));
  v.push_back(flat(mk(1, 20, 6, 11, 13, 3, 1, 1, 128), 2));
  auto bs = [&](QCase c, int wb, int ab) {
    c = bits(c, wb, ab);
    c.force_bs = true;
    return c;
  };
  v.push_back(bs(with_relu(mk(1, 33, 8, 8, 17, 3, 1, 1)), 4, 4));
  v.push_back(bs(mk(1, 17, 9, 9, 13, 3, 2, 1), 4, 2));
  v.push_back(bs(with_res(mk(1, 64, 7, 7, 33, 1, 1, 0), true, 3), 2, 4));
  v.push_back(bs(mk(2, 3, 11, 11, 5, 7, 2, 3), 4, 1));
  // Every (weight bits, activation bits) in {1, 2, 4, 8}^2 on one awkward layer (C = 19 is no
  // multiple of any packing), with the kernel and weight storage the compiler picks, and again
  // bit-serial wherever both sides have at most 4 bits.
  for (int wb : {1, 2, 4, 8})
    for (int ab : {1, 2, 4, 8}) {
      QCase m = bits(with_relu(mk(1, 19, 7, 9, 21, 3, 1, 1)), wb, ab);
      v.push_back(m);
      if (wb <= 4 && ab <= 4 && !(wb <= 2 && ab <= 2)) v.push_back(bs(m, wb, ab));
    }
  // AMX tiles (16 output channels x 16 columns), forced on shapes the default leaves to the
  // vector kernel too: outputs narrower than a tile (its columns computed past the edge and
  // dropped), a width that 16 does not divide (last tile shifted inward), input channels that
  // are not a multiple of 4 or of the 64 a tile product takes (chunks of 20, 36, 48), stride 2,
  // dilation, batch 2, residual and 4-bit levels; and once forced off on a layer it would take.
  auto amx = [](QCase c, int on) {
    c.amx = on;
    return c;
  };
  v.push_back(amx(mk(1, 16, 8, 8, 16, 3, 1, 1), 1));
  v.push_back(amx(mk(1, 19, 9, 21, 32, 3, 1, 1, 128, 3), 1));
  v.push_back(amx(with_relu(mk(2, 36, 11, 19, 48, 3, 2, 1, 7)), 1));
  v.push_back(amx(with_res(mk(1, 72, 5, 18, 32, 1, 1, 0, 0, 5), true, 100), 1));
  v.push_back(amx(with_res(mk(1, 144, 10, 10, 64, 1, 2, 0, 128), false), 1));
  v.push_back(amx(mk(1, 256, 6, 6, 16, 1, 1, 0, 128, 9), 1));
  QCase amx_dil = amx(mk(1, 48, 13, 20, 16, 3, 1, 2, 128), 1);
  amx_dil.dil = 2;
  v.push_back(amx_dil);
  QCase amx_q4 = amx(with_relu(mk(1, 32, 6, 17, 32, 3, 1, 1, 8, 8)), 1);
  amx_q4.qmax = 15;
  v.push_back(amx_q4);
  // 1x1 stride-1 layers with channels in groups of 4 take their pixels as one row (tiles cross
  // image rows): batch 2, a last tile shifted inward, fewer pixels than a tile; and a 1x1 whose
  // channels pad to 20 keeps image rows.
  v.push_back(amx(with_res(mk(2, 32, 7, 7, 48, 1, 1, 0, 128, 4), true), 1));
  v.push_back(amx(mk(1, 64, 3, 3, 32, 1, 1, 0, 7), 1));
  v.push_back(amx(with_relu(mk(1, 18, 9, 17, 16, 1, 1, 0, 128)), 1));
  // Stride-1 windows on outputs under 14 columns run through padded rows: 3x3 at 7x7 (ResNet's
  // last stage), with a residual, batch 2, no padding at all, 5x5 on a wide-short image, and
  // dilation 2.
  v.push_back(amx(mk(1, 64, 7, 7, 32, 3, 1, 1, 128), 1));
  v.push_back(amx(with_res(mk(2, 40, 6, 5, 16, 3, 1, 1, 7, 3), true), 1));
  v.push_back(amx(with_relu(mk(1, 32, 9, 9, 48, 3, 1, 0)), 1));
  v.push_back(amx(mk(1, 24, 4, 11, 16, 5, 1, 2, 128), 1));
  QCase amx_pr_dil = amx(mk(1, 16, 9, 10, 32, 3, 1, 2, 128), 1);
  amx_pr_dil.dil = 2;
  v.push_back(amx_pr_dil);
  v.push_back(amx(with_res(mk(1, 64, 28, 28, 64, 3, 1, 1, 128), true), 0));
  // 7-bit weights (w7a8; the whole range [-64, 63]): on x86 with AVX2 and no VNNI, groups of 4
  // as vpmaddubsw pairs (knob madd_u8, as for 4- and 2-bit weights stored one per byte): the
  // stem, padding reading in_zp, channels that 4 does not divide, stride 2 with batch 2,
  // dilation, a 1x3 window, residuals, a real-sized layer, and the largest pair sums (inputs at
  // 255, weights at -64 and 63).
  auto w7 = [&](QCase c) { return bits(c, 7, 8); };
  v.push_back(w7(mk(1, 3, 16, 16, 16, 7, 2, 3, 128, 5)));
  v.push_back(w7(mk(1, 5, 8, 8, 13, 3, 1, 1, 7)));
  v.push_back(w7(mk(1, 33, 6, 6, 17, 1, 2, 0, 128)));
  v.push_back(w7(with_relu(mk(2, 33, 9, 9, 33, 3, 2, 1))));
  QCase w7dil = w7(mk(1, 13, 11, 11, 13, 3, 1, 2, 128));
  w7dil.dil = 2;
  v.push_back(w7dil);
  QCase w7rect = w7(mk(1, 13, 6, 10, 17, 1, 1, 0, 128));
  w7rect.KW = 3;
  w7rect.pads = {0, 1, 0, 1};
  v.push_back(w7rect);
  v.push_back(w7(with_res(mk(1, 33, 7, 7, 33, 1, 1, 0, 0, 3), true)));
  v.push_back(w7(with_res(mk(1, 64, 28, 28, 64, 3, 1, 1, 128), true)));
  v.push_back(w7(mk(1, 16, 5, 13, 48, 3, 1, 1, 128)));
  // Knob pixel_row: 1x1 stride-1 layers over their pixels as one row (tiles cross image rows;
  // runs of tiles are the tasks): channels that the groups do not divide (a padded copy, in 16
  // parallel runs of pixels from 256 pixels on), batch 2 with a residual, 14 x 14 (the AVX2
  // default there), 7-bit weights (vpmaddubsw on x86-avx2), 4-bit weights two per byte, and
  // fewer pixels than a run; once forced off on a layer the AVX2 default gives it.
  auto row = [](QCase c, int on) {
    c.pixel_row = on;
    return c;
  };
  v.push_back(row(mk(1, 17, 7, 9, 33, 1, 1, 0, 7), 1));
  v.push_back(row(mk(1, 19, 16, 17, 24, 1, 1, 0, 128), 1));
  v.push_back(row(with_res(mk(2, 64, 14, 14, 48, 1, 1, 0, 128, 3), true), 1));
  v.push_back(row(with_relu(mk(1, 96, 16, 20, 32, 1, 1, 0)), 1));
  v.push_back(row(w7(with_res(mk(1, 40, 14, 14, 64, 1, 1, 0, 7), false)), 1));
  QCase row4 = row(bits(mk(1, 33, 14, 14, 32, 1, 1, 0, 8, 8), 4, 8), 1);
  row4.per_byte = 2;
  v.push_back(row4);
  v.push_back(row(mk(1, 24, 3, 3, 16, 1, 1, 0), 1));
  v.push_back(row(mk(1, 64, 14, 14, 32, 1, 1, 0), 0));
  for (int64_t C : {8, 19}) {
    QCase ext = w7(mk(1, C, 6, 9, 24, 3, 1, 1, 0));
    ext.extreme = true;
    v.push_back(ext);
  }
  return v;
}();

class Conv2dQExact : public ::testing::TestWithParam<QCase> {};

TEST_P(Conv2dQExact, MatchesIntegerReference) {
  const QCase c = GetParam();
  uint64_t seed = 1469598103934665603ull;  // FNV-1a of the case name: stable per case
  for (unsigned char ch : c.name()) seed = (seed ^ ch) * 1099511628211ull;
  Rng rng(seed);
  const Shape xs{c.N, c.C, c.H, c.W}, ws{c.M, c.C, c.KH, c.KW};

  ConvQParams p;
  p.stride = {c.stride, c.stride};
  p.pads = c.pads;
  p.dil = {c.dil, c.dil};
  p.relu = c.relu;
  p.in_zp = c.in_zp;
  p.out_zp = c.out_zp;
  p.qmax = c.qmax;
  p.ties_to_even = c.even;

  ITensor x = qref::random_levels(xs, rng, 0, c.qmax);
  std::vector<int32_t> w((size_t)qref::numel(ws));
  const int wmax = c.wbits <= 2 ? 1 : (c.ties ? 2 : (1 << (c.wbits - 1)) - 1);
  // 4 and 7 bits: the full two's complement range
  const int wmin = (c.wbits == 4 || c.wbits == 7) && !c.ties ? -wmax - 1 : -wmax;
  for (auto &v : w) v = (int32_t)rng.integer(wmin, wmax);
  if (c.extreme) {
    for (auto &v : x.data) v = c.qmax;
    // Output channels of all -64, all 63, and both in turn.
    for (size_t i = 0; i < w.size(); i++) {
      const int64_t m = (int64_t)i / (c.C * c.KH * c.KW);
      w[i] = m % 3 == 0 ? wmin : m % 3 == 1 ? wmax : (i % 2 ? wmin : wmax);
    }
  }
  if (c.wbits == 1)
    for (auto &v : w) v = v > 0 ? 1 : -1;  // binary weights have no 0
  std::vector<int32_t> zero_bias((size_t)c.M, 0);
  Shape ys;
  // Scale of the accumulator without bias, to choose a bias and multipliers that spread the
  // outputs over the levels (so that the test does not just compare saturated values).
  std::vector<int64_t> acc0 = qref::conv_acc(x, w, ws, zero_bias, p, &ys);
  double ss = 0, sm = 0;
  for (auto a : acc0) sm += (double)a, ss += (double)a * a;
  double mean = sm / acc0.size(), sd = std::sqrt(std::max(1.0, ss / acc0.size() - mean * mean));

  std::vector<int32_t> bias((size_t)c.M), mult((size_t)c.M), shift((size_t)c.M);
  for (int64_t m = 0; m < c.M; m++) {
    if (c.ties) {
      // Multiplier exactly 1/8: an eighth of the outputs are exact .5 ties.
      mult[m] = 1 << 30;
      shift[m] = 33;
    } else {
      // real multiplier ~ (qmax / 4) / sd, as a 31-bit mantissa in [2^30, 2^31) and a shift.
      double target = (c.qmax / 4.0) / sd;
      int e = (int)std::floor(std::log2(target));  // target in [2^e, 2^(e+1))
      mult[m] = (int32_t)rng.integer(1ll << 30, (1ll << 31) - 1);
      shift[m] = std::clamp<int>(30 - e + (int)rng.integer(-1, 1), 30, 45);
    }
    // Centre the channel's outputs around 0.4 * qmax, give or take a random offset.
    double real = mult[m] / std::ldexp(1.0, shift[m]);
    double centre = (0.4 * c.qmax - c.out_zp) / real;
    bias[m] = (int32_t)std::llround(-mean + centre + (double)rng.integer(-(int64_t)sd, (int64_t)sd) / 2);
  }
  if (c.ties) {
    p.res_mult = 1 << 21, p.res_shift = 22;  // (r - res_zp) / 2: every odd difference is a tie
  } else {
    // A 22-bit mantissa, as quantize_graph makes (kResidualMultiplierBits): real 0.25 .. 1.
    p.res_mult = (int32_t)rng.integer(1ll << 21, (1ll << 22) - 1);
    p.res_shift = (int)rng.integer(22, 23);
  }
  p.res_zp = c.res_zp;

  ITensor r;
  if (c.residual) r = qref::random_levels(ys, rng, 0, c.qmax);
  std::vector<int64_t> acc = qref::conv_acc(x, w, ws, bias, p, &ys);
  for (auto a : acc)
    ASSERT_TRUE(a >= INT32_MIN && a <= INT32_MAX) << "test setup: accumulator overflows int32";
  ITensor ref = qref::requantize(acc, ys, mult, shift, c.residual ? &r : nullptr, p);

  // The outputs must exercise the arithmetic, not only the clamps.
  if (c.qmax >= 15) {
    int64_t inside = 0;
    for (auto v : ref.data) inside += v > 0 && v < c.qmax;
    ASSERT_GT(inside, (int64_t)ref.data.size() / 4) << "test setup: outputs mostly saturated";
  } else {
    // Few levels: at least every level but one must occur, and none may take 90% of outputs.
    std::map<int32_t, int64_t> hist;
    for (auto v : ref.data) hist[(int32_t)v]++;
    ASSERT_GE((int)hist.size(), c.qmax) << "test setup: outputs use too few levels";
    for (auto &[lvl, cnt] : hist) ASSERT_LT(cnt, (int64_t)ref.data.size() * 9 / 10) << "level " << lvl;
  }
  if (c.even) {
    ConvQParams up = p;
    up.ties_to_even = false;
    ASSERT_NE(qref::requantize(acc, ys, mult, shift, c.residual ? &r : nullptr, up).data, ref.data)
        << "test setup: no tie on which the two rounding rules differ";
  }
  if (c.ties) {
    // Negative exact ties (acc = 8k + 4 < 0) are where half-up and half-away-from-zero differ.
    int64_t neg_ties = 0;
    for (auto a : acc) neg_ties += a < 0 && ((-a) % 8) == 4;
    ASSERT_GT(neg_ties, 0) << "test setup: no negative rounding ties";
  }

  // Graph: f32 -> quantize -> conv2d_q [+ residual] -> dequantize -> f32.
  qnnc::Graph g;
  g.name = "conv2d_q_" + c.name();
  int xin = qref::add_input(g, "x", xs);
  int xq = qref::add_quantize(g, xin, 1.f, 0, c.qmax);
  int rq = -1;
  if (c.residual) rq = qref::add_quantize(g, qref::add_input(g, "r", ys), 1.f, 0, c.qmax);
  qnnc::Node n;
  n.name = "conv";
  n.op = "conv2d_q";
  n.inputs = {xq, g.add_iconst("conv.weight.q", ws, DType::i8, w), g.add_iconst("conv.bias.q", {c.M}, DType::i32, bias),
              g.add_iconst("conv.mult", {c.M}, DType::i32, mult), g.add_iconst("conv.shift", {c.M}, DType::i32, shift)};
  if (c.residual) n.inputs.push_back(rq);
  n.set_ints("strides", {c.stride, c.stride});
  n.set_ints("pads", {c.pads[0], c.pads[1], c.pads[2], c.pads[3]});
  n.set_ints("dilations", {c.dil, c.dil});
  n.set_i("relu", c.relu ? 1 : 0);
  n.set_i("in_zp", c.in_zp);
  n.set_i("out_zp", c.out_zp);
  n.set_i("qmax", c.qmax);
  n.set_i("weight_bits", c.wbits);
  n.set_i("activation_bits", c.abits);
  n.attrs["rounding"].s = c.even ? "tonearest" : "upward";
  if (c.residual) {
    n.set_i("res_zp", p.res_zp);
    n.set_i("res_mult", p.res_mult);
    n.set_i("res_shift", p.res_shift);
  }
  int y = g.add_value("y", qref::ttype(DType::u8, {}));
  n.outputs = {y};
  g.add_node(n);
  qref::finish(g, {qref::add_dequantize(g, y, 1.f, 0)});
  qref::mark_u8(g, y, 1.f, 0);
  ASSERT_EQ(g.values[y].type.shape, ys);

  // 1-2 bit cases force the bit-serial kernel (the compiler's default picks it only where it
  // measured faster), and so do 3-4 bit cases marked force_bs; 8-bit cases must never get it.
  // Otherwise weights of 3-4 bits must be stored two per byte, of 1-2 bits four per byte.
  const bool want_bitserial = (c.wbits <= 2 && c.abits <= 2) || c.force_bs;
  std::map<std::string, qnnc::Knobs> knobs;
  if (want_bitserial) knobs["conv2d_q"]["bitserial"] = 1;
  if (c.per_byte) knobs["conv2d_q"]["weights_per_byte"] = c.per_byte;
  if (c.amx >= 0) knobs["conv2d_q"]["amx"] = c.amx;
  if (c.wide_tile) knobs["conv2d_q"].insert({{"vec", 32}, {"co_vectors", 2}, {"x_tile", c.wide_tile}});
  if (c.flat) knobs["conv2d_q"].insert({{"vec", 16}, {"co_vectors", c.flat}, {"x_tile", 7}, {"flat_weights", 1}});
  if (c.pixel_row >= 0) knobs["conv2d_q"]["pixel_row"] = c.pixel_row;
  if (c.amx == 1 && !qnnc::detect_cpu_features().count("amx_int8")) GTEST_SKIP() << "this CPU has no AMX";
  qnnc::Module mod = qref::compile(g, knobs);
  bool bitserial = false;
  std::string storage = "none";
  for (const auto &st : mod.manifest()["steps"]) bitserial = bitserial || st.value("describe", "").rfind("conv2d_bs", 0) == 0;
  for (const auto &v : mod.manifest()["values"]) {
    std::string nm = v.value("name", "");
    for (const char *suffix : {".packed", ".nibbles", ".crumbs"})
      if (nm.size() > std::strlen(suffix) && nm.compare(nm.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        storage = suffix;
  }
  EXPECT_EQ(bitserial, want_bitserial) << "kernel choice";
  if (c.amx >= 0)
    for (const auto &st : mod.manifest()["steps"])
      if (st.value("op", "") == "conv2d_q") EXPECT_EQ(st["spec"]["knobs"].value("amx", 0), c.amx) << "knob amx";
  if (c.wide_tile)
    for (const auto &st : mod.manifest()["steps"])
      if (st.value("op", "") == "conv2d_q") {
        EXPECT_EQ(st["spec"]["knobs"].value("vec", 0), 32) << "knob vec";
        EXPECT_EQ(st["spec"]["knobs"].value("co_vectors", 0), 2) << "knob co_vectors";
      }
  if (c.pixel_row >= 0)
    for (const auto &st : mod.manifest()["steps"])
      if (st.value("op", "") == "conv2d_q") EXPECT_EQ(st["spec"]["knobs"].value("pixel_row", 0), c.pixel_row) << "knob pixel_row";
  if (c.flat)
    for (const auto &st : mod.manifest()["steps"])
      if (st.value("op", "") == "conv2d_q") {
        EXPECT_EQ(st["spec"]["knobs"].value("flat_weights", 0), 1) << "knob flat_weights";
        EXPECT_EQ(st["spec"]["knobs"].value("co_vectors", 0), c.flat) << "knob co_vectors";
      }
  // Packed storage by default except on x86 for outputs of 14 columns or more.
  const int64_t OW = (c.W + c.pads[1] + c.pads[3] - c.dil * (c.KW - 1) - 1) / c.stride + 1;
#if defined(__x86_64__) || defined(__i386__)
  const bool x86 = true;  // the module is compiled for the host
#else
  const bool x86 = false;
#endif
  const int per = c.per_byte ? c.per_byte : c.wbits <= 2 ? 4 : c.wbits <= 4 ? 2 : 1;
  const int want_per = c.per_byte || !(x86 && OW >= 14) ? per : 1;
  EXPECT_EQ(storage, want_bitserial ? "none" : want_per == 4 ? ".crumbs" : want_per == 2 ? ".nibbles" : ".packed")
      << "weight storage";
  std::vector<Tensor> in{qref::to_float(x)};
  if (c.residual) in.push_back(qref::to_float(r));
  auto out = mod.run(in);
  ASSERT_EQ(out.size(), 1u);
  qref::expect_exact(out[0], ref, c.name());

  // The same graph for an x86 without AVX-512 (int8 through vpmaddwd on channel pairs,
  // popcounts without vpopcntd), which this host can run too: half the cases (by the name's
  // hash) with the default, the input widened to i16 once (knob wide_input), the other half
  // widening each pair where it is broadcast.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    std::map<std::string, qnnc::Knobs> knobs;
    if (want_bitserial) knobs["conv2d_q"]["bitserial"] = 1;
    if (c.amx == 1) return;  // no AMX there
    const int wide_input = seed & 1 ? 0 : 1;
    if (!wide_input) knobs["conv2d_q"]["wide_input"] = 0;
    if (c.pixel_row >= 0) knobs["conv2d_q"]["pixel_row"] = c.pixel_row;
    qnnc::Module avx2 = qref::compile(g, knobs, "x86-avx2");
    // Weights of 7 bits or fewer stored one per byte take vpmaddubsw pairs there (knob madd_u8),
    // and then no widened input.
    for (const auto &st : avx2.manifest()["steps"])
      if (st.value("describe", "").rfind("conv2d_q", 0) == 0) {
        const auto &k = st["spec"]["knobs"];
        const bool madd = c.wbits <= 7 && k.value("weights_per_byte", 1) == 1;
        EXPECT_EQ(k.value("madd_u8", 0), madd ? 1 : 0) << "knob madd_u8 on x86-avx2";
        if (k.value("weights_per_byte", 1) == 1)
          EXPECT_EQ(k.value("wide_input", -1), madd ? 0 : wide_input) << "knob wide_input on x86-avx2";
        if (c.pixel_row >= 0) EXPECT_EQ(k.value("pixel_row", 0), c.pixel_row) << "knob pixel_row on x86-avx2";
      }
    auto out2 = avx2.run(in);
    ASSERT_EQ(out2.size(), 1u);
    qref::expect_exact(out2[0], ref, c.name() + " on x86-avx2");
  }
}

INSTANTIATE_TEST_SUITE_P(Conv2dQ, Conv2dQExact, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<QCase> &i) { return i.param.name(); });

TEST(Conv2dQCases, NamesAreUniqueAndCasesMany) {
  std::set<std::string> names;
  for (const auto &c : kCases) names.insert(c.name());
  EXPECT_EQ(names.size(), kCases.size());  // unique test names
  EXPECT_GE(kCases.size(), 25u);
}

// Where pixel_row is the integer default (by target string, whatever CPU runs the test): x86
// without AVX-512, a 1x1 stride-1 layer whose rows the tile's 4 columns do not divide but whose
// pixels they do (14 x 14); not at 28 x 28, 3x3, AVX-512 or ARM.
TEST(Conv2dQDefaults, PixelRowOnAvx2WhereRowsLeaveColumns) {
  auto spec = [](int64_t C, int64_t M, int64_t HW, int64_t k) { return spec_helpers::square_conv("conv2d_q", C, M, HW, k); };
  const Halide::Target &avx2 = spec_helpers::kAvx2, &avx512 = spec_helpers::kAvx512, &arm = spec_helpers::kArmDot;
  qnnc::Knobs k = qnnc::default_knobs(spec(432, 432, 14, 1), avx2);
  EXPECT_EQ(qnnc::knob(k, "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(k, "x_tile", 0), 4);
  EXPECT_EQ(k.count("row_major"), 0u) << "tasks are runs of the row's tiles";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(1024, 256, 14, 1), avx2), "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(192, 192, 28, 1), avx2), "pixel_row", 0), 0) << "4 divides 28";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(256, 256, 14, 3), avx2), "pixel_row", 0), 0) << "3x3";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(432, 432, 14, 1), avx512), "pixel_row", 0), 0);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(432, 432, 14, 1), arm), "pixel_row", 0), 0);
  // Channel pairs on AVX2 over channels that 2 vectors of 8 do not divide: 2 vectors, the last
  // block shifted inward over weights packed as one block, where the rule left 1 x 4.
  k = qnnc::default_knobs(spec(116, 116, 28, 1), avx2);
  EXPECT_EQ(qnnc::knob(k, "co_vectors", 0), 2);
  EXPECT_EQ(qnnc::knob(k, "flat_weights", 0), 1);
  EXPECT_EQ(qnnc::knob(k, "row_major", 0), 0);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(232, 232, 7, 1), avx2), "co_vectors", 0), 1) << "1 x 7 stays";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(1024, 1000, 1, 1), avx2), "flat_weights", 0), 0) << "one pixel";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(72, 24, 56, 1), avx2), "co_vectors", 0), 1) << "32 computed for 24";
}

// ---------------------------------------------------------------------------------------------
// Border kernels.

// f32 -> quantize(scale, zp, qmax) -> dequantize(1, 0) -> f32: the levels themselves.
// Both tie rules: "upward" (the default) and "tonearest".
TEST(QuantOps, QuantizeRoundsTiesAsConfiguredAndClamps) {
  for (std::string rounding : {"upward", "tonearest"}) {
  SCOPED_TRACE("rounding " + rounding);
  auto rnd = [&](double v) { return rounding == "upward" ? std::floor(v + 0.5) : qref::round_half_even(v); };
  Rng rng(7);
  struct P {
    float scale;
    int zp, qmax;
  };
  for (P q : {P{0.05f, 3, 255}, P{0.05f, 3, 15}, P{0.5f, 128, 255}, P{0.25f, 0, 15}}) {
    SCOPED_TRACE("scale " + std::to_string(q.scale) + " zp " + std::to_string(q.zp) + " qmax " + std::to_string(q.qmax));
    const Shape s{3, 1037};  // plain 2-D, a length that is not a multiple of the vector width
    Tensor x{s, std::vector<float>((size_t)qref::numel(s))};
    for (size_t i = 0; i < x.data.size(); i++) {
      switch (i % 4) {
        case 0: x.data[i] = (float)(rng.normal() * q.scale * q.qmax / 3); break;   // in range, mostly
        case 1: x.data[i] = (float)(rng.normal() * q.scale * q.qmax * 2); break;   // clamps both ends
        default: {                                                                  // exact ties k + 1/2
          double k = (double)rng.integer(-q.zp - 4, q.qmax - q.zp + 4);
          x.data[i] = (float)((k + 0.5) * q.scale);
        }
      }
    }
    qnnc::Graph g;
    int xin = qref::add_input(g, "x", s);
    int xq = qref::add_quantize(g, xin, q.scale, q.zp, q.qmax, rounding);
    qref::finish(g, {qref::add_dequantize(g, xq, 1.f, 0)});
    auto y = qref::compile(g).run({x})[0];
    ASSERT_EQ(y.shape, s);

    // The kernel computes round(x * (1/scale)) in float (a multiply by the reciprocal, then the
    // tie rule). With scale = 2^-k that is x/scale exactly, so every tie must follow the rule. With scale = 0.05 (1/scale not exact in float) the
    // product of a would-be tie lands an ulp or so off .5 and rounds either way: compare those
    // against the float formula and count how often it departs from the exact x/scale.
    ITensor exact{s, std::vector<int32_t>(x.data.size())}, viafloat = exact;
    int ties = 0, tie_diffs = 0;
    for (size_t i = 0; i < x.data.size(); i++) {
      double e = (double)x.data[i] / (double)q.scale;
      float f = x.data[i] * (1.0f / q.scale);
      exact.data[i] = (int32_t)std::clamp<double>(rnd(e) + q.zp, 0, q.qmax);
      viafloat.data[i] = (int32_t)std::clamp<double>(rnd((double)f) + q.zp, 0, q.qmax);
      if (e - std::floor(e) == 0.5) ties++;
      if (exact.data[i] != viafloat.data[i]) tie_diffs++;
    }
    bool pow2 = q.scale == 0.5f || q.scale == 0.25f;
    if (pow2) {
      EXPECT_GT(ties, 500);
      EXPECT_EQ(tie_diffs, 0);
      qref::expect_exact(y, exact, "quantize vs round(x / scale)");
    } else {
      // Only values within an ulp of a .5 may differ from the exact quotient.
      for (size_t i = 0; i < x.data.size(); i++)
        if (exact.data[i] != viafloat.data[i]) {
          double e = (double)x.data[i] / (double)q.scale;
          EXPECT_LT(std::fabs(e - std::floor(e) - 0.5), 1e-4) << x.data[i];
        }
      qref::expect_exact(y, viafloat, "quantize vs round(x * (1/scale))");
      // Measured: 602 (qmax 255) and 412 (qmax 15, where clamping hides some) of the ~1555
      // would-be ties float((k + 1/2) * 0.05), and no other value, land on the other level than
      // round-half-even of the exact quotient x / scale: a one-level difference confined to
      // inputs within an ulp or so of a rounding boundary.
      std::printf("%s, scale %g: %d of %zu values differ from round(x / scale) (near-ties only)\n",
                  rounding.c_str(), q.scale, tie_diffs, x.data.size());
    }
    // Both ends are reached.
    EXPECT_NE(std::find(y.data.begin(), y.data.end(), 0.f), y.data.end());
    EXPECT_NE(std::find(y.data.begin(), y.data.end(), (float)q.qmax), y.data.end());
  }
}
}

// A 4-D model input's quantize step reads NCHW itself (the layout transform before it folds in,
// passes: fold_input_layout): one step, no layout step, and its levels are the float
// formula's, for an image's 3 channels (columns in vectors, odd width, batch 2) and for 20.
TEST(QuantOps, InputQuantizeReadsNchwDirectly) {
  Rng rng(11);
  for (Shape s : {Shape{2, 3, 5, 37}, Shape{1, 20, 6, 7}}) {
    for (std::string rounding : {"upward", "tonearest"}) {
      SCOPED_TRACE("C " + std::to_string(s[1]) + ", rounding " + rounding);
      const float scale = 0.05f;
      const int zp = 100;
      Tensor x{s, std::vector<float>((size_t)qref::numel(s))};
      for (auto &v : x.data) v = (float)(rng.normal() * 5.0);
      qnnc::Graph g;
      int xin = qref::add_input(g, "x", s);
      int xq = qref::add_quantize(g, xin, scale, zp, 255, rounding);
      // A 1x1 depthwise convolution with weight 1 keeps the levels NHWC inside the module.
      const int64_t C = s[1];
      qnnc::Node n;
      n.name = "id";
      n.op = "conv2d_q";
      n.inputs = {xq, g.add_iconst("id.w", {C, 1, 1, 1}, DType::i8, std::vector<int32_t>((size_t)C, 1)),
                  g.add_iconst("id.b", {C}, DType::i32, std::vector<int32_t>((size_t)C, -zp)),
                  g.add_iconst("id.m", {C}, DType::i32, std::vector<int32_t>((size_t)C, 1 << 23)),
                  g.add_iconst("id.s", {C}, DType::i32, std::vector<int32_t>((size_t)C, 23))};
      n.set_i("group", C);
      n.set_i("in_zp", zp);
      n.set_i("out_zp", zp);
      n.set_i("qmax", 255);
      n.attrs["rounding"].s = rounding;
      int y = g.add_value("y", qref::ttype(DType::u8, {}));
      n.outputs = {y};
      g.add_node(n);
      qref::mark_u8(g, y, scale, zp);
      qref::finish(g, {qref::add_dequantize(g, y, 1.f, 0)});
      qnnc::Module mod = qref::compile(g);
      int layouts_before = 0, quantizes = 0;
      for (const auto &st : mod.manifest()["steps"]) {
        const std::string d = st.value("describe", "");
        if (d.rfind("quantize", 0) == 0) quantizes++;
        if (d.rfind("layout", 0) == 0 && quantizes == 0) layouts_before++;
      }
      EXPECT_EQ(quantizes, 1);
      EXPECT_EQ(layouts_before, 0) << "the input's transpose folds into the quantize step";
      ITensor ref{s, std::vector<int32_t>(x.data.size())};
      for (size_t i = 0; i < x.data.size(); i++) {
        double f = (double)(x.data[i] * (1.0f / scale));
        double r = rounding == "upward" ? std::floor(f + 0.5) : qref::round_half_even(f);
        ref.data[i] = (int32_t)std::clamp<double>(r + zp, 0, 255);
      }
      qref::expect_exact(mod.run({x})[0], ref, "NCHW quantize");
    }
  }
}

// Two paths to the same u8 levels (as floats): equal element for element, and clamped at one
// end or the other somewhere, so that clamping is exercised too.
void expect_same_levels(const qnnc::Tensor &separate, const qnnc::Tensor &folded, int qmax) {
  int ends = 0;
  for (float y : separate.data) ends += y == 0.f || y == (float)qmax;
  EXPECT_GT(ends, 0);
  ASSERT_EQ(separate.data.size(), folded.data.size());
  for (size_t i = 0; i < separate.data.size(); i++) ASSERT_EQ(separate.data[i], folded.data[i]) << "element " << i;
}

// A quantize step folded into the fp32 scale_shift before it (quantize_graph: DenseNet's batch
// norm + ReLU ahead of an integer convolution) gives the integers of the two steps, bit for bit,
// with both tie rules, clamping at both ends, and odd channels over batch 2; also when the
// scale_shift reads a slice of a concatenation (strided).
TEST(QuantOps, ScaleShiftWritesTheQuantizeStepsIntegers) {
  Rng rng(12);
  for (std::string rounding : {"upward", "tonearest"})
    for (bool slice : {false, true})
      for (int64_t channels : {13, 64}) {
        SCOPED_TRACE(rounding + (slice ? " slice" : "") + " C=" + std::to_string(channels));
        const Shape s{2, channels, 5, 7};
        const int64_t C = s[1];
        const float qscale = 0.031f;
        const int zp = 5, qmax = 255;
        qnnc::Graph g;
        int x = qref::add_input(g, "x", s);
        int joined = -1;
        if (slice) {
          // x max-pooled, alone (a prefix) and joined with another block: the scale_shift
          // reads the prefix, a strided slice of the wider concatenation (DenseNet's pattern).
          int a = g.add_value("a", qref::ttype(qnnc::DType::f32, {}));
          int b = g.add_value("b", qref::ttype(qnnc::DType::f32, {}));
          int small = g.add_value("cat_small", qref::ttype(qnnc::DType::f32, {}));
          joined = g.add_value("cat_big", qref::ttype(qnnc::DType::f32, {}));
          qnnc::Node r1, r2, c1, c2;
          r1.name = "pool_a", r1.op = "MaxPool", r1.inputs = {x}, r1.outputs = {a};
          r2.name = "pool_b", r2.op = "MaxPool", r2.inputs = {x}, r2.outputs = {b};
          for (qnnc::Node *p : {&r1, &r2}) {
            p->set_ints("kernel_shape", {3, 3});
            p->set_ints("strides", {1, 1});
            p->set_ints("pads", {1, 1, 1, 1});
          }
          c1.name = "cat_small", c1.op = "Concat", c1.inputs = {a}, c1.outputs = {small};
          c2.name = "cat_big", c2.op = "Concat", c2.inputs = {a, b}, c2.outputs = {joined};
          c1.set_i("axis", 1), c2.set_i("axis", 1);
          g.add_node(r1), g.add_node(r2), g.add_node(c1), g.add_node(c2);
          x = small;
        }
        std::vector<float> sc((size_t)C), sh((size_t)C);
        for (int64_t c = 0; c < C; c++) sc[c] = (float)(rng.normal() * 2), sh[c] = (float)(rng.normal() * 3);
        int scv = g.add_const("ss.scale", {C}, sc), shv = g.add_const("ss.shift", {C}, sh);
        auto scale_shift = [&](const std::string &name, int out) {
          qnnc::Node n;
          n.name = name, n.op = "scale_shift", n.inputs = {x, scv, shv}, n.outputs = {out};
          n.set_i("relu", 1);
          return n;
        };
        // The two steps...
        int v = g.add_value("v", qref::ttype(qnnc::DType::f32, {}));
        g.add_node(scale_shift("ss_f32", v));
        int two = qref::add_dequantize(g, qref::add_quantize(g, v, qscale, zp, qmax, rounding), 1.f, 0);
        // ... and the scale_shift writing u8 itself, as quantize_graph leaves it.
        int u = g.add_value("u", qref::ttype(qnnc::DType::u8, {}));
        qref::mark_u8(g, u, qscale, zp);
        qnnc::Node f = scale_shift("ss_u8", u);
        f.set_i("qmax", qmax);
        f.attrs["rounding"].s = rounding;
        g.add_node(f);
        int one = qref::add_dequantize(g, u, 1.f, 0);
        std::vector<int> outs{two, one};
        if (slice) outs.push_back(joined);
        qref::finish(g, outs);
        qnnc::Tensor in{s, std::vector<float>((size_t)qref::numel(s))};
        for (auto &e : in.data) e = (float)(rng.normal() * 4);
        qnnc::Module m = qref::compile(g);
        auto ys = m.run({in});
        if (slice) {  // the scale_shifts read a slice: they have strides, and nothing is copied
          int strided = 0;
          for (const auto &st : m.manifest()["steps"]) {
            if (st["op"] == "concat") EXPECT_TRUE(st["alias"].get<bool>());
            if (st["op"] == "scale_shift") strided += st["spec"].contains("arg_strides");
          }
          EXPECT_EQ(strided, 2);
        }
        expect_same_levels(ys[0], ys[1], qmax);
      }
}

// Squeeze-and-excitation's gate product with its dequantize and quantize steps folded in
// (quantize_graph: u8 x fp32 gate -> u8) gives the integers of the three steps bit for bit, with
// the gate first or second, both tie rules, odd channels and batch 2.
TEST(QuantOps, GateProductOnIntegersMatchesTheThreeSteps) {
  Rng rng(13);
  for (std::string rounding : {"upward", "tonearest"})
    for (bool gate_first : {true, false})
      for (int64_t channels : {13, 64}) {
        SCOPED_TRACE(rounding + (gate_first ? " gate first" : " gate second") + " C=" + std::to_string(channels));
        const Shape s{2, channels, 5, 7}, gs{2, channels, 1, 1};
        const float in_scale = 0.043f, out_scale = 0.029f;
        const int in_zp = 7, out_zp = 3, qmax = 255;
        qnnc::Graph g;
        int xq = qref::add_quantize(g, qref::add_input(g, "x", s), in_scale, in_zp, qmax);
        int gate = qref::add_input(g, "gate", gs);
        auto mul = [&](const std::string &name, std::vector<int> in, int out) {
          qnnc::Node n;
          n.name = name, n.op = "binary", n.inputs = std::move(in), n.outputs = {out};
          n.attrs["fn"].s = "mul";
          return n;
        };
        // The three steps...
        int dq = qref::add_dequantize(g, xq, in_scale, in_zp);
        int v = g.add_value("v", qref::ttype(qnnc::DType::f32, {}));
        g.add_node(mul("mul_f32", gate_first ? std::vector<int>{gate, dq} : std::vector<int>{dq, gate}, v));
        int three = qref::add_dequantize(g, qref::add_quantize(g, v, out_scale, out_zp, qmax, rounding), 1.f, 0);
        // ... and the product on integers, as quantize_graph leaves it.
        int u = g.add_value("u", qref::ttype(qnnc::DType::u8, {}));
        qref::mark_u8(g, u, out_scale, out_zp);
        qnnc::Node f = mul("mul_u8", {xq, gate}, u);
        f.set_i("qmax", qmax);
        f.attrs["rounding"].s = rounding;
        g.add_node(f);
        int one = qref::add_dequantize(g, u, 1.f, 0);
        qref::finish(g, {three, one});
        qnnc::Tensor x{s, std::vector<float>((size_t)qref::numel(s))}, gt{gs, std::vector<float>((size_t)qref::numel(gs))};
        for (auto &e : x.data) e = (float)(rng.normal() * 4);
        for (auto &e : gt.data) e = (float)(rng.normal() * 1.5);
        qnnc::Module m = qref::compile(g);
        int integer_products = 0;
        for (const auto &st : m.manifest()["steps"])
          integer_products += st["op"] == "binary" && st["spec"]["dtype"] == "u8";
        EXPECT_EQ(integer_products, 1);
        auto ys = m.run({x, gt});
        expect_same_levels(ys[0], ys[1], qmax);
      }
}

TEST(QuantOps, Dequantize) {
  Rng rng(8);
  for (auto [scale, zp] : std::vector<std::pair<float, int>>{{0.05f, 3}, {0.0173f, 128}, {2.5f, 0}}) {
    const Shape s{2, 5, 7, 9};
    ITensor q = qref::random_levels(s, rng, 0, 255);
    qnnc::Graph g;
    int xq = qref::add_quantize(g, qref::add_input(g, "x", s), 1.f, 0, 255);
    qref::finish(g, {qref::add_dequantize(g, xq, scale, zp)});
    auto y = qref::compile(g).run({qref::to_float(q)})[0];
    ASSERT_EQ(y.shape, s);
    for (size_t i = 0; i < q.data.size(); i++) {
      double want = ((double)q.data[i] - zp) * scale;
      // One float multiply of an exact integer: within half an ulp of the real value.
      ASSERT_NEAR(y.data[i], want, std::fabs(want) * 6e-8 + 1e-30) << "element " << i;
      ASSERT_EQ(y.data[i], (float)(q.data[i] - zp) * scale) << "element " << i;
    }
  }
}

// Integer levels -> global_avgpool_q(scale, zp) -> f32 [N,C,1,1] = (mean(q) - zp) * scale.
TEST(QuantOps, GlobalAvgpoolQ) {
  Rng rng(9);
  for (Shape s : {Shape{1, 3, 7, 7}, Shape{2, 33, 5, 3}, Shape{1, 64, 7, 7}, Shape{1, 17, 1, 1}}) {
    const float scale = 0.05f;
    const int zp = 3;
    ITensor q = qref::random_levels(s, rng, 0, 255);
    qnnc::Graph g;
    int xq = qref::add_quantize(g, qref::add_input(g, "x", s), 1.f, 0, 255);
    qnnc::Node n;
    n.name = "gap";
    n.op = "global_avgpool_q";
    n.inputs = {xq};
    int y = g.add_value("gap.out", qref::ttype(DType::f32, {}));
    n.outputs = {y};
    n.set_f("scale", scale);
    n.set_i("zero_point", zp);
    g.add_node(n);
    qref::finish(g, {y});
    auto out = qref::compile(g).run({qref::to_float(q)})[0];
    ASSERT_EQ(out.shape, (Shape{s[0], s[1], 1, 1}));
    const int64_t HW = s[2] * s[3];
    for (int64_t b = 0; b < s[0]; b++)
      for (int64_t c = 0; c < s[1]; c++) {
        int64_t sum = 0;
        for (int64_t h = 0; h < s[2]; h++)
          for (int64_t w = 0; w < s[3]; w++) sum += q.at(b, c, h, w);
        double want = ((double)sum / HW - zp) * scale;
        EXPECT_NEAR(out.data[b * s[1] + c], want, std::fabs(want) * 3e-7 + 1e-6) << "n" << b << " c" << c;
      }
  }
}

// Integer levels -> maxpool on u8 -> dequantize(1, 0): max over the in-image window.
TEST(QuantOps, MaxpoolU8) {
  Rng rng(10);
  struct P {
    Shape s;
    int64_t k, stride, pad;
    int lo;  // smallest level in the input (> 0: padding must not leak a 0 into the max)
  };
  for (const P &c : {P{{1, 3, 9, 9}, 3, 2, 1, 0}, P{{1, 13, 8, 8}, 2, 2, 0, 0}, P{{2, 64, 7, 7}, 3, 1, 1, 100},
                     P{{1, 17, 11, 10}, 3, 2, 1, 200}}) {
    SCOPED_TRACE(::testing::PrintToString(c.s) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " p" +
                 std::to_string(c.pad));
    ITensor q = qref::random_levels(c.s, rng, c.lo, 255);
    qnnc::Graph g;
    int xq = qref::add_quantize(g, qref::add_input(g, "x", c.s), 1.f, 0, 255);
    qnnc::Node n;
    n.name = "pool";
    n.op = "maxpool";
    n.inputs = {xq};
    int y = g.add_value("pool.out", qref::ttype(DType::u8, {}));
    n.outputs = {y};
    n.set_ints("kernel_shape", {c.k, c.k});
    n.set_ints("strides", {c.stride, c.stride});
    n.set_ints("pads", {c.pad, c.pad, c.pad, c.pad});
    g.add_node(n);
    qref::finish(g, {qref::add_dequantize(g, y, 1.f, 0)});
    qref::mark_u8(g, y, 1.f, 0);
    ASSERT_EQ(g.values[y].type.dtype, DType::u8);

    const int64_t OH = qref::out_size(c.s[2], c.k, c.stride, c.pad, c.pad, 1);
    const int64_t OW = qref::out_size(c.s[3], c.k, c.stride, c.pad, c.pad, 1);
    ITensor ref{{c.s[0], c.s[1], OH, OW}, std::vector<int32_t>((size_t)(c.s[0] * c.s[1] * OH * OW))};
    for (int64_t b = 0; b < c.s[0]; b++)
      for (int64_t ch = 0; ch < c.s[1]; ch++)
        for (int64_t oy = 0; oy < OH; oy++)
          for (int64_t ox = 0; ox < OW; ox++) {
            int32_t m = -1;
            for (int64_t ky = 0; ky < c.k; ky++)
              for (int64_t kx = 0; kx < c.k; kx++) {
                int64_t iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx;
                if (iy >= 0 && iy < c.s[2] && ix >= 0 && ix < c.s[3]) m = std::max(m, q.at(b, ch, iy, ix));
              }
            ref.at(b, ch, oy, ox) = m;
          }
    auto out = qref::compile(g).run({qref::to_float(q)})[0];
    qref::expect_exact(out, ref, "maxpool u8");
  }
}

}  // namespace

// A dense layer quantized (--quantize-dense) runs as a 1x1 conv2d_q on a 2-D [N, K] input,
// viewed as a 1x1 image of K channels. Bit-exact against the same integer reference.
TEST(Conv2dQDense, MatchesIntegerReference) {
  struct D {
    int64_t N, K, M;
    bool relu;
  };
  for (D d : {D{1, 7, 3, false}, D{2, 19, 21, true}, D{1, 2048, 1000, false}}) {
    SCOPED_TRACE("N" + std::to_string(d.N) + " K" + std::to_string(d.K) + " M" + std::to_string(d.M));
    Rng rng((uint64_t)(d.N * 1000003 + d.K * 1009 + d.M));
    const Shape xs4{d.N, d.K, 1, 1}, ws{d.M, d.K, 1, 1};
    ITensor x = qref::random_levels(xs4, rng, 0, 255);
    std::vector<int32_t> w((size_t)qref::numel(ws));
    for (auto &v : w) v = (int32_t)rng.integer(-127, 127);
    ConvQParams p;
    p.relu = d.relu;
    p.in_zp = 3;
    p.out_zp = 128;
    std::vector<int32_t> bias((size_t)d.M), mult((size_t)d.M), shift((size_t)d.M);
    for (int64_t m = 0; m < d.M; m++) {
      bias[m] = (int32_t)rng.integer(-20000, 20000);
      mult[m] = (int32_t)rng.integer(1ll << 30, (1ll << 31) - 1);
      // Spread the outputs over the levels: |acc| ~ 127 * 128 * sqrt(K) / 2.
      shift[m] = 31 + (int)std::lround(std::log2(127.0 * 128.0 * std::sqrt((double)d.K) / 2 / 40));
    }
    Shape ys;
    ITensor ref = qref::requantize(qref::conv_acc(x, w, ws, bias, p, &ys), ys, mult, shift, nullptr, p);
    ref.shape = {d.N, d.M};
    int inside = 0;
    for (auto v : ref.data) inside += v > 0 && v < 255;
    ASSERT_GT(inside, (int)ref.data.size() / 4) << "test setup: outputs mostly saturated";

    qnnc::Graph g;
    g.name = "dense_q";
    int xin = qref::add_input(g, "x", {d.N, d.K});
    int xq = qref::add_quantize(g, xin, 1.f, 0, 255);
    qnnc::Node n;
    n.name = "fc";
    n.op = "conv2d_q";
    n.inputs = {xq, g.add_iconst("fc.weight.q", ws, DType::i8, w), g.add_iconst("fc.bias.q", {d.M}, DType::i32, bias),
                g.add_iconst("fc.mult", {d.M}, DType::i32, mult), g.add_iconst("fc.shift", {d.M}, DType::i32, shift)};
    n.set_i("relu", d.relu ? 1 : 0);
    n.set_i("in_zp", p.in_zp);
    n.set_i("out_zp", p.out_zp);
    n.set_i("qmax", 255);
    int y = g.add_value("y", qref::ttype(DType::u8, {}));
    n.outputs = {y};
    g.add_node(n);
    qref::finish(g, {qref::add_dequantize(g, y, 1.f, 0)});
    qref::mark_u8(g, y, 1.f, 0);
    ITensor x2 = x;
    x2.shape = {d.N, d.K};
    auto out = qref::compile(g).run({qref::to_float(x2)});
    ASSERT_EQ(out.size(), 1u);
    qref::expect_exact(out[0], ref, "dense as conv2d_q");
  }
}
