// NumPy .npy / .npz files of float32 tensors (the CLI's input and output format).
#pragma once
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace qnnc {

// Reads a float32, C-order .npy. Other dtypes or a malformed header throw qnnc::Error.
Tensor read_npy(const std::string &path);
void write_npy(const std::string &path, const Tensor &t);
// Reads every array of an uncompressed .npz (as np.savez writes), in archive order.
std::vector<std::pair<std::string, Tensor>> read_npz(const std::string &path);

// An array of any dtype qnnc reads: float32, or integers (labels) converted to float32 values.
struct NpyArray {
  std::string name;
  std::string dtype;   // float32, int64, uint8, ...
  Tensor values;
};
// Every array of an .npz, integer ones included (e.g. inputs and labels for `qnnc eval`).
std::vector<NpyArray> read_npz_any(const std::string &path);

// The same from a file's bytes; `what` names the file in error messages.
Tensor parse_npy(const std::string &bytes, const std::string &what);
std::vector<std::pair<std::string, Tensor>> parse_npz(const std::string &bytes, const std::string &what);

}  // namespace qnnc
