// Damaged or hostile ONNX models: errors escape the bytes that came from the file
// (qnnc::printable), and regressions of what the importer's fuzzer (tests/fuzz/fuzz_onnx.cpp)
// exercises: shapes whose sizes would overflow, out-of-range attributes.
#include <gtest/gtest.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "expect_error.h"
#include "frontend/onnx_loader.h"
#include "ir/graph.h"
#include "onnx/onnx.pb.h"

namespace {

// Every byte of `s` printable ASCII.
bool all_printable(const std::string &s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

// A model with one float input "x" of `shape` and output "y", opset 13.
onnx::ModelProto model(const std::vector<int64_t> &shape) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.add_opset_import()->set_version(13);
  onnx::GraphProto *g = m.mutable_graph();
  g->set_name("g");
  onnx::ValueInfoProto *x = g->add_input();
  x->set_name("x");
  x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : shape) x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  g->add_output()->set_name("y");
  return m;
}

onnx::NodeProto *add_node(onnx::ModelProto &m, const std::string &op, const std::vector<std::string> &in,
                          const std::string &out, const std::string &name = "") {
  onnx::NodeProto *n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto &i : in) n->add_input(i);
  n->add_output(out);
  return n;
}

void add_ints(onnx::NodeProto *n, const std::string &key, const std::vector<int64_t> &v) {
  onnx::AttributeProto *a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t e : v) a->add_ints(e);
}

void add_int(onnx::NodeProto *n, const std::string &key, int64_t v) {
  onnx::AttributeProto *a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

qnnc::Graph load(const onnx::ModelProto &m) { return qnnc::load_onnx_bytes(m.SerializeAsString(), "test.onnx"); }

TEST(Printable, KeepsPrintableAsciiAndEscapesTheRest) {
  EXPECT_EQ(qnnc::printable(""), "");
  EXPECT_EQ(qnnc::printable("/layer1/layer1.0/conv1/Conv"), "/layer1/layer1.0/conv1/Conv");
  EXPECT_EQ(qnnc::printable("a b~'\"\\"), "a b~'\"\\");
  EXPECT_EQ(qnnc::printable(std::string("\x00\x1b[31m\n\x7f", 8)), "\\x00\\x1b[31m\\x0a\\x7f");
  EXPECT_EQ(qnnc::printable("caf\xc3\xa9 \xff\xfe"), "caf\\xc3\\xa9 \\xff\\xfe");  // UTF-8 too: bytes, not glyphs
  // Escaping twice changes nothing: the output is printable ASCII.
  std::string once = qnnc::printable("\x80x\x01");
  EXPECT_EQ(qnnc::printable(once), once);
}

TEST(Printable, TruncatesLongInputs) {
  EXPECT_EQ(qnnc::printable(std::string(128, 'a')), std::string(128, 'a'));
  EXPECT_EQ(qnnc::printable(std::string(129, 'a')), std::string(128, 'a') + "...");
  EXPECT_EQ(qnnc::printable(std::string(10, '\xff'), 3), "\\xff\\xff\\xff...");
  EXPECT_EQ(qnnc::printable(std::string(1000, 'b'), std::string::npos), std::string(1000, 'b'));
}

// A node name with non-UTF-8 bytes and a terminal escape sequence reaches the message escaped.
TEST(OnnxErrors, NonUtf8NodeNameIsEscaped) {
  onnx::ModelProto m = model({1, 4});
  add_node(m, "Sigm\x98id", {"x"}, "y", "bad\xff\xfe\x1b[2Jname");
  std::string e = qnnc_error([&] { load(m); });
  EXPECT_CONTAINS(e, "unsupported operator 'Sigm\\x98id'");
  EXPECT_CONTAINS(e, "node 'bad\\xff\\xfe\\x1b[2Jname'");
  EXPECT_TRUE(all_printable(e)) << e;

  // Value names, in a node the importer knows: an unknown input.
  onnx::ModelProto m2 = model({1, 4});
  add_node(m2, "Relu", {"\xc0\xafmissing"}, "y", "relu\x85");
  e = qnnc_error([&] { load(m2); });
  EXPECT_CONTAINS(e, "node 'relu\\x85' (Relu)");
  EXPECT_CONTAINS(e, "'\\xc0\\xafmissing'");
  EXPECT_TRUE(all_printable(e)) << e;

  // A very long hostile name is cut.
  onnx::ModelProto m3 = model({1, 4});
  add_node(m3, "Nope", {"x"}, "y", std::string(100000, '\xee'));
  e = qnnc_error([&] { load(m3); });
  EXPECT_TRUE(all_printable(e));
  EXPECT_LT(e.size(), 2000u) << e;
}

// The IR printer (graph.txt, `qnnc inspect --ir`) escapes names from the model too.
TEST(OnnxErrors, PrintedGraphEscapesNames) {
  onnx::ModelProto m = model({1, 4});
  add_node(m, "Relu", {"x"}, "y", "relu\xff\x1b[0m");
  std::string text = qnnc::print_graph(load(m));
  EXPECT_CONTAINS(text, "# relu\\xff\\x1b[0m");
  for (unsigned char c : text) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << text;
}

// A window whose pads make the output larger than any buffer: before, the element counts of the
// following Flatten overflowed int64 (undefined behaviour); now shape inference refuses it.
TEST(OnnxErrors, OutputTooLargeIsAnError) {
  onnx::ModelProto m = model({1, 1, 1, 1});
  onnx::NodeProto *p = add_node(m, "MaxPool", {"x"}, "p", "pool");
  add_ints(p, "kernel_shape", {1, 1});
  add_ints(p, "pads", {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX});
  add_node(m, "Flatten", {"p"}, "y", "flat");
  std::string e = qnnc_error([&] { load(m); });
  EXPECT_CONTAINS(e, "node 'pool' (MaxPool)");
  EXPECT_CONTAINS(e, "too large");

  onnx::ModelProto big = model({65536, 65536});
  add_node(big, "Relu", {"x"}, "y");
  EXPECT_CONTAINS(qnnc_error([&] { load(big); }), "too large");
}

TEST(OnnxErrors, FlattenAxisOutOfRange) {
  for (int64_t axis : std::vector<int64_t>{5, -5, INT64_MIN, INT64_MAX}) {
    SCOPED_TRACE(axis);
    onnx::ModelProto m = model({1, 2, 3, 4});
    add_int(add_node(m, "Flatten", {"x"}, "y", "flat"), "axis", axis);
    EXPECT_CONTAINS(qnnc_error([&] { load(m); }), "out of range");
  }
  for (int64_t axis : std::vector<int64_t>{0, 4, -4, -1}) {
    SCOPED_TRACE(axis);
    onnx::ModelProto m = model({1, 2, 3, 4});
    add_int(add_node(m, "Flatten", {"x"}, "y", "flat"), "axis", axis);
    qnnc::Graph g = load(m);
    EXPECT_EQ(g.values[g.outputs[0]].type.numel(), 24);
  }
}

}  // namespace

// Weights kept in an external file beside the model (ONNX external data, as models over 2 GiB
// are saved): read from the file at their offset and length; locations outside the model's
// directory, missing files and ranges past the file's end are errors that name the tensor.
namespace {

std::string temp_dir(const std::string &name) {
  std::string d = testing::TempDir() + "/qnnc_external_" + name + "_" + std::to_string(getpid());
  std::filesystem::create_directories(d);
  return d;
}

// x (1,3,5,5) -> Conv with 4x3x3x3 weights W (external: 8 bytes of padding, then W) -> y.
onnx::ModelProto external_conv(const std::string &location, int64_t offset,
                               int64_t length) {
  onnx::ModelProto m = model({1, 3, 5, 5});
  add_node(m, "Conv", {"x", "W"}, "y", "conv");
  onnx::TensorProto *t = m.mutable_graph()->add_initializer();
  t->set_name("W");
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : {4, 3, 3, 3}) t->add_dims(d);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto kv = [&](const std::string &k, const std::string &v) {
    auto *e = t->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  kv("location", location);
  if (offset >= 0) kv("offset", std::to_string(offset));
  if (length >= 0) kv("length", std::to_string(length));
  return m;
}

void write_file(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

}  // namespace

TEST(OnnxExternalData, ReadsWeightsBesideTheModel) {
  const std::string dir = temp_dir("ok");
  std::vector<float> w(4 * 3 * 3 * 3);
  for (size_t i = 0; i < w.size(); i++) w[i] = 0.25f * (float)i - 3.f;
  std::string data(8, '\x7f');  // bytes before the tensor: the offset must be honoured
  data.append(reinterpret_cast<const char *>(w.data()), w.size() * 4);
  data.append(4, '\x01');  // and bytes after it: so must the length
  write_file(dir + "/weights.bin", data);
  const int64_t bytes = (int64_t)w.size() * 4;
  write_file(dir + "/model.onnx", external_conv("weights.bin", 8, bytes).SerializeAsString());
  qnnc::Graph g = qnnc::load_onnx(dir + "/model.onnx");
  const qnnc::Value *W = nullptr;
  for (const auto &v : g.values)
    if (v.name == "W") W = &v;
  ASSERT_NE(W, nullptr);
  ASSERT_TRUE(W->data);
  EXPECT_EQ(*W->data, w);
  // From bytes, with no directory to read from, the tensor is refused with a hint.
  EXPECT_CONTAINS(qnnc_error([&] { load(external_conv("weights.bin", 8, bytes)); }), "keeps its data in an external file");
  std::filesystem::remove_all(dir);
}

TEST(OnnxExternalData, RejectsBadLocationsAndRanges) {
  const std::string dir = temp_dir("bad");
  std::vector<float> w(4 * 3 * 3 * 3, 1.f);
  write_file(dir + "/weights.bin", std::string(reinterpret_cast<const char *>(w.data()), w.size() * 4));
  auto try_load = [&](const onnx::ModelProto &m) {
    write_file(dir + "/model.onnx", m.SerializeAsString());
    return qnnc::load_onnx(dir + "/model.onnx");
  };
  EXPECT_CONTAINS(qnnc_error([&] { try_load(external_conv("../weights.bin", 0, -1)); }), "relative to the model's directory");
  EXPECT_CONTAINS(qnnc_error([&] { try_load(external_conv("/etc/passwd", 0, -1)); }), "relative to the model's directory");
  EXPECT_CONTAINS(qnnc_error([&] { try_load(external_conv("missing.bin", 0, -1)); }), "cannot open its external data file");
  EXPECT_CONTAINS(qnnc_error([&] { try_load(external_conv("weights.bin", 4, 432)); }), "lies beyond the end");
  EXPECT_CONTAINS(qnnc_error([&] { try_load(external_conv("weights.bin", -1, 100)); }), "has 100 bytes of data");
  std::filesystem::remove_all(dir);
}
