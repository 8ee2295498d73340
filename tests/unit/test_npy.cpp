// .npy / .npz I/O: float32 round trips, hand-written headers (other dtypes, Fortran order,
// version 2), truncated and malformed files, and a hand-built uncompressed zip as np.savez
// writes it (stored members, optionally with the zip64 extra field numpy adds).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "expect_error.h"
#include "reference.h"
#include "runtime/npy.h"

namespace fs = std::filesystem;

namespace {

using qnnc::Tensor;

class NpyTest : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("qnnc-npy-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(const std::string &name) const { return (dir / name).string(); }
  static void write_bytes(const std::string &p, const std::string &bytes) {
    std::ofstream f(p, std::ios::binary);
    f.write(bytes.data(), (std::streamsize)bytes.size());
  }
  static std::string read_bytes(const std::string &p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
};

// A version-1 .npy with the given header dict: magic, header padded to 64 bytes, raw data.
std::string npy_with_header(std::string h, const std::string &data) {
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string b = "\x93NUMPY";
  b += '\x01';
  b += '\x00';
  b += (char)(h.size() & 0xff);
  b += (char)(h.size() >> 8);
  return b + h + data;
}

std::string npy_bytes(const std::string &descr, const std::string &shape, const std::string &data,
                      const std::string &fortran = "False") {
  return npy_with_header("{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }", data);
}

std::string float_bytes(const std::vector<float> &v) {
  return std::string((const char *)v.data(), v.size() * sizeof(float));
}

TEST_F(NpyTest, RoundTripPreservesShapeAndBits) {
  ref::Rng rng(50);
  for (ref::Shape s : {ref::Shape{2, 3, 4, 5}, ref::Shape{7}, ref::Shape{1, 1000}, ref::Shape{}, ref::Shape{0, 3}}) {
    SCOPED_TRACE(ref::shape_str(s));
    Tensor t = ref::random_tensor(s, rng);
    if (!t.data.empty()) t.data[0] = -0.f;
    qnnc::write_npy(path("t.npy"), t);
    Tensor r = qnnc::read_npy(path("t.npy"));
    EXPECT_EQ(r.shape, t.shape);
    ASSERT_EQ(r.data.size(), t.data.size());
    EXPECT_EQ(0, std::memcmp(r.data.data(), t.data.data(), t.data.size() * 4));
    // Header is padded so the data starts 64-byte aligned, as numpy does.
    std::string bytes = read_bytes(path("t.npy"));
    EXPECT_EQ((bytes.size() - t.data.size() * 4) % 64, 0u);
  }
}

TEST_F(NpyTest, ReadsNumpyStyleHeaders) {
  std::vector<float> v{1.5f, -2.f, 3.25f, 0.f, 7.f, -8.5f};
  // Spacing/ordering variants numpy produced over the years, and version 2.0 headers.
  write_bytes(path("a.npy"), npy_bytes("<f4", "(2, 3)", float_bytes(v)));
  Tensor a = qnnc::read_npy(path("a.npy"));
  EXPECT_EQ(a.shape, (ref::Shape{2, 3}));
  EXPECT_EQ(a.data, v);

  write_bytes(path("b.npy"), npy_bytes("<f4", "(6,)", float_bytes(v)));
  EXPECT_EQ(qnnc::read_npy(path("b.npy")).shape, (ref::Shape{6}));

  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
  while ((12 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; i++) v2 += (char)((h.size() >> (8 * i)) & 0xff);
  write_bytes(path("c.npy"), v2 + h + float_bytes(v));
  Tensor c = qnnc::read_npy(path("c.npy"));
  EXPECT_EQ(c.shape, (ref::Shape{3, 2}));
  EXPECT_EQ(c.data, v);
}

TEST_F(NpyTest, WrongDtypeIsAnError) {
  std::vector<double> d{1.0, 2.0, 3.0};
  write_bytes(path("f8.npy"), npy_bytes("<f8", "(3,)", std::string((const char *)d.data(), 24)));
  std::string e = qnnc_error([&] { qnnc::read_npy(path("f8.npy")); });
  EXPECT_NE(e.find("<f8"), std::string::npos) << e;
  EXPECT_NE(e.find("float32"), std::string::npos) << e;

  write_bytes(path("i8.npy"), npy_bytes("|i1", "(3,)", "abc"));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("i8.npy")); }).find("|i1"), std::string::npos);
}

TEST_F(NpyTest, FortranOrderIsAnError) {
  write_bytes(path("f.npy"), npy_bytes("<f4", "(2, 2)", float_bytes({1, 2, 3, 4}), "True"));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("f.npy")); }).find("Fortran"), std::string::npos);
}

TEST_F(NpyTest, TruncatedFileIsAnError) {
  ref::Rng rng(51);
  qnnc::write_npy(path("t.npy"), ref::random_tensor({4, 5}, rng));
  std::string full = read_bytes(path("t.npy"));
  // Cut inside the data, then inside the header, then inside the magic.
  write_bytes(path("data.npy"), full.substr(0, full.size() - 5));
  std::string e = qnnc_error([&] { qnnc::read_npy(path("data.npy")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  write_bytes(path("header.npy"), full.substr(0, 40));
  e = qnnc_error([&] { qnnc::read_npy(path("header.npy")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  write_bytes(path("magic.npy"), full.substr(0, 4));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("magic.npy")); }), "");
}

TEST_F(NpyTest, MalformedFilesAreErrors) {
  write_bytes(path("text.npy"), "this is not numpy data at all");
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("text.npy")); }).find("not a .npy"), std::string::npos);
  write_bytes(path("noshape.npy"), npy_with_header("{'descr': '<f4', 'fortran_order': False, }", ""));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("noshape.npy")); }), "");
  write_bytes(path("badshape.npy"), npy_bytes("<f4", "(2, x)", float_bytes({1, 2})));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("badshape.npy")); }).find("shape"), std::string::npos);
  EXPECT_NE(qnnc_error([&] { qnnc::read_npy(path("missing.npy")); }).find("cannot open"), std::string::npos);
}

// Shapes whose element count overflows: before, the count wrapped (to 0 for 2^32 x 2^32) and
// a tensor with that shape and no data came back; the size check could also be bypassed.
TEST_F(NpyTest, HugeShapesAreErrorsNotOverflows) {
  for (std::string shape : {"(4294967296, 4294967296)", "(4611686018427387904, 4)", "(9223372036854775807,)",
                            "(3, 0, 9223372036854775807, 9223372036854775807)"}) {
    SCOPED_TRACE(shape);
    std::string e = qnnc_error([&] { qnnc::parse_npy(npy_bytes("<f4", shape, float_bytes({1, 2, 3, 4})), "h.npy"); });
    EXPECT_NE(e.find("too large"), std::string::npos) << e;
  }
  std::string e = qnnc_error([&] { qnnc::parse_npy(npy_bytes("<f4", "(99999999999999999999,)", ""), "h.npy"); });
  EXPECT_NE(e.find("shape"), std::string::npos) << e;
  // An empty array with ordinary dimensions is fine.
  Tensor t = qnnc::parse_npy(npy_bytes("<f4", "(0, 3)", ""), "e.npy");
  EXPECT_EQ(t.shape, (ref::Shape{0, 3}));
  EXPECT_TRUE(t.data.empty());
}

// The header is parsed as the dict literal it is: quoting, spacing, key order, trailing commas.
TEST_F(NpyTest, HeaderDictIsParsedStrictly) {
  std::vector<float> v{1, 2};
  for (std::string h : {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                        "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}",
                        "{ 'fortran_order' :False,'shape':( 1 , 2 ),'descr':'=f4' }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,)}"}) {
    SCOPED_TRACE(h);
    Tensor t = qnnc::parse_npy(npy_with_header(h, float_bytes(v)), "ok.npy");
    EXPECT_EQ(t.data, v);
  }
  for (std::string h : {"", "{", "{'descr': '<f4'", "{'descr': '<f4', 'fortran_order': False}",
                        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}",
                        "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x'}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}"}) {
    SCOPED_TRACE(h);
    std::string e = qnnc_error([&] { qnnc::parse_npy(npy_with_header(h, float_bytes(v)), "bad.npy"); });
    EXPECT_EQ(e.rfind("'bad.npy'", 0), 0u) << e;
  }
  // Unknown format versions.
  std::string b = npy_bytes("<f4", "(2,)", float_bytes(v));
  b[6] = 9;
  EXPECT_NE(qnnc_error([&] { qnnc::parse_npy(b, "v.npy"); }).find("version"), std::string::npos);
}

// Bytes from the file reach messages escaped.
TEST_F(NpyTest, InputBytesInMessagesAreEscaped) {
  std::string e = qnnc_error([&] { qnnc::parse_npy(npy_bytes("\xff\x1b[2J", "(1,)", float_bytes({1})), "d.npy"); });
  EXPECT_NE(e.find("dtype '\\xff\\x1b[2J'"), std::string::npos) << e;
  e = qnnc_error([&] {
    qnnc::parse_npy(npy_with_header("{'descr': '<f4', '\x80\x81': 1}", ""), "k.npy");
  });
  EXPECT_NE(e.find("'\\x80\\x81'"), std::string::npos) << e;
  for (unsigned char c : e) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e;
}

// --- .npz: a zip archive of .npy members --------------------------------------------------

uint32_t crc32(const std::string &s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : s) {
    c ^= ch;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put16(std::string &b, uint32_t v) {
  b += (char)(v & 0xff);
  b += (char)((v >> 8) & 0xff);
}
void put32(std::string &b, uint32_t v) {
  put16(b, v & 0xffff);
  put16(b, v >> 16);
}
void put64(std::string &b, uint64_t v) {
  put32(b, (uint32_t)v);
  put32(b, (uint32_t)(v >> 32));
}

struct Member {
  std::string name, data;
  uint16_t method = 0;  // 0 stored, 8 deflate (we only claim it; the reader must refuse)
};

// Local headers + data, central directory and end record, as Python's zipfile writes them.
std::string make_zip(const std::vector<Member> &members, bool zip64_extra) {
  std::string out, central;
  for (const auto &m : members) {
    uint32_t offset = (uint32_t)out.size(), crc = crc32(m.data), size = (uint32_t)m.data.size();
    std::string extra;
    if (zip64_extra) {  // numpy opens members with force_zip64=True
      put16(extra, 1);
      put16(extra, 16);
      put64(extra, size);
      put64(extra, size);
    }
    std::string lh;
    put32(lh, 0x04034b50);
    put16(lh, zip64_extra ? 45 : 20);
    put16(lh, 0);  // flags
    put16(lh, m.method);
    put16(lh, 0);  // time
    put16(lh, 0x21);  // date
    put32(lh, crc);
    put32(lh, size);
    put32(lh, size);
    put16(lh, (uint32_t)m.name.size());
    put16(lh, (uint32_t)extra.size());
    out += lh + m.name + extra + m.data;

    std::string ch;
    put32(ch, 0x02014b50);
    put16(ch, 20);
    put16(ch, 20);
    put16(ch, 0);
    put16(ch, m.method);
    put16(ch, 0);
    put16(ch, 0x21);
    put32(ch, crc);
    put32(ch, size);
    put32(ch, size);
    put16(ch, (uint32_t)m.name.size());
    put16(ch, 0);
    put16(ch, 0);
    put16(ch, 0);
    put16(ch, 0);
    put32(ch, 0);
    put32(ch, offset);
    central += ch + m.name;
  }
  uint32_t cd_at = (uint32_t)out.size();
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, (uint32_t)members.size());
  put16(out, (uint32_t)members.size());
  put32(out, (uint32_t)central.size());
  put32(out, cd_at);
  put16(out, 0);
  return out;
}

TEST_F(NpyTest, NpzReadsStoredMembersInOrder) {
  std::vector<float> a{1, 2, 3, 4, 5, 6}, b{-1.5f, 0.25f};
  for (bool zip64 : {false, true}) {
    SCOPED_TRACE(zip64 ? "with zip64 extra field" : "plain");
    write_bytes(path("in.npz"), make_zip({{"input.npy", npy_bytes("<f4", "(1, 2, 3)", float_bytes(a))},
                                          {"extra.npy", npy_bytes("<f4", "(2,)", float_bytes(b))}},
                                         zip64));
    auto arrays = qnnc::read_npz(path("in.npz"));
    ASSERT_EQ(arrays.size(), 2u);
    EXPECT_EQ(arrays[0].first, "input");
    EXPECT_EQ(arrays[0].second.shape, (ref::Shape{1, 2, 3}));
    EXPECT_EQ(arrays[0].second.data, a);
    EXPECT_EQ(arrays[1].first, "extra");
    EXPECT_EQ(arrays[1].second.shape, (ref::Shape{2}));
    EXPECT_EQ(arrays[1].second.data, b);
  }
}

// numpy's zipfile may write 0xFFFFFFFF as the local header's sizes and the real ones in the zip64
// extra field; member names from the archive are escaped in messages.
TEST_F(NpyTest, NpzZip64SizesAndEscapedNames) {
  std::vector<float> a{1, 2, 3};
  std::string z = make_zip({{"a.npy", npy_bytes("<f4", "(3,)", float_bytes(a))}}, true);
  for (int k = 0; k < 8; k++) z[18 + k] = '\xff';  // compressed and uncompressed sizes
  auto arrays = qnnc::parse_npz(z, "z.npz");
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_EQ(arrays[0].second.data, a);
  // Without the extra field the size is unknown.
  std::string no_extra = make_zip({{"a.npy", npy_bytes("<f4", "(3,)", float_bytes(a))}}, false);
  for (int k = 0; k < 8; k++) no_extra[18 + k] = '\xff';
  EXPECT_NE(qnnc_error([&] { qnnc::parse_npz(no_extra, "z.npz"); }).find("zip64"), std::string::npos);

  std::string e = qnnc_error([&] {
    qnnc::parse_npz(make_zip({{"bad\xfe\x07.npy", npy_bytes("<f8", "(1,)", std::string(8, '\0'))}}, false), "n.npz");
  });
  EXPECT_NE(e.find("n.npz:bad\\xfe\\x07"), std::string::npos) << e;
  e = qnnc_error([&] { qnnc::parse_npz(make_zip({{"c\xfe.npy", "x", 8}}, false), "n.npz"); });
  EXPECT_NE(e.find("'c\\xfe.npy' is compressed"), std::string::npos) << e;
}

TEST_F(NpyTest, NpzErrors) {
  // A compressed member (np.savez_compressed) is refused with a hint.
  write_bytes(path("c.npz"), make_zip({{"x.npy", npy_bytes("<f4", "(1,)", float_bytes({1})), 8}}, false));
  std::string e = qnnc_error([&] { qnnc::read_npz(path("c.npz")); });
  EXPECT_NE(e.find("compressed"), std::string::npos) << e;
  // A member of the wrong dtype names the member.
  write_bytes(path("d.npz"), make_zip({{"x.npy", npy_bytes("<f8", "(1,)", std::string(8, '\0'))}}, false));
  e = qnnc_error([&] { qnnc::read_npz(path("d.npz")); });
  EXPECT_NE(e.find("<f8"), std::string::npos) << e;
  // Truncated inside a member's data.
  std::string z = make_zip({{"x.npy", npy_bytes("<f4", "(100,)", std::string(400, '\0'))}}, false);
  write_bytes(path("t.npz"), z.substr(0, 200));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npz(path("t.npz")); }), "");
  // Not a zip at all, and a .npy passed as .npz.
  write_bytes(path("n.npz"), "hello");
  EXPECT_NE(qnnc_error([&] { qnnc::read_npz(path("n.npz")); }), "");
  write_bytes(path("y.npz"), npy_bytes("<f4", "(1,)", float_bytes({1})));
  EXPECT_NE(qnnc_error([&] { qnnc::read_npz(path("y.npz")); }), "");
}

}  // namespace

namespace {

std::string int_bytes(const std::vector<int64_t> &v, int width) {
  std::string b;
  for (int64_t x : v)
    for (int k = 0; k < width; k++) b += (char)((uint64_t)x >> (8 * k) & 0xff);
  return b;
}

// Labels for `qnnc eval`: integer members of every width and sign are read (as float values,
// sign-extended), with their dtype named; the strict reader still refuses them.
TEST_F(NpyTest, IntegerMembersReadAsLabels) {
  std::vector<float> x{0.5f, -1.25f};
  write_bytes(path("d.npz"), make_zip({{"inputs.npy", npy_bytes("<f4", "(2,)", float_bytes(x))},
                                       {"labels.npy", npy_bytes("<i8", "(3,)", int_bytes({3, -1, 7}, 8))},
                                       {"u8.npy", npy_bytes("|u1", "(2,)", int_bytes({255, 0}, 1))},
                                       {"i2.npy", npy_bytes("<i2", "(2,)", int_bytes({-300, 300}, 2))},
                                       {"u4.npy", npy_bytes("<u4", "(1,)", int_bytes({4000000000LL}, 4))}},
                                      false));
  auto a = qnnc::read_npz_any(path("d.npz"));
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0].dtype, "float32");
  EXPECT_EQ(a[0].values.data, x);
  EXPECT_EQ(a[1].name, "labels");
  EXPECT_EQ(a[1].dtype, "int64");
  EXPECT_EQ(a[1].values.data, (std::vector<float>{3, -1, 7}));
  EXPECT_EQ(a[2].dtype, "uint8");
  EXPECT_EQ(a[2].values.data, (std::vector<float>{255, 0}));
  EXPECT_EQ(a[3].dtype, "int16");
  EXPECT_EQ(a[3].values.data, (std::vector<float>{-300, 300}));
  EXPECT_EQ(a[4].dtype, "uint32");
  EXPECT_EQ(a[4].values.data, (std::vector<float>{4000000000.f}));
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::read_npz(path("d.npz")); }), "'<i8'");
  write_bytes(path("f8.npz"), make_zip({{"x.npy", npy_bytes("<f8", "(1,)", std::string(8, '\0'))}}, false));
  EXPECT_CONTAINS(qnnc_error([&] { qnnc::read_npz_any(path("f8.npz")); }), "float32 ('<f4') or integers");
}

}  // namespace
