// ONNX frontend: reads an ONNX model (protobuf ModelProto) and lowers it to a qnnc Graph of
// canonical ops with inferred shapes. Only the subset of ONNX that qnnc compiles is accepted;
// anything else is reported as a qnnc::Error that names the offending operator or tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace qnnc {

// Loads the ONNX model file at `path` into a qnnc Graph, runs infer_shapes and verify.
// `input_shape`, when non-empty, replaces the model's declared input shape (e.g. {1,3,160,160});
// it is required when the model leaves non-batch input dimensions symbolic.
Graph load_onnx(const std::string &path, const std::vector<int64_t> &input_shape = {});

// Same, from the serialized model in `bytes`; `what` names the model in error messages.
// `data_dir`: the directory that tensors kept in external files (ONNX external data, as models
// over 2 GiB are saved) are read from, relative to it; empty: such tensors are an error.
Graph load_onnx_bytes(const std::string &bytes, const std::string &what,
                      const std::vector<int64_t> &input_shape = {}, const std::string &data_dir = "");

}  // namespace qnnc
