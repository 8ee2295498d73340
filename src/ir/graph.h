// Typed dataflow graph: the one representation every qnnc stage reads and writes.
// Values are tensors (activations or constants); nodes are operators over values.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace qnnc {

// Any user-facing failure (bad model, bad input, unsupported op) is a qnnc::Error.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `s` made safe to show in a message: printable ASCII (0x20..0x7e) is kept, every other byte
// (control characters, non-ASCII, invalid UTF-8) is written as \xNN, so a name read from a
// damaged or hostile file cannot put raw bytes on the terminal. Inputs longer than `max_len`
// bytes are cut there and end in "..."; std::string::npos keeps everything. Use it wherever a
// string that came from an input file or the command line enters an Error message.
std::string printable(const std::string &s, size_t max_len = 128);

// s as one single-quoted shell word (a ' inside becomes '\''), for commands qnnc runs through
// the shell (the linker, qemu-aarch64) with paths the user chose.
std::string shell_quote(const std::string &s);

enum class DType { f32, i8, u8, i32, u32, i64 };
const char *dtype_name(DType t);
int dtype_bytes(DType t);

// Memory layout of a 4-D activation. NCHW is the ONNX/PyTorch convention; NHWC puts channels
// innermost, which is what qnnc's SIMD kernels vectorize over. Other ranks use Plain.
enum class Layout { Plain, NCHW, NHWC };
const char *layout_name(Layout l);
// The logical axes of a rank-r tensor in layout l in memory order, innermost first: NHWC is
// {1, 3, 2, 0}, every other layout row-major {r-1, ..., 0}.
std::vector<int64_t> memory_axes(size_t r, Layout l);

// Logical shape is always given in the framework's order (N,C,H,W for images), whatever
// the physical layout.
struct TensorType {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  Layout layout = Layout::Plain;
  int64_t numel() const;
  std::string str() const;
};

// A transpose (output axis k is input axis perm[k]) of a tensor of type `in` into layout
// `out_layout`, in memory terms: the input memory dimension (see memory_axes) of each output
// memory dimension, innermost first.
std::vector<int64_t> transpose_memory_perm(const TensorType &in, const std::vector<int64_t> &perm, Layout out_layout);
// Whether that transpose moves no data: the dimensions of extent > 1 keep their memory order.
bool transpose_is_view(const TensorType &in, const std::vector<int64_t> &memory_perm);

struct Value {
  std::string name;
  TensorType type;
  int producer = -1;                        // node index, -1 for graph inputs / constants
  std::shared_ptr<std::vector<float>> data;     // float constants
  std::shared_ptr<std::vector<int32_t>> idata;  // integer constants (quantized weights, biases)
  bool is_const() const { return data != nullptr || idata != nullptr; }
  // Affine quantization of an integer activation: real = (q - zero_point) * scale.
  float scale = 0.f;
  int zero_point = 0;
};

// Attribute value: ints, floats or a string; scalars are one-element vectors.
struct Attr {
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::string s;
};

struct Node {
  std::string name;
  std::string op;             // e.g. "Conv", "Relu", ...; fused ops use lower-case qnnc names
  std::vector<int> inputs;    // value indices
  std::vector<int> outputs;   // value indices
  std::map<std::string, Attr> attrs;

  bool has(const std::string &k) const { return attrs.count(k) != 0; }
  int64_t i(const std::string &k, int64_t dflt) const;
  float f(const std::string &k, float dflt) const;
  std::vector<int64_t> ints(const std::string &k, std::vector<int64_t> dflt = {}) const;
  void set_i(const std::string &k, int64_t v) { attrs[k].ints = {v}; }
  void set_f(const std::string &k, float v) { attrs[k].floats = {v}; }
  void set_ints(const std::string &k, std::vector<int64_t> v) { attrs[k].ints = std::move(v); }
};

struct Graph {
  std::string name;
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;   // value indices of runtime inputs
  std::vector<int> outputs;  // value indices of graph outputs

  int add_value(const std::string &name, TensorType t);
  int add_const(const std::string &name, std::vector<int64_t> shape, std::vector<float> data);
  int add_iconst(const std::string &name, std::vector<int64_t> shape, DType dtype, std::vector<int32_t> data);
  int add_node(Node n);      // sets producer of outputs; returns node index
  int find_value(const std::string &name) const;  // -1 when absent

  // Index of nodes that read each value.
  std::vector<std::vector<int>> consumers() const;
  // Throws qnnc::Error when references dangle or a node uses a value before it is produced.
  void verify() const;
};

// Readable text form, one node per line with value types; used by `qnnc inspect --ir`.
std::string print_graph(const Graph &g);

}  // namespace qnnc
