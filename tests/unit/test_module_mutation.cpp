// Damaged module files are rejected, never run: a built-in ResNet-18 is compiled once (fp32, and
// int8 with the stem and dense layer quantized), then hundreds of seeded random single-field
// edits of its graph.json (a number made random, out of range, negative, huge or fractional;
// a string changed; a key deleted; a field given another JSON type; an array element dropped
// or repeated; the file truncated or given a raw non-UTF-8 byte), and weights.bin truncated or
// extended, are each loaded and run. Every edit must either be rejected with a qnnc::Error
// whose message is printable ASCII, or run and give output bit-identical to the unedited
// module (an edit of a field the runtime does not use, such as a kernel's description). A
// crash, another exception, or a successful run with a different output fails the test, with
// one exception that no validation can tell from an intended module: a kernel argument pointed
// at another constant of the same dtype and shape (say, one layer's bias at another's) is a
// valid module of a different network; such edits are counted apart ("rebound").
// QNNC_MUTATION_EDITS=N runs N edits per model instead of the default, QNNC_MUTATION_SEED=S
// other edits, QNNC_MUTATION_VERBOSE=1 prints every edit and its outcome.
//
// Under AddressSanitizer (not in CI: it needs a second full build), e.g.
//   .venv/bin/cmake -S . -B build-asan -DQNNC_ASAN=ON -DPython3_EXECUTABLE=$PWD/.venv/bin/python
//   .venv/bin/cmake --build build-asan --target qnnc_tests
//   QNNC_CACHE_DIR=$PWD/build/kernel-cache build-asan/tests/qnnc_tests --gtest_filter='ModuleMutation.*'
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "frontend/builtin_models.h"
#include "reference.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using qnnc::Tensor;

const std::vector<int64_t> kShape{1, 3, 32, 32};

std::string slurp(const fs::path &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const fs::path &p, const std::string &s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), (std::streamsize)s.size());
  ASSERT_TRUE(f.good()) << p;
}

bool bit_identical(const std::vector<Tensor> &a, const std::vector<Tensor> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].shape != b[i].shape || a[i].data.size() != b[i].data.size() ||
        std::memcmp(a[i].data.data(), b[i].data.data(), a[i].data.size() * sizeof(float)) != 0)
      return false;
  return true;
}

bool printable_ascii(const std::string &s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// Fields of graph.json the runtime acts on (the others only describe the module).
bool structural(const json::json_pointer &p) {
  static const std::set<std::string> keys{"format", "target_is_host", "weights_bytes", "values", "inputs", "outputs",
                                          "kind", "dtype", "shape", "bytes", "offset", "alias_of", "channel_offset",
                                          "layout", "steps", "reads",
                                          "writes", "fn", "alias", "args", "value", "dims"};
  std::string s = p.to_string(), last;
  std::stringstream ss(s);
  for (std::string tok; std::getline(ss, tok, '/');)
    if (!tok.empty() && tok.find_first_not_of("0123456789") != std::string::npos) last = tok;
  return keys.count(last) > 0;
}

void collect(const json &j, const json::json_pointer &p, std::vector<json::json_pointer> &leaves,
             std::vector<json::json_pointer> &containers) {
  if (j.is_object()) {
    containers.push_back(p);
    for (auto it = j.begin(); it != j.end(); ++it) collect(*it, p / it.key(), leaves, containers);
  } else if (j.is_array()) {
    containers.push_back(p);
    for (size_t i = 0; i < j.size(); i++) collect(j[i], p / i, leaves, containers);
  } else {
    leaves.push_back(p);
  }
}

struct Outcome {
  enum Kind { rejected, benign, wrong_output, other_exception, rebound } kind;
  std::string message;
};

class ModuleMutation {
 public:
  ModuleMutation(const std::string &label, const qnnc::Graph &g, const qnnc::CompileOptions &opt) : label_(label) {
    dir_ = fs::temp_directory_path() / ("qnnc-mutation-" + label + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    qnnc::compile_to_dir(g, opt, dir_.string());
    graph_text_ = slurp(dir_ / "graph.json");
    weights_ = slurp(dir_ / "weights.bin");
    graph_ = json::parse(graph_text_);
    collect(graph_, json::json_pointer(), leaves_, containers_);
    for (const auto &p : leaves_)
      if (structural(p)) structural_leaves_.push_back(p);
    for (const auto &p : leaves_)
      if (graph_.at(p).is_string()) strings_[p.back()].push_back(graph_.at(p).get<std::string>());
    input_ = {qnnc::random_tensor(kShape, 11)};
    // Kept loaded for the whole test: kernels.so stays mapped, reloads are cheap.
    reference_module_ = std::make_unique<qnnc::Module>(qnnc::Module::load(dir_.string()));
    reference_ = reference_module_->run(input_);
  }
  const json &graph() const { return graph_; }
  ~ModuleMutation() {
    reference_module_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Loads and runs the module with these files; restores the originals afterwards.
  Outcome attempt(const std::string &graph_text, const std::string *weights = nullptr) {
    spit(dir_ / "graph.json", graph_text);
    if (weights) spit(dir_ / "weights.bin", *weights);
    Outcome o{Outcome::benign, ""};
    try {
      qnnc::Module m = qnnc::Module::load(dir_.string());
      if (!bit_identical(m.run(input_), reference_)) o = {Outcome::wrong_output, "ran with a different output"};
    } catch (const qnnc::Error &e) {
      o = {Outcome::rejected, e.what()};
    } catch (const std::exception &e) {
      o = {Outcome::other_exception, e.what()};
    }
    if (weights) spit(dir_ / "weights.bin", weights_);
    return o;
  }

  // One seeded random edit of graph.json; `what` describes it, `rebinding` says whether it
  // points a kernel argument at another constant of the same dtype and shape.
  std::string mutate(ref::Rng &rng, std::string &what, bool &rebinding) {
    rebinding = false;
    const int nv = (int)graph_["values"].size();
    int r = (int)rng.integer(0, 99);
    if (r < 4) {  // text-level damage: truncation, a raw non-UTF-8 byte
      std::string t = graph_text_;
      size_t at = (size_t)rng.integer(0, (int64_t)t.size() - 1);
      if (r < 2) {
        what = "graph.json truncated to " + std::to_string(at) + " bytes";
        return t.substr(0, at);
      }
      size_t q = t.find('"', at);  // inside the next string
      if (q == std::string::npos) q = t.find('"');
      t.insert(q + 1, r == 2 ? "\xff\xfe" : "\x01");
      what = "raw byte inserted at " + std::to_string(q + 1);
      return t;
    }
    json g = graph_;
    if (r < 24) {  // containers: delete a key or an element, repeat an element, change the type
      const auto &p = containers_[(size_t)rng.integer(0, (int64_t)containers_.size() - 1)];
      json &c = g.at(p);
      int k = (int)rng.integer(0, 3);
      if (c.is_object() && !c.empty() && k < 3) {
        auto it = c.begin();
        std::advance(it, rng.integer(0, (int64_t)c.size() - 1));
        what = "deleted key " + (p / it.key()).to_string();
        c.erase(it);
      } else if (c.is_array() && !c.empty() && k < 3) {
        size_t i = (size_t)rng.integer(0, (int64_t)c.size() - 1);
        if (k == 0) {
          what = "deleted element " + (p / i).to_string();
          c.erase(i);
        } else {
          what = "repeated element " + (p / i).to_string();
          c.insert(c.begin() + (std::ptrdiff_t)i, json(c[i]));
        }
      } else {
        what = "replaced container " + p.to_string() + " by " + (c.is_array() ? "{}" : "[]");
        c = c.is_array() ? json::object() : json::array();
      }
      return g.dump(1);
    }
    // A leaf: most often one the runtime acts on.
    const auto &pool = r < 64 ? structural_leaves_ : leaves_;
    const auto &p = pool[(size_t)rng.integer(0, (int64_t)pool.size() - 1)];
    json &x = g.at(p);
    json old = x;
    int k = (int)rng.integer(0, 15);
    if (x.is_number_integer()) {
      int64_t v = x.get<int64_t>();
      switch (k) {
        case 0: case 1: x = rng.integer(0, nv - 1); break;  // another valid value index
        case 2: x = v + 1; break;
        case 3: x = v - 1; break;
        case 4: x = -1; break;
        case 5: x = 0; break;
        case 6: x = int64_t(1) << 40; break;
        case 7: x = std::numeric_limits<int64_t>::max(); break;
        case 8: x = std::numeric_limits<uint64_t>::max(); break;
        case 9: x = (double)v + 0.5; break;
        case 10: x = 1e300; break;
        case 11: x = rng.integer(0, 2 * std::abs(v) + 2); break;
        case 12: x = std::to_string(v); break;
        case 13: x = nullptr; break;
        case 14: x = v / 7; break;
        default: x = json::array({v}); break;
      }
    } else if (x.is_string()) {
      const auto &same_key = strings_[p.back()];
      switch (k % 8) {
        case 0: case 1: x = same_key[(size_t)rng.integer(0, (int64_t)same_key.size() - 1)]; break;  // another of its kind
        case 2: x = ""; break;
        case 3: x = x.get<std::string>() + "x"; break;
        case 4: x = std::string("\x01\x1b[31m\xc3\xa9\x7f", 8); break;
        case 5: x = 3; break;
        case 6: x = nullptr; break;
        default: x = std::string("garbage-") + std::to_string(rng.integer(0, 1 << 30)); break;
      }
    } else if (x.is_boolean()) {
      x = k % 3 == 0 ? json(!x.get<bool>()) : k % 3 == 1 ? json(1) : json("true");
    } else if (x.is_number_float()) {
      x = k % 2 ? json(-x.get<double>()) : json("1.5");
    } else {
      x = k % 2 ? json(0) : json("null");
    }
    what = p.to_string() + ": " + qnnc::printable(old.dump(), 60) + " -> " + qnnc::printable(x.dump(), 60);
    if (p.back() == "value" && p.to_string().rfind("/steps/", 0) == 0 && x.is_number_integer() && x.get<int64_t>() >= 0 &&
        x.get<int64_t>() < nv) {
      const json &a = graph_["values"][old.get<size_t>()], &b = graph_["values"][x.get<size_t>()];
      rebinding = a["kind"] == "const" && b["kind"] == "const" && a["dtype"] == b["dtype"] && a["shape"] == b["shape"];
      if (rebinding) what += " (constant " + qnnc::printable(a["name"].get<std::string>()) + " -> " +
                             qnnc::printable(b["name"].get<std::string>()) + ")";
    }
    return g.dump(1);
  }

  // Runs `edits` graph.json edits and the weights.bin edits; fails on any crash-free misrun.
  void check(int edits, uint64_t seed) {
    ref::Rng rng(seed);
    std::map<Outcome::Kind, int> count;
    std::vector<std::string> examples;
    auto record = [&](const Outcome &o, const std::string &what) {
      count[o.kind]++;
      if (o.kind == Outcome::rejected) {
        EXPECT_TRUE(printable_ascii(o.message)) << what << ": message not printable ASCII: " << qnnc::printable(o.message, 400);
        if (examples.size() < 8 && count[o.kind] % 37 == 1) examples.push_back(o.message);
      }
      EXPECT_NE(o.kind, Outcome::wrong_output) << label_ << ": " << what << " ran with a different output";
      EXPECT_NE(o.kind, Outcome::other_exception) << label_ << ": " << what << ": not a qnnc::Error: " << o.message;
    };
    if (const char *e = std::getenv("QNNC_MUTATION_EDITS")) edits = std::atoi(e);
    if (const char *e = std::getenv("QNNC_MUTATION_SEED")) rng = ref::Rng(seed + 1000 * std::strtoull(e, nullptr, 10));
    const bool verbose = std::getenv("QNNC_MUTATION_VERBOSE") != nullptr;
    for (int i = 0; i < edits; i++) {
      std::string what;
      bool rebinding;
      std::string text = mutate(rng, what, rebinding);
      if (text == graph_text_) continue;
      Outcome o = attempt(text);
      if (rebinding && o.kind != Outcome::rejected && o.kind != Outcome::other_exception) {
        o.kind = Outcome::rebound;
        std::printf("[ mutation ] %s: %s: a valid module of another network (%s output)\n", label_.c_str(), what.c_str(),
                    o.message.empty() ? "identical" : "different");
      }
      if (verbose) std::printf("[ mutation ] %s: %s: %d %s\n", label_.c_str(), what.c_str(), (int)o.kind, o.message.c_str());
      record(o, what);
    }
    const size_t n = weights_.size();
    for (size_t len : {size_t(0), n / 2, n - 1, n + 1, n + 4096}) {
      std::string w = weights_.substr(0, std::min(len, n));
      w.resize(len, '\0');
      Outcome o = attempt(graph_text_, &w);
      EXPECT_EQ(o.kind, Outcome::rejected) << label_ << ": weights.bin of " << len << " bytes (of " << n << ")";
      record(o, "weights.bin resized to " + std::to_string(len));
    }
    // The unedited files still load and give the reference output.
    EXPECT_EQ(attempt(graph_text_).kind, Outcome::benign);
    std::printf("[ mutation ] %s: %d rejected, %d benign (identical output), %d rebound to a like constant, "
                "%d wrong output, %d other exceptions\n",
                label_.c_str(), count[Outcome::rejected], count[Outcome::benign], count[Outcome::rebound],
                count[Outcome::wrong_output], count[Outcome::other_exception]);
    for (const auto &e : examples) std::printf("[ mutation ]   e.g. %s\n", e.c_str());
  }

 private:
  std::string label_;
  fs::path dir_;
  std::string graph_text_, weights_;
  json graph_;
  std::vector<json::json_pointer> leaves_, structural_leaves_, containers_;
  std::map<std::string, std::vector<std::string>> strings_;
  std::vector<Tensor> input_, reference_;
  std::unique_ptr<qnnc::Module> reference_module_;
};

qnnc::Graph resnet18() { return qnnc::builtin_model("resnet18", kShape); }

TEST(ModuleMutation, Fp32ResNet18) {
  ModuleMutation mm("fp32", resnet18(), qnnc::CompileOptions{});
  mm.check(300, 1);
}

TEST(ModuleMutation, Int8ResNet18) {
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  opt.qconfig.skip_first_conv = false;  // u8/i8/i32 values from the first layer to the last
  opt.qconfig.skip_dense = false;
  opt.qconfig.calibration_samples = 2;
  ModuleMutation mm("int8", resnet18(), opt);
  mm.check(200, 2);
}

// Concatenations written in place: slices (alias_of + channel_offset), slices of slices, joins,
// strided kernel arguments, u8 and fp32 slices, quantize / dequantize over strided rows.
qnnc::Graph dense_block() {
  ref::Rng rng(5);
  ref::GraphBuilder gb;
  auto conv = [&](int x, int64_t cin, int64_t cout, int64_t k) {
    const int64_t p = k / 2;
    int c = gb.conv(x, gb.constant("w" + std::to_string(gb.counter), {cout, cin, k, k}, ref::randn(cout * cin * k * k, rng, 0.4f)),
                    gb.constant("b" + std::to_string(gb.counter), {cout}, ref::randn(cout, rng, 0.1f)), {1, 1}, {p, p, p, p},
                    {1, 1});
    return gb.node("Relu", {c});
  };
  auto cat = [&](std::vector<int> xs) { return gb.node("Concat", xs, [](qnnc::Node &n) { n.set_i("axis", 1); }); };
  int x0 = conv(gb.maxpool(gb.input("x", kShape), {2, 2}, {2, 2}, {0, 0, 0, 0}), 3, 8, 3);
  std::vector<int> feats{x0};
  int64_t c = 8;
  for (int i = 0; i < 3; i++) {
    std::vector<float> g(c, 1.1f), b(c, 0.05f), m(c, 0.1f), v(c, 1.2f);
    int pre = gb.node("Relu", {gb.batchnorm(cat(feats), g, b, m, v, 1e-5f)});
    feats.push_back(conv(pre, c, 4, 3));
    c += 4;
  }
  int block = cat(feats);
  int inner = cat({conv(block, c, 3, 1), conv(block, c, 5, 3)});
  int outer = cat({inner, gb.maxpool(block, {3, 3}, {1, 1}, {1, 1, 1, 1})});
  gb.output(gb.gemm(gb.node("Flatten", {gb.node("GlobalAveragePool", {outer})}), gb.constant("fc.w", {10, 8 + c}, ref::randn(10 * (8 + c), rng, 0.2f)),
                    gb.constant("fc.b", {10}, ref::randn(10, rng, 0.1f))));
  return gb.finish();
}

TEST(ModuleMutation, ConcatSlices) {
  for (bool int8 : {false, true}) {
    qnnc::CompileOptions opt;
    if (int8) {
      opt.quantize = true;
      opt.qconfig = qnnc::QConfig::parse_precision("int8");
      opt.qconfig.skip_first_conv = false;
      opt.qconfig.calibration_samples = 2;
    }
    ModuleMutation mm(int8 ? "concat-int8" : "concat-fp32", dense_block(), opt);
    int slices = 0, joins = 0;
    for (const auto &v : mm.graph()["values"]) slices += v.contains("channel_offset");
    for (const auto &st : mm.graph()["steps"]) joins += st["op"] == "concat" && st["alias"].get<bool>();
    EXPECT_GE(slices, 8);
    EXPECT_EQ(joins, 6);
    mm.check(150, int8 ? 5 : 4);
  }
}

TEST(ModuleMutation, BitSerialResNet18) {
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("w1a2");  // bit-plane (u32) values, bitpack steps
  opt.qconfig.calibration_samples = 2;
  ModuleMutation mm("w1a2", resnet18(), opt);
  mm.check(150, 3);
}

}  // namespace
