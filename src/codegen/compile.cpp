#include "codegen/compile.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "codegen/bundle.h"
#include "codegen/kernel_cache.h"
#include "codegen/lower_graph.h"
#include "kernels/halide_kernel.h"
#include "kernels/knob_space.h"
#include "runtime/profile.h"
#include "tune/records.h"

namespace fs = std::filesystem;

namespace qnnc {

namespace {

std::string quote(const std::string &s) { return shell_quote(s); }

void link_shared(const TargetInfo &t, const std::vector<std::string> &objects, const std::string &out) {
  std::string cmd = t.cxx + " -shared -o " + quote(out);
  for (const auto &o : objects) cmd += " " + quote(o);
  cmd += " -lpthread -ldl -lm 2>&1";
  int rc = std::system(cmd.c_str());
  if (rc != 0) throw Error("linking kernels failed (" + cmd + ")");
}

}  // namespace

CompileSummary compile_to_dir(Graph g, const CompileOptions &opt, const std::string &dir) {
  auto t0 = std::chrono::steady_clock::now();
  QuantizeSummary quant;
  g = prepare_for_codegen(std::move(g), opt, &quant);
  CompileSummary sum = compile_prepared(g, opt, dir);
  sum.quant = quant;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

CompileSummary compile_prepared(const Graph &g, const CompileOptions &opt, const std::string &dir) {
  auto t0 = std::chrono::steady_clock::now();
  auto log = [&](const std::string &s) {
    if (opt.log) opt.log(s);
  };
  TargetInfo target = resolve_target(opt.target);
  validate_knob_overrides(opt.knobs);
  CompileSummary sum;
  std::map<std::string, Knobs> tuned, tuned_defaults;
  std::set<std::string> measured;
  const char *env_records = opt.tuning_records_from_env ? std::getenv("QNNC_TUNING_RECORDS") : nullptr;
  const std::string records_path = !opt.tuning_records.empty() ? opt.tuning_records : env_records ? env_records : "";
  sum.tuning_records = records_path;
  if (!records_path.empty()) {
    int skipped = 0;
    auto records = read_records(records_path, &skipped);
    tuned = best_knobs(records, target.halide.to_string());
    measured = measured_tasks(records, target.halide.to_string());
    tuned_defaults = measured_default_knobs(records, target.halide.to_string());
    for (const auto &[task, k] : tuned) {
      // A record names its family inside the task's signature; its knobs must still be valid.
      validate_knobs(KernelSpec::from_json(nlohmann::json::parse(task)).kind, k);
    }
    log("tuning records " + records_path + ": " + std::to_string(records.size()) + " measurements, " +
        std::to_string(tuned.size()) + " tuned tasks for this target" +
        (skipped ? " (" + std::to_string(skipped) + " torn line skipped)" : ""));
  }
  for (const auto &[task, k] : opt.tuned) tuned[task] = k;
  LoweredModule lm = lower_graph(g, target, opt.knobs, tuned, tuned_defaults);
  // Records measured against a default schedule this qnnc no longer chooses: their kernels take
  // today's default and count as untuned (tuning again with --resume measures the new default).
  for (const auto &[task, describe] : lm.stale_tuned) {
    measured.erase(task);
    sum.stale.push_back(describe);
  }
  if (!lm.stale_tuned.empty())
    log("tuning records: " + std::to_string(lm.stale_tuned.size()) +
        " kernels' records were measured against another default schedule than this qnnc's; they use the "
        "default");
  if (opt.quantize) lm.precision = opt.qconfig.precision();

  // Unique kernels, compiled in parallel (Halide compiles are independent per pipeline).
  std::set<std::string> seen;
  std::vector<KernelSpec> specs;
  for (auto &st : lm.steps) {
    if (st.alias) continue;
    st.fn = kernel_function_name(st.spec, target);
    st.halide_target = kernel_target_string(st.spec, target);
    if (seen.insert(st.fn).second) specs.push_back(st.spec);
  }
  std::vector<CompiledKernel> compiled(specs.size());
  std::atomic<size_t> next{0}, done{0};
  int cached = 0;
  std::mutex mu;
  std::string first_error;
  int jobs = opt.jobs > 0 ? opt.jobs : (int)std::max(1u, std::thread::hardware_concurrency());
  auto worker = [&]() {
    for (size_t i; (i = next++) < specs.size();) {
      try {
        compiled[i] = compile_kernel(specs[i], target);
        std::lock_guard<std::mutex> lk(mu);
        size_t d = ++done;
        cached += compiled[i].from_cache ? 1 : 0;
        if (opt.progress)
          opt.progress({opt.progress_task, (int)d, (int)specs.size(), cached, specs[i].describe()});
        else
          log("[" + std::to_string(d) + "/" + std::to_string(specs.size()) + "] " + specs[i].describe() +
              (compiled[i].from_cache ? "  (cached)" : ""));
      } catch (const std::exception &e) {
        std::lock_guard<std::mutex> lk(mu);
        if (first_error.empty()) first_error = specs[i].describe() + ": " + e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int j = 0; j < std::min<int>(jobs, (int)specs.size()); j++) pool.emplace_back(worker);
  for (auto &th : pool) th.join();
  if (!first_error.empty()) throw Error("kernel generation failed: " + first_error);

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create output directory '" + dir + "': " + ec.message());
  std::vector<std::string> objects;
  for (const auto &c : compiled) objects.push_back(c.object);
  objects.push_back(runtime_object(target));
  if (target.is_host) {
    link_shared(target, objects, dir + "/kernels.so");
  } else {
    objects.pop_back();
    std::vector<std::string> names;
    for (const auto &c : compiled) names.push_back(c.fn);
    log("linking the " + target.name + " bundle (static " + target.cxx + ")");
    link_bundle(target, objects, names, runtime_object(target), dir);
  }

  // Which kernels have tuned knobs, which could have and do not (by share of MACs).
  {
    std::set<std::string> tuned_fns, untuned_fns, default_fns;
    double macs = 0, untuned_macs = 0;
    for (const auto &st : lm.steps) {
      if (st.alias) continue;
      double m = spec_macs(st.spec);
      macs += m;
      bool tunable = has_tunable_knobs(st.spec.kind);
      if (st.tuned) {
        tuned_fns.insert(st.fn);
      } else if (tunable && m > 0 && measured.count(task_signature(st.spec))) {
        default_fns.insert(st.fn);
      } else if (tunable && m > 0) {
        untuned_macs += m;
        if (untuned_fns.insert(st.fn).second) sum.untuned.push_back(st.spec.describe());
      }
    }
    sum.tuned = (int)tuned_fns.size();
    sum.default_best = (int)default_fns.size();
    sum.untuned_mac_share = macs > 0 ? untuned_macs / macs : 0;
  }
  sum.dir = dir;
  sum.weight_bytes = write_module_files(lm, g, target, dir);
  sum.steps = (int)lm.steps.size();
  sum.concats = lm.concats;
  sum.concats_in_place = lm.concats_in_place;
  sum.kernels = (int)specs.size();
  for (const auto &c : compiled) sum.cached += c.from_cache ? 1 : 0;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

Graph prepare_for_codegen(Graph g, const CompileOptions &opt, QuantizeSummary *qs) {
  run_graph_passes(g, opt.passes);
  if (opt.quantize) {
    opt.qconfig.validate();
    auto inputs = calibration_inputs(g, opt.qconfig);
    auto stats = collect_stats(g, inputs, opt.log, opt.progress);
    QuantizeSummary s = quantize_graph(g, stats, opt.qconfig);
    if (qs) *qs = s;
  }
  run_layout_passes(g, opt.passes);
  return g;
}

Module compile(const Graph &g, const CompileOptions &opt) {
  std::string tmpl = (fs::temp_directory_path() / "qnnc-module-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  if (!mkdtemp(buf.data())) throw Error("cannot create a temporary module directory");
  std::string dir(buf.data());
  compile_to_dir(g, opt, dir);
  Module m = Module::load(dir);
  // Everything is in memory now (the kernel library stays mapped after unlinking).
  std::error_code ec;
  fs::remove_all(dir, ec);
  return m;
}

}  // namespace qnnc
