// libFuzzer target: the module loader. Each input is written as graph.json into a temporary
// module directory that also holds weights.bin and kernels.so of a real small module (the
// directory named by $QNNC_FUZZ_MODULE, compiled by run_fuzz.sh), then Module::load reads it.
// A module that loads is also run once on a seeded input. Any failure must be a
// qnnc::Error; another exception, a crash or a sanitizer report is a bug.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "ir/graph.h"
#include "runtime/module.h"

namespace fs = std::filesystem;

namespace {

fs::path g_dir;  // the temporary module directory

[[noreturn]] void die(const std::string &msg) {
  std::fprintf(stderr, "fuzz_module: %s\n", msg.c_str());
  std::abort();
}

void remove_dir() {
  std::error_code ec;
  if (!g_dir.empty()) fs::remove_all(g_dir, ec);
}

void try_load_and_run(const std::string &dir) {
  qnnc::Module m = qnnc::Module::load(dir);
  std::vector<qnnc::Tensor> in;
  int64_t total = 0;
  for (const auto &s : m.input_shapes()) {
    qnnc::Tensor t;
    t.shape = s;
    int64_t n = 1;
    for (int64_t d : s) {
      if (d < 0 || (d > 0 && n > (int64_t(1) << 22) / d)) return;  // not a shape worth running
      n *= d;
    }
    total += n;
    if (total > (int64_t(1) << 22)) return;
    in.push_back(qnnc::random_tensor(s, 1));
  }
  m.run(in);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *tmpl = std::getenv("QNNC_FUZZ_MODULE");
  if (!tmpl || !*tmpl) die("set QNNC_FUZZ_MODULE to a compiled module directory (see tests/fuzz/run_fuzz.sh)");
  const char *tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/qnnc-fuzz-module-XXXXXX";
  if (!mkdtemp(pattern.data())) die("cannot create a temporary directory " + pattern);
  g_dir = pattern;
  std::atexit(remove_dir);
  std::error_code ec;
  for (const char *f : {"weights.bin", "kernels.so", "graph.json"}) {
    fs::copy_file(fs::path(tmpl) / f, g_dir / f, ec);
    if (ec) die(std::string("cannot copy ") + f + " from " + tmpl + ": " + ec.message());
  }
  // The unmodified module must load and run, or the fuzzer would only explore error paths.
  try {
    try_load_and_run(g_dir.string());
  } catch (const std::exception &e) {
    die(std::string("the template module does not load: ") + e.what());
  }
  // Keep the kernels loaded between inputs, so each load does not map them again.
  if (!dlopen((g_dir / "kernels.so").c_str(), RTLD_NOW | RTLD_LOCAL)) die(std::string("dlopen: ") + dlerror());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  {
    std::ofstream f(g_dir / "graph.json", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(data), (std::streamsize)size);
    if (!f) die("cannot write graph.json");
  }
  try {
    try_load_and_run(g_dir.string());
  } catch (const qnnc::Error &e) {
    for (const char *p = e.what(); *p; p++)
      if ((unsigned char)*p >= 0x80) die(std::string("error message with a raw non-ASCII byte: ") + e.what());
  } catch (const std::exception &e) {
    die(std::string("not a qnnc::Error: ") + e.what());
  }
  return 0;
}
