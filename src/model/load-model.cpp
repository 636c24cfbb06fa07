// load_model(): decides which loader a path belongs to, from what is on disk rather than from file
// extensions (llama2.c checkpoints have none of their own), then validates the resulting spec.
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "model/loaders.h"

namespace rtnq {

namespace {

constexpr const char* kAcceptedForms =
    "expected a Hugging Face folder (config.json + *.safetensors), a GGUF file (.gguf), or a llama2.c "
    "checkpoint (.bin: 7 x int32 header + fp32 weights)";

// The first bytes of a file (all of them when shorter): enough for both magic checks.
struct Prefix {
  std::array<char, 28> bytes{};
  size_t size = 0;
};

Expected<Prefix> read_prefix(const std::filesystem::path& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) return io_error(fmt::format("{}: cannot open: {}", file.string(), std::strerror(errno)));
  Prefix p;
  p.size = std::fread(p.bytes.data(), 1, p.bytes.size(), f);
  std::fclose(f);
  return p;
}

// A llama2.c header is seven positive-looking int32s with heads dividing dim; anything else is not
// worth handing to the llama2.c loader (whose errors would then talk about the wrong format).
bool plausible_llama2c_header(const Prefix& prefix) {
  if (prefix.size < 28) return false;
  int32_t h[7];
  std::memcpy(h, prefix.bytes.data(), sizeof h);
  const int32_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv = h[4], vocab = h[5], seq = h[6];
  return dim > 0 && hidden > 0 && layers > 0 && heads > 0 && kv > 0 && vocab != 0 && seq > 0 && dim % heads == 0 &&
         heads % kv == 0;
}

bool is_hf_weight_file(const std::filesystem::path& p) {
  const std::string fname = p.filename().string();
  return p.extension() == ".safetensors" || fname == "config.json" || fname == "model.safetensors.index.json";
}

Expected<LoadedModel> dispatch(const std::filesystem::path& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    return not_found(fmt::format("{}: no such file or directory; {}", path.string(), kAcceptedForms));
  if (std::filesystem::is_directory(st)) return load_hf_folder(path);
  if (!std::filesystem::is_regular_file(st))
    return invalid_argument(fmt::format("{}: not a regular file or directory; {}", path.string(), kAcceptedForms));
  // A weight file or config.json of a Hugging Face checkpoint names its folder.
  if (is_hf_weight_file(path)) {
    const auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    return load_hf_folder(dir);
  }
  RTNQ_ASSIGN_OR_RETURN(Prefix prefix, read_prefix(path));
  if (prefix.size >= 4 && std::memcmp(prefix.bytes.data(), "GGUF", 4) == 0) return load_gguf(path);
  if (plausible_llama2c_header(prefix)) return load_llama2c(path);
  return unsupported(fmt::format("{}: unrecognised model file (not GGUF, no plausible llama2.c header); {}",
                                 path.string(), kAcceptedForms));
}

}  // namespace

Expected<LoadedModel> load_model(const std::filesystem::path& path) {
  RTNQ_ASSIGN_OR_RETURN(LoadedModel m, dispatch(path));
  Status valid = validate_spec(m.spec);
  if (!valid.is_ok()) return valid.with_context(path.string());
  return m;
}

}  // namespace rtnq
