// Tuning records: one JSON line per measurement of one kernel task (a kernel spec without its
// tunable knobs) with one set of knobs on one target. Files are append-only, so a killed tuning
// run loses at most the line being written; readers skip a torn last line. `qnnc compile
// --tuning-records FILE` takes, per task, the fastest valid record for the compile's target,
// and only where it measured faster than the default schedule's record in the same file.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/kernel_spec.h"

namespace qnnc {

constexpr int kTuningRecordSchema = 1;
// Status of a candidate whose output was right but whose time came from an emulator (QEMU):
// kept as a correctness check, never chosen.
constexpr const char *kEmulatedStatus = "checked: emulated time, not used";

struct TuningRecord {
  int schema = kTuningRecordSchema;
  std::string qnnc_version;     // of the qnnc that measured
  std::string target;           // the module-level Halide target string (features included)
  std::string family;           // kernel kind
  std::string task;             // task_signature() of the spec
  std::string describe;         // for people: "conv2d_q 3x3/1 64->64 56x56 u8*i8 +relu"
  Knobs knobs;                  // the tunable knobs measured
  bool is_default = false;      // these are the family's default knobs for the task
  double median_ms = 0, min_ms = 0;
  int runs = 0;
  std::string status = "ok";    // ok; kEmulatedStatus; or "failed: " and why (compile error, wrong output, timeout)
  std::string runner = "local"; // where it was measured: local, qemu, ssh://user@host
  // A confirmation: the task's best candidate measured again at the end of a run, with more
  // runs, against the default in the same process. The best of many noisy measurements is
  // optimistic; this one is not, and where a task has one, compile decides by it alone.
  bool confirmation = false;
  double vs_default = 0;        // confirmation: candidate time / default time (< 1: faster)
  std::string timestamp;        // UTC, ISO 8601

  nlohmann::json to_json() const;
  // Throws qnnc::Error naming the missing or mistyped field.
  static TuningRecord from_json(const nlohmann::json &j);
};

// The text that names a task: the spec's signature with its family's tunable knobs removed
// (semantic ones such as bit widths stay), so that every schedule of one computation shares it.
std::string task_signature(const KernelSpec &spec);

// Appends one line and flushes it to disk; a torn last line (a killed run) is cut off first.
void append_record(const std::string &path, const TuningRecord &r);

// Every record of a file, in order. A last line without its newline (a run killed while
// writing) is skipped; any other malformed line is a qnnc::Error naming its line number.
// `skipped`, when given, receives how many lines were skipped.
std::vector<TuningRecord> read_records(const std::string &path, int *skipped = nullptr);

// Per task, the knobs of the fastest record on `target` with status ok that beat the default
// record of its task (same file, same target). Tasks without a default record are left out.
// Where a task has confirmation records, only they count: the one with the lowest vs_default,
// if that is below 1.
std::map<std::string, Knobs> best_knobs(const std::vector<TuningRecord> &records, const std::string &target);

// Per task, the default knobs its records on `target` were measured against (the last default
// record in the file). A task whose default has changed since (a newer qnnc chose another
// default schedule) has records that compare with a schedule compile no longer uses.
std::map<std::string, Knobs> measured_default_knobs(const std::vector<TuningRecord> &records,
                                                    const std::string &target);

// Tasks with at least one valid measurement on `target` (tuned, or whose default stayed fastest).
std::set<std::string> measured_tasks(const std::vector<TuningRecord> &records, const std::string &target);

}  // namespace qnnc
