// What the CPU this process runs on can execute, named as Linux's /proc/cpuinfo names it
// ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "sse4a", ... on x86; "asimd", "asimddp", ...
// on arm64). A module records the features its kernels need (graph.json "cpu_features") and
// Module::load refuses a CPU that lacks any of them, instead of dying with SIGILL.
#pragma once
#include <set>
#include <string>
#include <vector>

namespace qnnc {

using CpuFeatures = std::set<std::string>;

// Features of this CPU, from CPUID (with the OS's register-state support through XGETBV) or
// AT_HWCAP. The environment variable QNNC_CPU_FEATURES (a comma-separated list) replaces the
// detected set, so tests can play a CPU they do not run on.
CpuFeatures detect_cpu_features();

// The entries of required that have lacks, in order.
std::vector<std::string> missing_cpu_features(const std::vector<std::string> &required, const CpuFeatures &have);

// Throws qnnc::Error naming the missing features when this CPU lacks any of required. what
// names the thing being loaded (e.g. "module 'out/r50'"), hint says what to do instead. Where
// required holds AMX, also asks the OS for the tile state (enable_amx_tiles).
void require_cpu_features(const std::vector<std::string> &required, const std::string &what, const std::string &hint);

// Asks the OS, once per process, for the AMX tile state that kernels compiled for Sapphire
// Rapids may use. Returns "" when granted, else why not.
std::string enable_amx_tiles();

}  // namespace qnnc
