// Instruction selection on x86, independent of the machine running the test: for a table of
// real CPUs (their /proc/cpuinfo feature lists), qnnc's host mapping (x86_level_for_cpu) picks
// Halide features; integer and fp32 kernels of awkward shapes are compiled for them and their
// disassembly (objdump) is checked against what that CPU can execute. An independent table
// here maps instructions to the CPU feature they need, so a wrong mapping (e.g. the VEX-encoded
// AVX-VNNI vpdpbusd on a Zen 4, which has only the EVEX form) fails on any build machine.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "codegen/kernel_cache.h"
#include "codegen/target.h"
#include "kernels/conv2d_grouped.h"
#include "kernels/conv2d_q.h"
#include "kernels/halide_kernel.h"

namespace {

using qnnc::CpuFeatures;

CpuFeatures plus(CpuFeatures a, std::initializer_list<const char *> more) {
  for (const char *m : more) a.insert(m);
  return a;
}

struct Cpu {
  std::string name;
  CpuFeatures flags;
  std::string level;  // what qnnc must choose
};

// Feature lists as Linux reports them (only the SIMD and bit-manipulation entries).
const std::vector<Cpu> &cpus() {
  static const std::vector<Cpu> v = [] {
    CpuFeatures nehalem = {"sse2", "pni", "ssse3", "sse4_1", "sse4_2", "popcnt"};
    CpuFeatures sandy = plus(nehalem, {"avx"});
    CpuFeatures haswell = plus(sandy, {"avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "abm"});
    CpuFeatures zen3 = plus(haswell, {"sse4a", "vaes", "vpclmulqdq"});
    CpuFeatures alder = plus(haswell, {"avx_vnni", "gfni", "vaes", "vpclmulqdq"});
    CpuFeatures skx = plus(haswell, {"avx512f", "avx512cd", "avx512vl", "avx512bw", "avx512dq"});
    CpuFeatures cascade = plus(skx, {"avx512_vnni"});
    CpuFeatures icelake = plus(skx, {"avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg",
                                     "avx512_vpopcntdq", "gfni", "vaes", "vpclmulqdq"});
    CpuFeatures zen4 = plus(icelake, {"avx512_bf16", "sse4a"});
    CpuFeatures spr = plus(icelake, {"avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"});
    CpuFeatures zen5 = plus(zen4, {"avx_vnni", "avx512_vp2intersect"});
    return std::vector<Cpu>{{"nehalem", nehalem, "sse41"},
                            {"sandybridge", sandy, "avx"},
                            {"haswell", haswell, "avx2"},
                            {"zen3", zen3, "avx2"},
                            {"alderlake", alder, "avx2"},
                            {"skylake-x", skx, "skylake"},
                            {"cascadelake", cascade, "skylake"},
                            {"icelake-server", icelake, "icelake"},
                            {"zen4", zen4, "zen4"},
                            {"sapphirerapids", spr, "sapphirerapids"},
                            {"zen5", zen5, "zen5"}};
  }();
  return v;
}

TEST(KernelIsa, HostLevelForEachCpu) {
  for (const auto &c : cpus()) {
    const qnnc::X86Level &l = qnnc::x86_level_for_cpu(c.flags);
    EXPECT_EQ(l.name, c.level) << c.name;
    for (const auto &f : l.cpu_features)
      EXPECT_TRUE(c.flags.count(f)) << c.name << ": level " << l.name << " needs " << f;
    // What the level's Halide features would let LLVM use beyond the CPU is banned instead.
    Halide::Target t(Halide::Target::Linux, Halide::Target::X86, 64, l.features);
    for (const auto &f : qnnc::required_cpu_features(t))
      if (!c.flags.count(f)) EXPECT_FALSE(l.banned_mnemonics.empty()) << c.name << ": level " << l.name << " needs " << f;
  }
  // Zen 4 gets Halide's Zen 4 feature, not Sapphire Rapids' (whose -mcpu adds AVX-VNNI).
  const auto &z4 = qnnc::x86_level_for_cpu(cpus()[8].flags).features;
  EXPECT_EQ(std::count(z4.begin(), z4.end(), Halide::Target::AVX512_SapphireRapids), 0);
  EXPECT_EQ(std::count(z4.begin(), z4.end(), Halide::Target::AVX512_Zen4), 1);
}

TEST(KernelIsa, RequiredFeaturesOfTargetStrings) {
  auto need = [](const std::string &t) {
    auto v = qnnc::required_cpu_features(Halide::Target(t));
    return std::set<std::string>(v.begin(), v.end());
  };
  EXPECT_TRUE(need("x86-64-linux-avx512_sapphirerapids").count("avx_vnni"));
  EXPECT_TRUE(need("x86-64-linux-avx512_sapphirerapids").count("amx_int8"));
  EXPECT_FALSE(need("x86-64-linux-avx512_zen4").count("avx_vnni"));
  EXPECT_TRUE(need("x86-64-linux-avx512_zen4").count("avx512_vnni"));
  EXPECT_TRUE(need("x86-64-linux-avx512_zen4").count("avx512f"));
  EXPECT_FALSE(need("x86-64-linux-avx2-fma-f16c").count("avx512f"));
  EXPECT_TRUE(need("x86-64-linux-avx2-fma-f16c").count("avx2"));
  EXPECT_EQ(need("arm-64-linux-arm_dot_prod-arm_fp16"), (std::set<std::string>{"asimd", "fphp", "asimdhp", "asimddp"}));
  EXPECT_EQ(need("arm-64-linux"), (std::set<std::string>{"asimd"}));
}

// Kernels of awkward shapes: channel counts that do not fill a vector (narrow vectors are where
// the VEX/EVEX choice differs), odd channels, 1x1 and 7x7, stride 2, residual, packed 4- and
// 2-bit weights, a dense layer as a 1x1 conv2d_q, 168 output channels (3-vector tiles over
// weights in one block on dot-product levels), integer depthwise and grouped (groups of 24 and
// 56: channel quads on dot-product levels, 16 lanes past a group's end on AVX-512), the bit-serial kernel (also
// with bit-plane output and residual and threshold epilogues), a threshold conv2d_q, and fp32
// conv (direct and Winograd) and dense.
std::vector<qnnc::KernelSpec> specs() {
  auto conv = [](std::string kind, std::vector<int64_t> in, int64_t M, int64_t k, int64_t stride, int64_t pad) {
    qnnc::KernelSpec s;
    s.kind = kind;
    s.in_shape = in;
    int64_t oh = (in[2] + 2 * pad - k) / stride + 1, ow = (in[3] + 2 * pad - k) / stride + 1;
    s.out_shape = {in[0], M, oh, ow};
    s.kernel = {k, k};
    s.stride = {stride, stride};
    s.pads = {pad, pad, pad, pad};
    s.relu = true;
    s.dtype = kind == "conv2d" ? "f32" : "u8";
    return s;
  };
  std::vector<qnnc::KernelSpec> v;
  v.push_back(conv("conv2d_q", {1, 3, 9, 11}, 5, 3, 1, 1));   // few output channels: xmm/ymm
  v.push_back(conv("conv2d_q", {1, 8, 5, 5}, 1, 3, 1, 1));
  v.push_back(conv("conv2d_q", {2, 13, 10, 10}, 24, 1, 2, 0));
  v.push_back(conv("conv2d_q", {1, 64, 14, 14}, 64, 3, 1, 1));  // fills zmm
  v.push_back(conv("conv2d_q", {1, 3, 16, 16}, 16, 7, 2, 3));
  auto res = conv("conv2d_q", {1, 32, 7, 7}, 32, 1, 1, 0);
  res.residual = true;
  v.push_back(res);
  auto w4 = conv("conv2d_q", {1, 12, 6, 6}, 12, 3, 1, 1);
  w4.knobs = {{"weights_per_byte", 2}};
  v.push_back(w4);
  auto w2 = conv("conv2d_q", {1, 64, 6, 6}, 40, 3, 1, 1);
  w2.knobs = {{"weights_per_byte", 4}};
  v.push_back(w2);
  v.push_back(conv("conv2d_q", {3, 200, 1, 1}, 10, 1, 1, 0));  // a dense layer, batch 3
  auto dw = conv("dwconv2d_q", {1, 19, 9, 9}, 19, 3, 2, 1);  // depthwise, odd channels
  dw.group = 19;
  v.push_back(dw);
  auto grouped = conv("dwconv2d_q", {1, 48, 9, 9}, 48, 3, 1, 1);  // 2 groups of 24 (RegNet's width)
  grouped.group = 2;
  v.push_back(grouped);
  auto grouped56 = conv("dwconv2d_q", {1, 112, 7, 7}, 112, 3, 1, 1);  // 2 groups of 56: 16 lanes run past a group
  grouped56.group = 2;
  v.push_back(grouped56);
  v.push_back(conv("conv2d_q", {1, 40, 8, 8}, 168, 1, 1, 0));  // 168 channels: 3-vector tiles over flat weights (VNNI)
  auto bs = conv("conv2d_bs", {1, 64, 8, 8}, 20, 3, 1, 1);
  bs.knobs = {{"weight_bits", 1}, {"activation_bits", 1}};
  v.push_back(bs);
  auto bs2 = conv("conv2d_bs", {1, 40, 5, 5}, 7, 1, 1, 0);
  bs2.knobs = {{"weight_bits", 2}, {"activation_bits", 2}};
  v.push_back(bs2);
  // The low-bit pipeline's variants: bit planes out and in (residual), threshold epilogues.
  auto bs3 = conv("conv2d_bs", {1, 40, 6, 6}, 64, 3, 1, 1);
  bs3.residual = true;
  bs3.qmax = 1;
  bs3.knobs = {{"weight_bits", 1}, {"activation_bits", 1}, {"output_bits", 1}, {"residual_bits", 1}, {"thresholds", 2}};
  v.push_back(bs3);
  auto bs4 = conv("conv2d_bs", {1, 33, 5, 5}, 17, 1, 1, 0);
  bs4.residual = true;
  bs4.qmax = 3;
  bs4.knobs = {{"weight_bits", 2}, {"activation_bits", 2}, {"thresholds", 4}};
  v.push_back(bs4);
  auto qt = conv("conv2d_q", {1, 3, 16, 16}, 16, 7, 2, 3);  // the int1 stem: 1-bit output
  qt.qmax = 1;
  qt.knobs = {{"thresholds", 1}};
  v.push_back(qt);
  v.push_back(conv("conv2d", {1, 3, 9, 9}, 5, 3, 2, 1));
  // fp32 Winograd: by default on the AVX-512 levels (32 channels, 49 tiles), and forced with the
  // input transformed in its own pass and odd channels, so the AVX2 levels compile it too.
  v.push_back(conv("conv2d", {1, 32, 14, 14}, 32, 3, 1, 1));
  auto wino = conv("conv2d", {1, 17, 9, 11}, 24, 3, 1, 1);
  wino.knobs = {{"winograd", 1}, {"wino_root", 1}, {"wino_rows", 2}};
  v.push_back(wino);
  qnnc::KernelSpec d;
  d.kind = "dense";
  d.in_shape = {2, 37};
  d.out_shape = {2, 10};
  v.push_back(d);
  return v;
}

// Instruction text (mnemonic and operands) of every instruction in an object file.
std::vector<std::string> disassemble(const std::string &object) {
  std::string cmd = "objdump -d --no-show-raw-insn '" + object + "' 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  std::vector<std::string> out;
  if (!p) return out;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) {
    std::string line(buf);
    auto colon = line.find(":\t");
    if (colon == std::string::npos || line.find_first_not_of(" 0123456789abcdef") != colon) continue;
    std::string ins = line.substr(colon + 2);
    while (!ins.empty() && (ins.back() == '\n' || ins.back() == ' ')) ins.pop_back();
    out.push_back(ins);
  }
  pclose(p);
  return out;
}

// What an instruction needs beyond the level it is allowed at: feature -> pattern over the
// instruction text. Written from the Intel/AMD manuals, independent of target.cpp.
struct Rule {
  std::string feature;
  std::regex pattern;
  std::string what;
};
const std::vector<Rule> &rules() {
  static const std::vector<Rule> r = {
      {"avx512f", std::regex("%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])\\b|\\{1to"), "AVX-512 registers"},
      {"avx_vnni", std::regex("^\\{vex\\} *vpdp(bu|ws)sds?\\b"), "VEX-encoded AVX-VNNI"},
      // objdump marks the VEX form; without the mark it is the EVEX (AVX512-VNNI) form.
      {"avx512_vnni", std::regex("^vpdp(bu|ws)sds?\\b"), "EVEX-encoded AVX512-VNNI"},
      {"avx512_vpopcntdq", std::regex("^vpopcnt[dq]\\b"), "VPOPCNTDQ"},
      {"avx512_bitalg", std::regex("^(vpopcnt[bw]|vpshufbitqmb)\\b"), "BITALG"},
      {"avx512_bf16", std::regex("^(vdpbf16ps|vcvtne2?ps2bf16)"), "AVX512-BF16"},
      {"sse4a", std::regex("^(extrq|insertq|movnts[sd])\\b"), "SSE4a"},
      {"avx512vbmi", std::regex("^(vpermb|vpermi2b|vpermt2b|vpmultishiftqb)\\b"), "AVX512-VBMI"},
      {"avx512_vbmi2", std::regex("^(vpcompress[bw]|vpexpand[bw]|vpshl?dv?[wdq]|vpshrdv?[wdq])\\b"), "AVX512-VBMI2"},
      {"avx512ifma", std::regex("^vpmadd52"), "AVX512-IFMA"},
      {"gfni", std::regex("^v?gf2p8"), "GFNI"},
      {"avx512_fp16", std::regex("^v(add|sub|mul|div|max|min|sqrt|fn?m(add|sub)\\d*)(ph|sh)\\b|^vmovw\\b|^vmovsh\\b"), "AVX512-FP16"},
      {"amx_tile", std::regex("^(ldtilecfg|sttilecfg|tileloadd|tilestored|tilezero|tdpb)"), "AMX"},
      {"fma", std::regex("^vfn?m(add|sub)"), "FMA"},
      {"avx2", std::regex("^vp(?!ermil|erm2f128|test)\\w+.*%ymm|^vperm(q|d|ps|pd)\\b|^vpbroadcast|^vinserti128|^vextracti128|^vpgather|^vgather"), "AVX2"},
      {"avx", std::regex("%ymm|^vzeroupper"), "AVX"},
  };
  return r;
}

struct Compiled {
  std::string spec;
  std::vector<std::string> insns;
  bool fell_back = false;  // generated again for the level's fallback (a banned instruction)
  bool dot = false;        // its default sums u8 x i8 products in 4s (conv2d_q, grouped quads)
  bool pairs = false;      // its default sums i16 products in pairs (no u8 dot product)
};

std::vector<Compiled> compile_level(const qnnc::X86Level &level) {
  Halide::Target t = Halide::Target(Halide::Target::Linux, Halide::Target::X86, 64, level.features)
                         .with_feature(Halide::Target::NoRuntime);
  auto ss = specs();
  std::vector<Compiled> out(ss.size());
  std::mutex mu;
  size_t next = 0;
  auto work = [&]() {
    for (;;) {
      size_t i;
      {
        std::lock_guard<std::mutex> lk(mu);
        if (next >= ss.size()) return;
        i = next++;
      }
      qnnc::KernelSpec s = ss[i];
      qnnc::Knobs k = qnnc::default_knobs(s, t);
      for (auto &[n, val] : s.knobs) k[n] = val;
      s.knobs = k;
      qnnc::HalideKernel hk = qnnc::build_kernel(s, t);
      std::string obj = testing::TempDir() + "/qnnc_isa_" + std::to_string(getpid()) + "_" + level.name + "_" +
                        std::to_string(i) + ".o";
      hk.pipeline.compile_to_object(obj, hk.arguments(), "k" + std::to_string(i), t);
      // As compile_kernel does: a banned instruction sends the kernel to the fallback level.
      bool fell_back = !level.banned_mnemonics.empty() && !qnnc::banned_instructions_in(obj, level.banned_mnemonics).empty();
      if (fell_back) {
        Halide::Target ft = Halide::Target(Halide::Target::Linux, Halide::Target::X86, 64,
                                           qnnc::x86_level_named(level.fallback).features)
                                .with_feature(Halide::Target::NoRuntime);
        qnnc::HalideKernel fk = qnnc::build_kernel(s, ft);
        fk.pipeline.compile_to_object(obj, fk.arguments(), "k" + std::to_string(i), ft);
      }
      out[i] = {s.describe(), disassemble(obj), fell_back,
                s.kind == "conv2d_q" || (s.kind == "dwconv2d_q" && qnnc::dwconv2d_q_grouped_quads(s, s.knobs)),
                (s.kind == "conv2d_q" && qnnc::conv2d_q_group(s.knobs) == 2) ||
                    (s.kind == "dwconv2d_q" && qnnc::dwconv2d_q_grouped_dot(s, s.knobs) == 2)};
      std::remove(obj.c_str());
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  return out;
}

// Each level's kernels, compiled once for all tests.
const std::vector<Compiled> &compile_all(const qnnc::X86Level &level) {
  static std::map<std::string, std::vector<Compiled>> by_level;
  if (!by_level.count(level.name)) by_level[level.name] = compile_level(level);
  return by_level[level.name];
}

TEST(KernelIsa, KernelsUseOnlyWhatTheCpuHas) {
  for (const auto &c : cpus()) {
    const qnnc::X86Level &l = qnnc::x86_level_for_cpu(c.flags);
    const auto &kernels = compile_all(l);
    bool vnni_level = l.name == "zen4" || l.name == "zen5" || l.name == "sapphirerapids" || l.name == "icelake";
    int fell_back = 0;
    for (const auto &k : kernels) {
      ASSERT_FALSE(k.insns.empty()) << "objdump gave nothing for " << k.spec;
      int dot = 0, pmaddwd = 0;
      // vpdpbusd, or AMX's tile product where the level has it (kernels/conv2d_q.h, knob amx).
      static const std::regex dot_re("^((\\{vex\\} *)?vpdpbusd|tdpbusd)\\b");
      static const std::regex pair_re("^v?pmaddwd\\b");
      for (const auto &ins : k.insns) {
        if (std::regex_search(ins, dot_re)) dot++;
        if (std::regex_search(ins, pair_re)) pmaddwd++;
        for (const auto &r : rules())
          if (!c.flags.count(r.feature) && std::regex_search(ins, r.pattern))
            ADD_FAILURE() << c.name << " (level " << l.name << "), " << k.spec << ": '" << ins << "' needs "
                          << r.what << " (" << r.feature << ")";
      }
      // Where the level has VNNI, 8-bit convolutions reach the 4-way dot product (a kernel that
      // fell back to the level below would not: see the count after the loop).
      fell_back += k.fell_back;
      if (vnni_level && k.dot && !k.fell_back)
        EXPECT_GT(dot, 0) << c.name << ": " << k.spec << " has no vpdpbusd or tdpbusd";
      // Without VNNI, integer convolutions (dense and grouped) sum channel pairs with vpmaddwd.
      if (!vnni_level && k.pairs && !k.fell_back)
        EXPECT_GT(pmaddwd, 0) << c.name << ": " << k.spec << " has no vpmaddwd";
    }
    // No kernel here needs the fallback (BannedInstructionsFallBack tests the mechanism): the
    // 3-channel int8 stems did on Ice Lake until their padded copy was vectorized over its 4
    // channels (LLVM's Zen 4 code gathered 3 bytes per pixel with SSE4a's insertq), and the
    // fallback cost them VNNI (ResNet-50's 3.2 ms against 0.57 ms with it).
    EXPECT_EQ(fell_back, 0) << c.name << " (level " << l.name << ")";
  }
}

}  // namespace

namespace {

// The check has teeth: Sapphire Rapids' features (what qnnc chose for a Zen 4 before) give
// narrow layers the VEX-encoded vpdpbusd, which the rules above reject for a Zen 4.
TEST(KernelIsa, SapphireRapidsCodeWouldFailOnZen4) {
  int vex = 0;
  for (const auto &k : compile_all(qnnc::x86_level_named("sapphirerapids")))
    for (const auto &ins : k.insns) vex += ins.rfind("{vex}", 0) == 0 && ins.find("vpdpbusd") != std::string::npos;
  EXPECT_GT(vex, 0);
}

}  // namespace

namespace {

// A kernel whose machine code has a banned instruction is generated again for the fallback
// target: here vpdpbusd is banned from Zen 4 code (the check itself only ever bans what a CPU
// lacks; see the "icelake" level), so the 8-bit convolution must come back without it.
TEST(KernelIsa, BannedInstructionsFallBack) {
  qnnc::KernelSpec s = specs()[3];  // conv2d_q 3x3 64 -> 64
  qnnc::TargetInfo t = qnnc::resolve_target("x86-64-linux-avx512_zen4");
  s.knobs = qnnc::default_knobs(s, t.halide);
  qnnc::CompiledKernel plain = qnnc::compile_kernel(s, t);
  EXPECT_EQ(qnnc::banned_instructions_in(plain.object, {"vpdpbusd", "extrq"}), std::vector<std::string>{"vpdpbusd"});
  t.banned_mnemonics = {"vpdpbusd"};
  t.fallback = Halide::Target(Halide::Target::Linux, Halide::Target::X86, 64, qnnc::x86_level_named("cannonlake").features);
  qnnc::CompiledKernel fell = qnnc::compile_kernel(s, t);
  EXPECT_NE(fell.fn, plain.fn) << "the banned list is part of the kernel's name";
  EXPECT_TRUE(qnnc::banned_instructions_in(fell.object, {"vpdpbusd"}).empty());
  bool has_code = false;
  for (const auto &ins : disassemble(fell.object)) has_code = has_code || ins.rfind("vpmaddubsw", 0) == 0 || ins.rfind("vpmaddwd", 0) == 0;
  EXPECT_TRUE(has_code) << "the fallback pairs u8 x i8 products without VNNI";
}

}  // namespace
