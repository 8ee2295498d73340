// Targets and the CPU check: --target accepts named targets and Halide target strings (and
// rejects anything else with the accepted forms), a module records the CPU features its kernels
// need, and loading it on a CPU without them is a qnnc::Error naming them, never a SIGILL.
// The "CPU without them" is real (a level this machine lacks) or faked (QNNC_CPU_FEATURES).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "codegen/compile.h"
#include "codegen/target.h"
#include "expect_error.h"
#include "reference.h"

namespace fs = std::filesystem;

namespace {

TEST(Targets, NamedAndHalideStrings) {
  auto z4 = qnnc::resolve_target("x86-64-linux-avx512_zen4");
  EXPECT_TRUE(z4.halide.has_feature(Halide::Target::AVX512));  // implied features spelled out
  EXPECT_TRUE(z4.halide.has_feature(Halide::Target::AVX2));
  std::set<std::string> need(z4.cpu_features.begin(), z4.cpu_features.end());
  EXPECT_TRUE(need.count("avx512_vnni"));
  EXPECT_FALSE(need.count("avx_vnni"));

  auto arm = qnnc::resolve_target("arm-64-linux-arm_dot_prod");
  EXPECT_FALSE(arm.is_host);
  EXPECT_EQ(arm.required_hwcap, (1ul << 1) | (1ul << 20));
  EXPECT_EQ(qnnc::resolve_target("rpi5").required_hwcap, (1ul << 1) | (1ul << 9) | (1ul << 10) | (1ul << 20));
  EXPECT_EQ(qnnc::resolve_target("rpi4").required_hwcap, 1ul << 1);

  for (const char *bad : {"", "x86-65-linux", "pentium", "host-bogus_feature"})
    EXPECT_CONTAINS(qnnc_error([&] { qnnc::resolve_target(bad); }), "accepted: host, x86-avx2, rpi4, rpi5");
  EXPECT_CONTAINS(qnnc_error([] { qnnc::resolve_target("x86-64-windows-avx2"); }), "Linux only");
  EXPECT_CONTAINS(qnnc_error([] { qnnc::resolve_target("x86-32-linux"); }), "Linux only");
  EXPECT_CONTAINS(qnnc_error([] { qnnc::resolve_target("x86-64-linux-cuda"); }), "GPU");
}

TEST(Targets, HostIsTheLevelOfThisCpu) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "x86-64 only";
#endif
  auto h = qnnc::resolve_target("host");
  auto have = qnnc::detect_cpu_features();
  EXPECT_TRUE(qnnc::missing_cpu_features(h.cpu_features, have).empty());
  EXPECT_TRUE(have.count("sse2"));
}

qnnc::Graph small_graph() {
  ref::GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", {1, 3, 8, 8})}));
  return b.finish();
}

std::string compile_dir(const std::string &target) {
  qnnc::CompileOptions opt;
  opt.target = target;
  std::string dir = testing::TempDir() + "/qnnc_cpu_check_" + std::to_string(getpid()) + "_" + qnnc::hash_hex(target);
  qnnc::compile_to_dir(small_graph(), opt, dir);
  return dir;
}

// A module compiled for a feature set this machine lacks (there is always one: Intel CPUs lack
// Zen 4's SSE4a, AMD CPUs lack Sapphire Rapids' AMX) is refused at load with the features named.
TEST(CpuCheck, ModuleForAMissingLevelIsRefused) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "x86-64 only";
#endif
  auto have = qnnc::detect_cpu_features();
  const qnnc::X86Level *lacking = nullptr;
  std::vector<std::string> missing;
  for (const auto &l : qnnc::x86_levels()) {
    Halide::Target t(Halide::Target::Linux, Halide::Target::X86, 64, l.features);
    missing = qnnc::missing_cpu_features(qnnc::required_cpu_features(t), have);
    if (!missing.empty()) {
      lacking = &l;
      break;
    }
  }
  ASSERT_NE(lacking, nullptr);
  Halide::Target t(Halide::Target::Linux, Halide::Target::X86, 64, lacking->features);
  std::string dir = compile_dir(t.to_string());
  std::string e = qnnc_error([&] { qnnc::Module::load(dir); });
  EXPECT_CONTAINS(e, "needs CPU features this machine lacks");
  EXPECT_CONTAINS(e, missing[0]);
  EXPECT_CONTAINS(e, "--target host");
  fs::remove_all(dir);
}

// Faked detection: an AVX2 module on a CPU that reports only SSE4.1.
TEST(CpuCheck, FakedCpuWithoutAvx2) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "x86-64 only";
#endif
  std::string dir = compile_dir("x86-avx2");
  EXPECT_NO_THROW(qnnc::Module::load(dir)) << "this machine has AVX2 (project machines do)";
  setenv("QNNC_CPU_FEATURES", "sse2,ssse3,sse4_1,sse4_2,popcnt", 1);
  std::string e = qnnc_error([&] { qnnc::Module::load(dir); });
  unsetenv("QNNC_CPU_FEATURES");
  EXPECT_CONTAINS(e, "avx2");
  EXPECT_CONTAINS(e, "fma");
  fs::remove_all(dir);
}

TEST(CpuCheck, MissingFeaturesInOrder) {
  auto m = qnnc::missing_cpu_features({"avx2", "fma", "avx512f", "sse2"}, {"sse2", "fma"});
  EXPECT_EQ(m, (std::vector<std::string>{"avx2", "avx512f"}));
}

}  // namespace
