// User-facing failures are qnnc::Error with a useful message: wrong input shapes or counts at
// run time, modules that cannot be loaded, unsupported operators, convolution groups that do not fit the channels, and
// bad --knob overrides.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "kernels/halide_kernel.h"
#include "expect_error.h"
#include "reference.h"

namespace fs = std::filesystem;

namespace {

using qnnc::Tensor;

qnnc::Module relu_module(const ref::Shape &s) {
  ref::GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", s)}));
  return ref::compile(b.finish());
}

TEST(Errors, RunWithWrongInputShape) {
  auto m = relu_module({1, 3, 8, 8});
  std::string e = qnnc_error([&] { m.run({qnnc::random_tensor({1, 3, 8, 9}, 0)}); });
  EXPECT_CONTAINS(e, "shape");
  EXPECT_CONTAINS(e, "[1,3,8,9]");
  EXPECT_CONTAINS(e, "[1,3,8,8]");
  e = qnnc_error([&] { m.run({qnnc::random_tensor({3, 8, 8}, 0)}); });
  EXPECT_CONTAINS(e, "shape");
  // The module still works after rejecting an input.
  Tensor x = qnnc::random_tensor({1, 3, 8, 8}, 1);
  EXPECT_TRUE(ref::Close(m.run({x})[0], ref::relu(x), 0.0));
}

TEST(Errors, RunWithWrongInputCountOrDataSize) {
  auto m = relu_module({2, 5});
  EXPECT_CONTAINS(qnnc_error([&] { m.run({}); }), "input");
  Tensor x = qnnc::random_tensor({2, 5}, 0);
  EXPECT_CONTAINS(qnnc_error([&] { m.run({x, x}); }), "input");
  Tensor bad{{2, 5}, std::vector<float>(7)};
  EXPECT_CONTAINS(qnnc_error([&] { m.run({bad}); }), "size");
}

TEST(Errors, LoadMissingOrBrokenModuleDirectory) {
  std::string missing = "/nonexistent/qnnc-module-" + std::to_string(::getpid());
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::Module::load(missing); }), missing);

  fs::path dir = fs::temp_directory_path() / ("qnnc-broken-module-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::Module::load(dir.string()); }), "not a qnnc module");
  std::ofstream(dir / "graph.json") << "{ this is not json";
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::Module::load(dir.string()); }), "corrupt");
  std::ofstream(dir / "graph.json") << R"({"format": "something-else"})";
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::Module::load(dir.string()); }), "unknown format");
  fs::remove_all(dir);
}

// A module directory whose weights.bin does not match its manifest is refused.
TEST(Errors, LoadModuleWithTruncatedWeights) {
  ref::GraphBuilder b;
  int x = b.input("x", {1, 4});
  b.output(b.gemm(x, b.constant("w", {3, 4}, std::vector<float>(12, 0.5f)), -1));
  fs::path dir = fs::temp_directory_path() / ("qnnc-truncated-module-" + std::to_string(::getpid()));
  qnnc::compile_to_dir(b.finish(), qnnc::CompileOptions{}, dir.string());
  EXPECT_NO_THROW(qnnc::Module::load(dir.string()));
  fs::resize_file(dir / "weights.bin", 8);
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::Module::load(dir.string()); }), "weights.bin");
  fs::remove_all(dir);
}

TEST(Errors, UnsupportedOpIsNamed) {
  ref::GraphBuilder b;
  int y = b.node("Softsign", {b.input("x", {1, 3, 8, 8})});
  b.output(y);
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::infer_shapes(b.g); }), "Softsign");
  // Compiling fails the same way (give the output a type so only the op is at fault).
  b.g.values[y].type = b.g.values[b.g.inputs[0]].type;
  EXPECT_CONTAINS(qnnc_error([&] { ref::compile(b.g); }), "Softsign");
}

TEST(Errors, OpsWithoutKernelsAreNamed) {
  {
    // Clip with a non-zero lower bound is not a bounded ReLU: no kernel.
    ref::GraphBuilder b;
    b.output(b.node("Clip", {b.input("x", {1, 3, 8, 8})}, [](qnnc::Node &n) {
      n.set_f("min", -1.f);
      n.set_f("max", 1.f);
    }));
    EXPECT_CONTAINS(qnnc_error([&] { ref::compile(b.finish()); }), "Clip");
  }
  {
    // A mean over the last axis outside a layer normalization has no kernel.
    ref::GraphBuilder b;
    b.output(b.node("ReduceMean", {b.input("x", {2, 3, 4, 4})}, [](qnnc::Node &n) { n.set_ints("axes", {3}); }));
    EXPECT_CONTAINS(qnnc_error([&] { ref::compile(b.finish()); }), "layer normalization");
  }
}

// Grouped convolutions run (test_conv2d_grouped.cpp); groups that do not divide the channels,
// or weights that do not match them, are errors naming the group.
TEST(Errors, GroupsThatDoNotFitTheChannelsAreRejected) {
  for (auto [group, wshape] : {std::pair<int64_t, ref::Shape>{3, {4, 2, 3, 3}}, {2, {4, 1, 3, 3}}}) {
    ref::GraphBuilder b;
    int x = b.input("x", {1, 4, 8, 8});
    int w = b.constant("w", wshape, std::vector<float>((size_t)ref::numel(wshape), 0.1f));
    int y = b.node("Conv", {x, w}, [&](qnnc::Node &n) {
      n.set_ints("strides", {1, 1});
      n.set_ints("pads", {1, 1, 1, 1});
      n.set_ints("dilations", {1, 1});
      n.set_ints("kernel_shape", {3, 3});
      n.set_i("group", group);
    });
    b.output(y);
    EXPECT_CONTAINS(qnnc_error([&] { qnnc::infer_shapes(b.g); }), "group");
  }
}

TEST(Errors, ShapeMismatchesNameTheNode) {
  {
    ref::GraphBuilder b;
    b.output(b.node("Add", {b.input("x", {1, 3, 4, 4}), b.input("y", {1, 3, 4, 5})}));
    std::string e = qnnc_error([&] { b.finish(); });
    EXPECT_CONTAINS(e, "Add");
    EXPECT_CONTAINS(e, "[1,3,4,5]");
  }
  {
    ref::GraphBuilder b;
    int w = b.constant("w", {8, 5, 3, 3}, std::vector<float>(360, 0.f));
    b.output(b.conv(b.input("x", {1, 3, 8, 8}), w, -1, {1, 1}, {0, 0, 0, 0}, {1, 1}));
    EXPECT_CONTAINS(qnnc_error([&] { b.finish(); }), "input channels");
  }
  {
    ref::GraphBuilder b;
    int w = b.constant("w", {2, 3, 5, 5}, std::vector<float>(150, 0.f));
    b.output(b.conv(b.input("x", {1, 3, 4, 4}), w, -1, {1, 1}, {0, 0, 0, 0}, {1, 1}));
    EXPECT_CONTAINS(qnnc_error([&] { b.finish(); }), "window larger");
  }
  {
    ref::GraphBuilder b;
    int w = b.constant("w", {3, 7}, std::vector<float>(21, 0.f));
    b.output(b.gemm(b.input("x", {1, 6}), w, -1));
    EXPECT_CONTAINS(qnnc_error([&] { b.finish(); }), "does not fit");
  }
}

TEST(Errors, DanglingGraphIsRejectedByVerify) {
  ref::GraphBuilder b;
  int x = b.input("x", {1, 4});
  int orphan = b.g.add_value("orphan", qnnc::TensorType{qnnc::DType::f32, {1, 4}});
  b.output(b.node("Add", {x, orphan}));
  EXPECT_CONTAINS(qnnc_error([&] { b.g.verify(); }), "orphan");
}

TEST(Errors, ConstantWithWrongDataSize) {
  qnnc::Graph g;
  EXPECT_CONTAINS(qnnc_error([&] { g.add_const("c", {2, 3}, std::vector<float>(5)); }), "'c'");
}

}  // namespace

namespace {
// --knob overrides: unknown families and knobs, and values a kernel cannot take, are named.
TEST(Errors, BadKnobOverridesAreNamed) {
  using K = std::map<std::string, qnnc::Knobs>;
  auto check = [](const K &k) { return qnnc_error([&] { qnnc::validate_knob_overrides(k); }); };
  EXPECT_NE(check({{"conv2d", {{"xtile", 7}}}}).find("unknown knob 'conv2d.xtile'"), std::string::npos);
  EXPECT_NE(check({{"conv2d", {{"xtile", 7}}}}).find("x_tile"), std::string::npos);  // lists the real ones
  EXPECT_NE(check({{"conv3d", {{"vec", 8}}}}).find("unknown kernel family 'conv3d'"), std::string::npos);
  EXPECT_NE(check({{"conv2d_q", {{"group", 3}}}}).find("expected 2|4"), std::string::npos);
  EXPECT_NE(check({{"conv2d_q", {{"weights_per_byte", 3}}}}).find("expected 1|2|4"), std::string::npos);
  EXPECT_NE(check({{"conv2d", {{"x_tile", 0}}}}).find("positive"), std::string::npos);
  EXPECT_NO_THROW(qnnc::validate_knob_overrides(K{{"conv2d_q", {{"bitserial", 1}, {"x_tile", 7}}}, {"dense", {{"o_vectors", 2}}}}));
}
}  // namespace
