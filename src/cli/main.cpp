// qnnc command line: compile, run, bench and inspect models.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include "codegen/compile.h"
#include "codegen/driver.h"
#include "codegen/inspect.h"
#include "codegen/kernel_cache.h"
#include "codegen/target.h"
#include "cli/progress_bar.h"
#include "frontend/builtin_models.h"
#include "kernels/halide_kernel.h"
#include "kernels/knob_space.h"
#include "runtime/module.h"
#include "quantize/report.h"
#include "runtime/npy.h"
#include "runtime/profile.h"
#include "runtime/evaluate.h"
#include "tune/measure.h"
#include "tune/runner.h"
#include "tune/tuner.h"

using namespace qnnc;

namespace {

std::vector<int64_t> parse_shape(const std::string &s) {
  std::vector<int64_t> r;
  if (s.empty()) return r;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      size_t used = 0;
      long long v = std::stoll(tok, &used);
      if (used != tok.size() || v <= 0) throw 0;
      r.push_back(v);
    } catch (...) {
      throw Error("bad --input-shape '" + printable(s) + "': expected positive integers like 1,3,224,224");
    }
  }
  return r;
}

void say(const std::string &s) { std::fprintf(stderr, "%s\n", s.c_str()); }

// Text from a module file or the command line, shown whole but with non-printable bytes escaped.
std::string shown(const std::string &s) { return printable(s, std::string::npos); }

// An error message for the terminal: every line escaped (qnnc's own messages already escape the
// names they quote; this also covers text from elsewhere, e.g. a JSON parser quoting the input).
std::string shown_message(const std::string &msg) {
  std::string out, line;
  std::istringstream in(msg);
  while (std::getline(in, line)) out += (out.empty() ? "" : "\n") + shown(line);
  return out;
}

std::vector<Tensor> load_inputs(Module &m, const std::string &path, uint64_t seed) {
  std::vector<Tensor> in;
  if (path.empty()) {
    for (const auto &s : m.input_shapes()) in.push_back(random_tensor(s, seed));
    return in;
  }
  if (path.size() > 4 && path.substr(path.size() - 4) == ".npz") {
    for (auto &[name, t] : read_npz(path)) in.push_back(std::move(t));
    return in;
  }
  in.push_back(read_npy(path));
  return in;
}

std::string slurp(const std::string &p) {
  std::ifstream f(p);
  if (!f) throw Error("cannot open '" + p + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "conv2d.x_tile=7" -> overrides["conv2d"]["x_tile"] = 7.
std::map<std::string, Knobs> parse_knobs(const std::vector<std::string> &items) {
  std::map<std::string, Knobs> r;
  for (const auto &it : items) {
    auto dot = it.find('.'), eq = it.find('=');
    if (dot == std::string::npos || eq == std::string::npos || eq < dot)
      throw Error("bad --knob '" + printable(it) + "': expected FAMILY.KNOB=VALUE, e.g. conv2d.x_tile=7");
    try {
      r[it.substr(0, dot)][it.substr(dot + 1, eq - dot - 1)] = std::stoi(it.substr(eq + 1));
    } catch (...) {
      throw Error("bad --knob '" + printable(it) + "': the value must be an integer");
    }
  }
  return r;
}

struct QuantFlags {
  std::string precision, calib_mode = "minmax", calib_data, weight_scale = "channel_max", rounding = "tonearest";
  std::string lowbit_edges = "int8";
  std::vector<std::string> skip;
  int calib_samples = 8, report_inputs = 16;
  float percentile = 99.99f, global_scale = 8.0f;
  bool no_skip_first = false, quantize_dense = false, report = false;
};

// This program's path (for the processes it starts: tune's measurements, report's Python).
std::string self_exe() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, n) : std::string();
}

// CompileOptions from the command line's flags (compile and tune share them).
CompileOptions compile_options(const std::string &target, int jobs, const std::vector<std::string> &knobs,
                               const std::string &tuning_records, const QuantFlags &qf, uint64_t seed) {
  CompileOptions opt;
  opt.target = target;
  opt.jobs = jobs;
  opt.knobs = parse_knobs(knobs);
  opt.tuning_records = tuning_records;
  if (!qf.precision.empty() && qf.precision != "fp32") {
    opt.quantize = true;
    opt.qconfig = QConfig::parse_precision(qf.precision);
    opt.qconfig.calibrate_mode = qf.calib_mode;
    opt.qconfig.calibration_data = qf.calib_data;
    opt.qconfig.calibration_samples = qf.calib_samples;
    opt.qconfig.percentile = qf.percentile;
    opt.qconfig.global_scale = qf.global_scale;
    opt.qconfig.weight_scale = qf.weight_scale;
    opt.qconfig.rounding = qf.rounding;
    opt.qconfig.skip_layers = qf.skip;
    opt.qconfig.skip_first_conv = !qf.no_skip_first;
    opt.qconfig.skip_dense = !qf.quantize_dense;
    opt.qconfig.lowbit_edges = qf.lowbit_edges;
    opt.qconfig.calibration_seed = seed + 1000;
    opt.qconfig.validate();
  }
  return opt;
}

int cmd_compile(const std::string &model, const std::string &out, const std::string &target,
                const std::string &shape, uint64_t seed, int jobs, bool quiet, const std::vector<std::string> &knobs,
                const std::string &tuning_records, const QuantFlags &qf) {
  auto log = [&](const std::string &s) {
    if (!quiet) say(s);
  };
  resolve_target(target);  // a bad --target fails before the model is loaded
  BuiltinOptions bo;
  bo.seed = seed;
  bo.log = log;
  log("qnnc: loading " + model);
  Graph g = load_model(model, parse_shape(shape), bo);
  int before = (int)g.nodes.size();
  CompileOptions opt = compile_options(target, jobs, knobs, tuning_records, qf, seed);
  if (!opt.quantize && qf.report) {
    throw Error("--report compares a quantized module with fp32: add --quantize");
  }
  opt.log = [&](const std::string &s) { log("  " + s); };
  ProgressBar bar;
  if (!quiet) opt.progress = [&](const ProgressEvent &e) { bar(e); };
  log("qnnc: compiling " + std::to_string(before) + " nodes for target '" + target + "' (" +
      (target == "host" ? host_features_line() : resolve_target(target).description) + ")");
  CompileSummary s = compile_to_dir(g, opt, out);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "qnnc: wrote %s: %d steps, %d distinct kernels (%d from cache), weights %.1f MB, %.1f s",
                out.c_str(), s.steps, s.kernels, s.cached, s.weight_bytes / 1e6, s.seconds);
  std::printf("%s\n", buf);
  if (s.concats > 0)
    std::printf("qnnc: concatenations: %d of %d written in place (their inputs' kernels write into one buffer; no "
                "copy)%s\n",
                s.concats_in_place, s.concats,
                s.concats_in_place == 0 && opt.knobs.count("concat") ? " (--knob concat.in_place=0)"
                : s.concats_in_place < s.concats ? "; the others copy (an input is a model input or output, a view, "
                                                   "or listed twice)"
                                                 : "");
  if (!s.tuning_records.empty()) {
    // Kernel names, comma-separated: the first six, then ", ..." if there are more.
    auto print_first_six = [](const std::vector<std::string> &names) {
      for (size_t i = 0; i < names.size() && i < 6; i++) std::printf("%s %s", i ? "," : "", names[i].c_str());
      std::printf("%s", names.size() > 6 ? ", ..." : "");
    };
    std::printf("qnnc: tuning: %d kernels tuned from %s, %d kept their default schedule (measured fastest)", s.tuned,
                s.tuning_records.c_str(), s.default_best);
    if (s.untuned.empty()) {
      std::printf("; every tunable kernel has a record\n");
    } else {
      std::printf("\nqnnc: warning: %zu kernels have no tuning record for this target (%.0f%% of the module's "
                  "multiply-accumulates) and use default schedules:",
                  s.untuned.size(), 100 * s.untuned_mac_share);
      print_first_six(s.untuned);
      std::printf("\n");
    }
    if (!s.stale.empty()) {
      std::printf("qnnc: warning: %zu of these kernels' records were measured against an older default schedule "
                  "(this qnnc chooses another default) and are not used:",
                  s.stale.size());
      print_first_six(s.stale);
      std::printf("; `qnnc tune ... --resume` on the same records file measures the new default\n");
    }
  }
  if (opt.quantize) {
    const QuantizeSummary &q = s.quant;
    std::printf("qnnc: %s: %d layers integer, %d layers kept fp32, %d quantize / %d dequantize steps; "
                "conv weights %.1f MB fp32 -> %.1f MB at %d bits\n",
                opt.qconfig.precision().c_str(), q.quantized, q.kept_fp32, q.quantize_steps, q.dequantize_steps,
                q.fp32_weight_bytes / 1e6, q.quantized_weight_bytes / 1e6, opt.qconfig.weight_bits);
    if (q.quantize_folded)
      std::printf("qnnc:   %d quantize steps done by the step before them (%d batch norms, %d gate products that also "
                  "read integers)\n",
                  q.quantize_folded, q.quantize_folded - q.gates_folded, q.gates_folded);
    if (q.lookup_tables)
      std::printf("qnnc:   %d activation functions of one integer input run as %d-entry tables\n", q.lookup_tables,
                  1 << opt.qconfig.activation_bits);
    for (const auto &[why, count] : q.kept_reasons) std::printf("qnnc:   kept fp32: %d x %s\n", count, why.c_str());
    for (const auto &[why, count] : q.int8_reasons) std::printf("qnnc:   at int8: %d x %s\n", count, why.c_str());
    int wb = opt.qconfig.weight_bits, ab = opt.qconfig.activation_bits;
    // What the module really stores and runs, from its plan.
    nlohmann::json m = nlohmann::json::parse(slurp(out + "/graph.json"));
    auto ends = [](const std::string &a, const std::string &b) {
      return a.size() >= b.size() && a.compare(a.size() - b.size(), b.size(), b) == 0;
    };
    double bytes8 = 0, nibbles = 0, crumbs = 0, planes = 0;
    int bs = 0, total = 0;  // integer convolutions: bit-serial ones, all
    int packed_layers = 0, byte_layers = 0;  // dot-product ones by weight storage
    int plane_out = 0, thresholds = 0, bitpacks = 0;  // the low-bit pipeline (docs/precision.md)
    int amx = 0;  // dot-product ones on AMX tiles
    int madd = 0;  // ones that sum u8 x i8 pairs in 16 bits (7-bit weights)
    int pairs = 0;  // ones that widen channel pairs to 16 bits for vpmaddwd (x86 without VNNI)
    for (const auto &st : m["steps"]) {
      std::string d = st.value("describe", "");
      const auto knobs = st.value("spec", nlohmann::json::object()).value("knobs", nlohmann::json::object());
      plane_out += knobs.value("output_bits", 0) > 0;
      thresholds += knobs.value("thresholds", 0) > 0;
      bitpacks += st.value("op", "") == "bitpack";
      bool serial = d.rfind("conv2d_bs", 0) == 0;
      if (!serial && d.rfind("conv2d_q", 0) != 0) continue;
      bs += serial;
      total++;
      amx += knobs.value("amx", 0) > 0;
      madd += knobs.value("madd_u8", 0) > 0;
      pairs += !serial && knobs.value("group", 4) == 2;
      const auto &w = m["values"][st["args"][1]["value"].get<int>()];  // the weights argument
      std::string nm = w.value("name", "");
      double b = w.value("bytes", 0.0);
      (ends(nm, ".nibbles") ? nibbles : ends(nm, ".crumbs") ? crumbs : ends(nm, ".bitplanes") ? planes : bytes8) += b;
      if (!serial) (ends(nm, ".nibbles") || ends(nm, ".crumbs") ? packed_layers : byte_layers)++;
    }
    std::string parts;
    for (auto [b, what] : {std::pair{bytes8, "one per byte"}, {nibbles, "two per byte"}, {crumbs, "four per byte"},
                           {planes, "bit planes"}})
      if (b > 0) parts += (parts.empty() ? "" : ", ") + std::to_string((int)(b / 1e3 + 0.5)) + " kB " + what;
    std::printf("qnnc: stored integer conv weights (packed, padded): %s\n", parts.c_str());
    // Low-bit weights on the dot-product kernel: packed where that pays, one per byte on wide
    // outputs (kernels/conv2d_q.h).
    std::string storage;
    if (wb < 7 && packed_layers > 0) storage += std::to_string(packed_layers) + " with weights unpacked from 2 or 4 per byte in registers";
    if (wb < 7 && byte_layers > 0)
      storage += (storage.empty() ? "" : ", ") + std::to_string(byte_layers) +
                 " with weights one per byte (8-bit layers, and outputs of 14 or more columns, where unpacking costs more "
                 "than it saves; --knob conv2d_q.weights_per_byte=2|4 packs them all)";
    if (wb < 7 || ab < 8)
      std::printf("qnnc: kernels: %d of %d integer convolutions bit-serial (bit planes, AND + popcount; --knob "
                  "conv2d_q.bitserial=0|1 forces it), the others on the int8 dot-product kernel (layers kept at 8 bits, and "
                  "%d/%d-bit layers where bit-serial does not pay)%s%s\n",
                  bs, total, wb, ab, storage.empty() ? "" : ": ", storage.c_str());
    if (amx > 0)
      std::printf("qnnc: AMX: %d of %d integer convolutions on tile products (tdpbusd), the others on vector dot "
                  "products (where tiles do not fit or measured slower: fewer than 16 input channels or output "
                  "channels not a multiple of 16, 1x1 layers with few channels or pixels, 1x1 stride-2 layers into "
                  "fewer than 14 columns; --knob conv2d_q.amx=0|1 forces it)\n",
                  amx, total);
    if (wb == 8 && pairs > 0)
      std::printf("qnnc: hint: this target has no u8 x i8 dot product (VNNI), so %d integer convolutions widen "
                  "channel pairs to 16 bits for exact products (vpmaddwd); with 7-bit weights (--quantize w7a8) "
                  "they sum u8 x i8 pairs in 16 bits (vpmaddubsw) instead: ResNet-50 1.3-1.4x faster on an AVX2 "
                  "machine, level with ONNX Runtime's int8 there (docs/precision.md)\n",
                  pairs);
    if (wb == 7)
      std::printf("qnnc: 7-bit weights: %d of %d integer convolutions sum u8 x i8 products in pairs of 16 bits "
                  "(vpmaddubsw, exact with weights within [-64, 63]; x86 with AVX2 and no VNNI takes it), the "
                  "others as at int8\n",
                  madd, total);
    if (plane_out + thresholds + bitpacks > 0)
      std::printf("qnnc: low-bit pipeline: %d layers write bit planes for bit-serial readers (bitpack steps left: %d); "
                  "%d layers with threshold epilogues (compares instead of requantization)\n",
                  plane_out, bitpacks, thresholds);
  }
  if (qf.report) {
    log("qnnc: building the fp32 reference for the accuracy report");
    AccuracyReport rep = write_accuracy_report(g, opt, out, qf.report_inputs, seed + 5000);
    std::printf("%s", rep.format().c_str());
    log("qnnc: wrote " + out + "/accuracy.json (read by qnnc report)");
  }
  return 0;
}

int cmd_run(const std::string &dir, const std::string &input, const std::string &output, uint64_t seed, int threads) {
  Module m = Module::load(dir);
  m.set_threads(threads);
  auto in = load_inputs(m, input, seed);
  auto out = m.run(in);
  for (size_t i = 0; i < out.size(); i++) {
    const Tensor &t = out[i];
    std::printf("output %zu: shape %s", i, shape_string(t.shape).c_str());
    if (!t.data.empty()) {
      auto mx = std::max_element(t.data.begin(), t.data.end());
      double sum = 0;
      for (float v : t.data) sum += v;
      std::printf("  mean %.6g  argmax %ld (%.6g)", sum / t.data.size(), (long)(mx - t.data.begin()), *mx);
    }
    std::printf("\n");
  }
  if (!output.empty()) {
    if (out.size() != 1) throw Error("--output takes one .npy, the model has " + std::to_string(out.size()) + " outputs");
    write_npy(output, out[0]);
    std::printf("wrote %s\n", output.c_str());
  }
  return 0;
}

int cmd_bench(const std::string &dir, int repeat, int warmup, int threads, const std::string &json, uint64_t seed,
              bool profile, const std::string &profile_json) {
  Module m = Module::load(dir);
  m.set_threads(threads);
  auto in = load_inputs(m, "", seed);
  if (repeat < 1) throw Error("--repeat must be at least 1");
  if (profile) {
    Profile p = profile_module(m, in, repeat, warmup);
    std::printf("%s", p.format().c_str());
    if (!profile_json.empty()) {
      std::ofstream f(profile_json);
      f << p.to_json().dump(1) << "\n";
      if (!f) throw Error("cannot write '" + profile_json + "'");
    }
  }
  RunTiming t = time_runs(m, in, warmup, repeat);
  std::printf("%s on %d thread(s), %d runs after %d warm-up: median %.3f ms  min %.3f  max %.3f  stddev %.3f\n",
              dir.c_str(), m.threads(), repeat, warmup, t.median, t.min, t.max, t.stddev);
  if (!json.empty()) {
    nlohmann::json j{{"module", dir}, {"model", m.manifest().value("model", "")}, {"threads", m.threads()},
                     {"repeat", repeat}, {"warmup", warmup}, {"median_ms", t.median}, {"min_ms", t.min},
                     {"max_ms", t.max}, {"mean_ms", t.mean}, {"std_ms", t.stddev}};
    std::ofstream f(json);
    f << j.dump(2) << "\n";
    if (!f) throw Error("cannot write '" + json + "'");
  }
  return 0;
}

// Runs a cross-compiled bundle under qemu-aarch64 with the board's CPU model.
int cmd_emulate(const std::string &dir, const std::string &board, int threads, int repeat, int warmup,
                const std::string &input, const std::string &output, const std::string &json) {
  nlohmann::json m = nlohmann::json::parse(slurp(dir + "/graph.json"));
  std::string target = m.value("target", "host");
  if (target == "host") throw Error("'" + dir + "' was compiled for the host; compile with --target rpi4 or rpi5 to emulate");
  TargetInfo t = resolve_target(board.empty() ? target : board);
  if (t.qemu_cpu.empty()) throw Error("board '" + t.name + "' has no emulator CPU model (use rpi4 or rpi5)");
  std::string exe = dir + "/qnnc-run";
  if (access(exe.c_str(), X_OK) != 0) throw Error("'" + exe + "' is missing: recompile the module");
  std::string cmd = "qemu-aarch64 -cpu " + t.qemu_cpu + " " + shell_quote(exe) + " --repeat " + std::to_string(repeat) +
                    " --warmup " + std::to_string(warmup) + " --threads " + std::to_string(threads);
  if (!input.empty()) cmd += " --input " + shell_quote(input);
  if (!output.empty()) cmd += " --output " + shell_quote(output);
  if (!json.empty()) cmd += " --json " + shell_quote(json);
  std::fprintf(stderr, "qnnc: emulating %s on %s: %s\n", target.c_str(), t.description.c_str(), cmd.c_str());
  int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) throw Error("could not run qemu-aarch64 (install Debian's qemu-user)");
  int code = WEXITSTATUS(rc);
  if (code == 127) throw Error("qemu-aarch64 not found (install Debian's qemu-user)");
  return code;
}

int cmd_inspect(const std::string &dir, bool ir, bool stmt, bool asm_, const std::string &layer) {
  std::string mtext = slurp(dir + "/graph.json");
  nlohmann::json m = nlohmann::json::parse(mtext);
  if (ir) {
    std::printf("%s\n", shown_message(slurp(dir + "/graph.txt")).c_str());
    return 0;
  }
  const auto &steps = m.at("steps");
  if (!stmt && !asm_) {
    std::printf("module %s: model %s, target %s (%s)\n", shown(dir).c_str(), shown(m.value("model", "")).c_str(),
                shown(m.value("target", "")).c_str(), shown(m.value("halide_target", "")).c_str());
    if (m.contains("cpu_features") && m["cpu_features"].is_array()) {
      std::string need;
      for (const auto &f : m["cpu_features"]) need += (need.empty() ? "" : " ") + f.get<std::string>();
      std::printf("needs CPU features: %s\n", need.empty() ? "(baseline)" : need.c_str());
    }
    std::printf("%-4s %-34s %-42s %s\n", "step", "name", "kernel", "function");
    for (size_t i = 0; i < steps.size(); i++)
      std::printf("%-4zu %-34s %-42s %s\n", i, shown(steps[i]["name"].get<std::string>()).c_str(),
                  shown(steps[i].value("describe", "(view: no kernel)")).c_str(), shown(steps[i].value("fn", "")).c_str());
    return 0;
  }
  if (layer.empty()) throw Error("--stmt and --asm need --layer NAME (see `qnnc inspect " + dir + "` for names)");
  std::printf("%s", kernel_code(m, layer, stmt ? "stmt" : "asm").c_str());
  std::printf("\n");
  return 0;
}

// "20m", "2h", "90s" or a bare number of minutes, in seconds; empty: 0 (no time budget).
double parse_duration_s(const std::string &text) {
  if (text.empty()) return 0;
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception &) {
  }
  std::string unit = text.substr(used);
  double mult = unit.empty() || unit == "m" || unit == "min" ? 60 : unit == "s" ? 1 : unit == "h" ? 3600 : -1;
  if (v <= 0 || mult < 0 || !std::isfinite(v))
    throw Error("--time-budget '" + text + "': give a positive duration such as 20m, 2h or 90s (a bare number is minutes)");
  return v * mult;
}

int cmd_tune(const std::string &model, const std::string &records, const std::string &target, const std::string &shape,
             uint64_t seed, int trials, double budget_s, bool resume, int threads, int repeat, double timeout,
             const std::vector<std::string> &knobs, const QuantFlags &qf, bool quiet, bool use_model,
             const std::vector<std::string> &history, const std::string &runner, int jobs, bool confirm) {
  auto log = [&](const std::string &s) {
    if (!quiet) say("qnnc: " + s);
  };
  make_runner(runner, resolve_target(target), RunnerOptions{});  // a bad --runner fails before calibrating
  BuiltinOptions bo;
  bo.seed = seed;
  Graph g = load_model(model, parse_shape(shape), bo);
  CompileOptions opt = compile_options(target, 0, knobs, "", qf, seed);
  ProgressBar bar;
  if (!quiet) opt.progress = [&](const ProgressEvent &e) { bar(e); };
  log("preparing " + model + (opt.quantize ? " (" + opt.qconfig.precision() + ", calibrating once)" : " (fp32)"));
  Graph prepared = prepare_for_codegen(g, opt);
  TuneOptions to;
  to.records = records;
  to.trials = trials;
  to.time_budget_s = budget_s;
  to.resume = resume;
  to.threads = threads;
  to.repeat = repeat;
  to.timeout_s = timeout;
  to.seed = seed;
  to.use_cost_model = use_model;
  to.history = history;
  to.runner = runner;
  to.jobs = jobs;
  to.confirm = confirm;
  to.qnnc_version = "qnnc-0.1.0";
  to.qnnc_exe = self_exe();
  if (to.qnnc_exe.empty()) throw Error("cannot find this program's path (/proc/self/exe) to run measurements");
  to.log = log;
  if (!quiet) to.progress = [&](const ProgressEvent &e) { bar(e); };
  TuneResult r = tune(prepared, opt, to);
  std::printf("%s", r.table().c_str());
  if (r.times_count)
    std::printf("qnnc: records in %s; use them with: qnnc compile %s --tuning-records %s ...\n", records.c_str(),
                model.c_str(), records.c_str());
  else
    std::printf("qnnc: records in %s check correctness only; tune on the board with --runner ssh://user@host\n",
                records.c_str());
  return 0;
}

int cmd_measure(const std::string &cand, const std::string &ref, const std::string &steps_list, int repeat, int threads,
                const std::string &json) {
  Module c = Module::load(cand), r = Module::load(ref);
  c.set_threads(threads);
  nlohmann::json j = measure_against_reference(c, r, parse_step_list(steps_list), repeat, 0);
  std::ofstream f(json);
  f << j.dump() << "\n";
  if (!f) throw Error("cannot write '" + json + "'");
  return 0;
}

// Top-1/top-5 on labelled data; also saved as MODULE/eval.json, which `qnnc report` shows.
int cmd_eval(const std::string &dir, const std::string &data, int threads, const std::string &json, bool save) {
  Module m = Module::load(dir);
  m.set_threads(threads);
  EvalResult r = evaluate_npz(m, data);
  std::string prec = m.manifest().value("precision", "fp32");
  std::printf("%s (%s): top-1 %.2f%%  top-5 %.2f%%  on %lld samples of %s (%lld classes), %.1f ms per sample\n",
              shown(dir).c_str(), prec.c_str(), 100 * r.top1, 100 * r.top5, (long long)r.samples, shown(data).c_str(),
              (long long)r.classes, 1e3 * r.seconds / r.samples);
  nlohmann::json j = r.to_json();
  j["precision"] = prec;
  j["data"] = data;
  for (const std::string &path : {save ? dir + "/eval.json" : std::string(), json}) {
    if (path.empty()) continue;
    std::ofstream f(path);
    f << j.dump(1) << "\n";
    if (!f) throw Error("cannot write '" + path + "'");
  }
  return 0;
}

// The report is drawn by the Python package (python/qnnc/report.py, plotly): run it with the
// Python qnnc was built with (QNNC_PYTHON overrides), passing the arguments through.
int cmd_report(const std::vector<std::string> &modules, const std::string &out, int threads, int repeat, bool no_code,
               const std::string &title) {
  // QNNC_PYTHON, else the Python beside this executable (pip installed both into one
  // environment's bin/), else the one qnnc was built with.
  const char *env = std::getenv("QNNC_PYTHON");
  std::string py = env && *env ? env : QNNC_PYTHON;
  if (!(env && *env)) {
    std::string dir = self_exe();
    if (!dir.empty()) {
      dir = dir.substr(0, dir.rfind('/'));
      if (access((dir + "/python3").c_str(), X_OK) == 0) py = dir + "/python3";
    }
  }
  std::string check = shell_quote(py) + " -c 'import qnnc, qnnc.report' >/dev/null 2>&1";
  if (std::system(check.c_str()) != 0)
    throw Error("qnnc report needs qnnc's Python package in " + py +
                " (install it with `pip install .` from the source tree, as scripts/setup.sh does, or set QNNC_PYTHON "
                "to a Python that has it)");
  std::string cmd = shell_quote(py) + " -m qnnc.report -o " + shell_quote(out) + " --repeat " + std::to_string(repeat);
  if (threads > 0) cmd += " --threads " + std::to_string(threads);
  if (no_code) cmd += " --no-code";
  if (!title.empty()) cmd += " --title " + shell_quote(title);
  for (const auto &m : modules) cmd += " " + shell_quote(m);
  int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) throw Error("could not run " + py);
  return WEXITSTATUS(rc);
}

}  // namespace

// The quantization flags of compile and tune.
void add_quant_flags(CLI::App *c, QuantFlags &qf) {
  c->add_option("--quantize", qf.precision, "precision: fp32 (default), int8, int4, int2, int1, or wXaY (e.g. w4a8)");
  c->add_option("--calib-mode", qf.calib_mode, "activation ranges: minmax, percentile, kl_divergence, global_scale")->capture_default_str();
  c->add_option("--calib-samples", qf.calib_samples, "random calibration inputs")->capture_default_str();
  c->add_option("--calib-data", qf.calib_data, "calibration inputs (.npy or .npz of N,C,H,W float32) instead of random ones");
  c->add_option("--percentile", qf.percentile, "with --calib-mode percentile")->capture_default_str();
  c->add_option("--global-scale", qf.global_scale, "with --calib-mode global_scale: the clipping range")->capture_default_str();
  c->add_option("--weight-scale", qf.weight_scale, "per-channel weight scale: channel_max (largest weight exact), power2, or mse (least squared error; pays at 2-4 bits)")->capture_default_str();
  c->add_option("--rounding", qf.rounding,
                "ties in requantization and quantize: tonearest (to even, as ONNX Runtime) or upward (x.5 -> up, TVM's default; slower)")
      ->check(CLI::IsMember({"upward", "tonearest"}))
      ->capture_default_str();
  c->add_option("--skip-layer", qf.skip, "keep this layer (node name) in fp32; repeatable");
  c->add_flag("--quantize-dense", qf.quantize_dense,
              "also quantize dense (fully connected) layers, as 1x1 integer convolutions (kept fp32 by default, as TVM does)");
  c->add_flag("--quantize-first-conv", qf.no_skip_first, "also quantize the first convolution (kept fp32 by default, as TVM does)");
  c->add_option("--lowbit-edges", qf.lowbit_edges,
                "in low-bit modes (below 8 bits), the first convolution and dense layers run at int8, stay fp32\n"
                "(then --quantize-first-conv / --quantize-dense apply as at int8), or take the model's bits (same)")
      ->check(CLI::IsMember({"int8", "fp32", "same"}))
      ->capture_default_str();
}

int main(int argc, char **argv) {
  CLI::App app{"qnnc: a quantizing neural-network compiler. Compiles ONNX models or built-in ResNets\n"
               "into modules of Halide-generated kernels, runs and benchmarks them, and shows the code."};
  app.require_subcommand(1);

  std::vector<std::string> knobs;
  std::string tuning_records;
  QuantFlags qf;
  std::string model, out, target = "host", shape, input, output, json, layer;
  uint64_t seed = 0;
  int threads = 0, repeat = 20, warmup = 3, jobs = 0;
  bool quiet = false, profile = false, ir = false, stmt = false, asm_ = false;

  auto *c = app.add_subcommand("compile", "Compile MODEL (a .onnx file or builtin:resnet18|resnet34|resnet50) into a module directory");
  c->add_option("model", model, "ONNX file or builtin:NAME")->required();
  c->add_option("-o,--output", out, "module directory to write")->required();
  c->add_option("--target", target,
                "host (kernels use exactly what this CPU has); x86-avx2 (any AVX2 x86-64, no AVX-512); rpi4 (Cortex-A72) or "
                "rpi5 (Cortex-A76): cross-compiled static bundle; or a Halide target string for another machine, e.g. "
                "x86-64-linux-avx512_zen4, x86-64-linux-avx512_sapphirerapids, arm-64-linux-arm_dot_prod. A module "
                "records the CPU features its kernels need and refuses to run where one is missing")->capture_default_str();
  c->add_option("--input-shape", shape, "input shape N,C,H,W (default: the model's, 1,3,224,224 for built-ins)");
  c->add_option("--seed", seed, "seed of built-in weights and batch-norm re-estimation")->capture_default_str();
  c->add_option("-j,--jobs", jobs, "kernels compiled in parallel (default: all cores)");
  c->add_flag("-q,--quiet", quiet, "no progress output");
  add_quant_flags(c, qf);
  c->add_flag("--report", qf.report, "print accuracy vs fp32: logits SQNR/cosine/top-k, raw and centered, and per-layer SQNR");
  c->add_option("--report-inputs", qf.report_inputs, "inputs used by --report")->capture_default_str();
  c->add_option("--tuning-records", tuning_records,
                "tuning records (JSON lines) to take tuned schedules from; default: $QNNC_TUNING_RECORDS");
  c->add_option("--knob", knobs, "force a schedule knob on a kernel family, e.g. conv2d.x_tile=7 (repeatable; `qnnc knobs` lists them)");

  auto *r = app.add_subcommand("run", "Run a compiled module on an input (.npy/.npz; default: seeded random)");
  r->add_option("module", out, "module directory")->required();
  r->add_option("-i,--input", input, "float32 input .npy (NCHW) or .npz");
  r->add_option("-o,--output", output, "write the output as .npy");
  r->add_option("--seed", seed, "seed of the random input when no --input is given")->capture_default_str();
  r->add_option("-t,--threads", threads, "threads (default: all cores)");

  auto *b = app.add_subcommand("bench", "Time a compiled module: warm-up, then median/min/max/stddev over --repeat runs");
  b->add_option("module", out, "module directory")->required();
  b->add_option("-n,--repeat", repeat, "timed runs")->capture_default_str();
  b->add_option("-w,--warmup", warmup, "untimed runs first")->capture_default_str();
  b->add_option("-t,--threads", threads, "threads (default: all cores)");
  b->add_option("--json", json, "also write the timings as JSON");
  b->add_option("--seed", seed, "seed of the random input")->capture_default_str();
  b->add_flag("--profile", profile,
              "also print each step's median time, GOP/s and share of this CPU's peak for its precision (measured)");
  std::string profile_json;
  b->add_option("--profile-json", profile_json, "with --profile: also write the per-step table as JSON (read by qnnc report)");

  auto *in = app.add_subcommand("inspect", "Show a module: its steps, the graph after passes (--ir), a kernel's lowered loop nest (--stmt) or assembly (--asm)");
  in->add_option("module", out, "module directory")->required();
  in->add_flag("--ir", ir, "graph after passes, with types and layouts");
  in->add_flag("--stmt", stmt, "Halide's lowered loop nest of --layer");
  in->add_flag("--asm", asm_, "assembly of --layer");
  in->add_option("--layer", layer, "step name (see the step list)");

  std::string board;
  auto *em = app.add_subcommand("emulate", "Run a module compiled for rpi4/rpi5 under qemu-aarch64 (user mode) and time it");
  em->add_option("module", out, "module directory (from qnnc compile --target rpi4|rpi5)")->required();
  em->add_option("--board", board, "CPU model to emulate: rpi4 (cortex-a72) or rpi5 (cortex-a76); default: the module's target");
  em->add_option("-t,--threads", threads, "threads (default: all cores)");
  int emu_repeat = 3, emu_warmup = 1;
  em->add_option("-n,--repeat", emu_repeat, "timed runs")->capture_default_str();
  em->add_option("-w,--warmup", emu_warmup, "untimed runs first")->capture_default_str();
  em->add_option("-i,--input", input, "float32 input .npy (default: seeded random)");
  em->add_option("-o,--output", output, "write the output as .npy");
  em->add_option("--json", json, "write the timings as JSON");

  std::string records;
  double trials = 0;
  std::string budget_text;
  bool resume = false;
  int tune_repeat = 10;
  double tune_timeout = 120;
  auto *tn = app.add_subcommand(
      "tune", "Search the schedule knobs of MODEL's kernels on this machine and append every measurement to a\n"
              "records file (JSON lines) that compile --tuning-records reads. The budget goes to the kernels\n"
              "that take the most time; each candidate is checked against the default schedule's output");
  tn->add_option("model", model, "ONNX file or builtin:NAME")->required();
  tn->add_option("-o,--output", records, "records file (JSON lines), appended to")->required();
  tn->add_option("--target", target, "host, an x86 target this machine runs, or a board's (rpi4, rpi5) with --runner")
      ->capture_default_str();
  std::string runner = "local";
  int tune_jobs = 0;
  tn->add_option("--runner", runner,
                 "where candidates are measured: local (this machine); ssh://user@host[:port] (a board: a static\n"
                 "measurement build is copied there; the ssh command is $QNNC_SSH, default 'ssh -o BatchMode=yes');\n"
                 "qemu (ARM targets under qemu-aarch64: checks outputs only, emulated times are not used)")
      ->capture_default_str();
  bool no_confirm = false;
  tn->add_flag("--no-confirm", no_confirm,
               "skip the final re-measurement of each task's best candidate (3x the runs, against the default),\n"
               "which otherwise decides whether the task counts as tuned");
  tn->add_option("-j,--jobs", tune_jobs, "candidates compiled in parallel (default: one per core); they are measured one at a time");
  tn->add_option("--input-shape", shape, "input shape N,C,H,W");
  tn->add_option("--seed", seed, "seed of built-in weights, calibration and the search")->capture_default_str();
  tn->add_option("--trials", trials, "candidate measurements in all");
  tn->add_option("--time-budget", budget_text,
                 "how long to tune (with or instead of --trials): 20m, 2h, 90s; a bare number is minutes");
  tn->add_flag("--resume", resume, "continue an existing records file (knobs measured there are not retried)");
  tn->add_option("-t,--threads", threads, "threads the kernels are measured with (default: all cores)");
  tn->add_option("-n,--repeat", tune_repeat, "timed runs per measurement")->capture_default_str();
  tn->add_option("--timeout", tune_timeout, "seconds a measurement may take before it counts as failed")->capture_default_str();
  tn->add_option("--knob", knobs, "knobs forced on a family while tuning (as compile --knob)");
  tn->add_flag("-q,--quiet", quiet, "no progress output");
  std::string search = "model";
  std::vector<std::string> history;
  tn->add_option("--search", search, "model: rank candidates with the learned cost model (XGBoost); random: random and mutation only")
      ->check(CLI::IsMember({"model", "random"}))->capture_default_str();
  tn->add_option("--history", history, "earlier records files the cost model also learns from (repeatable)");
  add_quant_flags(tn, qf);

  std::string reference, steps_list;
  auto *ms = app.add_subcommand("measure", "(used by tune) Time steps of a candidate module against its reference and check their outputs");
  ms->add_option("module", out, "candidate module directory")->required();
  ms->add_option("--reference", reference, "reference module directory")->required();
  ms->add_option("--steps", steps_list, "comma-separated step indices")->required();
  ms->add_option("-n,--repeat", repeat, "timed runs of each module")->capture_default_str();
  ms->add_option("-t,--threads", threads, "threads (default: all cores)");
  ms->add_option("--json", json, "write the result here")->required();

  std::string knob_family;
  auto *kn = app.add_subcommand("knobs", "List the schedule knobs of every kernel family (or of one): what each does,\n"
                                         "the values --knob accepts and the values a tuner tries");
  kn->add_option("family", knob_family, "kernel family, e.g. conv2d_q");

  std::string eval_data;
  bool no_save = false;
  auto *ev = app.add_subcommand("eval", "Top-1 and top-5 accuracy of a module on labelled data, run in batches of the\n"
                                        "module's batch size; saved as MODULE/eval.json for qnnc report");
  ev->add_option("module", out, "module directory")->required();
  ev->add_option("--data", eval_data, ".npz with inputs (float32 N,C,H,W, preprocessed) and labels (N integers)")
      ->required();
  ev->add_option("-t,--threads", threads, "threads (default: all cores)");
  ev->add_option("--json", json, "also write the result to this JSON file");
  ev->add_flag("--no-save", no_save, "do not write MODULE/eval.json");

  std::vector<std::string> report_modules;
  std::string report_out = "report.html", title;
  bool no_code = false;
  int report_repeat = 10;
  auto *rp = app.add_subcommand(
      "report", "Write one self-contained HTML report of one or more modules (e.g. fp32, int8 and int4 of one model):\n"
                "layers, per-layer time and share of peak, precisions side by side, per-layer SQNR (from\n"
                "compile --report), each kernel's loop nest and assembly. Needs the Python package (pip install .).");
  rp->add_option("modules", report_modules, "module directories")->required();
  rp->add_option("-o,--output", report_out, "HTML file to write")->capture_default_str();
  rp->add_option("-t,--threads", threads, "threads for the profile run (default: all cores)");
  rp->add_option("-n,--repeat", report_repeat, "timed runs of the profile")->capture_default_str();
  rp->add_flag("--no-code", no_code, "leave out the loop nests and assembly (faster)");
  rp->add_option("--title", title, "report title");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    return app.exit(e);
  }
  try {
    if (*c) return cmd_compile(model, out, target, shape, seed, jobs, quiet, knobs, tuning_records, qf);
    if (*r) return cmd_run(out, input, output, seed, threads);
    if (*b) return cmd_bench(out, repeat, warmup, threads, json, seed, profile, profile_json);
    if (*in) return cmd_inspect(out, ir, stmt, asm_, layer);
    if (*tn) return cmd_tune(model, records, target, shape, seed, (int)trials, parse_duration_s(budget_text), resume, threads,
                             tune_repeat, tune_timeout, knobs, qf, quiet, search == "model", history, runner, tune_jobs, !no_confirm);
    if (*ms) return cmd_measure(out, reference, steps_list, repeat, threads, json);
    if (*kn) {
      std::printf("%s", describe_knob_spaces(knob_family).c_str());
      return 0;
    }
    if (*ev) return cmd_eval(out, eval_data, threads, json, !no_save);
    if (*rp) return cmd_report(report_modules, report_out, threads, report_repeat, no_code, title);
    if (*em) return cmd_emulate(out, board, threads, emu_repeat, emu_warmup, input, output, json);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", shown_message(e.what()).c_str());
    return 1;
  } catch (const Halide::Error &e) {  // not a std::exception (e.g. inspect --stmt/--asm)
    std::fprintf(stderr, "error: Halide: %s\n", shown_message(e.what()).c_str());
    return 1;
  }
  return 0;
}
