// Where `qnnc tune` measures its candidates (--runner):
//   local              this machine, `qnnc measure` in a process of its own (host targets);
//   ssh://user@host[:port]
//                      a board (or any machine) over ssh: a measurement build of the static
//                      bundle (codegen/bundle.h) holding the reference's and the candidate's
//                      kernels is copied there and run in its --measure mode, which prints JSON;
//   qemu               that measurement build under qemu-aarch64 on this machine: it checks a
//                      candidate's output, but emulated times do not rank schedules the way a
//                      board would, so they are recorded and never used (times_count() false).
// Every runner returns tune/measure.h's JSON, or {"ok": false, "why": ...} when the candidate
// crashed, hung (timeout) or could not be run.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codegen/target.h"

namespace qnnc {

struct RunnerOptions {
  std::string qnnc_exe;      // this program, run as `qnnc measure` (local)
  int threads = 0;           // threads the kernels run with (0: all cores of the measuring machine)
  int repeat = 10;           // timed runs per measurement
  double timeout_s = 120;    // per measurement
  std::string workdir;       // scratch space on this machine
  std::function<void(const std::string &)> log;
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual std::string name() const = 0;       // as given: "local", "ssh://pi@board", "qemu"
  virtual bool times_count() const { return true; }
  // The default module, once, before any measure(); copies it where candidates will run.
  virtual void set_reference(const std::string &ref_dir) = 0;
  // The candidate module (compiled for the same target as the reference) at these steps;
  // repeat > 0 overrides the options' timed runs.
  virtual nlohmann::json measure(const std::string &cand_dir, const std::vector<int> &steps, int repeat = 0) = 0;
};

// spec: "local", "qemu" or "ssh://[user@]host[:port]"; a qnnc::Error explains a bad one, or a
// runner that cannot measure `target` (local needs a target this machine runs, qemu an ARM one).
std::unique_ptr<Runner> make_runner(const std::string &spec, const TargetInfo &target, const RunnerOptions &opt);

// The ssh command the ssh runner uses: $QNNC_SSH if set (e.g. "ssh -F my_config"), else
// "ssh -o BatchMode=yes"; the runner adds the port and the destination.
std::string ssh_command();

}  // namespace qnnc
