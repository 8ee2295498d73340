// On-disk cache of compiled kernel objects keyed by (kernel signature, target). Re-compiling a
// model, or another model that shares layer shapes, reuses the objects.
#pragma once
#include <string>
#include <vector>

#include "codegen/target.h"
#include "kernels/kernel_spec.h"

namespace qnnc {

struct CompiledKernel {
  std::string fn;       // exported function name; call as fn_argv(void **args)
  std::string object;   // path of the object file
  bool from_cache = false;
};

// $QNNC_CACHE_DIR, else $XDG_CACHE_HOME/qnnc, else ~/.cache/qnnc (created on demand).
std::string cache_dir();

// Function name that spec gets on target: stable across runs.
std::string kernel_function_name(const KernelSpec &spec, const TargetInfo &target);

// The Halide target a kernel is generated for (the module's, without a Halide runtime).
std::string kernel_target_string(const KernelSpec &spec, const TargetInfo &target);

// Generates spec's kernel for target (or takes it from the cache). Where the target bans
// mnemonics (TargetInfo::banned_mnemonics) and the code has one, it is generated again for
// target.fallback under the same name.
CompiledKernel compile_kernel(const KernelSpec &spec, const TargetInfo &target);

// Which of `banned` (instruction mnemonics) the object file's machine code contains, read
// with objdump (binutils). Throws qnnc::Error where objdump cannot disassemble it.
std::vector<std::string> banned_instructions_in(const std::string &object, const std::vector<std::string> &banned);

// A temporary name beside path, unique to this process and call: files are written there and
// renamed into place, so concurrent compiles (threads or processes) never see half a file.
std::string temp_name(const std::string &path);

// The Halide runtime (thread pool, allocator) for target, compiled once and cached.
std::string runtime_object(const TargetInfo &target);

}  // namespace qnnc
