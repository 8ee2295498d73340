// libFuzzer target: the .npy and .npz readers (parse_npy / parse_npz, the in-memory cores of
// read_npy / read_npz). Any failure must be a qnnc::Error; another exception, a crash or a
// sanitizer report is a bug. A parsed tensor's data must match its shape.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ir/graph.h"
#include "runtime/npy.h"

namespace {

void check(const qnnc::Tensor &t) {
  if ((int64_t)t.data.size() != t.numel()) {
    std::fprintf(stderr, "tensor of shape %s holds %zu values\n", qnnc::shape_string(t.shape).c_str(), t.data.size());
    std::abort();
  }
}

template <typename F>
void expect_qnnc_error(F f) {
  try {
    f();
  } catch (const qnnc::Error &e) {
    for (const char *p = e.what(); *p; p++)
      if ((unsigned char)*p >= 0x80) {
        std::fprintf(stderr, "error message with a raw non-ASCII byte: %s\n", e.what());
        std::abort();
      }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "not a qnnc::Error: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string bytes(reinterpret_cast<const char *>(data), size);
  expect_qnnc_error([&] { check(qnnc::parse_npy(bytes, "fuzz.npy")); });
  expect_qnnc_error([&] {
    for (const auto &[name, t] : qnnc::parse_npz(bytes, "fuzz.npz")) check(t);
  });
  return 0;
}
