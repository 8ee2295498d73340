// Graph-to-graph rewrites run before code generation. Each pass keeps the graph verified and
// typed; run_passes applies them in the standard order.
#pragma once
#include "ir/graph.h"

namespace qnnc {

struct PassOptions {
  bool fold_batchnorm = true;  // false keeps batch norms as scale_shift nodes (for re-estimation)
  bool nhwc = true;            // choose channels-innermost layout for 4-D activations
  bool fuse_activations = true;  // fp32 convolutions and dense layers apply a following unary function
};

// Evaluates nodes whose inputs are all constants (Reshape/Flatten/Identity/Add/Relu of weights).
void fold_constants(Graph &g);
// Conv followed by BatchNormalization becomes one Conv with scaled weights and a bias.
void fold_batchnorm(Graph &g);
// Replaces multi-node patterns of ONNX ops with one op: LayerNorm (decomposed layer norms),
// Gelu, channel_shuffle (Reshape/Transpose/Reshape).
void fuse_patterns(Graph &g);
// Rewrites ONNX-level ops into qnnc's fused ops: conv2d (bias, residual add, ReLU), dense,
// maxpool, global_avgpool, flatten, add, relu, scale_shift.
void fuse_operators(Graph &g);
// After quantization: an fp32 convolution or dense layer takes the unary function that alone
// reads its output (hardswish, SiLU, sigmoid, GELU, ...) into its epilogue (attribute "act"),
// also across a transpose between them (ConvNeXt's MLP: conv 1x1, permute, GELU).
void fuse_activations(Graph &g);
// Removes nodes whose results nobody reads.
void remove_dead_nodes(Graph &g);
// Marks 4-D activations NHWC and inserts layout transforms at the graph's borders.
void choose_layout(Graph &g);
// An NCHW -> NHWC layout transform read only by a quantize step (a quantized model's input) or
// by an fp32 stem convolution (an image of at most 4 channels) folds into its reader, which
// then reads NCHW itself and writes NHWC (attribute from_nchw).
void fold_input_layout(Graph &g);

void run_passes(Graph &g, const PassOptions &opt = {});
// The two halves of run_passes: up to fusion (what quantization rewrites), then, after
// quantization, activations into fp32 epilogues and layout.
void run_graph_passes(Graph &g, const PassOptions &opt = {});
void run_layout_passes(Graph &g, const PassOptions &opt = {});

// Deletes nodes with an empty op and renumbers producers (used by the passes).
void compact(Graph &g);

}  // namespace qnnc
