#include "codegen/kernel_cache.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "ir/graph.h"
#include "kernels/halide_kernel.h"

namespace fs = std::filesystem;

namespace qnnc {

std::string cache_dir() {
  std::string d;
  if (const char *e = std::getenv("QNNC_CACHE_DIR"); e && *e) d = e;
  else if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) d = std::string(x) + "/qnnc";
  else if (const char *h = std::getenv("HOME"); h && *h) d = std::string(h) + "/.cache/qnnc";
  else d = "/tmp/qnnc-cache";
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) throw Error("cannot create kernel cache directory '" + d + "': " + ec.message());
  return d;
}

namespace {
Halide::Target kernel_target(const TargetInfo &t, const KernelSpec &) {
  return t.halide.with_feature(Halide::Target::NoRuntime);
}
}  // namespace

std::vector<std::string> banned_instructions_in(const std::string &object, const std::vector<std::string> &banned) {
  std::set<std::string> want(banned.begin(), banned.end()), found;
  FILE *p = popen(("objdump -d --no-show-raw-insn '" + object + "' 2>/dev/null").c_str(), "r");
  if (!p) throw Error("cannot run objdump to check the kernel's instructions");
  char buf[4096];
  int lines = 0;
  while (fgets(buf, sizeof buf, p)) {
    std::string line(buf);
    auto tab = line.find(":\t");
    if (tab == std::string::npos || line.find_first_not_of(" 0123456789abcdef") != tab) continue;
    lines++;
    std::string ins = line.substr(tab + 2);
    std::string mnemonic = ins.substr(0, ins.find_first_of(" \t\n"));
    if (want.count(mnemonic)) found.insert(mnemonic);
  }
  int rc = pclose(p);
  if (rc != 0 || lines == 0) throw Error("objdump could not disassemble '" + object + "' (binutils is needed)");
  return {found.begin(), found.end()};
}

std::string temp_name(const std::string &path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Bump when a kernel family's algorithm or argument layout changes, so that stale cached
// objects are never linked against a newer runtime.
constexpr const char *kKernelAbiVersion = "qnnc-kernels-39";

std::string kernel_target_string(const KernelSpec &spec, const TargetInfo &target) {
  return kernel_target(target, spec).to_string();
}

std::string kernel_function_name(const KernelSpec &spec, const TargetInfo &target) {
  // Banned instructions are part of the key: the same Halide target with and without them
  // gives different code (a Zen 4 and an Ice Lake may share a cache directory).
  std::string banned;
  for (const auto &b : target.banned_mnemonics) banned += "|-" + b;
  return "qnnc_" + spec.kind + "_" +
         hash_hex(std::string(kKernelAbiVersion) + "|" + spec.signature() + "|" + kernel_target(target, spec).to_string() +
                  banned);
}

CompiledKernel compile_kernel(const KernelSpec &spec, const TargetInfo &target) {
  CompiledKernel ck;
  ck.fn = kernel_function_name(spec, target);
  ck.object = cache_dir() + "/" + ck.fn + ".o";
  if (fs::exists(ck.object)) {
    ck.from_cache = true;
    return ck;
  }
  std::string tmp = temp_name(ck.object);
  try {
    HalideKernel k = build_kernel(spec, kernel_target(target, spec));
    k.pipeline.compile_to_object(tmp, k.arguments(), ck.fn, kernel_target(target, spec));
    if (!target.banned_mnemonics.empty() && !banned_instructions_in(tmp, target.banned_mnemonics).empty()) {
      // Instructions this CPU lacks: the kernel again, for the level below (same name).
      TargetInfo below = target;
      below.halide = target.fallback;
      HalideKernel kb = build_kernel(spec, kernel_target(below, spec));
      kb.pipeline.compile_to_object(tmp, kb.arguments(), ck.fn, kernel_target(below, spec));
    }
  } catch (const Halide::Error &e) {
    // Halide's errors are not std::exceptions: turn them into qnnc's before they cross a thread.
    throw Error("Halide could not generate the kernel: " + std::string(e.what()));
  }
  fs::rename(tmp, ck.object);
  return ck;
}

std::string runtime_object(const TargetInfo &target) {
  const Halide::Target rt = target.banned_mnemonics.empty() ? target.halide : target.fallback;
  std::string path = cache_dir() + "/halide_runtime_" + hash_hex(rt.to_string()) + ".o";
  if (!fs::exists(path)) {
    std::string tmp = temp_name(path);
    Halide::compile_standalone_runtime(tmp, rt);
    fs::rename(tmp, path);
  }
  return path;
}

}  // namespace qnnc
