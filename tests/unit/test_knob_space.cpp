// The knob spaces (kernels/knob_space.h) against the code that reads knobs: every kernel family
// has exactly one declared space, every knob a family's defaults set is declared in it, the
// values a tuner would try pass --knob validation, and each declared tunable value builds.
#include <gtest/gtest.h>

#include <set>

#include "expect_error.h"
#include "kernels/halide_kernel.h"
#include "kernels/knob_space.h"

namespace {

qnnc::KernelSpec spec_of(const std::string &kind) {
  qnnc::KernelSpec s;
  s.kind = kind;
  s.in_shape = {1, 24, 9, 9};
  s.out_shape = {1, 40, 9, 9};
  s.kernel = {3, 3};
  s.pads = {1, 1, 1, 1};
  if (kind == "dense") s.in_shape = {1, 24}, s.out_shape = {1, 40};
  return s;
}

TEST(KnobSpace, EveryFamilyHasOneSpaceAndEverySpaceAFamily) {
  std::set<std::string> families, spaces;
  for (const auto &f : qnnc::kernel_families()) families.insert(f);
  for (const auto &kv : qnnc::knob_spaces()) {
    spaces.insert(kv.first);
    EXPECT_EQ(kv.first, kv.second.family);
    EXPECT_FALSE(kv.second.help.empty()) << kv.first;
  }
  EXPECT_EQ(families, spaces);
}

TEST(KnobSpace, DefaultsAreDeclaredAndSearchValuesAccepted) {
  Halide::Target t("x86-64-linux-avx2-fma");
  for (const std::string kind : {"conv2d", "conv2d_q", "conv2d_bs", "conv2d_grouped", "dwconv2d_q", "dense", "add",
                                 "unary", "lut", "layernorm", "softmax", "matmul", "maxpool", "quantize"}) {
    SCOPED_TRACE(kind);
    const qnnc::KnobSpace &space = qnnc::knob_spaces().at(kind);
    for (const auto &[name, v] : qnnc::default_knobs(spec_of(kind), t)) {
      const qnnc::KnobDecl *d = space.find(name);
      ASSERT_NE(d, nullptr) << "default knob '" << name << "' is not declared";
      EXPECT_NO_THROW(qnnc::validate_knobs(kind, {{name, v}})) << name << "=" << v;
    }
    for (const auto &d : space.knobs)
      for (int v : d.search) EXPECT_NO_THROW(qnnc::validate_knobs(kind, {{d.name, v}})) << d.name << "=" << v;
  }
}

TEST(KnobSpace, TunableKnobsExcludeWhatLoweringDecides) {
  auto t = qnnc::knob_spaces().at("conv2d_q").tunable();
  EXPECT_EQ(t, (std::vector<std::string>{"vec", "co_vectors", "x_tile", "tasks", "row_major", "amx", "wide_input", "pixel_row", "flat_weights"}));
  EXPECT_TRUE(qnnc::knob_spaces().at("bitpack").tunable().empty());
  EXPECT_CONTAINS(qnnc_error([] { qnnc::validate_knobs("conv2d_bs", {{"weight_bits", 5}}); }), "expected 1|2|3|4");
  EXPECT_CONTAINS(qnnc::describe_knob_spaces("dense"), "o_vectors");
}

// Each value the tuner tries for the fp32 convolution's tunable knobs gives a schedule Halide
// lowers (compile_to_module runs every scheduling check short of LLVM).
TEST(KnobSpace, SearchValuesBuild) {
  Halide::Target t("x86-64-linux-avx2-fma");
  const auto &space = qnnc::knob_spaces().at("conv2d");
  for (const auto &name : space.tunable())
    for (int v : space.find(name)->search) {
      qnnc::KernelSpec s = spec_of("conv2d");
      s.knobs[name] = v;
      try {
        qnnc::HalideKernel k = qnnc::build_kernel(s, t);
        k.pipeline.compile_to_module(k.arguments(), "k", t);
      } catch (const Halide::Error &e) {
        ADD_FAILURE() << name << "=" << v << ": " << e.what();
      }
    }
}

}  // namespace

// Knob sets the schedule clamps to the same thing normalize to one form (so the tuner measures
// one of them), and knob sets that differ in the schedule stay apart.
TEST(KnobSpace, NormalizedFormsOfClampedKnobs) {
  qnnc::KernelSpec s;
  s.kind = "conv2d_q";
  s.in_shape = {1, 64, 7, 7};
  s.out_shape = {1, 64, 7, 7};
  // x_tile beyond the width of 7; 6 vectors of 32 channels when the layer has 64 (two vectors).
  auto a = qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 6}, {"x_tile", 8}});
  auto b = qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 2}, {"x_tile", 7}});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.at("x_tile"), 7);
  EXPECT_EQ(a.at("co_vectors"), 2);
  EXPECT_NE(qnnc::normalized_knobs(s, {{"vec", 16}, {"co_vectors", 2}, {"x_tile", 7}}), a);
  EXPECT_NE(qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 1}, {"x_tile", 7}}), a);
  // AMX tiles ignore the register tile: its knobs collapse to one form; a layer that cannot
  // take tiles (output channels not a multiple of 16) drops amx.
  auto t1 = qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 2}, {"x_tile", 7}, {"amx", 1}});
  auto t2 = qnnc::normalized_knobs(s, {{"vec", 8}, {"co_vectors", 4}, {"x_tile", 3}, {"amx", 1}});
  EXPECT_EQ(t1, t2);
  EXPECT_EQ(t1.at("amx"), 1);
  // Where the target has no AMX, amx is off as lowering would turn it off (what the tuner asks
  // for), and the register tile's knobs count again.
  const Halide::Target zen4("x86-64-linux-avx512_zen4"), spr("x86-64-linux-avx512_sapphirerapids");
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 2}, {"x_tile", 7}, {"amx", 1}}, spr), t1);
  auto z = qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 2}, {"x_tile", 7}, {"amx", 1}}, zen4);
  EXPECT_EQ(z.at("amx"), 0);
  EXPECT_EQ(z, qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 2}, {"x_tile", 7}, {"amx", 0}}));
  s.out_shape = {1, 40, 7, 7};
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 8}, {"co_vectors", 4}, {"x_tile", 3}, {"amx", 1}}).at("amx"), 0);
  // Weights packed as one block: the same layout where one tile block holds every channel (two
  // vectors of 32 here; 40 channels in one vector of 40), a different one where blocks of 32 do
  // not (40 channels in 16-lane vectors: a block of 32 and one shifted inward).
  s.out_shape = {1, 64, 7, 7};
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 2}, {"x_tile", 7}, {"flat_weights", 1}}),
            qnnc::normalized_knobs(s, {{"vec", 32}, {"co_vectors", 6}, {"x_tile", 8}, {"flat_weights", 0}}));
  s.out_shape = {1, 40, 7, 7};
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 64}, {"co_vectors", 1}, {"x_tile", 7}, {"flat_weights", 1}}).at("flat_weights"), 0);
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 16}, {"co_vectors", 3}, {"x_tile", 7}, {"flat_weights", 1}}).at("flat_weights"), 1);
  s.out_shape = {1, 64, 7, 7};
  // fp32 reduction chunks: only where they divide the input channels into 2 or more; rows per
  // task capped at the height; the task order knob does not apply to chunks.
  s.kind = "conv2d";
  auto c = qnnc::normalized_knobs(s, {{"vec", 16}, {"co_vectors", 4}, {"x_tile", 7}, {"k_chunk", 16}, {"chunk_rows", 9}, {"row_major", 1}});
  EXPECT_EQ(c.at("k_chunk"), 16);
  EXPECT_EQ(c.at("chunk_rows"), 7);
  EXPECT_EQ(c.count("row_major"), 0u);
  auto c0 = qnnc::normalized_knobs(s, {{"vec", 16}, {"co_vectors", 4}, {"x_tile", 7}, {"k_chunk", 64}, {"chunk_rows", 2}});
  EXPECT_EQ(c0.at("k_chunk"), 0);
  EXPECT_EQ(c0.count("chunk_rows"), 0u);
  // fp32: an unroll factor that does not divide the input channels is no unroll.
  s.kind = "conv2d";
  s.in_shape = {1, 3, 7, 7};
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 8}, {"co_vectors", 2}, {"x_tile", 4}, {"unroll_ci", 2}}).at("unroll_ci"), 1);
  s.in_shape = {1, 4, 7, 7};
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 8}, {"co_vectors", 2}, {"x_tile", 4}, {"unroll_ci", 2}}).at("unroll_ci"), 2);
  // Families without a normalize keep their knobs.
  s.kind = "maxpool";
  EXPECT_EQ(qnnc::normalized_knobs(s, {{"vec", 64}}), (qnnc::Knobs{{"vec", 64}}));
}
