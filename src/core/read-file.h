// Whole small files (JSON configs, tokenizer.json, plan and task files, evaluation text) into memory. Large
// binary files are memory-mapped instead (mapped-file.h).
#pragma once

#include <filesystem>
#include <string>

#include "rtnq/status.h"

namespace rtnq {

// The bytes of `path`. Errors: not_found "<path>: cannot open"; io_error "<path>: read failed" when reading
// stops early (a directory, an I/O error), so a short read never passes for a short file.
Expected<std::string> read_file(const std::filesystem::path& path);

}  // namespace rtnq
