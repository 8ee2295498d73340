#include "runtime/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "ir/graph.h"

namespace qnnc {

namespace {

Tensor parse_npy(const std::string &bytes, const std::string &what) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw Error("'" + what + "' is not a .npy file (bad magic)");
  int major = (unsigned char)bytes[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = (unsigned char)bytes[8] | ((unsigned char)bytes[9] << 8);
    hstart = 10;
  } else {
    if (bytes.size() < 12) throw Error("'" + what + "': truncated .npy header");
    hlen = 0;
    for (int i = 0; i < 4; i++) hlen |= (size_t)(unsigned char)bytes[8 + i] << (8 * i);
    hstart = 12;
  }
  if (hstart + hlen > bytes.size()) throw Error("'" + what + "': truncated .npy header");
  std::string h = bytes.substr(hstart, hlen);
  auto field = [&](const std::string &key) {
    auto p = h.find("'" + key + "'");
    if (p == std::string::npos) throw Error("'" + what + "': .npy header lacks '" + key + "'");
    return p + key.size() + 2;
  };
  size_t d = h.find('\'', h.find(':', field("descr")) + 1);
  std::string descr = h.substr(d + 1, h.find('\'', d + 1) - d - 1);
  if (descr != "<f4" && descr != "=f4")
    throw Error("'" + what + "' holds dtype '" + descr + "'; qnnc expects float32 ('<f4'): convert with x.astype(np.float32)");
  size_t fo = h.find(':', field("fortran_order")) + 1;
  while (fo < h.size() && h[fo] == ' ') fo++;
  if (h.compare(fo, 4, "True") == 0) throw Error("'" + what + "' is Fortran-ordered; save a C-ordered array");
  size_t s0 = h.find('(', field("shape")), s1 = h.find(')', s0);
  if (s0 == std::string::npos || s1 == std::string::npos) throw Error("'" + what + "': bad shape in .npy header");
  Tensor t;
  std::stringstream ss(h.substr(s0 + 1, s1 - s0 - 1));
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.find_first_not_of(" ") == std::string::npos) continue;
    try {
      t.shape.push_back(std::stoll(tok));
    } catch (...) {
      throw Error("'" + what + "': bad shape in .npy header");
    }
    if (t.shape.back() < 0) throw Error("'" + what + "': negative dimension");
  }
  size_t n = (size_t)t.numel();
  size_t data_at = hstart + hlen;
  if (bytes.size() - data_at < n * 4)
    throw Error("'" + what + "' is truncated: shape " + shape_string(t.shape) + " needs " + std::to_string(n * 4) +
                " data bytes, file has " + std::to_string(bytes.size() - data_at));
  t.data.resize(n);
  std::memcpy(t.data.data(), bytes.data() + data_at, n * 4);
  return t;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open '" + path + "' (no such file or not readable)");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint32_t le32(const std::string &b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)(unsigned char)b[at + i] << (8 * i);
  return v;
}
uint16_t le16(const std::string &b, size_t at) {
  return (uint16_t)((unsigned char)b[at] | ((unsigned char)b[at + 1] << 8));
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

std::vector<std::pair<std::string, Tensor>> read_npz(const std::string &path) {
  std::string b = slurp(path);
  std::vector<std::pair<std::string, Tensor>> out;
  size_t at = 0;
  while (at + 30 <= b.size() && le32(b, at) == 0x04034b50) {
    uint16_t method = le16(b, at + 8);
    uint32_t csize = le32(b, at + 18);
    uint16_t nlen = le16(b, at + 26), xlen = le16(b, at + 28);
    if (at + 30 + nlen + xlen > b.size()) break;
    std::string name = b.substr(at + 30, nlen);
    size_t data = at + 30 + nlen + xlen;
    if (method != 0) throw Error("'" + path + "': member '" + name + "' is compressed; save with np.savez, not savez_compressed");
    if (data + csize > b.size()) throw Error("'" + path + "' is truncated");
    if (name.size() > 4 && name.substr(name.size() - 4) == ".npy") name.resize(name.size() - 4);
    out.emplace_back(name, parse_npy(b.substr(data, csize), path + ":" + name));
    at = data + csize;
  }
  if (out.empty()) throw Error("'" + path + "' is not a .npz archive of arrays");
  return out;
}

}  // namespace qnnc
