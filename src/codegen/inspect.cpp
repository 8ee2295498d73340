#include "codegen/inspect.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "ir/graph.h"
#include "kernels/halide_kernel.h"
#include "kernels/kernel_spec.h"

namespace qnnc {

std::string kernel_code(const nlohmann::json &m, const std::string &layer, const std::string &what) {
  if (what != "stmt" && what != "asm")
    throw Error("unknown code kind '" + printable(what) + "': expected stmt (loop nest) or asm (assembly)");
  if (!m.contains("steps") || !m["steps"].is_array()) throw Error("the module has no steps");
  for (const auto &s : m["steps"]) {
    if (s.value("name", "") != layer && s.value("fn", "") != layer) continue;
    if (s.value("alias", false) || !s.contains("spec"))
      throw Error("step '" + printable(layer) + "' is a view and has no kernel");
    KernelSpec spec = KernelSpec::from_json(s["spec"]);
    Halide::Target t(s.value("halide_target", m.value("halide_target", std::string("host"))));
    HalideKernel k = build_kernel(spec, t);
    const char *tmpdir = std::getenv("TMPDIR");
    static int counter = 0;
    std::string tmp = std::string(tmpdir ? tmpdir : "/tmp") + "/qnnc-inspect-" + std::to_string(::getpid()) + "-" +
                      std::to_string(__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    std::string fn = s.value("fn", std::string("kernel"));
    try {
      if (what == "stmt")
        k.pipeline.compile_to_lowered_stmt(tmp, k.arguments(), Halide::StmtOutputFormat::Text,
                                           t.with_feature(Halide::Target::NoRuntime));
      else
        k.pipeline.compile_to_assembly(tmp, k.arguments(), fn, t.with_feature(Halide::Target::NoRuntime));
    } catch (const Halide::Error &e) {
      throw Error("generating the " + what + " of '" + printable(layer) + "' failed: " + e.what());
    }
    std::ifstream f(tmp);
    std::stringstream ss;
    ss << f.rdbuf();
    std::remove(tmp.c_str());
    // The header quotes the module file (escaped); the body is Halide's own output.
    return "// " + printable(layer, std::string::npos) + ": " + printable(spec.describe(), std::string::npos) + "\n" +
           ss.str();
  }
  throw Error("no step named '" + printable(layer) + "' in the module");
}

}  // namespace qnnc
