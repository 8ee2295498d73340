// main() of a deployable bundle: a static executable holding the runtime and a model's
// kernels (linked in through the generated kernel table), reading graph.json and weights.bin
// from its own directory. Built by `qnnc compile --target rpi4|rpi5`; needs nothing else.
#include <sys/auxv.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "ir/graph.h"
#include "runtime/module.h"
#include "runtime/npy.h"
#include "tune/measure.h"

struct QnncKernelSymbol {
  const char *name;
  void *address;
};
extern "C" const QnncKernelSymbol qnnc_kernel_symbols[];
extern "C" const int qnnc_kernel_symbol_count;
extern "C" const char qnnc_bundle_target[];
extern "C" const unsigned long qnnc_required_hwcap;
extern "C" const char qnnc_required_features[];

namespace {

void usage() {
  std::printf(
      "usage: %s [--input x.npy] [--output y.npy] [--threads N] [--repeat N] [--warmup N] [--seed S] [--json F]\n"
      "Runs the model bundled in this directory (%s): warm-up, then timed runs; prints median/min/max ms.\n"
      "Measurement mode (a tuner's measurement build, holding the kernels of two modules):\n"
      "  %s --measure REFERENCE_DIR --steps 3,4 [--repeat N] [--threads N] [--json F|-]\n"
      "checks this directory's module against the reference at those steps and times both; prints JSON.\n",
      "qnnc-run", qnnc_bundle_target, "qnnc-run");
}

std::string dir_of_self(const char *argv0) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string p = n > 0 ? std::string(buf, n) : std::string(argv0);
  auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

}  // namespace

int main(int argc, char **argv) {
  std::map<std::string, std::string> opt{{"threads", "0"}, {"repeat", "5"}, {"warmup", "1"}, {"seed", "0"}};
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
      std::fprintf(stderr, "error: bad argument '%s'\n", a.c_str());
      usage();
      return 2;
    }
    opt[a.substr(2)] = argv[++i];
  }
  // Refuse to start on a CPU without the instructions the kernels use (instead of dying on
  // an illegal instruction). AT_HWCAP works under QEMU user mode, /proc/cpuinfo does not.
  unsigned long hw = getauxval(AT_HWCAP);
  if ((hw & qnnc_required_hwcap) != qnnc_required_hwcap) {
    std::fprintf(stderr,
                 "error: this bundle was compiled for %s and needs CPU feature(s) %s, which this CPU lacks "
                 "(AT_HWCAP 0x%lx); recompile with a target matching the board (e.g. --target rpi4)\n",
                 qnnc_bundle_target, qnnc_required_features, hw);
    return 3;
  }
  try {
    std::map<std::string, void *> syms;
    for (int i = 0; i < qnnc_kernel_symbol_count; i++) syms[qnnc_kernel_symbols[i].name] = qnnc_kernel_symbols[i].address;
    auto resolve = [&](const std::string &name) -> void * {
      auto it = syms.find(name);
      return it == syms.end() ? nullptr : it->second;
    };
    const std::string self_dir = dir_of_self(argv[0]);
    qnnc::Module m = qnnc::Module::load(self_dir, resolve);
    m.set_threads(std::stoi(opt["threads"]));
    if (opt.count("measure")) {
      std::string ref_dir = opt["measure"];
      if (ref_dir.empty() || ref_dir[0] != '/') ref_dir = self_dir + "/" + ref_dir;
      qnnc::Module ref = qnnc::Module::load(ref_dir, resolve);
      ref.set_threads(m.threads());
      std::vector<int> steps = qnnc::parse_step_list(opt.count("steps") ? opt["steps"] : "");
      if (steps.empty()) throw qnnc::Error("--measure needs --steps (comma-separated step indices)");
      nlohmann::json j = qnnc::measure_against_reference(m, ref, steps, std::max(1, std::stoi(opt["repeat"])),
                                                         std::stoull(opt["seed"]));
      j["target"] = std::string(qnnc_bundle_target);
      j["threads"] = m.threads();
      std::string text = j.dump() + "\n";
      if (!opt.count("json") || opt["json"] == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
      } else {
        std::ofstream f(opt["json"]);
        f << text;
      }
      return 0;
    }
    std::vector<qnnc::Tensor> in;
    if (opt.count("input")) in.push_back(qnnc::read_npy(opt["input"]));
    else
      for (const auto &s : m.input_shapes()) in.push_back(qnnc::random_tensor(s, std::stoull(opt["seed"])));
    int repeat = std::max(1, std::stoi(opt["repeat"])), warmup = std::max(0, std::stoi(opt["warmup"]));
    std::vector<qnnc::Tensor> out;
    for (int i = 0; i < warmup; i++) out = m.run(in);
    std::vector<double> ms;
    for (int i = 0; i < repeat; i++) {
      auto t0 = std::chrono::steady_clock::now();
      out = m.run(in);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    double med = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
    std::printf("%s: %d thread(s), %d runs after %d warm-up: median %.3f ms  min %.3f  max %.3f\n", qnnc_bundle_target,
                m.threads(), repeat, warmup, med, ms.front(), ms.back());
    if (opt.count("output")) qnnc::write_npy(opt["output"], out.at(0));
    if (opt.count("json")) {
      std::ofstream f(opt["json"]);
      f << "{\"target\": \"" << qnnc_bundle_target << "\", \"threads\": " << m.threads() << ", \"repeat\": " << repeat
        << ", \"median_ms\": " << med << ", \"min_ms\": " << ms.front() << ", \"max_ms\": " << ms.back() << "}\n";
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
