// C interface over qnnc's C++ API (see qnnc_c.h).
#include "capi/qnnc_c.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "codegen/driver.h"
#include "runtime/module.h"

struct qnnc_module {
  qnnc::Module m;
  std::string manifest;
  std::vector<int64_t> out_shape;
};

namespace {
thread_local std::string last_error;

template <typename F>
int guarded(F &&f) {
  try {
    last_error.clear();
    f();
    return 0;
  } catch (const std::exception &e) {
    last_error = e.what();
    return 1;
  }
}

int copy_shape(const std::vector<int64_t> &s, int64_t *dims, int *rank) {
  if (s.size() > 8) throw qnnc::Error("rank above 8");
  for (size_t i = 0; i < s.size(); i++) dims[i] = s[i];
  *rank = (int)s.size();
  return 0;
}
}  // namespace

extern "C" {

const char *qnnc_last_error(void) { return last_error.c_str(); }

int qnnc_compile(const char *model, const char *out_dir, const char *target, const char *precision,
                 const int64_t *input_shape, int rank, uint64_t seed) {
  nlohmann::json o;
  o["target"] = target ? target : "host";
  o["precision"] = precision ? precision : "fp32";
  o["input_shape"] = std::vector<int64_t>(input_shape, input_shape + (input_shape ? rank : 0));
  o["seed"] = seed;
  return qnnc_compile_json(model, out_dir, o.dump().c_str());
}

int qnnc_compile_json(const char *model, const char *out_dir, const char *options_json) {
  return guarded([&] {
    nlohmann::json o = nlohmann::json::object();
    if (options_json && *options_json) {
      try {
        o = nlohmann::json::parse(options_json);
      } catch (const std::exception &e) {
        throw qnnc::Error(std::string("compile options are not valid JSON: ") + e.what());
      }
      if (!o.is_object()) throw qnnc::Error("compile options must be a JSON object");
    }
    qnnc::compile_model_json(model, out_dir, o);
  });
}

int qnnc_module_load(const char *dir, qnnc_module **out) {
  return guarded([&] {
    qnnc::Module m = qnnc::Module::load(dir);
    *out = new qnnc_module{m, m.manifest().dump(1), {}};
    // Output 0's shape, from a manifest value.
    int o = m.manifest()["outputs"][0];
    (*out)->out_shape = m.value_shape(o);
  });
}

void qnnc_module_free(qnnc_module *m) { delete m; }

int qnnc_module_set_threads(qnnc_module *m, int threads) {
  return guarded([&] { m->m.set_threads(threads); });
}

int qnnc_module_input_shape(qnnc_module *m, int i, int64_t *dims, int *rank) {
  return guarded([&] { copy_shape(m->m.input_shapes().at(i), dims, rank); });
}

int qnnc_module_output_shape(qnnc_module *m, int i, int64_t *dims, int *rank) {
  return guarded([&] {
    if (i != 0) throw qnnc::Error("the C interface exposes output 0 only");
    copy_shape(m->out_shape, dims, rank);
  });
}

int qnnc_module_run(qnnc_module *m, const float *in, int64_t in_len, float *out, int64_t out_len) {
  return guarded([&] {
    qnnc::Tensor t;
    t.shape = m->m.input_shapes().at(0);
    if (in_len != t.numel())
      throw qnnc::Error("input has " + std::to_string(in_len) + " values, the module takes shape " +
                        qnnc::shape_string(t.shape));
    t.data.assign(in, in + in_len);
    auto y = m->m.run({t});
    if ((int64_t)y.at(0).data.size() != out_len)
      throw qnnc::Error("output buffer has " + std::to_string(out_len) + " values, the output has " +
                        std::to_string(y[0].data.size()));
    std::memcpy(out, y[0].data.data(), y[0].data.size() * sizeof(float));
  });
}

const char *qnnc_module_manifest(qnnc_module *m) { return m->manifest.c_str(); }

}  // extern "C"
