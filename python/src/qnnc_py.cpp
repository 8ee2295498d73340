// qnnc._qnnc: the C++ API bound for Python with nanobind. python/qnnc/__init__.py wraps it into
// the public API (compile from ONNX files, ModelProtos and torch modules; Module; load).
// Long calls (compile, run, benchmark, profile, inspect) release the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <Halide.h>

#include "codegen/driver.h"
#include "codegen/inspect.h"
#include "runtime/module.h"
#include "runtime/profile.h"
#include "runtime/evaluate.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using InArray = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using OutArray = nb::ndarray<nb::numpy, float>;

std::vector<qnnc::Tensor> random_inputs(qnnc::Module &m, uint64_t seed) {
  std::vector<qnnc::Tensor> in;
  for (const auto &s : m.input_shapes()) in.push_back(qnnc::random_tensor(s, seed));
  return in;
}

std::vector<OutArray> run(qnnc::Module &m, const std::vector<InArray> &inputs) {
  auto shapes = m.input_shapes();
  if (inputs.size() != shapes.size())
    throw qnnc::Error("the module takes " + std::to_string(shapes.size()) + " input(s), got " +
                      std::to_string(inputs.size()));
  std::vector<const float *> in;
  for (size_t i = 0; i < inputs.size(); i++) {
    std::vector<int64_t> got(inputs[i].ndim());
    for (size_t d = 0; d < got.size(); d++) got[d] = (int64_t)inputs[i].shape(d);
    if (got != shapes[i])
      throw qnnc::Error("input " + std::to_string(i) + " has shape " + qnnc::shape_string(got) +
                        ", the module was compiled for " + qnnc::shape_string(shapes[i]) +
                        " (compile again with that input_shape)");
    in.push_back(inputs[i].data());
  }
  std::vector<OutArray> outs;
  std::vector<float *> out;
  for (const auto &s : m.output_shapes()) {
    size_t n = 1;
    std::vector<size_t> shape;
    for (auto d : s) {
      n *= (size_t)d;
      shape.push_back((size_t)d);
    }
    float *buf = new float[std::max<size_t>(n, 1)];
    nb::capsule owner(buf, [](void *p) noexcept { delete[] (float *)p; });
    outs.emplace_back(buf, shape.size(), shape.data(), owner);
    out.push_back(buf);
  }
  {
    nb::gil_scoped_release unlocked;
    m.run_into(in, out);
  }
  return outs;
}

nb::dict benchmark(qnnc::Module &m, int repeat, int warmup, uint64_t seed) {
  auto in = random_inputs(m, seed);
  qnnc::RunTiming t;
  {
    nb::gil_scoped_release unlocked;
    t = qnnc::time_runs(m, in, warmup, repeat);
  }
  nb::dict r;
  r["median_ms"] = t.median;
  r["min_ms"] = t.min;
  r["max_ms"] = t.max;
  r["mean_ms"] = t.mean;
  r["std_ms"] = t.stddev;
  r["threads"] = m.threads();
  r["repeat"] = repeat;
  r["warmup"] = warmup;
  return r;
}

}  // namespace

NB_MODULE(_qnnc, mod) {
  mod.doc() = "qnnc's C++ API (use the qnnc package, not this module)";
  static nb::exception<qnnc::Error> error(mod, "QnncError", PyExc_RuntimeError);
  // Halide's errors are not std::exceptions; JSON type errors come from nlohmann.
  nb::register_exception_translator([](const std::exception_ptr &p, void *) {
    try {
      std::rethrow_exception(p);
    } catch (const Halide::Error &e) {
      PyErr_SetString(error.ptr(), (std::string("Halide: ") + e.what()).c_str());
    } catch (const nlohmann::json::exception &e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  mod.def(
      "compile_json",
      [](const std::string &model, const std::string &out_dir, const std::string &options, nb::object log,
         nb::object progress) {
        nlohmann::json o = nlohmann::json::object();
        if (!options.empty()) o = nlohmann::json::parse(options);
        std::function<void(const std::string &)> logf;
        PyObject *cb = log.is_none() ? nullptr : log.ptr();  // kept alive by the caller's frame
        if (cb)
          logf = [cb](const std::string &s) {
            nb::gil_scoped_acquire locked;
            try {
              nb::handle fn(cb);
              fn(s);
            } catch (nb::python_error &e) {
              e.discard_as_unraisable("qnnc compile log");
            }
          };
        qnnc::ProgressFn progf;
        PyObject *pcb = progress.is_none() ? nullptr : progress.ptr();
        if (pcb)
          progf = [pcb](const qnnc::ProgressEvent &e) {
            nb::gil_scoped_acquire locked;
            try {
              nb::handle fn(pcb);
              fn(e.task, e.done, e.total, e.cached, e.detail);
            } catch (nb::python_error &err) {
              err.discard_as_unraisable("qnnc compile progress");
            }
          };
        nlohmann::json r;
        {
          nb::gil_scoped_release unlocked;
          r = qnnc::compile_model_json(model, out_dir, o, logf, progf);
        }
        return r.dump();
      },
      "model"_a, "out_dir"_a, "options"_a, "log"_a = nb::none(), "progress"_a = nb::none(),
      "Compiles model into out_dir; options and the returned summary are JSON text. progress is called "
      "with (task, done, total, cached, detail).");

  nb::class_<qnnc::Module>(mod, "Module")
      .def_static(
          "load", [](const std::string &dir) { return qnnc::Module::load(dir); }, "dir"_a)
      .def_prop_ro("input_shapes", &qnnc::Module::input_shapes)
      .def_prop_ro("output_shapes", &qnnc::Module::output_shapes)
      .def_prop_ro("dir", &qnnc::Module::dir)
      .def_prop_ro("arena_bytes", &qnnc::Module::arena_bytes)
      .def_prop_ro("threads", &qnnc::Module::threads)
      .def("set_threads", &qnnc::Module::set_threads, "n"_a)
      .def("manifest_json", [](const qnnc::Module &m) { return m.manifest().dump(); })
      .def("run", &run, "inputs"_a)
      .def("benchmark", &benchmark, "repeat"_a, "warmup"_a, "seed"_a)
      .def(
          "profile",
          [](qnnc::Module &m, int repeat, int warmup, uint64_t seed) {
            auto in = random_inputs(m, seed);
            nb::gil_scoped_release unlocked;
            return qnnc::profile_module(m, in, repeat, warmup).to_json().dump();
          },
          "repeat"_a, "warmup"_a, "seed"_a)
      .def(
          "evaluate_npz",
          [](qnnc::Module &m, const std::string &path) {
            nb::gil_scoped_release unlocked;
            return qnnc::evaluate_npz(m, path).to_json().dump();
          },
          "path"_a)
      .def(
          "evaluate",
          [](qnnc::Module &m, const InArray &inputs, const std::vector<int64_t> &labels) {
            qnnc::Tensor t;
            for (size_t d = 0; d < inputs.ndim(); d++) t.shape.push_back((int64_t)inputs.shape(d));
            t.data.assign(inputs.data(), inputs.data() + inputs.size());
            nb::gil_scoped_release unlocked;
            return qnnc::evaluate(m, t, labels).to_json().dump();
          },
          "inputs"_a, "labels"_a)
      .def(
          "inspect",
          [](qnnc::Module &m, const std::string &layer, const std::string &what) {
            nb::gil_scoped_release unlocked;
            return qnnc::kernel_code(m.manifest(), layer, what);
          },
          "layer"_a, "what"_a);
}
