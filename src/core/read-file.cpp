#include "core/read-file.h"

#include <cstdio>
#include <memory>
#include <system_error>

#include <fmt/format.h>

namespace rtnq {

Expected<std::string> read_file(const std::filesystem::path& path) {
  // stdio rather than ifstream: ferror() tells a failed read (EISDIR, EIO) apart from the end of the file,
  // which `stream << rdbuf()` does not.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return not_found(fmt::format("{}: cannot open", path.string()));
  std::string out;
  std::error_code ec;
  if (const auto size = std::filesystem::file_size(path, ec); !ec) out.reserve(size_t(size));
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) out.append(chunk, n);
  if (std::ferror(f.get())) return io_error(fmt::format("{}: read failed", path.string()));
  return out;
}

}  // namespace rtnq
