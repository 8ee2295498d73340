// Accuracy on labelled data (runtime/evaluate) and calibration data of any batch size
// (quantize/calibrate): top-1/top-5 counted against ranks computed here from the module's own
// outputs, with a sample count that is not a multiple of the batch; calibration batches built
// from samples in order, the last one completed from the start.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <unistd.h>

#include "expect_error.h"
#include "frontend/builtin_models.h"
#include "quantize/calibrate.h"
#include "reference.h"
#include "runtime/evaluate.h"
#include "runtime/npy.h"

namespace {

using qnnc::Tensor;

// Rank of class c in row (0 = highest; ties count against c).
int rank_of(const float *row, int classes, int c) {
  int r = 0;
  for (int k = 0; k < classes; k++)
    if (k != c && !(row[k] < row[c])) r++;
  return r;
}

TEST(Evaluate, TopKAgainstRanksOfTheModulesOwnOutputs) {
  const int64_t batch = 2, n = 5;
  qnnc::Graph g = qnnc::builtin_model("resnet18", {batch, 3, 32, 32});
  qnnc::Module m = qnnc::compile(g);
  Tensor x = qnnc::random_tensor({n, 3, 32, 32}, 7);
  const int64_t per = 3 * 32 * 32;
  // The module's scores per sample, batch by batch (zero padding after the last sample).
  std::vector<std::vector<float>> scores;
  for (int64_t s = 0; s < n; s += batch) {
    Tensor b;
    b.shape = {batch, 3, 32, 32};
    b.data.assign(batch * per, 0.f);
    for (int64_t j = 0; j < batch && s + j < n; j++)
      std::copy(x.data.begin() + (s + j) * per, x.data.begin() + (s + j + 1) * per, b.data.begin() + j * per);
    auto y = m.run({b})[0];
    for (int64_t j = 0; j < batch && s + j < n; j++)
      scores.emplace_back(y.data.begin() + j * 1000, y.data.begin() + (j + 1) * 1000);
  }
  // Labels: the best class (top-1 hit) for samples 0 and 3, the 3rd best (top-5 hit only) for
  // 1, the worst (miss) for 2 and 4.
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; i++) {
    std::vector<int> order(1000);
    for (int k = 0; k < 1000; k++) order[k] = k;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return scores[i][a] > scores[i][b]; });
    labels.push_back(i == 0 || i == 3 ? order[0] : i == 1 ? order[2] : order[999]);
    ASSERT_EQ(rank_of(scores[i].data(), 1000, (int)labels.back()), i == 0 || i == 3 ? 0 : i == 1 ? 2 : 999);
  }
  qnnc::EvalResult r = qnnc::evaluate(m, x, labels);
  EXPECT_EQ(r.samples, n);
  EXPECT_EQ(r.classes, 1000);
  EXPECT_DOUBLE_EQ(r.top1, 2.0 / 5);
  EXPECT_DOUBLE_EQ(r.top5, 3.0 / 5);

  EXPECT_CONTAINS(qnnc_error([&] { qnnc::evaluate(m, x, {1, 2}); }), "5 inputs but 2 labels");
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::evaluate(m, x, {0, 1, 2, 3, 1000}); }), "label 1000 is not a class index");
  Tensor bad = qnnc::random_tensor({n, 3, 16, 16}, 1);
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::evaluate(m, bad, labels); }), "expected N samples of [3,32,32]");
}

class CalibrationData : public ::testing::Test {
 protected:
  std::string dir;
  void SetUp() override {
    dir = testing::TempDir() + "/qnnc_calib_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
};

// Sample i of a {N, 1, 2, 2} tensor holds the value i everywhere.
Tensor numbered(int64_t n, int64_t first) {
  Tensor t;
  t.shape = {n, 1, 2, 2};
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < 4; k++) t.data.push_back((float)(first + i));
  return t;
}

TEST_F(CalibrationData, SamplesFormBatchesOfTheCompiledSize) {
  qnnc::Graph g;
  int x = g.add_value("x", qnnc::TensorType{qnnc::DType::f32, {3, 1, 2, 2}, qnnc::Layout::NCHW});
  g.inputs.push_back(x);
  qnnc::QConfig cfg = qnnc::QConfig::parse_precision("int8");
  // 4 samples, batch 3.
  Tensor a = numbered(4, 0);
  Tensor single = numbered(1, 9);
  single.shape = {1, 2, 2};  // one sample without the batch dimension
  qnnc::write_npy(dir + "/a.npy", a);
  cfg.calibration_data = dir + "/a.npy";
  auto batches = qnnc::calibration_inputs(g, cfg);
  ASSERT_EQ(batches.size(), 2u);  // 4 samples -> {0,1,2} {3,0,1}
  std::vector<float> firsts;
  for (const auto &bt : batches) {
    ASSERT_EQ(bt[0].shape, (std::vector<int64_t>{3, 1, 2, 2}));
    for (int j = 0; j < 3; j++) firsts.push_back(bt[0].data[j * 4]);
  }
  EXPECT_EQ(firsts, (std::vector<float>{0, 1, 2, 3, 0, 1}));

  // Fewer samples than one batch: the batch repeats them.
  qnnc::write_npy(dir + "/one.npy", single);
  cfg.calibration_data = dir + "/one.npy";
  batches = qnnc::calibration_inputs(g, cfg);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0][0].data, std::vector<float>(12, 9.f));

  Tensor wrong = qnnc::random_tensor({4, 1, 3, 3}, 0);
  qnnc::write_npy(dir + "/wrong.npy", wrong);
  cfg.calibration_data = dir + "/wrong.npy";
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::calibration_inputs(g, cfg); }), "expected N samples of [1,2,2]");
  Tensor none;
  none.shape = {0, 1, 2, 2};
  qnnc::write_npy(dir + "/none.npy", none);
  cfg.calibration_data = dir + "/none.npy";
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::calibration_inputs(g, cfg); }), "holds no sample");
}

}  // namespace
