#include "codegen/driver.h"

#include <algorithm>
#include <fstream>

#include "frontend/builtin_models.h"

namespace qnnc {

AccuracyReport write_accuracy_report(const Graph &g, const CompileOptions &opt, const std::string &dir, int inputs,
                                     uint64_t seed) {
  if (!opt.quantize) throw Error("the accuracy report compares a quantized module with fp32: choose a precision");
  CompileOptions fo = opt;
  fo.quantize = false;
  fo.log = nullptr;
  fo.progress_task = "reference fp32 kernels";
  Module ref = compile(g, fo);
  Module q = Module::load(dir);
  AccuracyReport rep = compare_modules(ref, q, inputs, seed);
  nlohmann::json aj = rep.to_json();
  aj["precision"] = opt.qconfig.precision();
  std::ofstream f(dir + "/accuracy.json");
  f << aj.dump(1) << "\n";
  if (!f) throw Error("cannot write '" + dir + "/accuracy.json'");
  return rep;
}

nlohmann::json compile_model_json(const std::string &model, const std::string &out_dir, const nlohmann::json &o,
                                  const std::function<void(const std::string &)> &log, const ProgressFn &progress) {
  if (!o.is_object()) throw Error("compile options must be a JSON object");
  static const char *known[] = {"target", "precision", "input_shape", "seed", "jobs", "calib_mode", "calib_data",
                                "calib_samples", "percentile", "global_scale", "weight_scale", "rounding",
                                "quantize_first_conv", "quantize_dense", "skip_layers", "knobs", "report",
                                "report_inputs", "tuning_records", "lowbit_edges"};
  for (const auto &[key, v] : o.items())
    if (std::find_if(std::begin(known), std::end(known), [&](const char *k) { return key == k; }) == std::end(known)) {
      std::string names;
      for (const char *k : known) names += (names.empty() ? "" : ", ") + std::string(k);
      throw Error("unknown compile option '" + printable(key) + "' (options: " + names + ")");
    }
  try {
    BuiltinOptions bo;
    bo.seed = o.value("seed", (uint64_t)0);
    bo.log = log;
    Graph g = load_model(model, o.value("input_shape", std::vector<int64_t>{}), bo);
    CompileOptions opt;
    opt.target = o.value("target", std::string("host"));
    opt.jobs = o.value("jobs", 0);
    opt.knobs = o.value("knobs", std::map<std::string, Knobs>{});
    opt.tuning_records = o.value("tuning_records", std::string());
    opt.log = log;
    opt.progress = progress;
    std::string p = o.value("precision", std::string("fp32"));
    bool report = o.value("report", false);
    if (p != "fp32") {
      opt.quantize = true;
      QConfig &q = opt.qconfig;
      q = QConfig::parse_precision(p);
      q.calibration_seed = bo.seed + 1000;
      q.calibrate_mode = o.value("calib_mode", q.calibrate_mode);
      q.calibration_data = o.value("calib_data", q.calibration_data);
      q.calibration_samples = o.value("calib_samples", q.calibration_samples);
      q.percentile = o.value("percentile", q.percentile);
      q.global_scale = o.value("global_scale", q.global_scale);
      q.weight_scale = o.value("weight_scale", q.weight_scale);
      q.rounding = o.value("rounding", q.rounding);
      q.skip_first_conv = !o.value("quantize_first_conv", false);
      q.skip_dense = !o.value("quantize_dense", false);
      q.skip_layers = o.value("skip_layers", q.skip_layers);
      q.lowbit_edges = o.value("lowbit_edges", q.lowbit_edges);
      q.validate();
    } else if (report) {
      throw Error("report compares a quantized module with fp32: choose a precision other than fp32");
    }
    CompileSummary s = compile_to_dir(g, opt, out_dir);
    nlohmann::json r{{"dir", s.dir},         {"steps", s.steps},     {"kernels", s.kernels},
                     {"cached", s.cached},   {"seconds", s.seconds}, {"weight_bytes", s.weight_bytes},
                     {"precision", p},       {"target", opt.target}};
    r["tuning"] = {{"records", s.tuning_records}, {"tuned", s.tuned}, {"default_best", s.default_best}, {"untuned", s.untuned},
                   {"untuned_mac_share", s.untuned_mac_share}, {"stale", s.stale}};
    if (opt.quantize) {
      const QuantizeSummary &q = s.quant;
      r["quantize"] = {{"quantized", q.quantized},
                       {"kept_fp32", q.kept_fp32},
                       {"quantize_steps", q.quantize_steps},
                       {"dequantize_steps", q.dequantize_steps},
                       {"lookup_tables", q.lookup_tables},
                       {"fp32_weight_bytes", q.fp32_weight_bytes},
                       {"quantized_weight_bytes", q.quantized_weight_bytes},
                       {"kept_reasons", q.kept_reasons}, {"int8_reasons", q.int8_reasons}};
    }
    if (report) {
      if (log) log("building the fp32 reference for the accuracy report");
      r["accuracy"] = write_accuracy_report(g, opt, out_dir, o.value("report_inputs", 16), bo.seed + 5000).to_json();
    }
    return r;
  } catch (const nlohmann::json::exception &e) {
    throw Error(std::string("compile option of the wrong type: ") + e.what());
  }
}

}  // namespace qnnc
