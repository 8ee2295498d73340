// Progress of long work (compiling kernels, calibration, tuning), reported to whoever shows it:
// the command line draws a bar on a terminal and plain lines otherwise; the Python package
// hands it to its own bar.
#pragma once
#include <functional>
#include <string>

namespace qnnc {

struct ProgressEvent {
  std::string task;    // "kernels", "calibration", ...
  int done = 0, total = 0;
  int cached = 0;      // kernels: how many of `done` came from the kernel cache
  std::string detail;  // what was just finished
};

using ProgressFn = std::function<void(const ProgressEvent &)>;

}  // namespace qnnc
