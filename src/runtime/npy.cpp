#include "runtime/npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ir/graph.h"

namespace qnnc {

namespace {

// Minimal reader of the header dict numpy writes, a Python literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }. Every byte is checked; nothing in
// it is trusted beyond what is parsed.
class HeaderParser {
 public:
  HeaderParser(const std::string &h, const std::string &what) : h_(h), what_(what) {}

  void parse(std::string *descr, bool *fortran, std::vector<int64_t> *shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = string_literal();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        *descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        *fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        *shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + printable(key) + "'");
      }
      skip_ws();
      if (peek() == ',') {
        at_++;
        continue;
      }
      skip_ws();
      if (peek() != '}') fail("expected ',' or '}' after the value of '" + key + "'");
    }
    if (!have_descr) fail("lacks 'descr'");
    if (!have_fortran) fail("lacks 'fortran_order'");
    if (!have_shape) fail("lacks 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string &why) const {
    throw Error("'" + what_ + "': bad .npy header: " + why);
  }
  char peek() const { return at_ < h_.size() ? h_[at_] : '\0'; }
  void skip_ws() {
    while (at_ < h_.size() && (h_[at_] == ' ' || h_[at_] == '\t' || h_[at_] == '\n' || h_[at_] == '\r')) at_++;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at byte " + std::to_string(at_));
    at_++;
  }
  std::string string_literal() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string at byte " + std::to_string(at_));
    size_t end = h_.find(q, at_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string s = h_.substr(at_ + 1, end - at_ - 1);
    at_ = end + 1;
    return s;
  }
  bool boolean() {
    for (bool v : {true, false}) {
      const std::string word = v ? "True" : "False";
      if (h_.compare(at_, word.size(), word) == 0) {
        at_ += word.size();
        return v;
      }
    }
    fail("'fortran_order' must be True or False");
  }
  // (d0, d1, ...) with an optional trailing comma; every dimension a non-negative integer.
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("bad shape: expected a non-negative integer at byte " + std::to_string(at_));
      int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (d > (INT64_MAX - 9) / 10) fail("bad shape: dimension too large");
        d = d * 10 + (h_[at_++] - '0');
      }
      if (peek() == 'L') at_++;  // Python 2 longs
      dims.push_back(d);
      skip_ws();
      if (peek() == ',') {
        at_++;
        continue;
      }
      skip_ws();
      if (peek() != ')') fail("bad shape: expected ',' or ')' at byte " + std::to_string(at_));
    }
    at_++;
    return dims;
  }

  const std::string &h_;
  const std::string &what_;
  size_t at_ = 0;
};

uint32_t le32(const std::string &b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)(unsigned char)b[at + i] << (8 * i);
  return v;
}
uint16_t le16(const std::string &b, size_t at) {
  return (uint16_t)((unsigned char)b[at] | ((unsigned char)b[at + 1] << 8));
}
uint64_t le64(const std::string &b, size_t at) { return le32(b, at) | (uint64_t)le32(b, at + 4) << 32; }

}  // namespace

namespace {

// Element size and kind of a .npy dtype qnnc reads: float32, and with integers_ok the integer
// types (read as float32: exact for labels and indices below 2^24).
struct NpyType {
  int bytes = 0;
  bool is_signed = false, is_float = false;
};

NpyType npy_type(const std::string &descr, bool integers_ok) {
  if (descr == "<f4" || descr == "=f4") return {4, true, true};
  if (integers_ok && descr.size() == 3 && (descr[0] == '<' || descr[0] == '=' || descr[0] == '|') &&
      (descr[1] == 'i' || descr[1] == 'u') && (descr[2] == '1' || descr[2] == '2' || descr[2] == '4' || descr[2] == '8'))
    return {descr[2] - '0', descr[1] == 'i', false};
  return {};
}

Tensor parse_npy_impl(const std::string &bytes, const std::string &what, bool integers_ok, std::string *dtype) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw Error("'" + what + "' is not a .npy file (bad magic)");
  int major = (unsigned char)bytes[6];
  if (major < 1 || major > 3)
    throw Error("'" + what + "': unsupported .npy format version " + std::to_string(major));
  size_t hlen, hstart;
  if (major == 1) {
    hlen = (unsigned char)bytes[8] | ((unsigned char)bytes[9] << 8);
    hstart = 10;
  } else {
    if (bytes.size() < 12) throw Error("'" + what + "': truncated .npy header");
    hlen = le32(bytes, 8);
    hstart = 12;
  }
  if (hlen > bytes.size() - hstart) throw Error("'" + what + "': truncated .npy header");
  std::string h = bytes.substr(hstart, hlen);
  std::string descr;
  bool fortran = false;
  Tensor t;
  HeaderParser(h, what).parse(&descr, &fortran, &t.shape);
  NpyType type = npy_type(descr, integers_ok);
  if (type.bytes == 0)
    throw Error("'" + what + "' holds dtype '" + printable(descr) + "'; qnnc expects float32 ('<f4')" +
                (integers_ok ? " or integers" : "") + ": convert with x.astype(np.float32)");
  if (dtype) *dtype = type.is_float ? "float32" : std::string(type.is_signed ? "int" : "uint") + std::to_string(8 * type.bytes);
  if (fortran) throw Error("'" + what + "' is Fortran-ordered; save a C-ordered array");
  const size_t data_at = hstart + hlen, have = bytes.size() - data_at;
  // Element count, checked against the bytes present before anything is allocated; the product
  // of the non-zero dimensions is bounded even when a zero makes the array empty, so that no
  // element or byte count here or later overflows.
  constexpr uint64_t kMaxCount = (uint64_t)INT64_MAX / 4;
  uint64_t n = 1;
  bool empty = false;
  for (int64_t d : t.shape) {
    if (d == 0) {
      empty = true;
    } else if ((uint64_t)d > kMaxCount / n) {
      throw Error("'" + what + "': shape " + shape_string(t.shape) + " is too large");
    } else {
      n *= (uint64_t)d;
    }
  }
  if (empty) n = 0;
  if (n > have / type.bytes)
    throw Error("'" + what + "' is truncated: shape " + shape_string(t.shape) + " needs " +
                std::to_string(n * type.bytes) + " data bytes, file has " + std::to_string(have));
  t.data.resize(n);
  if (type.is_float) {
    if (n) std::memcpy(t.data.data(), bytes.data() + data_at, n * 4);
    return t;
  }
  const unsigned char *p = (const unsigned char *)bytes.data() + data_at;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t u = 0;
    for (int b = 0; b < type.bytes; b++) u |= (uint64_t)p[i * type.bytes + b] << (8 * b);
    int64_t v = (int64_t)u;
    if (type.is_signed && type.bytes < 8 && (u >> (8 * type.bytes - 1)) & 1) v = (int64_t)(u | (~uint64_t(0) << (8 * type.bytes)));
    t.data[i] = type.is_signed ? (float)v : (float)u;
  }
  return t;
}

}  // namespace

Tensor parse_npy(const std::string &bytes, const std::string &what) { return parse_npy_impl(bytes, what, false, nullptr); }

namespace {

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open '" + path + "' (no such file or not readable)");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Tensor read_npy(const std::string &path) { return parse_npy(slurp(path), path); }

void write_npy(const std::string &path, const Tensor &t) {
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); i++) shape += std::to_string(t.shape[i]) + (t.shape.size() == 1 || i + 1 < t.shape.size() ? "," : "");
  shape += ")";
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error("cannot write '" + path + "'");
  f.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {(char)(h.size() & 0xff), (char)(h.size() >> 8)};
  f.write(len, 2);
  f.write(h.data(), (std::streamsize)h.size());
  f.write((const char *)t.data.data(), (std::streamsize)(t.data.size() * 4));
  if (!f) throw Error("writing '" + path + "' failed");
}

namespace {

template <typename Add>
void parse_npz_members(const std::string &b, const std::string &what, const Add &add) {
  size_t at = 0;
  while (b.size() - at >= 30 && le32(b, at) == 0x04034b50) {
    uint16_t flags = le16(b, at + 6), method = le16(b, at + 8);
    uint64_t csize = le32(b, at + 18);
    uint16_t nlen = le16(b, at + 26), xlen = le16(b, at + 28);
    if ((size_t)nlen + xlen > b.size() - at - 30) throw Error("'" + what + "' is truncated (in a member's header)");
    std::string name = b.substr(at + 30, nlen), extra = b.substr(at + 30 + nlen, xlen);
    size_t data = at + 30 + nlen + xlen;
    const std::string shown = printable(name);
    if (method != 0)
      throw Error("'" + what + "': member '" + shown + "' is compressed; save with np.savez, not savez_compressed");
    if (csize == 0xFFFFFFFFu) {  // zip64: the sizes are in the extra field (id 1: size, then compressed size)
      bool found = false;
      for (size_t x = 0; extra.size() - x >= 4;) {
        uint16_t id = le16(extra, x), len = le16(extra, x + 2);
        if (len > extra.size() - x - 4) break;
        if (id == 1 && len >= 16) {
          csize = le64(extra, x + 12);
          found = true;
          break;
        }
        x += 4 + (size_t)len;
      }
      if (!found) throw Error("'" + what + "': member '" + shown + "' has a zip64 size but no zip64 extra field");
    }
    if ((flags & 8) && csize == 0)
      throw Error("'" + what + "': member '" + shown + "' keeps its size in a data descriptor; save with np.savez");
    if (csize > b.size() - data) throw Error("'" + what + "' is truncated (in member '" + shown + "')");
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    add(name, b.substr(data, (size_t)csize), what + ":" + printable(name));
    at = data + (size_t)csize;
  }
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> parse_npz(const std::string &bytes, const std::string &what) {
  std::vector<std::pair<std::string, Tensor>> out;
  parse_npz_members(bytes, what, [&](const std::string &name, const std::string &member, const std::string &w) {
    out.emplace_back(name, parse_npy(member, w));
  });
  if (out.empty()) throw Error("'" + what + "' is not a .npz archive of arrays");
  return out;
}

std::vector<NpyArray> read_npz_any(const std::string &path) {
  std::vector<NpyArray> out;
  parse_npz_members(slurp(path), path, [&](const std::string &name, const std::string &member, const std::string &w) {
    NpyArray a;
    a.name = name;
    a.values = parse_npy_impl(member, w, true, &a.dtype);
    out.push_back(std::move(a));
  });
  if (out.empty()) throw Error("'" + path + "' is not a .npz archive of arrays");
  return out;
}

std::vector<std::pair<std::string, Tensor>> read_npz(const std::string &path) { return parse_npz(slurp(path), path); }

}  // namespace qnnc
