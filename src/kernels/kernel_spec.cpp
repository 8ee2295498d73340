#include "kernels/kernel_spec.h"

#include <cstdio>
#include <sstream>

namespace qnnc {

nlohmann::json KernelSpec::to_json() const {
  nlohmann::json j;
  j["kind"] = kind;
  j["in_shape"] = in_shape;
  j["out_shape"] = out_shape;
  j["kernel"] = kernel;
  j["stride"] = stride;
  j["pads"] = pads;
  j["dilation"] = dilation;
  j["relu"] = relu;
  if (relu_max > 0) j["relu_max"] = relu_max;  // absent = the default (keeps older signatures)
  if (!act.empty()) j["act"] = act;
  if (!act_params.empty()) j["act_params"] = act_params;
  if (group != 1) j["group"] = group;
  j["residual"] = residual;
  j["to_nhwc"] = to_nhwc;
  j["dtype"] = dtype;
  j["scale"] = scale;
  j["zero_point"] = zero_point;
  j["qmax"] = qmax;
  if (rounding != "upward") j["rounding"] = rounding;  // absent = the default
  if (!fn.empty()) j["fn"] = fn;  // absent when unused (keeps older signatures)
  if (!fparams.empty()) j["fparams"] = fparams;
  if (!in2_shape.empty()) j["in2_shape"] = in2_shape;
  if (!parts.empty()) j["parts"] = parts;
  if (!perm.empty()) j["perm"] = perm;
  if (axis >= 0) j["axis"] = axis;
  if (!starts.empty()) j["starts"] = starts;
  if (!steps.empty()) j["steps"] = steps;
  if (!arg_strides.empty()) j["arg_strides"] = arg_strides;
  j["knobs"] = knobs;
  return j;
}

KernelSpec KernelSpec::from_json(const nlohmann::json &j) {
  KernelSpec s;
  s.kind = j.at("kind").get<std::string>();
  s.in_shape = j.at("in_shape").get<std::vector<int64_t>>();
  s.out_shape = j.at("out_shape").get<std::vector<int64_t>>();
  s.kernel = j.at("kernel").get<std::vector<int64_t>>();
  s.stride = j.at("stride").get<std::vector<int64_t>>();
  s.pads = j.at("pads").get<std::vector<int64_t>>();
  s.dilation = j.at("dilation").get<std::vector<int64_t>>();
  s.relu = j.at("relu").get<bool>();
  s.relu_max = j.value("relu_max", 0.f);
  s.act = j.value("act", std::string());
  s.act_params = j.value("act_params", std::vector<float>());
  s.group = j.value("group", (int64_t)1);
  s.residual = j.at("residual").get<bool>();
  s.to_nhwc = j.at("to_nhwc").get<bool>();
  s.dtype = j.value("dtype", std::string("f32"));
  s.scale = j.value("scale", 0.f);
  s.zero_point = j.value("zero_point", 0);
  s.qmax = j.value("qmax", 255);
  s.rounding = j.value("rounding", std::string("upward"));
  s.fn = j.value("fn", std::string());
  s.fparams = j.value("fparams", std::vector<float>());
  s.in2_shape = j.value("in2_shape", std::vector<int64_t>());
  s.parts = j.value("parts", std::vector<int64_t>());
  s.perm = j.value("perm", std::vector<int64_t>());
  s.axis = j.value("axis", (int64_t)-1);
  s.starts = j.value("starts", std::vector<int64_t>());
  s.steps = j.value("steps", std::vector<int64_t>());
  s.arg_strides = j.value("arg_strides", std::vector<std::vector<int64_t>>());
  s.knobs = j.at("knobs").get<Knobs>();
  return s;
}

std::string KernelSpec::signature() const { return to_json().dump(); }

std::string KernelSpec::describe() const {
  std::ostringstream os;
  os << kind;
  auto dims = [&](const std::vector<int64_t> &d) {  // memory order, printed outermost first
    std::string r;
    for (size_t i = d.size(); i-- > 0;) r += std::to_string(d[i]) + (i ? "x" : "");
    return r;
  };
  if (kind == "transpose" || kind == "slice" || kind == "pad") return os.str() + " " + dims(in_shape) + " -> " + dims(out_shape) + " (memory order)";
  if (kind == "layernorm") return os.str() + " " + std::to_string(in_shape[1]) + " rows of " + std::to_string(in_shape[0]);
  if (!fn.empty()) os << " " << fn;
  if (!kernel.empty()) os << " " << kernel[0] << "x" << kernel[1] << "/" << stride[0];
  if (in_shape.size() == 4)
    os << " " << in_shape[1] << "->" << out_shape[1] << " " << in_shape[2] << "x" << in_shape[3];
  else if (in_shape.size() == 2)
    os << " " << in_shape[1] << "->" << out_shape[1];
  if (dtype != "f32" || kind == "conv2d_q") os << " " << (kind == "conv2d_q" ? "u8*i8" : dtype);
  if (rounding != "upward") os << " [" << rounding << "]";
  if (residual) os << " +residual";
  if (group != 1) os << (group == in_shape[1] && group == out_shape[1] ? " depthwise" : " groups=" + std::to_string(group));
  if (!act.empty()) os << " +" << act;
  if (relu) os << (relu_max > 0 ? " +relu" + std::to_string((int)relu_max) : " +relu");
  if (kind == "scale_shift" && scale > 0) os << " ->u8";
  if (!arg_strides.empty()) os << " (slice)";
  return os.str();
}

std::string hash_hex(const std::string &s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

}  // namespace qnnc
