#include "tune/records.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "ir/graph.h"
#include "kernels/knob_space.h"

namespace qnnc {

nlohmann::json TuningRecord::to_json() const {
  nlohmann::json j{{"schema", schema},       {"qnnc_version", qnnc_version}, {"target", target},
          {"family", family},       {"task", task},                 {"describe", describe},
          {"knobs", knobs},         {"default", is_default},        {"median_ms", median_ms},
          {"min_ms", min_ms},       {"runs", runs},                 {"status", status},
          {"runner", runner},       {"timestamp", timestamp}};
  if (confirmation) j["confirmation"] = true, j["vs_default"] = vs_default;
  return j;
}

TuningRecord TuningRecord::from_json(const nlohmann::json &j) {
  if (!j.is_object()) throw Error("a tuning record must be a JSON object");
  TuningRecord r;
  auto get = [&](const char *key, auto &out) {
    if (!j.contains(key)) throw Error(std::string("tuning record lacks '") + key + "'");
    try {
      j.at(key).get_to(out);
    } catch (const nlohmann::json::exception &) {
      throw Error(std::string("tuning record field '") + key + "' has the wrong type");
    }
  };
  get("schema", r.schema);
  if (r.schema != kTuningRecordSchema)
    throw Error("tuning record schema " + std::to_string(r.schema) + " (this qnnc reads " +
                std::to_string(kTuningRecordSchema) + ")");
  get("target", r.target);
  get("family", r.family);
  get("task", r.task);
  get("knobs", r.knobs);
  get("median_ms", r.median_ms);
  get("status", r.status);
  if (j.contains("default")) get("default", r.is_default);
  if (j.contains("qnnc_version")) get("qnnc_version", r.qnnc_version);
  if (j.contains("describe")) get("describe", r.describe);
  if (j.contains("min_ms")) get("min_ms", r.min_ms);
  if (j.contains("runs")) get("runs", r.runs);
  if (j.contains("timestamp")) get("timestamp", r.timestamp);
  if (j.contains("runner")) get("runner", r.runner);
  if (j.contains("confirmation")) get("confirmation", r.confirmation);
  if (j.contains("vs_default")) get("vs_default", r.vs_default);
  return r;
}

std::string task_signature(const KernelSpec &spec) {
  KernelSpec s = spec;
  s.arg_strides.clear();  // a kernel writing into (or reading) a concatenation's slice is tuned dense
  auto it = knob_spaces().find(s.kind);
  if (it != knob_spaces().end())
    for (const auto &name : it->second.tunable()) s.knobs.erase(name);
  return s.signature();
}

void append_record(const std::string &path, const TuningRecord &r) {
  std::string line = r.to_json().dump() + "\n";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) throw Error("cannot open tuning records '" + path + "' for appending");
  // A run killed while writing left a line without its newline: cut it off first, so the new
  // record starts a line of its own.
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size > 0) {
    char last = 0;
    if (::pread(fd, &last, 1, size - 1) == 1 && last != '\n') {
      off_t keep = size - 1;
      for (char c = 0; keep > 0; keep--)
        if (::pread(fd, &c, 1, keep - 1) == 1 && c == '\n') break;
      if (::ftruncate(fd, keep) != 0) {
        ::close(fd);
        throw Error("cannot repair the torn last line of tuning records '" + path + "'");
      }
    }
  }
  ::lseek(fd, 0, SEEK_END);
  ssize_t n = ::write(fd, line.data(), line.size());  // one write per record
  ::fsync(fd);
  ::close(fd);
  if (n != (ssize_t)line.size()) throw Error("writing tuning records '" + path + "' failed");
}

std::vector<TuningRecord> read_records(const std::string &path, int *skipped) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open tuning records '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  std::vector<TuningRecord> out;
  int skip = 0;
  size_t at = 0;
  for (int line_no = 1; at < text.size(); line_no++) {
    size_t nl = text.find('\n', at);
    bool torn = nl == std::string::npos;
    std::string line = text.substr(at, torn ? std::string::npos : nl - at);
    at = torn ? text.size() : nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception &) {
      if (torn) {  // the line a killed run was writing
        skip++;
        continue;
      }
      throw Error("tuning records '" + path + "' line " + std::to_string(line_no) + " is not JSON");
    }
    try {
      out.push_back(TuningRecord::from_json(j));
    } catch (const Error &e) {
      throw Error("tuning records '" + path + "' line " + std::to_string(line_no) + ": " + e.what());
    }
  }
  if (skipped) *skipped = skip;
  return out;
}

std::map<std::string, Knobs> best_knobs(const std::vector<TuningRecord> &records, const std::string &target) {
  std::map<std::string, double> default_ms;
  std::map<std::string, const TuningRecord *> best;
  for (const auto &r : records) {
    if (r.target != target || r.status != "ok" || r.median_ms <= 0) continue;
    if (r.is_default) {
      auto it = default_ms.find(r.task);
      default_ms[r.task] = it == default_ms.end() ? r.median_ms : std::min(it->second, r.median_ms);
      continue;
    }
    auto it = best.find(r.task);
    if (it == best.end() || r.median_ms < it->second->median_ms) best[r.task] = &r;
  }
  // Confirmations overrule the search's measurements of their task.
  std::map<std::string, const TuningRecord *> confirmed;
  for (const auto &r : records) {
    if (r.target != target || r.status != "ok" || !r.confirmation || r.vs_default <= 0) continue;
    auto it = confirmed.find(r.task);
    if (it == confirmed.end() || r.vs_default < it->second->vs_default) confirmed[r.task] = &r;
  }
  std::map<std::string, Knobs> out;
  for (const auto &[task, r] : best) {
    if (confirmed.count(task)) continue;
    auto d = default_ms.find(task);
    if (d != default_ms.end() && r->median_ms < d->second) out[task] = r->knobs;
  }
  for (const auto &[task, r] : confirmed)
    if (r->vs_default < 1.0) out[task] = r->knobs;
  return out;
}

std::map<std::string, Knobs> measured_default_knobs(const std::vector<TuningRecord> &records,
                                                    const std::string &target) {
  std::map<std::string, Knobs> out;
  for (const auto &r : records)
    if (r.target == target && r.is_default && r.status == "ok") out[r.task] = r.knobs;
  return out;
}

std::set<std::string> measured_tasks(const std::vector<TuningRecord> &records, const std::string &target) {
  std::set<std::string> r;
  for (const auto &x : records)
    if (x.target == target && x.status == "ok") r.insert(x.task);
  return r;
}

}  // namespace qnnc
