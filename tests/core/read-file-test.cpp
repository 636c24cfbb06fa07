// read_file: whole files byte for byte, empty files, and clear errors for what cannot be read.
#include "core/read-file.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "test-util.h"

namespace rtnq {
namespace {

TEST(ReadFile, ReturnsEveryByte) {
  test::TempDir dir("rtnq-read-file");
  const uint32_t seed = std::random_device{}();
  std::mt19937 gen(seed);
  std::string bytes(size_t(std::uniform_int_distribution<int>(1, 300000)(gen)), '\0');
  for (char& c : bytes) c = char(gen() & 0xff);  // NULs and non-UTF-8 included
  const auto p = dir.write("data.bin", bytes);
  const auto got = read_file(p);
  ASSERT_TRUE(got) << got.status().to_string();
  EXPECT_EQ(*got, bytes) << "seed " << seed;
}

TEST(ReadFile, EmptyFileIsEmptyString) {
  test::TempDir dir("rtnq-read-file");
  const auto got = read_file(dir.write("empty.txt", std::string_view()));
  ASSERT_TRUE(got) << got.status().to_string();
  EXPECT_TRUE(got->empty());
}

TEST(ReadFile, MissingFileIsNotFoundNamingThePath) {
  test::TempDir dir("rtnq-read-file");
  const auto got = read_file(dir / "absent.json");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_NE(got.status().message().find("absent.json"), std::string::npos) << got.status().message();
}

TEST(ReadFile, DirectoryIsAnError) {
  test::TempDir dir("rtnq-read-file");
  const auto got = read_file(dir.path());
  ASSERT_FALSE(got);
  EXPECT_NE(got.status().message().find(dir.path().string()), std::string::npos) << got.status().message();
}

}  // namespace
}  // namespace rtnq
