#include "tune/tuner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <Halide.h>

#include "codegen/target.h"
#include "kernels/knob_space.h"
#include "runtime/profile.h"
#include "tune/cost_model.h"
#include "tune/runner.h"

namespace fs = std::filesystem;

namespace qnnc {

namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string knob_key(const Knobs &k) { return nlohmann::json(k).dump(); }

}  // namespace

Knobs tunable_part(const KernelSpec &s) {
  Knobs k;
  auto sp = knob_spaces().find(s.kind);
  if (sp == knob_spaces().end()) return k;
  for (const auto &name : sp->second.tunable())
    if (auto it = s.knobs.find(name); it != s.knobs.end()) k[name] = it->second;
  return k;
}

std::string knobs_not_applied(const nlohmann::json &manifest, const std::vector<int> &steps, const Knobs &want) {
  const auto &all = manifest.at("steps");
  for (int k : steps) {
    if (k < 0 || (size_t)k >= all.size() || !all[(size_t)k].contains("spec"))
      return "step " + std::to_string(k) + " is not a kernel of the candidate module";
    const Knobs got = all[(size_t)k]["spec"].value("knobs", Knobs{});
    const std::string name = knob_mismatch(got, want);
    if (name.empty()) continue;
    auto it = got.find(name);
    return "step " + std::to_string(k) + " was compiled with " + name + "=" +
           (it == got.end() ? std::string("(none)") : std::to_string(it->second)) + ", the candidate has " + name +
           "=" + std::to_string(want.at(name));
  }
  return "";
}

std::vector<TuneTask> extract_tasks(const nlohmann::json &manifest) {
  std::map<std::string, TuneTask> by;
  std::map<std::string, double> macs;
  std::vector<std::string> order;
  const auto &steps = manifest.at("steps");
  for (size_t k = 0; k < steps.size(); k++) {
    const auto &st = steps[k];
    if (st.value("alias", false) || !st.contains("spec")) continue;
    KernelSpec s = KernelSpec::from_json(st["spec"]);
    if (!has_tunable_knobs(s.kind)) continue;
    std::string t = task_signature(s);
    auto [it, fresh] = by.try_emplace(t);
    if (fresh) {
      it->second.task = t;
      it->second.family = s.kind;
      it->second.describe = s.describe();
      it->second.default_knobs = tunable_part(s);
      order.push_back(t);
    }
    it->second.steps.push_back((int)k);
    macs[t] += step_macs(st);
  }
  std::vector<TuneTask> out;
  for (const auto &t : order) out.push_back(by[t]);
  std::stable_sort(out.begin(), out.end(), [&](const TuneTask &a, const TuneTask &b) { return macs[a.task] > macs[b.task]; });
  return out;
}

std::string TuneResult::table() const {
  std::ostringstream o;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-52s %5s %10s %10s %8s %7s\n", "task", "calls", "default ms", "tuned ms", "speed-up",
                "trials");
  o << buf;
  double d_total = 0, b_total = 0;
  for (const auto &t : tasks) {
    double calls = (double)t.steps.size();
    d_total += t.default_ms * calls;
    b_total += t.best_ms * calls;
    std::string notes = t.confirmed ? " confirmed" : "";
    if (t.failed) notes += " (" + std::to_string(t.failed) + " failed)";
    std::snprintf(buf, sizeof buf, "%-52.52s %5zu %10.4f %10.4f %7.2fx %7d%s\n", t.describe.c_str(), t.steps.size(),
                  t.default_ms, t.best_ms, t.best_ms > 0 ? t.default_ms / t.best_ms : 1.0, t.trials, notes.c_str());
    o << buf;
  }
  std::snprintf(buf, sizeof buf, "all tuned tasks: %.3f ms -> %.3f ms per run (%.2fx), %d trials in %.0f s\n", d_total,
                b_total, b_total > 0 ? d_total / b_total : 1.0, trials, seconds);
  o << buf;
  if (!times_count)
    o << "(measured under " << runner << ": outputs were checked, emulated times are not used, so nothing is tuned)\n";
  return o.str();
}

TuneResult tune(const Graph &prepared, const CompileOptions &opt_in, const TuneOptions &to) {
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto log = [&](const std::string &s) {
    if (to.log) to.log(s);
  };
  if (to.trials <= 0 && to.time_budget_s <= 0) throw Error("tune needs a budget: --trials N or --time-budget");
  if (to.records.empty()) throw Error("tune needs a records file (-o FILE)");
  if (!to.resume && fs::exists(to.records) && fs::file_size(to.records) > 0)
    throw Error("'" + to.records + "' exists: add --resume to continue it, or choose another file");
  const std::string work = to.workdir.empty() ? to.records + ".work" : to.workdir;
  fs::create_directories(work);
  CompileOptions opt = opt_in;
  opt.tuning_records.clear();
  opt.tuning_records_from_env = false;  // the default module must have the default knobs
  opt.tuned.clear();
  opt.log = nullptr;
  opt.progress = nullptr;
  const TargetInfo tinfo = resolve_target(opt.target);
  const std::string target = tinfo.halide.to_string();
  RunnerOptions ro;
  ro.qnnc_exe = to.qnnc_exe;
  ro.threads = to.threads;
  ro.repeat = to.repeat;
  ro.timeout_s = to.timeout_s;
  ro.workdir = work;
  ro.log = to.log;
  std::unique_ptr<Runner> runner = make_runner(to.runner, tinfo, ro);
  // Records measured under emulation are kept for their correctness check, under a status
  // that compile never picks.
  const std::string ok_status = runner->times_count() ? "ok" : kEmulatedStatus;
  if (!runner->times_count())
    log("runner " + runner->name() + ": candidates are checked against the default's output, but emulated times do "
        "not rank schedules the way the board would: they are recorded as '" + kEmulatedStatus +
        "' and compile does not use them. Measure on the board with --runner ssh://user@host");

  // Knobs already measured (resume).
  std::map<std::string, std::set<std::string>> tried;
  std::map<std::string, std::pair<double, Knobs>> prior_best;
  // What the cost model trains on: this target's records of other files, of the file resumed,
  // then this run's.
  std::vector<TuningRecord> known;
  if (to.use_cost_model)
    for (const auto &h : to.history)
      for (auto &r : read_records(h))
        if (r.target == target) known.push_back(std::move(r));
  if (to.resume && fs::exists(to.records)) {
    for (const auto &r : read_records(to.records)) {
      if (r.target != target) continue;
      if (to.use_cost_model) known.push_back(r);
      tried[r.task].insert(knob_key(r.knobs));
      if (!r.is_default && r.status == "ok") {
        auto &b = prior_best[r.task];
        if (b.first == 0 || r.median_ms < b.first) b = {r.median_ms, r.knobs};
      }
    }
  }

  // The default module and its tasks.
  const std::string ref = work + "/default";
  log("compiling the default module");
  compile_prepared(prepared, opt, ref);
  runner->set_reference(ref);
  nlohmann::json manifest;
  {
    std::ifstream f(ref + "/graph.json");
    manifest = nlohmann::json::parse(f);
  }
  std::vector<TuneTask> tasks = extract_tasks(manifest);
  std::vector<int> all_steps;
  for (const auto &t : tasks) all_steps.insert(all_steps.end(), t.steps.begin(), t.steps.end());
  std::sort(all_steps.begin(), all_steps.end());
  log("measuring the default schedules of " + std::to_string(tasks.size()) + " tasks");
  nlohmann::json dm = runner->measure(ref, all_steps);
  if (!dm.value("ok", false)) throw Error("measuring the default module failed: " + dm.value("why", std::string()));
  std::map<int, double> step_ms;
  for (const auto &s : dm["steps"]) step_ms[s["step"].get<int>()] = s["ms"].get<double>();
  std::map<std::string, KernelSpec> task_specs;
  auto task_spec = [&](const TuneTask &t) -> const KernelSpec & {
    auto sp = task_specs.find(t.task);
    if (sp == task_specs.end()) sp = task_specs.emplace(t.task, KernelSpec::from_json(nlohmann::json::parse(t.task))).first;
    return sp->second;
  };
  // A record of task t with knobs k measured over `runs` timed runs; status and times to fill.
  auto new_record = [&](const TuneTask &t, const Knobs &k, int runs) {
    TuningRecord r;
    r.qnnc_version = to.qnnc_version;
    r.target = target;
    r.family = t.family;
    r.task = t.task;
    r.describe = t.describe;
    r.knobs = k;
    r.runs = runs;
    r.runner = runner->name();
    return r;
  };
  double total = 0;
  for (auto &t : tasks) {
    double sum = 0;
    for (int k : t.steps) sum += step_ms[k];
    t.default_ms = sum / t.steps.size();
    t.best_ms = t.default_ms;
    t.best_knobs = t.default_knobs;
    total += sum;
    TuningRecord r = new_record(t, t.default_knobs, to.repeat);
    r.is_default = true;
    r.median_ms = t.default_ms;
    r.min_ms = t.default_ms;
    r.status = ok_status;
    r.timestamp = utc_now();
    append_record(to.records, r);
    if (to.use_cost_model) known.push_back(r);
    tried[t.task].insert(knob_key(t.default_knobs));
    tried[t.task].insert(knob_key(normalized_knobs(task_spec(t), t.default_knobs)));
    if (auto pb = prior_best.find(t.task); pb != prior_best.end() && pb->second.first < t.best_ms)
      t.best_ms = pb->second.first, t.best_knobs = pb->second.second;
  }
  // Leave out tasks too small to matter.
  std::vector<TuneTask> kept, small;
  for (auto &t : tasks)
    (t.default_ms * t.steps.size() >= to.min_share * total ? kept : small).push_back(t);
  tasks = kept;
  std::stable_sort(tasks.begin(), tasks.end(), [](const TuneTask &a, const TuneTask &b) {
    return a.default_ms * a.steps.size() > b.default_ms * b.steps.size();
  });
  log(std::to_string(tasks.size()) + " tasks to tune (" + std::to_string(small.size()) + " below " +
      std::to_string(to.min_share * 100).substr(0, 3) + "% of the default time left alone); default kernels " +
      std::to_string(total).substr(0, 6) + " ms per run");

  // The cost model: retrained every few measurements; a failure of it leaves the search random.
  CostModelOptions cmo;
  cmo.seed = to.seed;
  CostModel model(cmo);
  bool use_model = to.use_cost_model;
  int since_training = 0;
  auto retrain = [&] {
    since_training = 0;
    try {
      bool was = model.trained();
      CostModelFit fit = model.fit(known, target);
      if (model.trained() && !was)
        log("cost model: trained on " + std::to_string(fit.rows) + " records of " + std::to_string(fit.tasks) +
            " tasks; it ranks " + std::to_string(to.cost_model_pool) + " proposals per trial from now on");
    } catch (const Error &e) {
      log(std::string("cost model: ") + e.what() + "; searching without it");
      use_model = false;
    }
  };
  if (use_model) retrain();
  std::mt19937_64 rng(to.seed);
  TuneResult res;
  int budget_trials = to.trials > 0 ? to.trials : INT32_MAX;
  // Candidates are proposed in batches of `jobs`, compiled in parallel (the kernel cache keeps
  // the kernels they share), then measured one at a time on a quiet machine.
  const int jobs = std::max(1, to.jobs > 0 ? to.jobs : (int)std::thread::hardware_concurrency());
  auto out_of_budget = [&] {
    return res.trials >= budget_trials || (to.time_budget_s > 0 && elapsed() >= to.time_budget_s);
  };
  struct Candidate {
    TuneTask *task;
    Knobs knobs;
    std::string dir, compile_error;
  };
  // Compiles a batch in parallel, one kernel-compiling thread each.
  auto build_all = [&](std::vector<Candidate> &batch) {
    auto build = [&](Candidate &c) {
      CompileOptions co = opt;
      co.tuned = {{c.task->task, c.knobs}};
      if (batch.size() > 1) co.jobs = 1;
      try {
        fs::remove_all(c.dir);
        compile_prepared(prepared, co, c.dir);
        // Measured only if the knobs are in the kernels: otherwise the default is measured
        // under the candidate's name (how a lookup bug once went unseen).
        std::ifstream mf(c.dir + "/graph.json");
        nlohmann::json m = nlohmann::json::parse(mf);
        std::string why = knobs_not_applied(m, c.task->steps, c.knobs);
        if (!why.empty()) c.compile_error = "failed: knobs not applied: " + why;
      } catch (const nlohmann::json::exception &e) {
        c.compile_error = std::string("failed: reading the candidate's plan: ") + printable(e.what(), 300);
      } catch (const Error &e) {
        c.compile_error = std::string("failed: compile: ") + printable(e.what(), 300);
      } catch (const Halide::Error &e) {
        c.compile_error = std::string("failed: compile: Halide: ") + printable(e.what(), 300);
      } catch (const std::exception &e) {
        c.compile_error = std::string("failed: compile: ") + printable(e.what(), 300);
      }
    };
    if (batch.size() == 1) {
      build(batch[0]);
    } else {
      std::vector<std::thread> th;
      for (auto &c : batch) th.emplace_back(build, std::ref(c));
      for (auto &x : th) x.join();
    }
  };
  while (!out_of_budget()) {
    std::vector<Candidate> batch;
    while ((int)batch.size() < jobs && res.trials + (int)batch.size() < budget_trials) {
      // The task that promises most (trials already in this batch count).
      TuneTask *t = nullptr;
      double best_score = -1;
      for (auto &c : tasks) {
        if (c.exhausted) continue;
        double score = c.default_ms * c.steps.size() / (1.0 + c.trials);
        if (score > best_score) best_score = score, t = &c;
      }
      if (!t) break;
      const KnobSpace &space = knob_spaces().at(t->family);
      // Proposals: random at first, then mostly one knob of the best changed. Without the cost
      // model the first untried one is measured; with it, a pool of distinct untried ones is
      // ranked.
      const int want = use_model ? std::max(1, to.cost_model_pool) : 1;
      std::vector<Knobs> pool;
      std::set<std::string> in_pool;
      for (int attempt = 0; attempt < 200 * want && (int)pool.size() < want; attempt++) {
        Knobs k;
        bool mutate = t->trials >= 4 && std::uniform_real_distribution<>(0, 1)(rng) < 0.7;
        k = mutate ? t->best_knobs : t->default_knobs;
        // Knobs forced with --knob are not searched (the compile would override them anyway).
        std::vector<std::string> names;
        auto forced = opt.knobs.find(t->family);
        for (const auto &n : space.tunable())
          if (forced == opt.knobs.end() || !forced->second.count(n)) names.push_back(n);
        if (names.empty()) break;
        if (mutate) {
          const auto &name = names[rng() % names.size()];
          const auto &vals = space.find(name)->search;
          k[name] = vals[rng() % vals.size()];
        } else {
          for (const auto &name : names) {
            const auto &vals = space.find(name)->search;
            k[name] = vals[rng() % vals.size()];
          }
        }
        // Knob sets the schedule clamps to the same thing are one candidate (after what
        // lowering turns off on this target).
        k = normalized_knobs(task_spec(*t), k, tinfo.halide);
        std::string key = knob_key(k);
        if (!tried[t->task].count(key) && in_pool.insert(key).second) pool.push_back(k);
      }
      if (pool.empty()) {
        t->exhausted = true;
        continue;
      }
      // The model's pick, except with probability 0.2 (the first proposal, a random one).
      size_t pick = 0;
      if (use_model && pool.size() > 1 && model.trained() && std::uniform_real_distribution<>(0, 1)(rng) >= 0.2) {
        try {
          std::vector<float> pred = model.predict(task_spec(*t), pool);
          pick = (size_t)(std::min_element(pred.begin(), pred.end()) - pred.begin());
        } catch (const Error &e) {
          log(std::string("cost model: ") + e.what() + "; searching without it");
          use_model = false;
        }
      }
      tried[t->task].insert(knob_key(pool[pick]));
      t->trials++;
      batch.push_back({t, pool[pick], work + "/candidate-" + std::to_string(batch.size()), ""});
    }
    if (batch.empty()) break;
    build_all(batch);
    for (auto &c : batch) {
      TuneTask *t = c.task;
      res.trials++;
      TuningRecord r = new_record(*t, c.knobs, to.repeat);
      if (!c.compile_error.empty()) {
        r.status = c.compile_error;
      } else {
        nlohmann::json m = runner->measure(c.dir, t->steps);
        if (!m.value("ok", false)) {
          r.status = "failed: " + m.value("why", std::string("unknown"));
        } else {
          r.status = ok_status;
          // The reference ran interleaved with the candidate: scale to the default's recorded
          // time, so drift between measurements does not pass for a speed-up.
          double ref_ms = m["reference_ms"].get<double>(), scale = ref_ms > 0 ? t->default_ms / ref_ms : 1.0;
          r.median_ms = m["candidate_ms"].get<double>() * scale;
          r.min_ms = m.value("candidate_min_ms", m["candidate_ms"].get<double>()) * scale;
        }
      }
      if (r.status.rfind("failed", 0) == 0) t->failed++;
      r.timestamp = utc_now();
      append_record(to.records, r);
      if (r.status == "ok" && r.median_ms < t->best_ms) t->best_ms = r.median_ms, t->best_knobs = c.knobs;
      if (use_model) {
        known.push_back(r);
        if (++since_training >= std::max(1, to.cost_model_retrain)) retrain();
      }
      if (to.progress) {
        char detail[200];
        std::snprintf(detail, sizeof detail, "%s: best %.2fx of default", t->describe.c_str(),
                      t->best_ms > 0 ? t->default_ms / t->best_ms : 1.0);
        int total_trials = to.trials > 0 ? to.trials : 0;
        if (total_trials == 0 && to.time_budget_s > 0)
          total_trials = std::max(res.trials, (int)(res.trials * to.time_budget_s / std::max(elapsed(), 1e-3)));
        to.progress({"tuning", res.trials, std::max(total_trials, res.trials), 0, detail});
      }
    }
    for (auto &c : batch) {
      std::error_code ec;
      fs::remove_all(c.dir, ec);
    }
  }
  // Confirmation: each task's best candidate once more, with three times the runs, against the
  // default in the same process. The best of many noisy measurements is optimistic; this one
  // decides (tune/records.h), so a lucky draw does not pass for a speed-up.
  if (runner->times_count() && to.confirm) {
    std::vector<Candidate> conf;
    for (auto &t : tasks)
      if (knob_key(t.best_knobs) != knob_key(t.default_knobs))
        conf.push_back({&t, t.best_knobs, work + "/confirm-" + std::to_string(conf.size()), ""});
    if (!conf.empty())
      log("confirming the best candidates of " + std::to_string(conf.size()) + " tasks (" +
          std::to_string(3 * to.repeat) + " runs each)");
    for (size_t i = 0; i < conf.size(); i += jobs) {
      std::vector<Candidate> batch(conf.begin() + i, conf.begin() + std::min(conf.size(), i + jobs));
      build_all(batch);
      for (auto &c : batch) {
        TuneTask *t = c.task;
        TuningRecord r = new_record(*t, c.knobs, 3 * to.repeat);
        r.confirmation = true;
        double ratio = 0;
        if (!c.compile_error.empty()) {
          r.status = c.compile_error;
        } else {
          nlohmann::json m = runner->measure(c.dir, t->steps, 3 * to.repeat);
          double ref_ms = m.value("reference_ms", 0.0);
          if (!m.value("ok", false) || ref_ms <= 0) {
            r.status = "failed: " + m.value("why", std::string("no reference time"));
          } else {
            ratio = m["candidate_ms"].get<double>() / ref_ms;
            r.vs_default = ratio;
            r.median_ms = ratio * t->default_ms;
            r.min_ms = m.value("candidate_min_ms", m["candidate_ms"].get<double>()) / ref_ms * t->default_ms;
          }
        }
        r.timestamp = utc_now();
        append_record(to.records, r);
        t->confirmed = true;
        if (ratio > 0 && ratio < 1) {
          t->best_ms = r.median_ms;
        } else {
          t->best_ms = t->default_ms;
          t->best_knobs = t->default_knobs;
        }
        std::error_code ec;
        fs::remove_all(c.dir, ec);
      }
    }
  }
  res.tasks = tasks;
  res.seconds = elapsed();
  res.runner = runner->name();
  res.times_count = runner->times_count();
  return res;
}

}  // namespace qnnc
