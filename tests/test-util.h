// Where tests find the repository, the shared data and the models, and a scratch folder that cleans
// up after itself. One copy, so every test honours the same environment variables the same way (the
// e2e scripts read them with the same rules: an empty variable counts as unset).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <stdlib.h>  // mkdtemp (POSIX)
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <cerrno>

#include <gtest/gtest.h>

#include "core/read-file.h"
#include "rtnq/model.h"

#ifndef RTNQ_SOURCE_DIR
#error "tests/CMakeLists.txt defines RTNQ_SOURCE_DIR (the repository root) for every test target"
#endif

// `rtnq::test`, not `rtnq::testing`: inside namespace rtnq the latter would hide GoogleTest's
// `::testing` from every unqualified `testing::Test`.
namespace rtnq::test {

namespace detail {
// The value of environment variable `name`, or nullptr when it is unset or empty (as `${X:-...}` in
// the e2e scripts treats it).
inline const char* env_or_null(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}
}  // namespace detail

// The repository root. ctest sets RTNQ_SOURCE_DIR for each test; the compile-time copy keeps a test
// binary that is run by hand from any folder working.
inline std::filesystem::path source_dir() {
  if (const char* env = detail::env_or_null("RTNQ_SOURCE_DIR")) return env;
  return RTNQ_SOURCE_DIR;
}

// The shared read-only data (models/stories260K, data/...): $RTNQ_SHARED where a machine keeps it
// elsewhere, else the folder beside the repository, as the project rule says.
inline std::filesystem::path shared_dir() {
  if (const char* env = detail::env_or_null("RTNQ_SHARED")) return env;
  return source_dir() / ".." / "shared";
}

// Models made by scripts/fetch-models.sh; git-ignored, so tests that need one skip when it is absent.
inline std::filesystem::path models_dir() { return source_dir() / "models"; }

// Shared data is required (unlike models/), so a test that reads a file of it checks first with
// ASSERT_TRUE(shared_file_exists(p)): a wrong RTNQ_SHARED then fails with the file's name and where
// to point the variable, rather than with an empty read that surfaces as some unrelated mismatch.
inline ::testing::AssertionResult shared_file_exists(const std::filesystem::path& p) {
  std::error_code ec;
  if (std::filesystem::exists(p, ec)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "shared data file " << p << " is missing; the shared folder is "
                                       << shared_dir() << " (set RTNQ_SHARED to the folder that holds models/ and data/)";
}

// A small Llama-shaped spec (hidden 256, intermediate 512, 4 heads / 2 KV of 64) with `layers` layers: every
// power-of-two group size up to 128 divides each linear's input width, so any plan is valid on it.
inline ModelSpec small_llama_spec(int64_t layers) {
  ModelSpec s;
  s.hidden_size = 256;
  s.intermediate_size = 512;
  s.num_layers = layers;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 64;
  s.vocab_size = 1000;
  return s;
}

// The bytes of a file a test needs (expected output, evaluation text); a failure to read it is a test
// failure naming the file, and the result is then empty.
inline std::string read_bytes(const std::filesystem::path& p) {
  auto got = ::rtnq::read_file(p);
  if (!got) {
    ADD_FAILURE() << got.status().to_string();
    return {};
  }
  return std::move(got).value();
}

// A fresh folder under the system temp dir, removed with everything in it when this goes out of
// scope, so a failing ASSERT does not leave files behind. mkdtemp makes the name unique atomically,
// so tests run in parallel (ctest -j) or twice in one process never share a folder.
class TempDir {
 public:
  // `prefix` names the folder after the test that made it, which helps when one is left behind by a
  // crash.
  explicit TempDir(std::string_view prefix = "rtnq-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp(" + tmpl + ")");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;  // a destructor must not throw; a leftover temp folder is harmless
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& name) const { return path_ / name; }

  // Writes `bytes` to `name` inside the folder (replacing it) and returns the file's path.
  std::filesystem::path write(const std::filesystem::path& name, std::string_view bytes) const {
    const std::filesystem::path p = path_ / name;
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  std::filesystem::path write(const std::filesystem::path& name, const std::vector<uint8_t>& bytes) const {
    return write(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

 private:
  std::filesystem::path path_;
};

}  // namespace rtnq::test
