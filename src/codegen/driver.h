// Compiling a model with every option given as one JSON object: the form the C API and the
// Python package take (the command line maps its flags onto the same CompileOptions).
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "codegen/compile.h"
#include "quantize/report.h"

namespace qnnc {

// Keys (all optional): target, precision, input_shape [..], seed, jobs, calib_mode, calib_data,
// calib_samples, percentile, global_scale, weight_scale, rounding, quantize_first_conv,
// quantize_dense, skip_layers [..], knobs {"family": {"knob": value}}, report (bool),
// report_inputs, tuning_records (path). Unknown keys and values of the wrong type are a qnnc::Error. With report
// (quantized precisions only), also writes accuracy.json (see write_accuracy_report).
// Returns the summary as JSON: dir, steps, kernels, cached, seconds, weight_bytes, precision,
// tuning {records, tuned, untuned [describe...], untuned_mac_share, stale [describe...]},
// and for quantized modules "quantize" {quantized, kept_fp32, quantize_steps, dequantize_steps,
// lookup_tables, fp32_weight_bytes, quantized_weight_bytes, kept_reasons {why: count}, int8_reasons
// {why: count} (low-bit modes)} and
// "accuracy" (the report) when asked.
nlohmann::json compile_model_json(const std::string &model, const std::string &out_dir, const nlohmann::json &options,
                                  const std::function<void(const std::string &)> &log = nullptr,
                                  const ProgressFn &progress = nullptr);

// Compiles g in fp32 with opt's other settings, runs it and the quantized module in dir on
// `inputs` seeded random inputs, and writes dir/accuracy.json (AccuracyReport::to_json plus
// "precision"), which `qnnc report` reads.
AccuracyReport write_accuracy_report(const Graph &g, const CompileOptions &opt, const std::string &dir, int inputs,
                                     uint64_t seed);

}  // namespace qnnc
