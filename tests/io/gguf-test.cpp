// GGUF reader: every value type, tensor infos and data, and refusal (never a crash) of truncated,
// corrupt and unsupported files. Files are written byte by byte by tests/io/gguf-test-builder.h.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

#include "gguf-test-builder.h"

namespace rtnq {
namespace {

using test::GgufBuilder;
using test::TempDir;

struct Seeded : ::testing::Test {
  uint32_t seed = std::random_device{}();
  std::mt19937 rng{seed};
  void SetUp() override { RecordProperty("seed", std::to_string(seed)); }
};
#define SEED_TRACE SCOPED_TRACE("seed " + std::to_string(seed))

std::vector<float> random_floats(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(rng());
  return v;
}

// A valid little file with a few keys and tensors, used as the base of the corruption tests.
GgufBuilder small_file(std::mt19937& rng) {
  GgufBuilder b;
  b.kv_string("general.architecture", "llama");
  b.kv_u32("llama.block_count", 2);
  b.kv_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
  b.kv_array<int32_t>("tokenizer.ggml.token_type", 5, {1, 1, 3});
  b.tensor("a.weight", {8, 3}, 0, test::as_bytes(random_floats(rng, 24)));
  b.tensor("b.weight", {32, 2}, 8, random_bytes(rng, 2 * 34));
  b.tensor("c.weight", {5}, 1, random_bytes(rng, 10));
  return b;
}

TEST_F(Seeded, AllValueTypesRoundTrip) {
  SEED_TRACE;
  const uint8_t u8 = uint8_t(rng());
  const int8_t i8 = int8_t(rng());
  const uint16_t u16 = uint16_t(rng());
  const int16_t i16 = int16_t(rng());
  const uint32_t u32 = rng();
  const int32_t i32 = int32_t(rng());
  const uint64_t u64 = (uint64_t(rng()) << 31) | rng();
  const int64_t i64 = -int64_t((uint64_t(rng()) << 20) | rng());
  const float f32 = std::normal_distribution<float>(0, 100)(rng);
  const double f64 = std::normal_distribution<double>(0, 1e6)(rng);
  const std::string str = "hello\n\"world\" é " + std::to_string(rng());
  GgufBuilder b;
  b.kv_u8("t.u8", u8);
  b.kv_i8("t.i8", i8);
  b.kv_u16("t.u16", u16);
  b.kv_i16("t.i16", i16);
  b.kv_u32("t.u32", u32);
  b.kv_i32("t.i32", i32);
  b.kv_u64("t.u64", u64);
  b.kv_i64("t.i64", i64);
  b.kv_f32("t.f32", f32);
  b.kv_f64("t.f64", f64);
  b.kv_bool("t.bool", true);
  b.kv_bool("t.false", false);
  b.kv_string("t.str", str);
  b.kv_u64("t.huge", std::numeric_limits<uint64_t>::max());
  std::vector<int32_t> ints(1 + rng() % 50);
  for (auto& x : ints) x = int32_t(rng());
  b.kv_array<int32_t>("t.ints", 5, ints);
  std::vector<float> floats = random_floats(rng, 1 + rng() % 50);
  b.kv_array<float>("t.floats", 6, floats);
  b.kv_array<uint8_t>("t.bools", 7, {1, 0, 1});
  std::vector<std::string> strs;
  for (int k = 0; k < 7; ++k) strs.push_back("tok" + std::to_string(rng() % 1000));
  b.kv_string_array("t.strs", strs);
  b.kv_array<uint8_t>("t.empty", 4, {});
  // Array of two arrays of u16: [[1, 2], [3]]
  {
    std::vector<uint8_t> p;
    GgufBuilder::put_u32(p, 9);
    GgufBuilder::put_u64(p, 2);
    GgufBuilder::put_u32(p, 2);
    GgufBuilder::put_u64(p, 2);
    p.insert(p.end(), {1, 0, 2, 0});
    GgufBuilder::put_u32(p, 2);
    GgufBuilder::put_u64(p, 1);
    p.insert(p.end(), {3, 0});
    b.kv_raw("t.nested", 9, p);
  }
  TempDir dir;
  const auto path = dir.write("values.gguf", b.build().bytes);
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.metadata().size(), 20u);
  EXPECT_EQ(g.metadata()[0].first, "t.u8");  // file order kept
  EXPECT_EQ(g.get_int("t.u8"), int64_t(u8));
  EXPECT_EQ(g.get_int("t.i8"), int64_t(i8));
  EXPECT_EQ(g.get_int("t.u16"), int64_t(u16));
  EXPECT_EQ(g.get_int("t.i16"), int64_t(i16));
  EXPECT_EQ(g.get_int("t.u32"), int64_t(u32));
  EXPECT_EQ(g.get_int("t.i32"), int64_t(i32));
  EXPECT_EQ(g.get_int("t.u64"), int64_t(u64));
  EXPECT_EQ(g.get_int("t.i64"), i64);
  EXPECT_FALSE(g.get_int("t.huge").has_value());  // does not fit int64
  EXPECT_EQ(g.find("t.huge")->u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(g.get_float("t.f32"), double(f32));
  EXPECT_EQ(g.get_float("t.f64"), f64);
  EXPECT_EQ(g.get_float("t.i32"), double(i32));  // integers read as floats too
  EXPECT_FALSE(g.get_int("t.f32").has_value());
  EXPECT_EQ(g.get_bool("t.bool"), true);
  EXPECT_EQ(g.get_bool("t.false"), false);
  EXPECT_EQ(g.get_string("t.str"), str);
  EXPECT_FALSE(g.get_string("t.u8").has_value());
  EXPECT_FALSE(g.get_int("no.such.key").has_value());

  auto ia = g.get_int_array("t.ints");
  ASSERT_TRUE(ia) << ia.status().to_string();
  ASSERT_EQ(ia->size(), ints.size());
  for (size_t k = 0; k < ints.size(); ++k) EXPECT_EQ((*ia)[k], ints[k]);
  auto fa = g.get_float_array("t.floats");
  ASSERT_TRUE(fa);
  ASSERT_EQ(fa->size(), floats.size());
  for (size_t k = 0; k < floats.size(); ++k) EXPECT_EQ((*fa)[k], double(floats[k]));
  auto sa = g.get_string_array("t.strs");
  ASSERT_TRUE(sa);
  ASSERT_EQ(sa->size(), strs.size());
  for (size_t k = 0; k < strs.size(); ++k) EXPECT_EQ((*sa)[k], strs[k]);
  EXPECT_EQ(g.find("t.bools")->int_at(0), 1);
  EXPECT_EQ(g.find("t.bools")->int_at(1), 0);
  EXPECT_EQ(g.find("t.bools")->int_at(3), std::nullopt);
  auto ea = g.get_int_array("t.empty");
  ASSERT_TRUE(ea);
  EXPECT_TRUE(ea->empty());

  const GgufValue* nested = g.find("t.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->elem_type, GgufValueType::kArray);
  ASSERT_EQ(nested->items.size(), 2u);
  EXPECT_EQ(nested->items[0].int_at(1), 2);
  EXPECT_EQ(nested->items[1].int_at(0), 3);
  EXPECT_EQ(format_gguf_value(*nested), "[2 x array: [2 x u16: 1, 2], [1 x u16: 3]]");

  // Wrong kinds are errors naming the file and key, not silent empties.
  auto wrong = g.get_string_array("t.ints");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(wrong.status().message().find("t.ints"), std::string::npos);
  EXPECT_NE(wrong.status().message().find(path.string()), std::string::npos);
  EXPECT_EQ(g.get_int_array("t.u8").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(g.get_int_array("missing").status().code(), StatusCode::kNotFound);

  EXPECT_EQ(format_gguf_value(*g.find("t.bool")), "true");
  EXPECT_EQ(format_gguf_value(*g.find("t.i32")), std::to_string(i32));
  EXPECT_EQ(format_gguf_value(*g.find("t.bools")), "[3 x bool: true, false, true]");
  EXPECT_EQ(format_gguf_value(*g.find("t.str"), 6, 6), "\"hello\\n\"...(" + std::to_string(str.size()) + " bytes)");
}

TEST_F(Seeded, TensorsAndData) {
  SEED_TRACE;
  const uint64_t rows = 1 + rng() % 7, cols = 32 * (1 + rng() % 3);
  const auto a = random_floats(rng, rows * cols);
  const auto q = random_bytes(rng, rows * cols / 32 * 34);
  const auto k6 = random_bytes(rng, 2 * 210);
  GgufBuilder b(2);  // v2 has the same layout as v3
  b.kv_u32("general.alignment", 64);
  b.tensor("w.f32", {cols, rows}, 0, test::as_bytes(a));
  b.tensor("w.q8", {cols, rows}, 8, q);
  b.tensor("w.q6k", {256, 1, 2}, 14, k6);
  const auto built = b.build(64);
  TempDir dir;
  auto f = GgufFile::open(dir.write("t.gguf", built.bytes));
  ASSERT_TRUE(f) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 2u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.data_offset(), built.data_offset);
  EXPECT_EQ(g.data_offset() % 64, 0u);
  ASSERT_EQ(g.tensors().size(), 3u);
  const GgufTensorInfo* t = g.find_tensor("w.q8");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GgmlType::kQ8_0);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{int64_t(cols), int64_t(rows)}));
  EXPECT_EQ(t->numel(), int64_t(rows * cols));
  EXPECT_EQ(t->nbytes, q.size());
  EXPECT_EQ(t->offset % 64, 0u);
  auto d = g.tensor_data("w.q8");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), q.size());
  EXPECT_EQ(std::memcmp(d->data(), q.data(), q.size()), 0);
  auto da = g.tensor_data("w.f32");
  ASSERT_TRUE(da);
  ASSERT_EQ(da->size(), a.size() * 4);
  EXPECT_EQ(std::memcmp(da->data(), a.data(), da->size()), 0);
  auto dk = g.tensor_data("w.q6k");
  ASSERT_TRUE(dk);
  EXPECT_EQ(g.find_tensor("w.q6k")->ne.size(), 3u);
  EXPECT_EQ(std::memcmp(dk->data(), k6.data(), k6.size()), 0);
  EXPECT_EQ(g.tensor_data("nope").status().code(), StatusCode::kNotFound);
}

TEST(GgufTypes, TraitsAndNames) {
  EXPECT_EQ(ggml_type_traits(GgmlType::kQ4_K)->type_size, 144);
  EXPECT_EQ(ggml_type_traits(GgmlType::kQ6_K)->type_size, 210);
  EXPECT_EQ(ggml_type_traits(GgmlType::kQ5_1)->block_size, 32);
  EXPECT_EQ(ggml_type_traits(GgmlType::kBF16)->type_size, 2);
  EXPECT_FALSE(ggml_type_traits(GgmlType(4)).has_value());  // Q4_2, removed from ggml
  EXPECT_EQ(ggml_type_name(GgmlType::kQ4_K), "Q4_K");
  EXPECT_EQ(ggml_type_name(GgmlType(77)), "ggml type 77");
}

// Open `bytes` and expect a failure with `code` whose message names the file and contains `needle`.
void expect_refused(const std::vector<uint8_t>& bytes, StatusCode code, const std::string& needle) {
  TempDir dir;
  const auto path = dir.write("bad.gguf", bytes);
  auto f = GgufFile::open(path);
  ASSERT_FALSE(f) << "expected failure mentioning '" << needle << "'";
  EXPECT_EQ(f.status().code(), code) << f.status().to_string();
  EXPECT_NE(f.status().message().find(path.string()), std::string::npos) << f.status().to_string();
  EXPECT_NE(f.status().message().find(needle), std::string::npos) << f.status().to_string();
}

TEST_F(Seeded, VersionsAndMagic) {
  SEED_TRACE;
  auto bytes = small_file(rng).build().bytes;
  {
    auto v = bytes;
    test::patch_u32(v, 4, 1);
    expect_refused(v, StatusCode::kUnsupported, "version 1");
  }
  {
    auto v = bytes;
    test::patch_u32(v, 4, 4);
    expect_refused(v, StatusCode::kUnsupported, "version 4");
  }
  {
    auto v = bytes;
    test::patch_u32(v, 4, 0x03000000u);  // a big-endian v3 header read little-endian
    expect_refused(v, StatusCode::kUnsupported, "big-endian");
  }
  {
    auto v = bytes;
    v[0] = 'X';
    expect_refused(v, StatusCode::kCorrupt, "not a GGUF file");
  }
  expect_refused({}, StatusCode::kCorrupt, "not a GGUF file");
}

TEST_F(Seeded, EveryTruncationIsRefused) {
  SEED_TRACE;
  const auto bytes = small_file(rng).build().bytes;
  TempDir dir;
  for (size_t n = 0; n < bytes.size(); ++n) {
    const auto path = dir.write("trunc.gguf", std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    auto f = GgufFile::open(path);
    ASSERT_FALSE(f) << "a " << n << "-byte prefix of " << bytes.size() << " was accepted";
    EXPECT_NE(f.status().message().find(path.string()), std::string::npos) << f.status().to_string();
  }
  auto whole = GgufFile::open(dir.write("whole.gguf", bytes));
  EXPECT_TRUE(whole) << whole.status().to_string();
}

TEST_F(Seeded, CorruptHeadersAreRefused) {
  SEED_TRACE;
  const auto base = small_file(rng);
  const auto built = base.build();

  {  // A string length far past the end of the file.
    GgufBuilder b;
    b.kv_raw("general.name", 8, GgufBuilder::le(uint64_t(1) << 60));
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "general.name");
  }
  {  // An array count that would need petabytes: refused before any allocation.
    GgufBuilder b;
    std::vector<uint8_t> p;
    GgufBuilder::put_u32(p, 8);
    GgufBuilder::put_u64(p, uint64_t(1) << 50);
    b.kv_raw("tokenizer.ggml.tokens", 9, p);
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "tokenizer.ggml.tokens");
  }
  {
    GgufBuilder b;
    b.kv_raw("x.bad", 13, {0, 0, 0, 0});
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "unknown value type 13");
  }
  {  // Arrays nested past the depth limit.
    std::vector<uint8_t> p;
    for (int d = 0; d < 12; ++d) {
      GgufBuilder::put_u32(p, 9);
      GgufBuilder::put_u64(p, 1);
    }
    GgufBuilder::put_u32(p, 4);
    GgufBuilder::put_u64(p, 0);
    GgufBuilder b;
    b.kv_raw("x.deep", 9, p);
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "nested");
  }
  {
    GgufBuilder b;
    b.kv_u32("a", 1);
    b.kv_u32("a", 2);
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "'a' appears twice");
  }
  for (uint32_t bad_alignment : {0u, 3u, 48u}) {
    GgufBuilder b;
    b.kv_u32("general.alignment", bad_alignment);
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "general.alignment");
  }
  {  // Counts beyond the sanity limits.
    auto v = built.bytes;
    test::patch_u64(v, 8, uint64_t(1) << 40);
    expect_refused(v, StatusCode::kCorrupt, "tensor count");
    v = built.bytes;
    test::patch_u64(v, 16, uint64_t(1) << 40);
    expect_refused(v, StatusCode::kCorrupt, "metadata count");
  }
  {  // n_dims 5 in the first tensor info (name "a.weight": 8 + 8 bytes, then n_dims).
    auto v = built.bytes;
    test::patch_u32(v, built.info_start[0] + 16, 5);
    expect_refused(v, StatusCode::kCorrupt, "n_dims is 5");
    test::patch_u32(v, built.info_start[0] + 16, 0);
    expect_refused(v, StatusCode::kCorrupt, "n_dims is 0");
  }
  {  // A zero dimension.
    auto v = built.bytes;
    test::patch_u64(v, built.info_start[0] + 20, 0);
    expect_refused(v, StatusCode::kCorrupt, "dimension 0");
  }
  {  // Dimensions whose product overflows.
    auto v = built.bytes;
    test::patch_u64(v, built.info_start[0] + 20, uint64_t(1) << 40);
    test::patch_u64(v, built.info_start[0] + 28, uint64_t(1) << 40);
    expect_refused(v, StatusCode::kCorrupt, "a.weight");
  }
  {  // Unknown ggml type: type field follows 2 dims.
    auto v = built.bytes;
    test::patch_u32(v, built.info_start[0] + 36, 99);
    expect_refused(v, StatusCode::kUnsupported, "ggml type 99");
  }
  {  // Q8_0 with ne[0] = 8: not a whole block.
    auto v = built.bytes;
    test::patch_u32(v, built.info_start[0] + 36, 8);
    expect_refused(v, StatusCode::kCorrupt, "block size 32");
  }
  {  // Misaligned, past-the-end and overlapping offsets.
    auto v = built.bytes;
    test::patch_u64(v, built.info_offset_field[1], 100 + 4);
    expect_refused(v, StatusCode::kCorrupt, "not a multiple of the alignment");
    v = built.bytes;
    test::patch_u64(v, built.info_offset_field[2], 1 << 20);
    expect_refused(v, StatusCode::kCorrupt, "c.weight");
    v = built.bytes;
    test::patch_u64(v, built.info_offset_field[2], uint64_t(-32));
    expect_refused(v, StatusCode::kCorrupt, "past the end");
    v = built.bytes;
    test::patch_u64(v, built.info_offset_field[1], 0);
    expect_refused(v, StatusCode::kCorrupt, "overlap");
  }
  {  // Two tensors with one name.
    GgufBuilder b;
    b.tensor("x", {4}, 0, random_bytes(rng, 16));
    b.tensor("x", {4}, 0, random_bytes(rng, 16));
    expect_refused(b.build().bytes, StatusCode::kCorrupt, "'x' appears twice");
  }
}

// Random single-byte damage anywhere in the header: every outcome must be a clean Status or a
// successful parse (the damage may hit a value's payload); ASan/UBSan make crashes visible.
TEST_F(Seeded, RandomHeaderDamageNeverCrashes) {
  SEED_TRACE;
  const auto built = small_file(rng).build();
  TempDir dir;
  int refused = 0;
  for (int iter = 0; iter < 600; ++iter) {
    auto v = built.bytes;
    const int hits = 1 + int(rng() % 3);
    for (int h = 0; h < hits; ++h) {
      const size_t pos = rng() % built.data_offset;
      v[pos] = (rng() % 4 == 0) ? uint8_t(0xff) : uint8_t(rng());
    }
    auto f = GgufFile::open(dir.write("fuzz.gguf", v));
    if (!f) {
      ++refused;
      EXPECT_FALSE(f.status().message().empty());
      continue;
    }
    // Whatever parsed must be self-consistent: every tensor's bytes inside the file.
    for (const auto& t : (*f)->tensors()) {
      const auto d = (*f)->tensor_data(t);
      EXPECT_LE(d.data() + d.size(), (*f)->mapped()->data() + (*f)->mapped()->size());
    }
  }
  EXPECT_GT(refused, 0);
}

using test::models_dir;

TEST(GgufRealFile, SmolLM2Metadata) {
  const auto path = models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent (scripts/fetch-models.sh makes it)";
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.block_count"), 30);
  EXPECT_EQ(g.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
  auto tokens = g.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens);
  EXPECT_EQ(tokens->size(), 49152u);
  EXPECT_EQ(g.tensors().size(), 2u + 30u * 9u);
  const GgufTensorInfo* q = g.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ne, (std::vector<int64_t>{576, 576}));
  uint64_t total = 0;
  for (const auto& t : g.tensors()) total += t.nbytes;
  EXPECT_LE(g.data_offset() + total, g.mapped()->size());
}

}  // namespace
}  // namespace rtnq
