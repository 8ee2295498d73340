#include "runtime/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "ir/graph.h"
#include "runtime/npy.h"

namespace qnnc {

nlohmann::json EvalResult::to_json() const {
  return {{"schema", 1}, {"samples", samples}, {"classes", classes}, {"top1", top1}, {"top5", top5}, {"seconds", seconds}};
}

EvalResult evaluate(Module &m, const Tensor &inputs, const std::vector<int64_t> &labels) {
  auto shapes = m.input_shapes();
  if (shapes.size() != 1) throw Error("eval takes models with one input");
  const std::vector<int64_t> &shape = shapes[0];
  std::vector<int64_t> sample(shape.begin() + 1, shape.end());
  if (inputs.shape.size() != shape.size() || !std::equal(sample.begin(), sample.end(), inputs.shape.begin() + 1))
    throw Error("eval inputs of shape " + shape_string(inputs.shape) + " do not fit the module input " +
                shape_string(shape) + ": expected N samples of " + shape_string(sample));
  const int64_t n = inputs.shape[0], batch = shape[0];
  if ((int64_t)labels.size() != n)
    throw Error("eval data holds " + std::to_string(n) + " inputs but " + std::to_string(labels.size()) + " labels");
  if (n == 0) throw Error("eval data holds no sample");
  int64_t per = 1;
  for (auto d : sample) per *= d;
  auto out_shape = m.output_shapes().at(0);
  int64_t out_numel = 1;
  for (auto d : out_shape) out_numel *= d;
  if (out_shape.empty() || out_shape[0] != batch || out_numel % batch)
    throw Error("eval needs output 0 to hold one row of class scores per sample; it has shape " +
                shape_string(out_shape));
  EvalResult r;
  r.samples = n;
  r.classes = out_numel / batch;
  for (int64_t l : labels)
    if (l < 0 || l >= r.classes)
      throw Error("label " + std::to_string(l) + " is not a class index of the module's " + std::to_string(r.classes) +
                  " outputs");
  Tensor x;
  x.shape = shape;
  x.data.assign(batch * per, 0.f);
  int64_t hit1 = 0, hit5 = 0;
  const int64_t k5 = std::min<int64_t>(5, r.classes);
  for (int64_t start = 0; start < n; start += batch) {
    int64_t count = std::min(batch, n - start);
    std::copy(inputs.data.begin() + start * per, inputs.data.begin() + (start + count) * per, x.data.begin());
    std::fill(x.data.begin() + count * per, x.data.end(), 0.f);
    auto t0 = std::chrono::steady_clock::now();
    auto y = m.run({x});
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int64_t j = 0; j < count; j++) {
      const float *row = y[0].data.data() + j * r.classes;
      int64_t label = labels[start + j];
      // Rank of the true class: how many classes score higher (ties go against it).
      int64_t above = 0;
      for (int64_t c = 0; c < r.classes; c++)
        if (c != label && !(row[c] < row[label])) above++;
      hit1 += above == 0;
      hit5 += above < k5;
    }
  }
  r.top1 = double(hit1) / n;
  r.top5 = double(hit5) / n;
  return r;
}

EvalResult evaluate_npz(Module &m, const std::string &path) {
  auto arrays = read_npz_any(path);
  const NpyArray *in = nullptr, *lab = nullptr;
  for (const auto &a : arrays) {
    if (a.name == "inputs" || a.name == "x" || a.name == "images") in = &a;
    if (a.name == "labels" || a.name == "y") lab = &a;
  }
  if (!in || !lab)
    throw Error("'" + path + "' needs an inputs array (named inputs, x or images) and a labels array (labels or y)");
  if (in->dtype != "float32")
    throw Error("'" + path + "': inputs are " + in->dtype + "; qnnc expects float32, preprocessed as for training");
  if (lab->values.shape.size() != 1)
    throw Error("'" + path + "': labels of shape " + shape_string(lab->values.shape) + "; expected one class index per input");
  std::vector<int64_t> labels;
  for (float v : lab->values.data) {
    if (v != std::floor(v)) throw Error("'" + path + "': labels must be integers (class indices)");
    labels.push_back((int64_t)v);
  }
  return evaluate(m, in->values, labels);
}

}  // namespace qnnc
