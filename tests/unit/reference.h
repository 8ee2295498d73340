// Shared test support: naive reference implementations of the operators qnnc compiles
// (plain loops over NCHW, independent of the product code), a seeded RNG, helpers that build
// small graphs, compile them, and compare tensors.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "codegen/compile.h"
#include "ir/graph.h"
#include "ir/shape_infer.h"
#include "runtime/module.h"
#include "runtime/tensor.h"

namespace ref {

using qnnc::Tensor;
using Shape = std::vector<int64_t>;

// ---------------------------------------------------------------------------------------------
// Seeded random numbers (SplitMix64 + Box-Muller): same values on every platform and library.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return ((next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
  float uniform(float lo, float hi) { return (float)(lo + (hi - lo) * uniform()); }
  float normal() { return (float)(std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform())); }
  int64_t integer(int64_t lo, int64_t hi) { return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1)); }  // [lo, hi]
};

inline int64_t numel(const Shape &s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline std::vector<float> randn(int64_t n, Rng &rng, float scale = 1.f) {
  std::vector<float> v((size_t)n);
  for (auto &x : v) x = rng.normal() * scale;
  return v;
}

inline Tensor random_tensor(const Shape &s, Rng &rng, float scale = 1.f) { return Tensor{s, randn(numel(s), rng, scale)}; }

// ---------------------------------------------------------------------------------------------
// Reference operators over row-major NCHW tensors.

inline float at4(const Tensor &t, int64_t n, int64_t c, int64_t h, int64_t w) {
  return t.data[(size_t)(((n * t.shape[1] + c) * t.shape[2] + h) * t.shape[3] + w)];
}

inline int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pb, int64_t pe, int64_t dil) {
  return (in + pb + pe - dil * (k - 1) - 1) / stride + 1;
}

// Convolution: x [N,C,H,W], w [M,C,KH,KW], optional bias [M]; pads top,left,bottom,right.
inline Tensor conv2d(const Tensor &x, const std::vector<float> &w, const Shape &wshape, const std::vector<float> *bias,
                     std::array<int64_t, 2> stride, std::array<int64_t, 4> pads, std::array<int64_t, 2> dil) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t M = wshape[0], KH = wshape[2], KW = wshape[3];
  const int64_t OH = out_size(H, KH, stride[0], pads[0], pads[2], dil[0]);
  const int64_t OW = out_size(W, KW, stride[1], pads[1], pads[3], dil[1]);
  Tensor y{{N, M, OH, OW}, std::vector<float>((size_t)(N * M * OH * OW))};
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          double acc = bias ? (*bias)[(size_t)m] : 0.0;
          for (int64_t c = 0; c < C; c++)
            for (int64_t ky = 0; ky < KH; ky++)
              for (int64_t kx = 0; kx < KW; kx++) {
                int64_t iy = oy * stride[0] + ky * dil[0] - pads[0];
                int64_t ix = ox * stride[1] + kx * dil[1] - pads[1];
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += (double)w[(size_t)(((m * C + c) * KH + ky) * KW + kx)] * at4(x, n, c, iy, ix);
              }
          y.data[(size_t)(((n * M + m) * OH + oy) * OW + ox)] = (float)acc;
        }
  return y;
}

// Pooled size with ceil_mode as PyTorch and ONNX Runtime compute it: round up, but drop a last
// window that would start in the end padding.
inline int64_t out_size_ceil(int64_t in, int64_t k, int64_t stride, int64_t pb, int64_t pe) {
  int64_t o = (in + pb + pe - k + stride - 1) / stride + 1;
  if ((o - 1) * stride >= in + pb) o--;
  return o;
}

// Max pooling with implicit -inf padding.
inline Tensor maxpool(const Tensor &x, std::array<int64_t, 2> k, std::array<int64_t, 2> stride,
                      std::array<int64_t, 4> pads, bool ceil_mode = false) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t OH = ceil_mode ? out_size_ceil(H, k[0], stride[0], pads[0], pads[2])
                               : out_size(H, k[0], stride[0], pads[0], pads[2], 1);
  const int64_t OW = ceil_mode ? out_size_ceil(W, k[1], stride[1], pads[1], pads[3])
                               : out_size(W, k[1], stride[1], pads[1], pads[3], 1);
  Tensor y{{N, C, OH, OW}, std::vector<float>((size_t)(N * C * OH * OW))};
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          float best = -std::numeric_limits<float>::infinity();
          for (int64_t ky = 0; ky < k[0]; ky++)
            for (int64_t kx = 0; kx < k[1]; kx++) {
              int64_t iy = oy * stride[0] + ky - pads[0], ix = ox * stride[1] + kx - pads[1];
              if (iy >= 0 && iy < H && ix >= 0 && ix < W) best = std::max(best, at4(x, n, c, iy, ix));
            }
          y.data[(size_t)(((n * C + c) * OH + oy) * OW + ox)] = best;
        }
  return y;
}

inline Tensor global_avgpool(const Tensor &x) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  Tensor y{{N, C, 1, 1}, std::vector<float>((size_t)(N * C))};
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      double s = 0;
      for (int64_t h = 0; h < H; h++)
        for (int64_t w = 0; w < W; w++) s += at4(x, n, c, h, w);
      y.data[(size_t)(n * C + c)] = (float)(s / double(H * W));
    }
  return y;
}

// Gemm as ONNX with transB=1: y[n, m] = sum_k x[n, k] * w[m, k] + b[m].
inline Tensor dense(const Tensor &x, const std::vector<float> &w, int64_t M, const std::vector<float> *bias) {
  const int64_t N = x.shape[0], K = x.shape[1];
  Tensor y{{N, M}, std::vector<float>((size_t)(N * M))};
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++) {
      double acc = bias ? (*bias)[(size_t)m] : 0.0;
      for (int64_t k = 0; k < K; k++) acc += (double)x.data[(size_t)(n * K + k)] * w[(size_t)(m * K + k)];
      y.data[(size_t)(n * M + m)] = (float)acc;
    }
  return y;
}

inline Tensor relu(Tensor x) {
  for (auto &v : x.data) v = std::max(v, 0.f);
  return x;
}

inline Tensor add(Tensor a, const Tensor &b) {
  for (size_t i = 0; i < a.data.size(); i++) a.data[i] += b.data[i];
  return a;
}

// Inference batch norm over channel axis 1 of a 4-D tensor.
inline Tensor batchnorm(Tensor x, const std::vector<float> &gamma, const std::vector<float> &beta,
                        const std::vector<float> &mean, const std::vector<float> &var, float eps) {
  const int64_t N = x.shape[0], C = x.shape[1], HW = x.shape[2] * x.shape[3];
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      double s = gamma[(size_t)c] / std::sqrt((double)var[(size_t)c] + eps);
      for (int64_t i = 0; i < HW; i++) {
        float &v = x.data[(size_t)((n * C + c) * HW + i)];
        v = (float)((v - mean[(size_t)c]) * s + beta[(size_t)c]);
      }
    }
  return x;
}

// ---------------------------------------------------------------------------------------------
// Comparison: max |got - want| relative to max |want| (absolute when want is all zeros).

inline double rel_err(const Tensor &got, const Tensor &want) {
  if (got.shape != want.shape || got.data.size() != want.data.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.data.size(); i++) {
    if (!std::isfinite(got.data[i])) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, (double)std::fabs(got.data[i] - want.data[i]));
    scale = std::max(scale, (double)std::fabs(want.data[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

inline std::string shape_str(const Shape &s) { return qnnc::shape_string(s); }

// gtest predicate: shapes equal and rel_err <= tol, with a readable failure message.
inline ::testing::AssertionResult Close(const Tensor &got, const Tensor &want, double tol = 1e-4) {
  if (got.shape != want.shape)
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape) << " != expected " << shape_str(want.shape);
  double e = rel_err(got, want);
  if (e <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << e << " > " << tol;
}

// ---------------------------------------------------------------------------------------------
// Graph building.

struct GraphBuilder {
  qnnc::Graph g;
  int counter = 0;

  int input(const std::string &name, const Shape &shape) {
    qnnc::TensorType t;
    t.shape = shape;
    t.layout = shape.size() == 4 ? qnnc::Layout::NCHW : qnnc::Layout::Plain;
    int v = g.add_value(name, t);
    g.inputs.push_back(v);
    return v;
  }
  int constant(const std::string &name, const Shape &shape, std::vector<float> data) {
    return g.add_const(name, shape, std::move(data));
  }
  // Adds a node with one output; `setup` may fill attributes.
  template <typename F>
  int node(const std::string &op, std::vector<int> inputs, F setup) {
    qnnc::Node n;
    n.name = op + "_" + std::to_string(counter++);
    n.op = op;
    n.inputs = std::move(inputs);
    setup(n);
    int out = g.add_value(n.name + ".out", qnnc::TensorType{});
    n.outputs = {out};
    g.add_node(std::move(n));
    return out;
  }
  int node(const std::string &op, std::vector<int> inputs) {
    return node(op, std::move(inputs), [](qnnc::Node &) {});
  }
  int conv(int x, int w, int b, std::array<int64_t, 2> stride, std::array<int64_t, 4> pads,
           std::array<int64_t, 2> dil) {
    std::vector<int> in{x, w};
    if (b >= 0) in.push_back(b);
    const auto &ws = g.values[w].type.shape;
    return node("Conv", in, [&](qnnc::Node &n) {
      n.set_ints("strides", {stride[0], stride[1]});
      n.set_ints("pads", {pads[0], pads[1], pads[2], pads[3]});
      n.set_ints("dilations", {dil[0], dil[1]});
      n.set_ints("kernel_shape", {ws[2], ws[3]});
      n.set_i("group", 1);
    });
  }
  int batchnorm(int x, const std::vector<float> &gamma, const std::vector<float> &beta, const std::vector<float> &mean,
                const std::vector<float> &var, float eps) {
    int64_t C = (int64_t)gamma.size();
    std::string p = "bn" + std::to_string(counter);
    std::vector<int> in{x, constant(p + ".gamma", {C}, gamma), constant(p + ".beta", {C}, beta),
                        constant(p + ".mean", {C}, mean), constant(p + ".var", {C}, var)};
    return node("BatchNormalization", in, [&](qnnc::Node &n) { n.set_f("epsilon", eps); });
  }
  int maxpool(int x, std::array<int64_t, 2> k, std::array<int64_t, 2> stride, std::array<int64_t, 4> pads,
              bool ceil_mode = false) {
    return node("MaxPool", {x}, [&](qnnc::Node &n) {
      n.set_ints("kernel_shape", {k[0], k[1]});
      n.set_ints("strides", {stride[0], stride[1]});
      n.set_ints("pads", {pads[0], pads[1], pads[2], pads[3]});
      if (ceil_mode) n.set_i("ceil_mode", 1);
    });
  }
  int gemm(int x, int w, int b) {
    std::vector<int> in{x, w};
    if (b >= 0) in.push_back(b);
    return node("Gemm", in, [](qnnc::Node &n) { n.set_i("transB", 1); });
  }
  void output(int v) { g.outputs.push_back(v); }
  // Types every value and checks the graph; returns it.
  qnnc::Graph finish() {
    qnnc::infer_shapes(g);
    g.verify();
    return g;
  }
};

// Compiles with the standard pipeline and loads the module; the module directory is removed
// once loaded (the module keeps everything it needs in memory).
inline qnnc::Module compile(const qnnc::Graph &g, const qnnc::PassOptions &passes = {}) {
  qnnc::CompileOptions opt;
  opt.passes = passes;
  qnnc::Module m = qnnc::compile(g, opt);
  std::error_code ec;
  std::filesystem::remove_all(m.dir(), ec);
  return m;
}

// Ops of the executed steps, in order (from the module's manifest).
inline std::vector<std::string> step_ops(const qnnc::Module &m) {
  std::vector<std::string> ops;
  for (const auto &s : m.manifest()["steps"]) ops.push_back(s["op"].get<std::string>());
  return ops;
}

inline int count(const std::vector<std::string> &v, const std::string &x) { return (int)std::count(v.begin(), v.end(), x); }

}  // namespace ref
