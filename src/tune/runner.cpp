#include "tune/runner.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "codegen/bundle.h"
#include "ir/graph.h"

namespace fs = std::filesystem;

namespace qnnc {

namespace {

std::string steps_list(const std::vector<int> &steps) {
  std::string list;
  for (int k : steps) list += (list.empty() ? "" : ",") + std::to_string(k);
  return list;
}

std::string seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", s);
  return b;
}

// Runs cmd through the shell, stdout to out_path and stderr to out_path + ".log"; the exit code
// (128 + signal when killed).
int shell(const std::string &cmd, const std::string &out_path) {
  int rc = std::system((cmd + " > " + shell_quote(out_path) + " 2> " + shell_quote(out_path + ".log")).c_str());
  return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

std::string last_line(const std::string &path) {
  std::ifstream f(path);
  std::string last, line;
  while (std::getline(f, line))
    if (!line.empty()) last = line;
  return last;
}

nlohmann::json failure(int code, const std::string &timeout, const std::string &log_path, const std::string &what) {
  std::string last = last_line(log_path);
  std::string why = code == 124 || code == 137 ? "timed out after " + timeout + " s"
                                               : what + " failed (exit " + std::to_string(code) + ")";
  return {{"ok", false}, {"why", why + (last.empty() ? "" : ": " + printable(last, 200))}};
}

nlohmann::json read_result(const std::string &path) {
  std::ifstream f(path);
  try {
    return nlohmann::json::parse(f);
  } catch (const std::exception &e) {
    return {{"ok", false}, {"why", std::string("unreadable measurement: ") + e.what()}};
  }
}

// This machine: `qnnc measure CAND --reference REF` in its own process.
class LocalRunner : public Runner {
 public:
  explicit LocalRunner(RunnerOptions o) : o_(std::move(o)) {}
  std::string name() const override { return "local"; }
  void set_reference(const std::string &ref) override { ref_ = ref; }
  nlohmann::json measure(const std::string &cand, const std::vector<int> &steps, int repeat) override {
    std::string json = o_.workdir + "/measure.json";
    std::remove(json.c_str());
    std::string t = seconds(o_.timeout_s);
    std::string cmd = "timeout -k 5 " + t + " " + shell_quote(o_.qnnc_exe) + " measure " + shell_quote(cand) +
                      " --reference " + shell_quote(ref_) + " --steps " + steps_list(steps) + " --repeat " +
                      std::to_string(repeat > 0 ? repeat : o_.repeat) + " --threads " + std::to_string(o_.threads) + " --json " +
                      shell_quote(json);
    int code = shell(cmd, json + ".out");
    if (code != 0) return failure(code, t, json + ".out.log", "measurement process");
    return read_result(json);
  }

 private:
  RunnerOptions o_;
  std::string ref_;
};

// A measurement build of the static bundle, run under QEMU here or on another machine over ssh.
class BundleRunner : public Runner {
 public:
  BundleRunner(std::string spec, TargetInfo t, RunnerOptions o) : spec_(std::move(spec)), t_(std::move(t)), o_(std::move(o)) {
    if (spec_ == "qemu") return;
    // ssh://[user@]host[:port]
    std::string rest = spec_.substr(6);
    auto colon = rest.rfind(':');
    if (colon != std::string::npos && rest.find(']') == std::string::npos) {
      port_ = rest.substr(colon + 1);
      rest = rest.substr(0, colon);
      if (port_.empty() || port_.find_first_not_of("0123456789") != std::string::npos)
        throw Error("--runner " + spec_ + ": the port must be a number");
    }
    if (rest.empty() || rest.back() == '@') throw Error("--runner " + spec_ + ": no host (ssh://user@host[:port])");
    dest_ = rest;
  }
  std::string name() const override { return spec_; }
  bool times_count() const override { return spec_ != "qemu"; }

  void set_reference(const std::string &ref) override {
    ref_ = fs::absolute(ref).string();
    if (spec_ == "qemu") return;
    std::string out = o_.workdir + "/ssh.out";
    // A scratch directory on the remote machine, removed when tuning ends.
    int code = shell(ssh("mktemp -d /tmp/qnnc-measure-XXXXXX"), out);
    if (code != 0) throw Error("ssh to " + dest_ + " failed (exit " + std::to_string(code) + "): " + last_line(out + ".log"));
    remote_ = last_line(out);
    if (remote_.empty() || remote_[0] != '/') throw Error("ssh to " + dest_ + ": mktemp printed no directory");
    log("runner " + spec_ + ": measuring in " + remote_ + " there");
    code = shell("tar -C " + shell_quote(ref_) + " -cf - graph.json weights.bin | " +
                     ssh("mkdir -p " + remote_ + "/reference && tar -C " + remote_ + "/reference -xf -"),
                 out);
    if (code != 0) throw Error("copying the reference module to " + dest_ + " failed: " + last_line(out + ".log"));
  }

  ~BundleRunner() override {
    if (!remote_.empty()) std::system((ssh("rm -rf " + remote_) + " > /dev/null 2>&1").c_str());
  }

  nlohmann::json measure(const std::string &cand_in, const std::vector<int> &steps, int repeat) override {
    std::string cand = fs::absolute(cand_in).string();
    std::string mb = cand + "/measure";
    try {
      fs::remove_all(mb);
      link_measurement_bundle(t_, {ref_, cand}, mb);
      for (const char *f : {"graph.json", "weights.bin"}) fs::copy_file(cand + "/" + f, mb + "/" + f);
    } catch (const std::exception &e) {
      return {{"ok", false}, {"why", std::string("measurement build: ") + printable(e.what(), 300)}};
    }
    std::string t = seconds(o_.timeout_s);
    std::string args = " --steps " + steps_list(steps) + " --repeat " + std::to_string(repeat > 0 ? repeat : o_.repeat) + " --threads " +
                       std::to_string(o_.threads) + " --json -";
    std::string out = mb + "/result.json";
    int code;
    if (spec_ == "qemu") {
      code = shell("timeout -k 5 " + t + " qemu-aarch64 -cpu " + t_.qemu_cpu + " " + shell_quote(mb + "/qnnc-run") +
                       " --measure " + shell_quote(ref_) + args,
                   out);
      if (code == 127) return {{"ok", false}, {"why", "qemu-aarch64 not found (install Debian's qemu-user)"}};
    } else {
      // The candidate's weights go over only when its layout differs from the reference's.
      bool same_weights = files_equal(mb + "/weights.bin", ref_ + "/weights.bin");
      std::string files = same_weights ? "qnnc-run graph.json" : "qnnc-run graph.json weights.bin";
      std::string c = remote_ + "/candidate";
      code = shell("tar -C " + shell_quote(mb) + " -cf - " + files + " | " +
                       ssh("rm -rf " + c + " && mkdir " + c + " && tar -C " + c + " -xf -" +
                           (same_weights ? " && ln -s ../reference/weights.bin " + c + "/weights.bin" : "")),
                   out);
      if (code != 0) return failure(code, t, out + ".log", "copying the candidate to " + dest_);
      // The remote timeout ends a hung candidate there; the local one a hung connection.
      code = shell("timeout -k 5 " + seconds(o_.timeout_s + 30) + " " +
                       ssh("timeout -k 5 " + t + " " + c + "/qnnc-run --measure " + remote_ + "/reference" + args),
                   out);
    }
    if (code != 0) return failure(code, t, out + ".log", spec_ == "qemu" ? "the measurement build under QEMU" : "the measurement build on " + dest_);
    nlohmann::json j = read_result(out);
    j["runner"] = spec_;
    return j;
  }

 private:
  std::string ssh(const std::string &remote_cmd) const {
    return ssh_command() + (port_.empty() ? "" : " -p " + port_) + " " + shell_quote(dest_) + " " +
           shell_quote(remote_cmd);
  }
  void log(const std::string &s) const {
    if (o_.log) o_.log(s);
  }
  static bool files_equal(const std::string &a, const std::string &b) {
    std::error_code ec;
    if (fs::file_size(a, ec) != fs::file_size(b, ec) || ec) return false;
    std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
    std::vector<char> ba(1 << 20), bb(1 << 20);
    while (fa && fb) {
      fa.read(ba.data(), ba.size());
      fb.read(bb.data(), bb.size());
      if (fa.gcount() != fb.gcount() || !std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) return false;
    }
    return true;
  }

  std::string spec_;
  TargetInfo t_;
  RunnerOptions o_;
  std::string ref_, dest_, port_, remote_;
};

}  // namespace

std::string ssh_command() {
  const char *e = std::getenv("QNNC_SSH");
  return e && *e ? std::string(e) : std::string("ssh -o BatchMode=yes");
}

std::unique_ptr<Runner> make_runner(const std::string &spec, const TargetInfo &target, const RunnerOptions &opt) {
  if (spec.empty() || spec == "local") {
    if (!target.is_host)
      throw Error("target '" + target.name + "' does not run on this machine: measure on the board with --runner "
                  "ssh://user@host[:port] (or check candidates' correctness only with --runner qemu)");
    return std::make_unique<LocalRunner>(opt);
  }
  if (spec == "qemu") {
    if (target.is_host || target.qemu_cpu.empty())
      throw Error("--runner qemu emulates ARM boards; target '" + target.name + "' runs here: use --runner local");
    return std::make_unique<BundleRunner>(spec, target, opt);
  }
  if (spec.rfind("ssh://", 0) == 0) return std::make_unique<BundleRunner>(spec, target, opt);
  throw Error("unknown --runner '" + spec + "': local, qemu or ssh://user@host[:port]");
}

}  // namespace qnnc
