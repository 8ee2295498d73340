// A learned cost model for `qnnc tune`: ranks candidate knobs of a kernel task before they are
// compiled and measured (each measurement costs a whole-module compile and a timed run).
//
// It is a gradient-boosted tree regressor (XGBoost's C API, booster gbtree, objective
// reg:squarederror) from a fixed-length feature vector of (kernel spec, knobs) to the
// candidate's time relative to its task's default schedule, log(median_ms / default_ms): tasks
// of different sizes share one scale, so what is learned on one shape transfers to others of
// the family (and records of earlier runs on the target help a new model).
//
// Features, in order (feature_names() spells them out; all floats, shapes as log2(max(1, x))):
//   1. kind: one-hot over the families with tunable knobs (knob_spaces(), sorted by name).
//   2. logical shapes: log2 of N, C in, C out, H, W, output H, output W (4-D specs: N,C,H,W;
//      2-D specs such as dense: N and C only, H = W = 1), log2 of the input and output element
//      counts (every family, including the memory-order shapes of transpose/slice/pad), rank.
//   3. the computation: kernel h and w, stride h and w, log2(group), depthwise (0/1),
//      dtype (1 for u8 activations, 0 for f32), fused relu, residual, log2 of the work (MACs
//      for convolutions, dense and matmul; output elements otherwise).
//   4. knobs: the value of every tunable knob name of any family (sorted by name: chunk,
//      co_vectors, col_vectors, o_vectors, rows, unroll_ci, vec, x_tile, ...), 0 where the
//      candidate does not set it.
//   5. derived quantities that govern speed, computed as the family's schedule does (a knob the
//      candidate leaves out takes the schedule's default):
//        lanes             vector lanes actually used: min(vec, channels along the vector)
//        tile_channels     output channels per register tile (vec * co_vectors, capped as the
//                          schedule caps it; o_vectors for dense, col_vectors for matmul)
//        x_tile_eff        output columns per tile: min(x_tile, OW) (1 without the knob)
//        x_tiles           tiles along x: ceil(OW / x_tile_eff)
//        channel_waste     fraction of the channel tiles' lanes past the channel count:
//                          1 - C_out / (ceil(C_out / tile_channels) * tile_channels)
//        column_waste      the same along the output columns: 1 - OW / (x_tiles * x_tile_eff)
//        log2_tasks        log2 of the parallel tasks of the outer loop (register tile:
//                          N * OH * channel tiles; grouped: N * OH; dense: output blocks;
//                          chunk / rows families: ceil(elements / chunk) or ceil(rows / rows))
//        log2_work_per_task log2(work / tasks)
//        acc_lanes         accumulator lanes held in registers (tile_channels * x_tile_eff),
//                          i.e. registers x lanes per register of the (fixed) target
//        acc_vectors       accumulator vectors: ceil(tile_channels / lanes) * x_tile_eff
//        unroll_divides    unroll_ci divides the input channels (it is ignored otherwise)
// The families and knob names come from knob_spaces(), so the length is fixed for one build
// (feature_count()); a model is trained and used within one process, never saved.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernel_spec.h"
#include "tune/records.h"

namespace qnnc {

struct CostModelOptions {
  int rounds = 150;       // boosting rounds
  int max_depth = 6;
  double eta = 0.1;       // learning rate
  uint64_t seed = 0;
  int min_records = 8;    // fewer usable records other than default ones: the model stays
                          // untrained
  int threads = 1;        // XGBoost's threads (the measurements own the other cores)
};

struct CostModelFit {
  int rows = 0;           // records trained on (ok, of the target, with their task's default)
  int tasks = 0;          // distinct tasks among them
  int skipped = 0;        // ok records of the target left out: no default record before them,
                          // a task that does not parse or a family without tunable knobs
};

class CostModel {
 public:
  explicit CostModel(CostModelOptions o = {});
  ~CostModel();
  CostModel(CostModel &&) noexcept;
  CostModel &operator=(CostModel &&) noexcept;
  CostModel(const CostModel &) = delete;
  CostModel &operator=(const CostModel &) = delete;

  // The feature vector of one candidate (length feature_count()). Throws qnnc::Error for a
  // family without tunable knobs.
  static std::vector<float> features(const KernelSpec &spec, const Knobs &knobs);
  static int feature_count();
  static const std::vector<std::string> &feature_names();

  // Trains on the records with status ok on `target` (all targets when empty), replacing any
  // earlier model. A record's label is log(median_ms / default_ms), default_ms being the latest
  // default record of its task (and target) before it in `records`: the run that measured it;
  // records before any default of their task are skipped. With fewer than
  // options.min_records usable records besides the default ones (whose label is 0) the model
  // becomes untrained. XGBoost failures are qnnc::Error (with XGBGetLastError()).
  CostModelFit fit(const std::vector<TuningRecord> &records, const std::string &target = "");
  bool trained() const;

  // Predicted time of each candidate relative to the task's default schedule, as
  // log(time / default time): lower is faster. All zeros when untrained.
  std::vector<float> predict(const KernelSpec &spec, const std::vector<Knobs> &candidates) const;

 private:
  struct Impl;
  CostModelOptions opt_;
  std::unique_ptr<Impl> impl_;  // the booster; null when untrained
};

}  // namespace qnnc
