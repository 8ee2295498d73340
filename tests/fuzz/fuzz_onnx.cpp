// libFuzzer target: ONNX importer. Bytes -> ModelProto parse -> import into a qnnc Graph ->
// shape inference and verification (load_onnx_bytes), then the IR printer. Any failure must be
// a qnnc::Error; another exception, a crash or a sanitizer report is a bug.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "frontend/onnx_loader.h"
#include "ir/graph.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string bytes(reinterpret_cast<const char *>(data), size);
  try {
    qnnc::Graph g = qnnc::load_onnx_bytes(bytes, "fuzz.onnx");
    (void)qnnc::print_graph(g);
  } catch (const qnnc::Error &e) {
    // Error messages must not carry raw input bytes.
    for (const char *p = e.what(); *p; p++)
      if ((unsigned char)*p >= 0x80) {
        std::fprintf(stderr, "error message with a raw non-ASCII byte: %s\n", e.what());
        std::abort();
      }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "not a qnnc::Error: %s\n", e.what());
    std::abort();
  }
  return 0;
}
