// Draws ProgressEvents for the command line: on a terminal, one bar per task redrawn in place
// ("kernels [#########.........] 12/40  5 cached  conv2d 3x3/1 64->64"); otherwise plain lines
// (every kernel, and each quarter of other tasks) that read well in a log file.
#pragma once
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include <unistd.h>

#include "ir/progress.h"

namespace qnnc {

class ProgressBar {
 public:
  explicit ProgressBar(FILE *out = stderr) : out_(out), tty_(isatty(fileno(out)) != 0) {}

  void operator()(const ProgressEvent &e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.task != task_) {
      if (open_) std::fputc('\n', out_);
      open_ = false;
      task_ = e.task;
      start_ = std::chrono::steady_clock::now();
      last_quarter_ = -1;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::string counts = std::to_string(e.done) + "/" + std::to_string(e.total);
    if (e.cached > 0) counts += "  " + std::to_string(e.cached) + " cached";
    char eta[64] = "";
    if (e.done > 0 && e.done < e.total)
      std::snprintf(eta, sizeof eta, "  %.0f s, ~%.0f s left", secs, secs * (e.total - e.done) / e.done);
    else
      std::snprintf(eta, sizeof eta, "  %.1f s", secs);
    if (tty_) {
      const int width = 24;
      int fill = e.total > 0 ? width * e.done / e.total : width;
      std::string bar(fill, '#');
      bar += std::string(width - fill, '.');
      std::string detail = e.detail.size() > 40 ? e.detail.substr(0, 39) + "~" : e.detail;
      std::fprintf(out_, "\r\033[K  %s [%s] %s%s  %s", e.task.c_str(), bar.c_str(), counts.c_str(), eta,
                   detail.c_str());
      open_ = true;
      if (e.done >= e.total) {
        std::fputc('\n', out_);
        open_ = false;
      }
    } else if (e.task.find("kernels") != std::string::npos) {
      if (e.done > 0) std::fprintf(out_, "  %s [%d/%d] %s\n", e.task.c_str(), e.done, e.total, e.detail.c_str());
    } else {
      int quarter = e.total > 0 ? 4 * e.done / e.total : 4;
      if (quarter != last_quarter_) {
        std::fprintf(out_, "  %s %s%s\n", e.task.c_str(), counts.c_str(), eta);
        last_quarter_ = quarter;
      }
    }
    std::fflush(out_);
  }

 private:
  FILE *out_;
  bool tty_;
  bool open_ = false;
  int last_quarter_ = -1;
  std::string task_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
};

}  // namespace qnnc
