// A dense float tensor exchanged with users: logical shape (N,C,H,W for images) and data in
// row-major order of that shape.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnnc {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

std::string shape_string(const std::vector<int64_t> &s);

// Seeded standard-normal tensor (the default input of `qnnc run` and `qnnc bench`).
Tensor random_tensor(const std::vector<int64_t> &shape, uint64_t seed);

}  // namespace qnnc
