#include "ir/graph.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace qnnc {

std::string printable(const std::string &s, size_t max_len) {
  static const char hex[] = "0123456789abcdef";
  const size_t n = std::min(s.size(), max_len);
  std::string out;
  out.reserve(n + 8);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (n < s.size()) out += "...";
  return out;
}

const char *dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::u32: return "u32";
    case DType::i64: return "i64";
  }
  return "?";
}

int dtype_bytes(DType t) {
  switch (t) {
    case DType::i8:
    case DType::u8: return 1;
    case DType::i64: return 8;
    default: return 4;
  }
}

std::vector<int64_t> memory_axes(size_t r, Layout l) {
  if (r == 4 && l == Layout::NHWC) return {1, 3, 2, 0};
  std::vector<int64_t> a;
  for (int64_t k = (int64_t)r - 1; k >= 0; k--) a.push_back(k);
  return a;
}

std::vector<int64_t> transpose_memory_perm(const TensorType &in, const std::vector<int64_t> &perm, Layout out_layout) {
  const auto in_axes = memory_axes(in.shape.size(), in.layout);
  std::vector<int64_t> mperm;
  for (int64_t a : memory_axes(perm.size(), out_layout))
    mperm.push_back(std::find(in_axes.begin(), in_axes.end(), perm[a]) - in_axes.begin());
  return mperm;
}

bool transpose_is_view(const TensorType &in, const std::vector<int64_t> &memory_perm) {
  const auto in_axes = memory_axes(in.shape.size(), in.layout);
  std::vector<int64_t> moved;  // input memory dimensions of extent > 1, in output memory order
  for (int64_t d : memory_perm)
    if (in.shape[in_axes[d]] != 1) moved.push_back(d);
  return std::is_sorted(moved.begin(), moved.end());
}

const char *layout_name(Layout l) {
  switch (l) {
    case Layout::NCHW: return "NCHW";
    case Layout::NHWC: return "NHWC";
    default: return "plain";
  }
}

int64_t TensorType::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorType::str() const {
  std::ostringstream os;
  os << dtype_name(dtype) << "[";
  for (size_t i = 0; i < shape.size(); i++) os << (i ? "," : "") << shape[i];
  os << "]";
  if (layout != Layout::Plain) os << ":" << layout_name(layout);
  return os.str();
}

int64_t Node::i(const std::string &k, int64_t dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() || it->second.ints.empty() ? dflt : it->second.ints[0];
}
float Node::f(const std::string &k, float dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() || it->second.floats.empty() ? dflt : it->second.floats[0];
}
std::vector<int64_t> Node::ints(const std::string &k, std::vector<int64_t> dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.ints;
}

int Graph::add_value(const std::string &nm, TensorType t) {
  Value v;
  v.name = nm;
  v.type = std::move(t);
  values.push_back(std::move(v));
  return (int)values.size() - 1;
}

int Graph::add_const(const std::string &nm, std::vector<int64_t> shape, std::vector<float> data) {
  TensorType t;
  t.shape = std::move(shape);
  if (t.numel() != (int64_t)data.size())
    throw Error("constant '" + printable(nm) + "': shape does not match its data size");
  int v = add_value(nm, t);
  values[v].data = std::make_shared<std::vector<float>>(std::move(data));
  return v;
}

int Graph::add_iconst(const std::string &nm, std::vector<int64_t> shape, DType dtype, std::vector<int32_t> data) {
  TensorType t;
  t.shape = std::move(shape);
  t.dtype = dtype;
  if (t.numel() != (int64_t)data.size())
    throw Error("constant '" + printable(nm) + "': shape does not match its data size");
  int v = add_value(nm, t);
  values[v].idata = std::make_shared<std::vector<int32_t>>(std::move(data));
  return v;
}

int Graph::add_node(Node n) {
  int idx = (int)nodes.size();
  for (int o : n.outputs) values.at(o).producer = idx;
  nodes.push_back(std::move(n));
  return idx;
}

int Graph::find_value(const std::string &nm) const {
  for (size_t i = 0; i < values.size(); i++)
    if (values[i].name == nm) return (int)i;
  return -1;
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> c(values.size());
  for (size_t n = 0; n < nodes.size(); n++)
    for (int v : nodes[n].inputs) c.at(v).push_back((int)n);
  return c;
}

void Graph::verify() const {
  std::vector<bool> ready(values.size(), false);
  for (int v : inputs) ready.at(v) = true;
  for (size_t i = 0; i < values.size(); i++)
    if (values[i].is_const()) ready[i] = true;
  for (const auto &n : nodes) {
    for (int v : n.inputs) {
      if (v < 0 || v >= (int)values.size())
        throw Error("node '" + printable(n.name) + "' (" + printable(n.op) + ") reads a value that does not exist");
      if (!ready[v])
        throw Error("node '" + printable(n.name) + "' (" + printable(n.op) + ") reads '" + printable(values[v].name) +
                    "' before it is produced");
    }
    for (int v : n.outputs) ready.at(v) = true;
  }
  for (int v : outputs)
    if (!ready.at(v)) throw Error("graph output '" + printable(values[v].name) + "' is never produced");
}

std::string print_graph(const Graph &g) {
  // Names come from the model file: shown whole, with non-printable bytes escaped.
  auto nm = [](const std::string &s) { return printable(s, std::string::npos); };
  std::ostringstream os;
  os << "graph " << (g.name.empty() ? "main" : nm(g.name)) << "(";
  for (size_t i = 0; i < g.inputs.size(); i++)
    os << (i ? ", " : "") << "%" << nm(g.values[g.inputs[i]].name) << ": "
       << g.values[g.inputs[i]].type.str();
  os << ") {\n";
  for (const auto &n : g.nodes) {
    os << "  ";
    for (size_t i = 0; i < n.outputs.size(); i++) {
      const Value &v = g.values[n.outputs[i]];
      os << (i ? ", " : "") << "%" << nm(v.name) << ": " << v.type.str();
      if (v.scale > 0) os << "(scale=" << v.scale << ",zp=" << v.zero_point << ")";
    }
    os << " = " << nm(n.op) << "(";
    for (size_t i = 0; i < n.inputs.size(); i++) {
      const Value &v = g.values[n.inputs[i]];
      os << (i ? ", " : "") << (v.is_const() ? "$" : "%") << nm(v.name);
      if (v.is_const()) os << ":" << v.type.str();
    }
    os << ")";
    if (!n.attrs.empty()) {
      os << " {";
      bool first = true;
      for (const auto &[k, a] : n.attrs) {
        os << (first ? "" : ", ") << nm(k) << "=";
        first = false;
        if (!a.s.empty()) os << nm(a.s);
        else if (!a.ints.empty()) {
          if (a.ints.size() > 1) os << "[";
          for (size_t i = 0; i < a.ints.size(); i++) os << (i ? "," : "") << a.ints[i];
          if (a.ints.size() > 1) os << "]";
        } else
          for (size_t i = 0; i < a.floats.size(); i++) os << (i ? "," : "") << a.floats[i];
      }
      os << "}";
    }
    os << "  # " << nm(n.name) << "\n";
  }
  os << "  return ";
  for (size_t i = 0; i < g.outputs.size(); i++) os << (i ? ", " : "") << "%" << nm(g.values[g.outputs[i]].name);
  os << "\n}\n";
  return os.str();
}

std::string shell_quote(const std::string &s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

}  // namespace qnnc
