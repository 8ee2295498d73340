// The integer kernels use each target's dot-product / popcount instructions: generated assembly
// of a conv2d_q and a conv2d_bs kernel is checked for vpdpbusd / vpopcntd (host with AVX512-VNNI
// and VPOPCNTDQ), sdot (rpi5), widening multiplies without sdot (rpi4) and cnt (both Pis), also
// with 2- and 4-bit weights stored 4 and 2 per byte; and two schedules that once fell back to
// byte-by-byte code: dense rows of int8 weights (gathers) and max pools over few channels; the
// float requantization epilogue; fp32 tiles that divide the channels; int8 tiles over odd channel
// counts with dense weight loads; and bit-plane outputs
// packed from compare masks; AMX tile products on Sapphire Rapids.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

#include "codegen/kernel_cache.h"
#include "codegen/target.h"
#include "kernels/halide_kernel.h"

namespace {

qnnc::KernelSpec conv_spec(const std::string &kind, int wb, int ab) {
  qnnc::KernelSpec s;
  s.kind = kind;
  s.in_shape = {1, 64, 14, 14};
  s.out_shape = {1, 64, 14, 14};
  s.kernel = {3, 3};
  s.pads = {1, 1, 1, 1};
  s.relu = true;
  s.dtype = "u8";
  if (kind == "conv2d_bs") s.knobs = {{"weight_bits", wb}, {"activation_bits", ab}};
  if (kind == "conv2d_q" && wb <= 4) s.knobs = {{"weights_per_byte", wb <= 2 ? 4 : 2}};
  return s;
}

// Assembly of spec's kernel as the compiler driver would generate it for target.
std::string assembly(qnnc::KernelSpec s, const std::string &target) {
  qnnc::TargetInfo t = qnnc::resolve_target(target);
  Halide::Target ht(qnnc::kernel_target_string(s, t));
  qnnc::Knobs k = qnnc::default_knobs(s, ht);
  for (auto &[n, v] : s.knobs) k[n] = v;
  s.knobs = k;
  qnnc::HalideKernel hk = qnnc::build_kernel(s, ht);
  std::string path = testing::TempDir() + "/qnnc_asm_" + std::to_string(getpid()) + ".s";
  hk.pipeline.compile_to_assembly(path, hk.arguments(), "k", ht);
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::remove(path.c_str());
  return ss.str();
}

int count(const std::string &text, const std::string &mnemonic) {
  int n = 0;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) {
    size_t a = line.find_first_not_of(" \t");
    if (a != std::string::npos && line.compare(a, mnemonic.size(), mnemonic) == 0 &&
        (a + mnemonic.size() == line.size() || isspace((unsigned char)line[a + mnemonic.size()])))
      n++;
  }
  return n;
}

// Vector elements inserted straight from memory (vinsertps, vpinsrb/w/d/q; not stack reloads):
// a gather written out.
int element_loads(const std::string &a) {
  int n = 0;
  std::istringstream is(a);
  for (std::string line; std::getline(is, line);) {
    size_t i = line.find_first_not_of(" \t");
    if (i == std::string::npos) continue;
    if (line.compare(i, 9, "vinsertps") != 0 && line.compare(i, 6, "vpinsr") != 0) continue;
    const std::string ops = line.substr(0, line.find('#'));
    n += ops.find("(%") != std::string::npos && ops.find("(%rsp)") == std::string::npos;
  }
  return n;
}

TEST(KernelAsm, HostInt8UsesVnni) {
  if (!__builtin_cpu_supports("avx512vnni")) GTEST_SKIP() << "host has no AVX512-VNNI";
  std::string a = assembly(conv_spec("conv2d_q", 8, 8), "host");
  // A host with AMX takes tile products for this layer instead (AmxInt8UsesTileProducts).
  EXPECT_GT(count(a, "vpdpbusd") + count(a, "tdpbusd"), 0);
  EXPECT_GT(count(assembly(conv_spec("conv2d_q", 8, 8), "x86-64-linux-avx512_zen4"), "vpdpbusd"), 0);
}

qnnc::KernelSpec u8_window(const std::string &kind, std::vector<int64_t> in, std::vector<int64_t> out, int64_t k,
                           int64_t stride, int64_t pad);

// On Sapphire Rapids the int8 convolutions that pay for it run on AMX: tile products
// (tdpbusd) of tiles loaded from memory, the accumulator stored whole for the epilogue, also a
// 3x3 layer at 7x7 (through padded rows). Zen 4 has no AMX; and on Sapphire Rapids a 1x1 stride-2
// layer into 7 columns (16-column tiles measured slower) stays on vpdpbusd. Checked on target
// strings, whatever CPU runs the test.
TEST(KernelAsm, AmxInt8UsesTileProducts) {
  const std::string spr = "x86-64-linux-avx512_sapphirerapids", zen4 = "x86-64-linux-avx512_zen4";
  qnnc::KernelSpec wide = conv_spec("conv2d_q", 8, 8);
  wide.in_shape = {1, 64, 28, 28};
  wide.out_shape = {1, 64, 28, 28};
  std::string a = assembly(wide, spr);
  EXPECT_GT(count(a, "tdpbusd"), 0);
  EXPECT_GT(count(a, "tileloadd"), 0);
  EXPECT_GT(count(a, "tilestored"), 0);
  EXPECT_EQ(count(a, "vpdpbusd"), 0);
  EXPECT_EQ(count(assembly(wide, zen4), "tdpbusd"), 0);
  qnnc::KernelSpec small = conv_spec("conv2d_q", 8, 8);
  small.in_shape = {1, 64, 7, 7};
  small.out_shape = {1, 64, 7, 7};
  EXPECT_GT(count(assembly(small, spr), "tdpbusd"), 0);
  qnnc::KernelSpec narrow = u8_window("conv2d_q", {1, 256, 14, 14}, {1, 512, 7, 7}, 1, 2, 0);
  a = assembly(narrow, spr);
  EXPECT_EQ(count(a, "tdpbusd"), 0);
  EXPECT_GT(count(a, "vpdpbusd"), 0);
}

// 4-bit weights stored two per byte are unpacked in registers and still meet the dot product.
TEST(KernelAsm, PackedWeightsKeepTheDotProduct) {
  for (int wb : {4, 2}) {
    if (__builtin_cpu_supports("avx512vnni"))
      EXPECT_GT(count(assembly(conv_spec("conv2d_q", wb, 8), "host"), "vpdpbusd"), 0) << wb;
    EXPECT_GT(count(assembly(conv_spec("conv2d_q", wb, 8), "rpi5"), "sdot"), 0) << wb;
  }
}

// Without VNNI (an AVX2-only x86), u8 x i8 products pair up through vpmaddubsw / vpmaddwd.
TEST(KernelAsm, Avx2Int8FallsBackToMaddubsw) {
  std::string a = assembly(conv_spec("conv2d_q", 8, 8), "x86-avx2");
  EXPECT_EQ(count(a, "vpdpbusd"), 0);
  EXPECT_GT(count(a, "vpmaddubsw") + count(a, "vpmaddwd"), 0);
  EXPECT_EQ(a.find("zmm"), std::string::npos) << "AVX-512 registers in an AVX2 kernel";
}

// The innermost loop of conv2d_q's reduction (over channel groups): the lines from its header
// label to its end. (Halide renames a Func defined again in one process: acc, acc$1, ...)
std::string reduction_loop(const std::string &a) {
  std::smatch head, end;
  static const std::regex head_re("_for_acc(\\$\\d+)?\\.s1\\.r\\$y\"\n"), end_re("_end_for_acc(\\$\\d+)?\\.s1\\.r\\$y\"");
  if (!std::regex_search(a, head, head_re)) return "";
  const std::string rest = head.suffix().str();
  return std::regex_search(rest, end, end_re) ? end.prefix().str() : "";
}

// With the input widened to i16 once (knob wide_input, the AVX2 default), a reduction step
// broadcasts each channel pair with one 32-bit load and no zero-extension; widened in the
// loop (wide_input 0), every broadcast carries a vpmovzxbw.
TEST(KernelAsm, Avx2Int8BroadcastsWidenedPairs) {
  std::string loop = reduction_loop(assembly(conv_spec("conv2d_q", 8, 8), "x86-avx2"));
  ASSERT_FALSE(loop.empty());
  EXPECT_GT(count(loop, "vpmaddwd"), 0);
  EXPECT_GT(count(loop, "vpbroadcastd"), 0);
  EXPECT_EQ(count(loop, "vpmovzxbw"), 0);
  qnnc::KernelSpec narrow = conv_spec("conv2d_q", 8, 8);
  narrow.knobs = {{"wide_input", 0}};
  loop = reduction_loop(assembly(narrow, "x86-avx2"));
  ASSERT_FALSE(loop.empty());
  EXPECT_GT(count(loop, "vpmovzxbw"), 0);
}

// With 7-bit weights (knob madd_u8, which lowering sets for them on x86 with AVX2 and no VNNI):
// a group of 4 channels is vpmaddubsw on the raw bytes, then vpmaddwd against ones, with no
// widening of weights or inputs in the reduction loop.
TEST(KernelAsm, Avx2SevenBitWeightsSumPairsInSixteenBits) {
  qnnc::KernelSpec s = conv_spec("conv2d_q", 8, 8);
  s.knobs = {{"madd_u8", 1}, {"group", 4}};
  std::string loop = reduction_loop(assembly(s, "x86-avx2"));
  ASSERT_FALSE(loop.empty());
  EXPECT_GT(count(loop, "vpmaddubsw"), 0);
  EXPECT_EQ(count(loop, "vpmaddubsw"), count(loop, "vpmaddwd"));
  EXPECT_EQ(count(loop, "vpmovsxbw") + count(loop, "vpmovzxbw"), 0);
  // Without it (8-bit weights), no vpmaddubsw anywhere: it would saturate.
  EXPECT_EQ(count(assembly(conv_spec("conv2d_q", 8, 8), "x86-avx2"), "vpmaddubsw"), 0);
}

TEST(KernelAsm, HostBitSerialUsesVpopcnt) {
  if (!__builtin_cpu_supports("avx512vpopcntdq")) GTEST_SKIP() << "host has no AVX512-VPOPCNTDQ";
  EXPECT_GT(count(assembly(conv_spec("conv2d_bs", 1, 1), "host"), "vpopcntd"), 0);
}

TEST(KernelAsm, Rpi5Int8UsesSdot) {
  std::string a = assembly(conv_spec("conv2d_q", 8, 8), "rpi5");
  EXPECT_GT(count(a, "sdot"), 0);
}

TEST(KernelAsm, Rpi4Int8HasNoDotProduct) {
  std::string a = assembly(conv_spec("conv2d_q", 8, 8), "rpi4");
  EXPECT_EQ(count(a, "sdot") + count(a, "udot"), 0);
  EXPECT_GT(count(a, "smull") + count(a, "smull2") + count(a, "smlal") + count(a, "smlal2"), 0);
}

TEST(KernelAsm, PiBitSerialUsesCnt) {
  for (const char *t : {"rpi4", "rpi5"}) EXPECT_GT(count(assembly(conv_spec("conv2d_bs", 2, 2), t), "cnt"), 0) << t;
}

// A spec over u8 activations with a square window (k x k, stride, padding on every side).
qnnc::KernelSpec u8_window(const std::string &kind, std::vector<int64_t> in, std::vector<int64_t> out, int64_t k,
                           int64_t stride, int64_t pad) {
  qnnc::KernelSpec s;
  s.kind = kind;
  s.in_shape = std::move(in);
  s.out_shape = std::move(out);
  s.kernel = {k, k};
  s.stride = {stride, stride};
  s.pads = {pad, pad, pad, pad};
  s.dtype = "u8";
  return s;
}

}  // namespace

// A row of one column (dense layers, squeeze-and-excitation) streams its weights with dense
// vector loads: with 4 vectors of output channels per tile, Halide 21 gathered the 4th
// vector's weights byte by byte (vpinsrb), 4-5x slower, so x86 defaults stop at 3. Checked for
// two x86 targets, whatever CPU runs the test.
TEST(KernelAsm, DenseRowsLoadWeightsWithoutGathers) {
  qnnc::KernelSpec s = u8_window("conv2d_q", {1, 1024, 1, 1}, {1, 512, 1, 1}, 1, 1, 0);
  s.relu = true;
  for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx512_sapphirerapids"}) {
    std::string a = assembly(s, target);
    EXPECT_GT(count(a, "vpdpbusd"), 0) << target;
    EXPECT_EQ(count(a, "vpinsrb"), 0) << target;
    qnnc::KernelSpec four = s;
    four.knobs = {{"co_vectors", 4}};
    std::printf("%s: vpinsrb with 4 vectors per tile: %d, with the default: %d\n", target,
                count(assembly(four, target), "vpinsrb"), count(a, "vpinsrb"));
  }
}

// Max pools over fewer channels than a vector holds (ShuffleNet's 24 u8 channels) still run on
// vectors (vpmaxub), not byte by byte.
TEST(KernelAsm, NarrowMaxPoolsAreVectorized) {
  qnnc::KernelSpec s = u8_window("maxpool", {1, 24, 20, 20}, {1, 24, 10, 10}, 3, 2, 1);
  for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx2-fma"})
    EXPECT_GT(count(assembly(s, target), "vpmaxub"), 0) << target;
}

// The requantization epilogue multiplies in single precision: no 64-bit products (vpmuldq on
// x86, smull on the Pis) and no saturating 64 -> 32 bit narrowing, in the integer convolution
// and the depthwise one, on every target.
TEST(KernelAsm, RequantizationMultipliesInFloat) {
  qnnc::KernelSpec conv = u8_window("conv2d_q", {1, 24, 14, 14}, {1, 48, 14, 14}, 1, 1, 0);
  qnnc::KernelSpec dw = u8_window("dwconv2d_q", {1, 48, 14, 14}, {1, 48, 14, 14}, 3, 1, 1);
  dw.group = 48;
  for (const qnnc::KernelSpec &s : {conv, dw}) {
    for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx512_sapphirerapids",
                               "x86-64-linux-avx2-fma"}) {
      std::string a = assembly(s, target);
      EXPECT_GT(count(a, "vmulps"), 0) << s.kind << " " << target;
      EXPECT_EQ(count(a, "vpmuldq") + count(a, "vpmovsqd") + count(a, "vpmuludq"), 0) << s.kind << " " << target;
    }
    for (const char *target : {"rpi4", "rpi5"}) {
      std::string a = assembly(s, target);
      EXPECT_GT(count(a, "fmul"), 0) << s.kind << " " << target;
      // Signed 32 x 32 -> 64-bit products (the 16-bit ones, v.4s from v.4h, are the rpi4's dot
      // products; unsigned ones divide indices by constants).
      int wide = 0;
      std::istringstream is(a);
      for (std::string line; std::getline(is, line);)
        wide += line.find("smull") != std::string::npos && line.find(".2d") != std::string::npos;
      EXPECT_EQ(wide, 0) << s.kind << " " << target;
    }
  }
}

// Depthwise int8 over a multiple of 64 channels takes channel quads on x86 with VNNI: vpdpbusd,
// no widening multiply-adds; on AVX2 the widening form stays.
TEST(KernelAsm, DepthwiseInt8UsesChannelQuads) {
  qnnc::KernelSpec dw = u8_window("dwconv2d_q", {1, 128, 14, 14}, {1, 128, 14, 14}, 3, 1, 1);
  dw.group = 128;
  for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx512_sapphirerapids"}) {
    std::string a = assembly(dw, target);
    EXPECT_GT(count(a, "vpdpbusd"), 0) << target;
    EXPECT_EQ(count(a, "vpmaddwd") + count(a, "vpdpwssd"), 0) << target;
  }
  std::string a = assembly(dw, "x86-64-linux-avx2-fma");
  EXPECT_EQ(count(a, "vpdpbusd"), 0);
  EXPECT_GT(count(a, "vpmaddwd"), 0);
}

// fp32 1x1 convolutions with a short reduction (24 -> 72 channels, MobileNet-class expansions)
// take tiles that divide the channels on AVX-512 targets (kernels/conv2d.cpp:
// channel_dividing_tile): 8-lane vectors (ymm) x 9, whose weights load as whole vectors. The
// general rule's 16-lane tile leaves a block shifted inward across two packed blocks, whose
// weights Halide loads element by element (vinsertps from memory). On AVX2 the general rule
// stays. Checked on the target strings, whatever CPU runs the test.
TEST(KernelAsm, Fp32ShortReductionTilesDivideTheChannels) {
  qnnc::KernelSpec s = u8_window("conv2d", {1, 24, 56, 56}, {1, 72, 56, 56}, 1, 1, 0);
  s.dtype = "f32";
  s.relu = true;
  for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx512_sapphirerapids"}) {
    Halide::Target ht(qnnc::kernel_target_string(s, qnnc::resolve_target(target)));
    qnnc::Knobs k = qnnc::default_knobs(s, ht);
    EXPECT_EQ(k["vec"], 8) << target;
    EXPECT_EQ(k["co_vectors"], 9) << target;
    std::string a = assembly(s, target);
    EXPECT_GT(count(a, "vfmadd231ps"), 0) << target;
    EXPECT_EQ(element_loads(a), 0) << target;
    qnnc::KernelSpec general = s;
    general.knobs = {{"vec", 16}, {"co_vectors", 1}, {"x_tile", 8}};
    const int general_loads = element_loads(assembly(general, target));
    EXPECT_GT(general_loads, 0) << target << ": the check would not see a shifted block's element loads";
    std::printf("%s: element loads with the general 16-lane tile: %d, with the default: %d\n", target,
                general_loads, element_loads(a));
  }
  Halide::Target avx2(qnnc::kernel_target_string(s, qnnc::resolve_target("x86-64-linux-avx2-fma")));
  EXPECT_NE(qnnc::default_knobs(s, avx2)["co_vectors"], 9);
}

// int8 layers whose output channels 16 does not divide (RegNet's 168), or that come in an odd
// number of 16-lane vectors, take tiles of 3 vectors (or 2) on VNNI x86, a last block shifted
// inward where they do not divide the channels, over weights packed as one block of all
// channels (knob flat_weights; kernels/conv2d_q.cpp: odd_channel_tile): every tile's weights
// load as whole vectors. Packed in blocks of the tile's 48 channels instead, the shifted block's
// weights straddle two blocks and load byte by byte. Checked on the target strings, whatever
// CPU runs the test.
TEST(KernelAsm, Int8OddChannelTilesLoadWeightsDensely) {
  qnnc::KernelSpec s = u8_window("conv2d_q", {1, 168, 28, 28}, {1, 168, 28, 28}, 1, 1, 0);
  s.relu = true;
  for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx512_sapphirerapids"}) {
    Halide::Target ht(qnnc::kernel_target_string(s, qnnc::resolve_target(target)));
    qnnc::Knobs k = qnnc::default_knobs(s, ht);
    EXPECT_EQ(k["flat_weights"], 1) << target;
    EXPECT_EQ(k["co_vectors"], 3) << target;
    EXPECT_EQ(k["x_tile"], 7) << target;
    EXPECT_EQ(qnnc::knob(k, "amx", 0), 0) << target;
    std::string a = assembly(s, target);
    EXPECT_GT(count(a, "vpdpbusd"), 0) << target;
    EXPECT_EQ(element_loads(a), 0) << target;
    qnnc::KernelSpec blocked = s;
    blocked.knobs = {{"flat_weights", 0}};
    const int blocked_loads = element_loads(assembly(blocked, target));
    EXPECT_GT(blocked_loads, 0) << target << ": the check would not see a shifted block's element loads";
    std::printf("%s: element loads with weights in blocks of 48 channels: %d, one block: %d\n", target,
                blocked_loads, element_loads(a));
  }
  // An odd number of 16-lane vectors: 15 (240 channels) in blocks of 3 as packed, 5 (80) in
  // two blocks of 3 over flat weights; an even number (160) keeps the general rule's 2 x 7; and
  // so does x86 without VNNI.
  const Halide::Target zen4("x86-64-linux-avx512_zen4");
  for (auto [M, flat] : {std::pair<int64_t, int>{240, 0}, {80, 1}}) {
    qnnc::KernelSpec odd = u8_window("conv2d_q", {1, 64, 28, 28}, {1, M, 28, 28}, 1, 1, 0);
    qnnc::Knobs ko = qnnc::default_knobs(odd, zen4);
    EXPECT_EQ(ko["co_vectors"], 3) << M;
    EXPECT_EQ(qnnc::knob(ko, "flat_weights", 0), flat) << M;
  }
  qnnc::KernelSpec even = u8_window("conv2d_q", {1, 160, 28, 28}, {1, 160, 28, 28}, 1, 1, 0);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(even, zen4), "flat_weights", 0), 0);
  EXPECT_EQ(qnnc::default_knobs(even, zen4)["co_vectors"], 2);
  // The bit-serial kernel shares conv2d_q's defaults but packs in blocks: it keeps the general rule.
  qnnc::KernelSpec bs = s;
  bs.kind = "conv2d_bs";
  bs.knobs = {{"weight_bits", 1}, {"activation_bits", 1}};
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(bs, zen4), "flat_weights", 0), 0);
  EXPECT_EQ(qnnc::default_knobs(bs, zen4)["co_vectors"], 1);
  // x86 without VNNI (channel pairs): 2 vectors of 8 lanes, the last block shifted inward over
  // flat weights (avx2_shifted_pair_tile), also loaded without element loads.
  Halide::Target avx2(qnnc::kernel_target_string(s, qnnc::resolve_target("x86-64-linux-avx2-fma")));
  const qnnc::Knobs k2 = qnnc::default_knobs(s, avx2);
  EXPECT_EQ(qnnc::knob(k2, "flat_weights", 0), 1);
  EXPECT_EQ(qnnc::knob(k2, "co_vectors", 0), 2);
  const std::string a2 = assembly(s, "x86-64-linux-avx2-fma");
  EXPECT_GT(count(a2, "vpmaddwd"), 0);
  EXPECT_EQ(element_loads(a2), 0) << "x86-64-linux-avx2-fma";
}

// fp32 1x1 layers over channels that 16 does not divide under a long reduction (216 -> 168)
// take 3-vector tiles over weights in one block on AVX-512 (kernels/conv2d.cpp:
// channel_dividing_tile), whose shifted last block loads whole vectors; above 4 MB of weights
// they keep two vectors in blocks of the tile.
TEST(KernelAsm, Fp32FlatWeightsLoadDensely) {
  qnnc::KernelSpec s = u8_window("conv2d", {1, 216, 28, 28}, {1, 168, 28, 28}, 1, 1, 0);
  s.dtype = "f32";
  const std::string zen4 = "x86-64-linux-avx512_zen4";
  Halide::Target ht(qnnc::kernel_target_string(s, qnnc::resolve_target(zen4)));
  qnnc::Knobs k = qnnc::default_knobs(s, ht);
  EXPECT_EQ(k["flat_weights"], 1);
  EXPECT_EQ(k["co_vectors"], 3);
  EXPECT_EQ(element_loads(assembly(s, zen4)), 0);
  qnnc::KernelSpec blocked = s;
  blocked.knobs = {{"flat_weights", 0}};
  EXPECT_GT(element_loads(assembly(blocked, zen4)), 0) << "the check would not see a shifted block's element loads";
  qnnc::KernelSpec big = u8_window("conv2d", {1, 408, 14, 14}, {1, 1512, 7, 7}, 3, 2, 1);
  big.dtype = "f32";
  qnnc::Knobs kb = qnnc::default_knobs(big, ht);
  EXPECT_EQ(qnnc::knob(kb, "flat_weights", 0), 0);
  EXPECT_EQ(kb["co_vectors"], 2);
}

// Grouped layers whose last vector of a group runs past its end (groups of 56 in 16 lanes,
// forced where the default lanes divide the group) build for both Pis and x86, fp32 and
// integer, and keep their dot products where the target has them; and the int8 tile over flat
// weights (168 channels, forced) builds for the Pis.
TEST(KernelAsm, PaddedGroupsAndFlatWeightsBuildForEveryTarget) {
  for (const char *kind : {"dwconv2d_q", "conv2d_grouped"}) {
    qnnc::KernelSpec g = u8_window(kind, {1, 112, 9, 9}, {1, 112, 9, 9}, 3, 1, 1);
    g.group = 2;
    if (std::string(kind) == "conv2d_grouped") g.dtype = "f32";
    g.knobs = {{"vec", 16}};
    for (const char *target : {"rpi4", "rpi5", "x86-64-linux-avx512_zen4", "x86-64-linux-avx2-fma"}) {
      std::string a = assembly(g, target);
      EXPECT_FALSE(a.empty()) << kind << " " << target;
      if (std::string(kind) == "dwconv2d_q" && std::string(target) == "x86-64-linux-avx512_zen4")
        EXPECT_GT(count(a, "vpdpbusd"), 0) << "grouped channel quads";
    }
  }
  qnnc::KernelSpec s = u8_window("conv2d_q", {1, 40, 14, 14}, {1, 168, 14, 14}, 1, 1, 0);
  s.knobs = {{"vec", 16}, {"co_vectors", 3}, {"x_tile", 7}, {"flat_weights", 1}};
  EXPECT_GT(count(assembly(s, "rpi5"), "sdot"), 0);
  EXPECT_FALSE(assembly(s, "rpi4").empty());
}

// A bit-serial layer that writes bit planes packs each word of 32 output channels from the two
// 16-lane compare masks (kunpckwd), not with a horizontal sum over the lanes (the pass in
// kernels/pack_bits.h; without it these kernels have no kunpckwd at all).
TEST(KernelAsm, BitPlaneOutputsPackFromMasks) {
  qnnc::KernelSpec s = conv_spec("conv2d_bs", 1, 1);
  s.kernel = {1, 1};
  s.pads = {0, 0, 0, 0};
  s.qmax = 1;
  s.residual = true;
  s.knobs = {{"weight_bits", 1}, {"activation_bits", 1}, {"output_bits", 1}, {"residual_bits", 1}, {"thresholds", 2}};
  for (const char *target : {"x86-64-linux-avx512_zen4", "x86-64-linux-avx512_sapphirerapids"}) {
    std::string a = assembly(s, target);
    EXPECT_GT(count(a, "vpopcntd"), 0) << target;
    EXPECT_GT(count(a, "kunpckwd"), 0) << target;
    std::printf("%s: kunpckwd %d, vextracti64x4 %d, vpshufd %d\n", target, count(a, "kunpckwd"),
                count(a, "vextracti64x4"), count(a, "vpshufd"));
  }
}

// Output channels that the Pis' 4-lane vectors do not divide (17, 18, 30: RegNet-Y's
// squeeze-and-excitation layers) get vectors of a width that divides them, so no last vector
// straddles two blocks of packed weights: Halide 21's ARM back end refused those kernels
// ("Should be dense vector load"). Each compiles, and on rpi5 still uses sdot where the width
// allows it.
TEST(KernelAsm, PiInt8TakesChannelsNoVectorDivides) {
  for (int64_t M : {17, 18, 30, 72})
    for (const char *target : {"rpi4", "rpi5"}) {
      qnnc::KernelSpec s = u8_window("conv2d_q", {1, 72, 1, 1}, {1, M, 1, 1}, 1, 1, 0);
      s.relu = true;
      std::string a;
      EXPECT_NO_THROW(a = assembly(s, target)) << "M " << M << " " << target;
      EXPECT_FALSE(a.empty()) << "M " << M << " " << target;
      if (std::string(target) == "rpi5" && M % 2 == 0) EXPECT_GT(count(a, "sdot"), 0) << "M " << M;
    }
}
