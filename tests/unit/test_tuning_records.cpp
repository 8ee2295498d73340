// Tuning records (tune/records.h) and compiling with them: JSON-lines round trip, a torn last
// line skipped (a killed run), a malformed middle line named; the best valid record per task
// chosen only when faster than its default, never a failed one or one of another target; and a
// module compiled with records takes the tuned knobs for exactly those kernels, marks them
// tuned, warns about the rest, and computes the same integers.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "codegen/compile.h"
#include "codegen/target.h"
#include "expect_error.h"
#include "frontend/builtin_models.h"
#include "kernels/knob_space.h"
#include "reference.h"
#include "tune/records.h"
#include "tune/runner.h"
#include "tune/tuner.h"

namespace fs = std::filesystem;

namespace {

class TuningRecords : public ::testing::Test {
 protected:
  std::string dir;
  void SetUp() override {
    dir = testing::TempDir() + "/qnnc_records_" + std::to_string(::getpid()) + "_" +
          ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
};

qnnc::TuningRecord rec(const std::string &task, qnnc::Knobs k, double ms, bool dflt = false,
                       const std::string &status = "ok", const std::string &target = "x86-64-linux-avx2") {
  qnnc::TuningRecord r;
  r.target = target;
  r.family = "conv2d";
  r.task = task;
  r.knobs = std::move(k);
  r.median_ms = r.min_ms = ms;
  r.is_default = dflt;
  r.status = status;
  return r;
}

TEST_F(TuningRecords, RoundTripAndATornLastLine) {
  std::string p = dir + "/r.jsonl";
  qnnc::append_record(p, rec("A", {{"x_tile", 4}}, 1.0, true));
  qnnc::append_record(p, rec("A", {{"x_tile", 7}}, 0.5));
  {
    std::ofstream f(p, std::ios::app);
    f << R"({"schema": 1, "target": "x86-64-linux-avx2", "fam)";  // killed mid-line
  }
  int skipped = 0;
  auto rs = qnnc::read_records(p, &skipped);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(skipped, 1);
  EXPECT_EQ(rs[1].knobs, (qnnc::Knobs{{"x_tile", 7}}));
  EXPECT_TRUE(rs[0].is_default);
  EXPECT_DOUBLE_EQ(rs[1].median_ms, 0.5);
  // A resumed run appends after cutting the torn line off.
  qnnc::append_record(p, rec("A", {{"x_tile", 2}}, 0.6));
  rs = qnnc::read_records(p, &skipped);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(skipped, 0);
  EXPECT_EQ(rs[2].knobs, (qnnc::Knobs{{"x_tile", 2}}));
  // A malformed line in the middle is an error naming it.
  std::string q = dir + "/bad.jsonl";
  {
    std::ofstream f(q);
    f << rec("A", {}, 1.0, true).to_json().dump() << "\n{not json\n" << rec("A", {}, 1.0).to_json().dump() << "\n";
  }
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::read_records(q); }), "line 2 is not JSON");
  {
    std::ofstream f(q);
    f << R"({"schema": 1, "target": "t", "family": "conv2d", "task": "A", "knobs": {}, "status": "ok"})" << "\n";
  }
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::read_records(q); }), "lacks 'median_ms'");
}

TEST_F(TuningRecords, BestValidRecordFasterThanTheDefault) {
  std::vector<qnnc::TuningRecord> rs{
      rec("A", {{"x_tile", 4}}, 1.0, true),
      rec("A", {{"x_tile", 7}}, 0.8),
      rec("A", {{"x_tile", 2}}, 0.5, false, "failed: wrong output"),
      rec("A", {{"x_tile", 1}}, 0.4, false, "ok", "arm-64-linux"),
      rec("A", {{"x_tile", 3}}, 0.9),
      rec("B", {{"x_tile", 4}}, 1.0, true),
      rec("B", {{"x_tile", 5}}, 1.2),            // slower than its default: not used
      rec("C", {{"x_tile", 6}}, 0.1),            // no default record: not used
  };
  auto best = qnnc::best_knobs(rs, "x86-64-linux-avx2");
  ASSERT_EQ(best.size(), 1u);
  EXPECT_EQ(best.at("A"), (qnnc::Knobs{{"x_tile", 7}}));
  EXPECT_EQ(qnnc::best_knobs(rs, "arm-64-linux").size(), 0u);  // its only record has no default there
}

// A confirmation (the best candidate re-measured against the default at the end of a run)
// decides for its task: a lucky search measurement it contradicts is not used.
TEST_F(TuningRecords, ConfirmationsDecide) {
  auto conf = [](const std::string &task, qnnc::Knobs k, double ratio) {
    qnnc::TuningRecord r = rec(task, std::move(k), ratio);
    r.confirmation = true;
    r.vs_default = ratio;
    return r;
  };
  std::vector<qnnc::TuningRecord> rs{
      rec("A", {{"x_tile", 4}}, 1.0, true), rec("A", {{"x_tile", 7}}, 0.5),   // lucky draw
      conf("A", {{"x_tile", 7}}, 1.02),                                        // not faster after all
      rec("B", {{"x_tile", 4}}, 1.0, true), rec("B", {{"x_tile", 6}}, 0.6), rec("B", {{"x_tile", 5}}, 0.7),
      conf("B", {{"x_tile", 6}}, 1.1), conf("B", {{"x_tile", 5}}, 0.8),       // the second one holds
      rec("C", {{"x_tile", 4}}, 1.0, true), rec("C", {{"x_tile", 2}}, 0.9),   // no confirmation: search rule
  };
  auto best = qnnc::best_knobs(rs, "x86-64-linux-avx2");
  EXPECT_EQ(best.count("A"), 0u);
  EXPECT_EQ(best.at("B"), (qnnc::Knobs{{"x_tile", 5}}));
  EXPECT_EQ(best.at("C"), (qnnc::Knobs{{"x_tile", 2}}));
  auto back = qnnc::TuningRecord::from_json(rs[2].to_json());
  EXPECT_TRUE(back.confirmation);
  EXPECT_DOUBLE_EQ(back.vs_default, 1.02);
  EXPECT_FALSE(qnnc::TuningRecord::from_json(rs[1].to_json()).confirmation);
}

TEST_F(TuningRecords, EmulatedRecordsAreNeverChosen) {
  std::vector<qnnc::TuningRecord> rs{
      rec("A", {{"x_tile", 4}}, 1.0, true, qnnc::kEmulatedStatus),
      rec("A", {{"x_tile", 7}}, 0.5, false, qnnc::kEmulatedStatus),
  };
  EXPECT_TRUE(qnnc::best_knobs(rs, "x86-64-linux-avx2").empty());
  EXPECT_TRUE(qnnc::measured_tasks(rs, "x86-64-linux-avx2").empty());
  qnnc::TuningRecord r = rs[1];
  r.runner = "ssh://pi@board:2222";
  auto back = qnnc::TuningRecord::from_json(r.to_json());
  EXPECT_EQ(back.runner, "ssh://pi@board:2222");
  EXPECT_EQ(back.status, qnnc::kEmulatedStatus);
}

TEST(TuneRunner, SpecsAndTheTargetsTheyMeasure) {
  qnnc::TargetInfo host = qnnc::resolve_target("host"), rpi4 = qnnc::resolve_target("rpi4");
  EXPECT_EQ(qnnc::make_runner("local", host, {})->name(), "local");
  EXPECT_EQ(qnnc::make_runner("", host, {})->name(), "local");
  EXPECT_TRUE(qnnc::make_runner("ssh://pi@board:2222", rpi4, {})->times_count());
  EXPECT_TRUE(qnnc::make_runner("ssh://board", host, {})->times_count());
  EXPECT_FALSE(qnnc::make_runner("qemu", rpi4, {})->times_count());
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::make_runner("local", rpi4, {}); }), "--runner ssh://");
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::make_runner("qemu", host, {}); }), "runs here");
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::make_runner("ssh://pi@board:twenty", rpi4, {}); }), "port must be a number");
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::make_runner("ssh://", rpi4, {}); }), "no host");
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::make_runner("scp://board", rpi4, {}); }), "unknown --runner");
}

TEST(TaskSignature, DropsTunableKnobsKeepsSemanticOnes) {
  qnnc::KernelSpec a;
  a.kind = "conv2d_q";
  a.in_shape = {1, 8, 4, 4};
  a.out_shape = {1, 8, 4, 4};
  a.kernel = {3, 3};
  a.knobs = {{"x_tile", 4}, {"vec", 16}, {"weights_per_byte", 1}};
  qnnc::KernelSpec b = a;
  b.knobs = {{"x_tile", 7}, {"vec", 8}, {"weights_per_byte", 1}};
  EXPECT_EQ(qnnc::task_signature(a), qnnc::task_signature(b));
  b.knobs["weights_per_byte"] = 2;
  EXPECT_NE(qnnc::task_signature(a), qnnc::task_signature(b));
}

// The first kernel of `kind` in a module's manifest.
qnnc::KernelSpec first_kernel(const qnnc::Module &m, const std::string &kind) {
  for (const auto &st : m.manifest()["steps"])
    if (st.contains("spec") && st["spec"]["kind"] == kind) return qnnc::KernelSpec::from_json(st["spec"]);
  return {};
}

// Compiles ResNet-18 at `precision`, writes records for the first kernel of `kind` (a faster
// x_tile, a faster failed one, a faster one of another target), compiles again with them, and
// checks that exactly that task takes the record, and the integers stay the same.
void expect_compile_takes_record(const std::string &dir, const std::string &precision, const std::string &kind) {
  SCOPED_TRACE(precision + " " + kind);
  qnnc::Graph g = qnnc::builtin_model("resnet18", {1, 3, 32, 32});
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision(precision);
  opt.qconfig.calibration_samples = 2;
  qnnc::CompileSummary s0 = qnnc::compile_to_dir(g, opt, dir + "/default");
  EXPECT_EQ(s0.tuned, 0);
  qnnc::Module m0 = qnnc::Module::load(dir + "/default");
  // The first convolution of that kind: a record with another x_tile, faster than its default.
  qnnc::KernelSpec spec = first_kernel(m0, kind);
  ASSERT_EQ(spec.kind, kind);
  const std::string task = qnnc::task_signature(spec), target = qnnc::resolve_target("host").halide.to_string();
  int dflt = spec.knobs.at("x_tile"), other = dflt == 2 ? 3 : 2;
  std::string p = dir + "/records.jsonl";
  // Records carry every tunable knob, as the tuner writes them (the default's are compared with
  // the default compile chooses).
  auto r = [&](int x_tile, double ms, bool is_default, const std::string &tgt, const std::string &status) {
    qnnc::TuningRecord t = rec(task, qnnc::tunable_part(spec), ms, is_default, status, tgt);
    t.knobs["x_tile"] = x_tile;
    t.family = kind;
    qnnc::append_record(p, t);
  };
  r(dflt, 1.0, true, target, "ok");
  r(other, 0.7, false, target, "ok");
  r(5, 0.2, false, target, "failed: wrong output");
  r(6, 0.1, false, "arm-64-linux-arm_dot_prod", "ok");
  opt.tuning_records = p;
  qnnc::CompileSummary s1 = qnnc::compile_to_dir(g, opt, dir + "/tuned");
  EXPECT_EQ(s1.tuned, 1);
  EXPECT_FALSE(s1.untuned.empty());
  EXPECT_GT(s1.untuned_mac_share, 0.5);
  EXPECT_LT(s1.untuned_mac_share, 1.0);
  qnnc::Module m1 = qnnc::Module::load(dir + "/tuned");
  int tuned_steps = 0;
  for (const auto &st : m1.manifest()["steps"]) {
    if (!st.value("tuned", false)) continue;
    tuned_steps++;
    qnnc::KernelSpec ts = qnnc::KernelSpec::from_json(st["spec"]);
    EXPECT_EQ(qnnc::task_signature(ts), task);
    EXPECT_EQ(ts.knobs.at("x_tile"), other);
  }
  EXPECT_GE(tuned_steps, 1);
  // Another schedule of the same integer kernels: the same integers.
  qnnc::Tensor x = qnnc::random_tensor({1, 3, 32, 32}, 3);
  auto y0 = m0.run({x})[0], y1 = m1.run({x})[0];
  EXPECT_EQ(0, std::memcmp(y0.data.data(), y1.data.data(), y0.data.size() * sizeof(float)));
}

TEST_F(TuningRecords, CompileTakesTunedKnobsForTheirKernelsOnly) { expect_compile_takes_record(dir, "int8", "conv2d_q"); }

// Records tuned against another default schedule than today's (qnnc changed the default since,
// as when 3x3 layers moved to Winograd): a faster candidate there was faster than a schedule
// compile no longer uses, so it is not applied; the kernel keeps today's default, counts as
// untuned and is named in the summary's stale list.
TEST_F(TuningRecords, RecordsAgainstAnOlderDefaultAreNotApplied) {
  qnnc::Graph g = qnnc::builtin_model("resnet18", {1, 3, 32, 32});
  qnnc::CompileOptions opt;
  qnnc::compile_to_dir(g, opt, dir + "/default");
  qnnc::Module m0 = qnnc::Module::load(dir + "/default");
  qnnc::KernelSpec spec = first_kernel(m0, "conv2d");
  ASSERT_EQ(spec.kind, "conv2d");
  ASSERT_TRUE(spec.knobs.count("x_tile"));
  const std::string task = qnnc::task_signature(spec), target = qnnc::resolve_target("host").halide.to_string();
  const int now = spec.knobs.at("x_tile"), then = now == 2 ? 3 : 2, cand = now == 4 ? 5 : 4;
  const std::string p = dir + "/records.jsonl";
  auto r = [&](int x_tile, double ms, bool is_default) {
    qnnc::TuningRecord t = rec(task, qnnc::tunable_part(spec), ms, is_default, "ok", target);
    t.knobs["x_tile"] = x_tile;
    qnnc::append_record(p, t);
  };
  r(then, 1.0, true);  // the default when these records were made
  r(cand, 0.7, false);
  opt.tuning_records = p;
  qnnc::CompileSummary s = qnnc::compile_to_dir(g, opt, dir + "/stale");
  EXPECT_EQ(s.tuned, 0);
  ASSERT_EQ(s.stale.size(), 1u);
  EXPECT_EQ(s.stale[0], spec.describe());
  EXPECT_NE(std::find(s.untuned.begin(), s.untuned.end(), spec.describe()), s.untuned.end());
  qnnc::Module m1 = qnnc::Module::load(dir + "/stale");
  EXPECT_EQ(first_kernel(m1, "conv2d").knobs.at("x_tile"), now);
  // The same records with today's default: the candidate is taken.
  fs::remove(p);
  r(now, 1.0, true);
  r(cand, 0.7, false);
  s = qnnc::compile_to_dir(g, opt, dir + "/fresh");
  EXPECT_TRUE(s.stale.empty());
  EXPECT_EQ(s.tuned, 1);
  qnnc::Module m2 = qnnc::Module::load(dir + "/fresh");
  EXPECT_EQ(qnnc::normalized_knobs(spec, first_kernel(m2, "conv2d").knobs).at("x_tile"),
            qnnc::normalized_knobs(spec, [&] { auto k = spec.knobs; k["x_tile"] = cand; return k; }()).at("x_tile"));
}

// Kernels whose task includes formats lowering decides (bit-plane outputs and residuals,
// threshold epilogues): the record is looked up by the final kernel's task.
TEST_F(TuningRecords, CompileTakesTunedKnobsForLowBitKernels) {
  expect_compile_takes_record(dir + "/bs", "int1", "conv2d_bs");
  expect_compile_takes_record(dir + "/stem", "int1", "conv2d_q");
}

// Tasks: the module's tunable kernels grouped by task signature; repeated layers (ResNet-18's
// identical blocks) share a task, and every tunable step belongs to exactly one.
TEST_F(TuningRecords, TasksDeduplicateRepeatedKernels) {
  qnnc::Graph g = qnnc::builtin_model("resnet18", {1, 3, 32, 32});
  qnnc::compile_to_dir(g, qnnc::CompileOptions{}, dir + "/m");
  qnnc::Module m = qnnc::Module::load(dir + "/m");
  const auto &steps = m.manifest()["steps"];
  auto tasks = qnnc::extract_tasks(m.manifest());
  std::set<std::string> sigs;
  size_t tunable_steps = 0;
  for (size_t k = 0; k < steps.size(); k++) {
    if (!steps[k].contains("spec")) continue;
    qnnc::KernelSpec s = qnnc::KernelSpec::from_json(steps[k]["spec"]);
    if (qnnc::knob_spaces().at(s.kind).tunable().empty()) continue;
    tunable_steps++;
    sigs.insert(qnnc::task_signature(s));
  }
  EXPECT_EQ(tasks.size(), sigs.size());
  EXPECT_LT(tasks.size(), tunable_steps);  // repeated blocks share tasks
  size_t covered = 0;
  bool some_repeated = false;
  for (const auto &t : tasks) {
    covered += t.steps.size();
    some_repeated |= t.steps.size() > 1;
    for (int k : t.steps)
      EXPECT_EQ(qnnc::task_signature(qnnc::KernelSpec::from_json(steps[k]["spec"])), t.task) << t.describe;
    EXPECT_EQ(t.default_knobs.count("x_tile") + t.default_knobs.count("vec") > 0, true) << t.describe;
  }
  EXPECT_EQ(covered, tunable_steps);
  EXPECT_TRUE(some_repeated);
  EXPECT_EQ(tasks.front().family.rfind("conv2d", 0), 0u);  // largest MACs first
}

// The tuner measures a candidate only where its knobs are in the compiled kernels: a module
// compiled with the candidate's record passes the check, the default module does not, and the
// message names the knob and both values.
TEST_F(TuningRecords, CandidateKnobsAreCheckedInTheCompiledPlan) {
  qnnc::Graph g = qnnc::builtin_model("resnet18", {1, 3, 32, 32});
  qnnc::compile_to_dir(g, qnnc::CompileOptions{}, dir + "/d");
  qnnc::Module d = qnnc::Module::load(dir + "/d");
  auto tasks = qnnc::extract_tasks(d.manifest());
  // A task with a direct register tile (Winograd's have wino_tiles instead of x_tile).
  auto it = std::find_if(tasks.begin(), tasks.end(), [](const qnnc::TuneTask &t) { return t.default_knobs.count("x_tile") > 0; });
  ASSERT_NE(it, tasks.end());
  const qnnc::TuneTask &t = *it;
  qnnc::Knobs want = t.default_knobs;
  want["x_tile"] = want["x_tile"] == 3 ? 2 : 3;
  EXPECT_EQ(qnnc::knobs_not_applied(d.manifest(), t.steps, t.default_knobs), "");
  std::string why = qnnc::knobs_not_applied(d.manifest(), t.steps, want);
  EXPECT_CONTAINS(why, "x_tile=" + std::to_string(t.default_knobs.at("x_tile")));
  EXPECT_CONTAINS(why, "the candidate has x_tile=" + std::to_string(want["x_tile"]));
  qnnc::CompileOptions co;
  co.tuned = {{t.task, want}};
  qnnc::compile_to_dir(g, co, dir + "/c");
  qnnc::Module c = qnnc::Module::load(dir + "/c");
  EXPECT_EQ(qnnc::knobs_not_applied(c.manifest(), t.steps, want), "");
  EXPECT_CONTAINS(qnnc::knobs_not_applied(c.manifest(), {99999}, want), "not a kernel");
}

}  // namespace
