#include "codegen/kernel_cache.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

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

std::string temp_name(const std::string &path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Bump when a kernel family's algorithm or argument layout changes, so that stale cached
// objects are never linked against a newer runtime.
constexpr const char *kKernelAbiVersion = "qnnc-kernels-30";

std::string kernel_target_string(const KernelSpec &spec, const TargetInfo &target) {
  return kernel_target(target, spec).to_string();
}

std::string kernel_function_name(const KernelSpec &spec, const TargetInfo &target) {
  return "qnnc_" + spec.kind + "_" +
         hash_hex(std::string(kKernelAbiVersion) + "|" + spec.signature() + "|" + kernel_target(target, spec).to_string());
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
  } catch (const Halide::Error &e) {
    // Halide's errors are not std::exceptions: turn them into qnnc's before they cross a thread.
    throw Error("Halide could not generate the kernel: " + std::string(e.what()));
  }
  fs::rename(tmp, ck.object);
  return ck;
}

std::string runtime_object(const TargetInfo &target) {
  std::string path = cache_dir() + "/halide_runtime_" + hash_hex(target.halide.to_string()) + ".o";
  if (!fs::exists(path)) {
    std::string tmp = temp_name(path);
    Halide::compile_standalone_runtime(tmp, target.halide);
    fs::rename(tmp, path);
  }
  return path;
}

}  // namespace qnnc
