// Shape and dtype inference for every op qnnc knows (imported ONNX ops and fused qnnc ops).
// Reports a qnnc::Error naming the node when shapes do not fit together.
#pragma once
#include "ir/graph.h"

namespace qnnc {

// Recomputes the type of every node output from its inputs, in node order.
void infer_shapes(Graph &g);

// Output spatial size of a sliding window (conv or pool).
int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t pad_begin, int64_t pad_end,
                   int64_t dilation, bool ceil_mode = false);

}  // namespace qnnc
