// One module, many threads: concurrent Module::run calls on one module (each takes its own
// execution context: arena + bound buffers) give bit for bit the outputs of sequential calls,
// and value_data() inside a hook sees the activations of the hook's own run. Built-in
// ResNet-18 at 1x3x32x32, fp32 and int8.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "frontend/builtin_models.h"
#include "reference.h"

namespace {

using qnnc::Tensor;

const std::vector<int64_t> kShape{1, 3, 32, 32};
constexpr int kThreads = 4, kRunsPerThread = 25;

bool bit_identical(const Tensor &a, const Tensor &b) {
  return a.shape == b.shape && a.data.size() == b.data.size() &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

// FNV-1a over every value each step writes, read through value_data() in the hook.
std::vector<uint64_t> run_with_hook(qnnc::Module &m, const Tensor &x, Tensor *y) {
  const auto &steps = m.manifest()["steps"];
  const auto &values = m.manifest()["values"];
  std::vector<uint64_t> h;
  *y = m.run({x}, [&](size_t k) {
    for (int w : steps[k]["writes"]) {
      const auto *p = (const uint8_t *)m.value_data(w);
      uint64_t f = 1469598103934665603ull;
      for (int64_t i = 0, n = values[w]["bytes"].get<int64_t>(); i < n; i++) f = (f ^ p[i]) * 1099511628211ull;
      h.push_back(f);
    }
  })[0];
  return h;
}

class ModuleThreads : public ::testing::TestWithParam<std::string> {
 protected:
  static qnnc::Module compile(const std::string &precision) {
    qnnc::Graph g = qnnc::builtin_model("resnet18", kShape);
    qnnc::CompileOptions opt;
    if (precision != "fp32") {
      opt.quantize = true;
      opt.qconfig = qnnc::QConfig::parse_precision(precision);
      opt.qconfig.calibration_samples = 2;
    }
    qnnc::Module m = qnnc::compile(g, opt);
    m.set_threads(2);
    return m;
  }
};

TEST_P(ModuleThreads, ConcurrentRunsMatchSequentialRuns) {
  qnnc::Module m = compile(GetParam());
  const int n = kThreads * kRunsPerThread;
  std::vector<Tensor> in, expect;
  for (int i = 0; i < n; i++) in.push_back(qnnc::random_tensor(kShape, 500 + i));
  for (int i = 0; i < n; i++) expect.push_back(m.run({in[i]})[0]);
  EXPECT_EQ(m.contexts(), 1u) << "sequential runs reuse the primary context";

  std::vector<Tensor> got(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([&, t] {
      for (int j = 0; j < kRunsPerThread; j++) {
        int i = j * kThreads + t;
        got[i] = m.run({in[i]})[0];
      }
    });
  for (auto &th : threads) th.join();
  int wrong = 0;
  for (int i = 0; i < n; i++) wrong += !bit_identical(got[i], expect[i]);
  EXPECT_EQ(wrong, 0) << "of " << n << " concurrent runs";
  EXPECT_LE(m.contexts(), (size_t)kThreads);
  std::printf("[ threads  ] %s: %d concurrent runs on %d threads, %d differ from sequential runs; %zu contexts\n",
              GetParam().c_str(), n, kThreads, wrong, m.contexts());
  // Contexts are kept: another round creates none.
  size_t contexts = m.contexts();
  threads.clear();
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([&, t] { got[t] = m.run({in[t]})[0]; });
  for (auto &th : threads) th.join();
  EXPECT_EQ(m.contexts(), contexts);
  for (int t = 0; t < kThreads; t++) EXPECT_TRUE(bit_identical(got[t], expect[t]));
}

TEST_P(ModuleThreads, HooksReadTheirOwnRunsActivations) {
  qnnc::Module m = compile(GetParam());
  std::vector<Tensor> in, expect_y;
  std::vector<std::vector<uint64_t>> expect_h;
  for (int i = 0; i < kThreads * 4; i++) {
    in.push_back(qnnc::random_tensor(kShape, 900 + i));
    Tensor y;
    expect_h.push_back(run_with_hook(m, in[i], &y));
    expect_y.push_back(y);
  }
  // Outside a run, value_data reads the primary context: the last sequential run's values.
  int out = m.manifest()["outputs"][0];
  EXPECT_EQ(std::memcmp(m.value_data(out), expect_y.back().data.data(), expect_y.back().data.size() * sizeof(float)), 0);

  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 2; rep++)
        for (size_t i = t; i < in.size(); i += kThreads) {
          Tensor y;
          auto h = run_with_hook(m, in[i], &y);
          wrong[t] += h != expect_h[i] || !bit_identical(y, expect_y[i]);
        }
    });
  for (auto &th : threads) th.join();
  for (int t = 0; t < kThreads; t++) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  EXPECT_THROW(m.value_data(-1), qnnc::Error);
  EXPECT_THROW(m.value_data(1 << 30), qnnc::Error);
}

INSTANTIATE_TEST_SUITE_P(Precisions, ModuleThreads, ::testing::Values("fp32", "int8"));

}  // namespace
