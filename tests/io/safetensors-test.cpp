// Safetensors: writer -> reader round trips of every dtype, and a corrupt-header catalogue where each
// malformed file must come back as a Status that names the problem (never a crash or a bad view).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/safetensors-writer.h"
#include "io/safetensors.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace rtnq;

namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}();
    rng_.seed(seed_);
  }
  std::vector<uint8_t> random_bytes(size_t n) {
    std::vector<uint8_t> b(n);
    std::uniform_int_distribution<int> d(0, 255);
    for (auto& x : b) x = uint8_t(d(rng_));
    return b;
  }
  // A file with a hand-made header: length prefix (or `len_override`), header text, `data_bytes` bytes.
  fs::path raw_file(const std::string& header, size_t data_bytes, std::optional<uint64_t> len_override = {}) {
    const fs::path p = dir_ / ("raw-" + std::to_string(counter_++) + ".safetensors");
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = len_override.value_or(header.size());
    for (int i = 0; i < 8; ++i) out.put(char(uint8_t(n >> (8 * i))));
    out << header;
    auto data = random_bytes(data_bytes);
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    return p;
  }
  // Opening must fail with `code`, naming the file and every fragment in `needles`.
  void expect_error(const fs::path& p, StatusCode code, std::vector<std::string> needles) {
    auto f = SafetensorsFile::open(p);
    ASSERT_FALSE(f.has_value()) << "opened a corrupt file " << p;
    const std::string msg = f.status().message();
    std::printf("  message: %s\n", msg.c_str());  // the text a user would see, for review
    EXPECT_EQ(f.status().code(), code) << msg;
    EXPECT_NE(msg.find(p.string()), std::string::npos) << "message does not name the file: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }

  uint32_t seed_ = 0;
  std::mt19937_64 rng_;
  rtnq::test::TempDir tmp_{"rtnq-st-test"};
  const fs::path dir_ = tmp_.path();
  int counter_ = 0;
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

const DType kAllDTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI8,
                            DType::kU8,  DType::kI16, DType::kI32,  DType::kI64, DType::kBool};

TEST_F(SafetensorsTest, RoundTripEveryDTypeByteExact) {
  TRACE_SEED();
  std::uniform_int_distribution<int64_t> dim(1, 37);
  std::vector<TensorInfo> infos;
  for (int rep = 0; rep < 2; ++rep)
    for (DType t : kAllDTypes) {
      TensorInfo ti;
      ti.name = fmt::format("layer.{}.{}", rep, dtype_name(t));
      ti.dtype = t;
      const int rank = int(rng_() % 4);  // 0-d scalars included
      for (int r = 0; r < rank; ++r) ti.shape.push_back(dim(rng_));
      infos.push_back(ti);
    }
  infos.push_back({"empty", DType::kF32, {0, 5}});  // zero-size tensors are legal
  std::shuffle(infos.begin(), infos.end(), rng_);
  std::vector<std::vector<uint8_t>> data;
  for (const auto& ti : infos) {
    auto b = random_bytes(ti.nbytes());
    // BOOL must hold 0/1 to be meaningful; the format does not care, but keep the data honest.
    if (ti.dtype == DType::kBool)
      for (auto& x : b) x &= 1;
    data.push_back(std::move(b));
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"seed", std::to_string(seed_)}, {"é", "ü"}};

  const fs::path p = dir_ / "rt.safetensors";
  {
    auto w = SafetensorsWriter::open(p, infos, meta);
    ASSERT_TRUE(w) << w.status().to_string();
    for (size_t i = 0; i < infos.size(); ++i)
      ASSERT_TRUE(w->write_tensor(infos[i].name, data[i].data(), data[i].size()).is_ok());
    ASSERT_TRUE(w->close().is_ok());
  }
  EXPECT_EQ(fs::file_size(p), safetensors_file_size(infos, meta));

  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ((*f)->metadata(), meta);
  EXPECT_EQ((*f)->data_start() % 8, 0u) << "header not padded to 8 bytes";
  ASSERT_EQ((*f)->tensors().size(), infos.size());
  // File order is declared order, except that zero-size tensors may tie with a neighbour's offset.
  uint64_t prev_end = 0;
  for (const TensorInfo& got : (*f)->tensors()) {
    auto r = (*f)->file_range(got.name);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->offset, (*f)->data_start() + prev_end);
    prev_end += r->size;
  }
  EXPECT_EQ(prev_end, (*f)->data_bytes());
  for (size_t i = 0; i < infos.size(); ++i) {
    auto v = (*f)->view(infos[i].name);
    ASSERT_TRUE(v) << v.status().to_string();
    EXPECT_EQ(v->info.dtype, infos[i].dtype) << infos[i].name;
    EXPECT_EQ(v->info.shape, infos[i].shape) << infos[i].name;
    ASSERT_EQ(v->nbytes(), data[i].size());
    if (!data[i].empty()) {
      EXPECT_EQ(std::memcmp(v->data, data[i].data(), data[i].size()), 0) << infos[i].name;
    }
  }

  // A view keeps the mapping alive after the file object is gone.
  const size_t k = size_t(std::find_if(data.begin(), data.end(), [](const auto& d) { return !d.empty(); }) - data.begin());
  auto keep = (*f)->view(infos[k].name);
  ASSERT_TRUE(keep);
  f = Expected<std::shared_ptr<const SafetensorsFile>>(not_found("dropped"));
  EXPECT_EQ(std::memcmp(keep->data, data[k].data(), data[k].size()), 0);
}

TEST_F(SafetensorsTest, UnknownTensorIsNotFound) {
  const fs::path p = dir_ / "one.safetensors";
  std::vector<TensorInfo> infos = {{"a", DType::kF32, {3}}};
  auto w = SafetensorsWriter::open(p, infos);
  ASSERT_TRUE(w);
  float x[3] = {1.5f, -2.f, 3.25f};
  ASSERT_TRUE(w->write_tensor("a", x, sizeof x).is_ok());
  ASSERT_TRUE(w->close().is_ok());
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f);
  EXPECT_TRUE((*f)->metadata().empty());
  auto v = (*f)->view("b");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_NE(v.status().message().find("'b'"), std::string::npos);
  auto a = (*f)->view("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->as<float>()[2], 3.25f);
}

TEST_F(SafetensorsTest, WriterEnforcesDeclaredOrderAndSizes) {
  TRACE_SEED();
  const fs::path p = dir_ / "w.safetensors";
  std::vector<TensorInfo> infos = {{"x", DType::kBF16, {4, 3}}, {"y", DType::kI64, {2}}};
  auto bx = random_bytes(24), by = random_bytes(16);
  {
    auto w = SafetensorsWriter::open(p, infos);
    ASSERT_TRUE(w);
    Status st = w->write_tensor("y", by.data(), by.size());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("expected tensor 'x'"), std::string::npos) << st.message();
    st = w->write_tensor("x", bx.data(), 23);
    EXPECT_NE(st.message().find("needs 24 bytes, got 23"), std::string::npos) << st.message();
    ASSERT_TRUE(w->write_tensor("x", bx.data(), bx.size()).is_ok());
    st = w->close();
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("'y'"), std::string::npos) << st.message();
    EXPECT_TRUE(fs::exists(p));
  }
  EXPECT_FALSE(fs::exists(p)) << "an unfinished file was left behind";

  std::vector<TensorInfo> dup = {{"x", DType::kF32, {1}}, {"x", DType::kF32, {1}}};
  auto w2 = SafetensorsWriter::open(p, dup);
  ASSERT_FALSE(w2);
  EXPECT_NE(w2.status().message().find("declared twice"), std::string::npos);
  auto w3 = SafetensorsWriter::open(p, {{"__metadata__", DType::kF32, {1}}});
  EXPECT_FALSE(w3);
  auto w4 = SafetensorsWriter::open(p, {{"neg", DType::kF32, {2, -1}}});
  EXPECT_FALSE(w4);
  auto w5 = SafetensorsWriter::open(dir_ / "no-such-dir" / "x.safetensors", infos);
  ASSERT_FALSE(w5);
  EXPECT_EQ(w5.status().code(), StatusCode::kIo);
}

// A full disk is a clean kIo error naming the file, not a crash or a silently short file. /dev/full
// fails every write with ENOSPC; reach it through a symlink so cleanup only ever removes the link.
TEST_F(SafetensorsTest, DiskFullIsAnIoError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  const fs::path link = dir_ / "full.safetensors";
  fs::create_symlink("/dev/full", link);
  auto w = SafetensorsWriter::open(link, {{"a", DType::kF32, {4}}});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.status().code(), StatusCode::kIo);
  EXPECT_NE(w.status().message().find(link.string()), std::string::npos) << w.status().message();
  EXPECT_NE(w.status().message().find("full"), std::string::npos) << w.status().message();
  EXPECT_TRUE(fs::exists("/dev/full"));
}

// --- corrupt files -------------------------------------------------------------------------------

TEST_F(SafetensorsTest, TruncatedFile) {
  expect_error(dir_ / "missing.safetensors", StatusCode::kNotFound, {"no such file"});
  const fs::path p = dir_ / "short.safetensors";
  std::ofstream(p, std::ios::binary) << "abcde";
  expect_error(p, StatusCode::kCorrupt, {"truncated", "5 bytes"});
}

TEST_F(SafetensorsTest, TruncatedHeader) {
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, 1000), StatusCode::kCorrupt,
               {"truncated header", "1000"});
}

TEST_F(SafetensorsTest, HugeHeaderLength) {
  expect_error(raw_file("{}", 0, uint64_t(1) << 40), StatusCode::kCorrupt, {"exceeds"});
  expect_error(raw_file("{}", 0, ~uint64_t(0)), StatusCode::kCorrupt, {"exceeds"});
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  expect_error(raw_file(R"({"a": {"dtype": "F32", )", 0), StatusCode::kCorrupt, {"not valid JSON"});
  expect_error(raw_file("\xff\xfe{}", 0), StatusCode::kCorrupt, {"not valid JSON"});
}

TEST_F(SafetensorsTest, JsonNotAnObject) {
  expect_error(raw_file("[1, 2, 3]", 0), StatusCode::kCorrupt, {"not an object", "array"});
  expect_error(raw_file(R"({"a": [1, 2]})", 0), StatusCode::kCorrupt, {"'a'", "must be an object"});
}

TEST_F(SafetensorsTest, UnknownDtype) {
  expect_error(raw_file(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2), StatusCode::kUnsupported,
               {"unsupported dtype F8_E4M3 for tensor 'w'"});
  expect_error(raw_file(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,2]}})", 2), StatusCode::kCorrupt,
               {"'w'", "dtype"});
}

TEST_F(SafetensorsTest, BadShape) {
  for (const char* shape : {"[-1, 4]", "[2.5]", "[\"4\"]", "4", "[null]"}) {
    SCOPED_TRACE(shape);
    expect_error(raw_file(fmt::format(R"({{"w":{{"dtype":"U8","shape":{},"data_offsets":[0,4]}}}})", shape), 4),
                 StatusCode::kCorrupt, {"'w'", "shape"});
  }
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  expect_error(raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12), StatusCode::kCorrupt,
               {"'w'", "run past", "12 bytes"});
  expect_error(raw_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8), StatusCode::kCorrupt,
               {"'w'", "end before"});
  expect_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), StatusCode::kCorrupt,
               {"'w'", "data_offsets"});
  expect_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4), StatusCode::kCorrupt,
               {"'w'", "data_offsets"});
}

TEST_F(SafetensorsTest, Overlap) {
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                        24),
               StatusCode::kCorrupt, {"'b'", "overlaps", "'a'"});
  // The same range claimed twice is an overlap too.
  expect_error(raw_file(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                        8),
               StatusCode::kCorrupt, {"overlaps"});
}

TEST_F(SafetensorsTest, Hole) {
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[20,36]}})",
                        36),
               StatusCode::kCorrupt, {"hole", "[16, 20)", "'b'"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 20), StatusCode::kCorrupt,
               {"trailing", "'a'"});
}

TEST_F(SafetensorsTest, SizeMismatch) {
  expect_error(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16), StatusCode::kCorrupt,
               {"'w'", "needs 12 bytes", "hold 16"});
}

TEST_F(SafetensorsTest, ShapeProductOverflow) {
  // 2^32 * 2^32 wraps to 0 in 64 bits: exactly the forgery the check exists for.
  expect_error(raw_file(R"({"w":{"dtype":"I8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0),
               StatusCode::kCorrupt, {"'w'", "overflows"});
  expect_error(raw_file(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 0),
               StatusCode::kCorrupt, {"'w'", "overflows"});
  expect_error(raw_file(R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})", 0),
               StatusCode::kCorrupt, {"'w'", "shape"});
}

TEST_F(SafetensorsTest, BadMetadata) {
  expect_error(raw_file(R"({"__metadata__":{"format":1}})", 0), StatusCode::kCorrupt, {"__metadata__", "format"});
  expect_error(raw_file(R"({"__metadata__":["pt"]})", 0), StatusCode::kCorrupt, {"__metadata__"});
  // null metadata is what some writers emit for "none".
  auto ok = SafetensorsFile::open(raw_file(R"({"__metadata__":null})", 0));
  EXPECT_TRUE(ok) << ok.status().to_string();
}

TEST_F(SafetensorsTest, DuplicateTensorName) {
  expect_error(raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                        R"("a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                        4),
               StatusCode::kCorrupt, {"'a'", "twice"});
}

// Random damage to a valid file (truncation, flipped header bytes) must never crash or read out of
// bounds (ASan watches); whatever opens must still be self-consistent.
TEST_F(SafetensorsTest, RandomDamageNeverCrashes) {
  TRACE_SEED();
  std::vector<TensorInfo> infos = {{"a", DType::kF16, {7, 3}}, {"b", DType::kI32, {5}}, {"c", DType::kU8, {9}}};
  const fs::path good = dir_ / "good.safetensors";
  {
    auto w = SafetensorsWriter::open(good, infos, {{"k", "v"}});
    ASSERT_TRUE(w);
    for (const auto& t : infos) {
      auto b = random_bytes(t.nbytes());
      ASSERT_TRUE(w->write_tensor(t.name, b.data(), b.size()).is_ok());
    }
    ASSERT_TRUE(w->close().is_ok());
  }
  std::ifstream in(good, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const fs::path bad = dir_ / "bad.safetensors";
  int opened = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<char> b = bytes;
    if (iter % 3 == 0) {
      b.resize(rng_() % b.size());
    } else {
      const int flips = 1 + int(rng_() % 4);
      for (int k = 0; k < flips; ++k) b[rng_() % std::min<size_t>(b.size(), 200)] = char(rng_());
    }
    std::ofstream(bad, std::ios::binary | std::ios::trunc).write(b.data(), std::streamsize(b.size()));
    auto f = SafetensorsFile::open(bad);
    if (!f) {
      EXPECT_FALSE(f.status().message().empty());
      continue;
    }
    ++opened;
    uint64_t sum = 0;
    for (const auto& t : (*f)->tensors()) {
      auto v = (*f)->view(t.name);
      ASSERT_TRUE(v);
      const auto* p = static_cast<const uint8_t*>(v->data);
      for (size_t i = 0; i < v->nbytes(); ++i) sum += p[i];  // touch every byte: ASan checks bounds
      EXPECT_LE(static_cast<const uint8_t*>(v->data) + v->nbytes(), (*f)->mapping()->data() + (*f)->mapping()->size());
    }
    (void)sum;
  }
  RecordProperty("opened_after_damage", opened);
}

}  // namespace
