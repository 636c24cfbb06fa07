// `rtnq perplexity MODEL --file TEXT [--ctx N] [--mode full|second-half] [--limit-chunks N]
//  [--kl-base BASE_MODEL] [--json] [--threads N]`: perplexity ± standard error on the CPU engine,
// always saying which convention was used, and with --kl-base the KL divergence from a base model.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/read-file.h"
#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "eval/perplexity.h"
#include "rtnq/model.h"

namespace rtnq::cli {
namespace {

struct PerplexityOptions {
  std::string model, file, mode = "full", kl_base;
  int64_t ctx = 512, limit_chunks = 0;
  bool json = false;
  int threads = 0;
};

Expected<std::unique_ptr<LlamaModel>> open_model(const std::string& path, int threads,
                                                 std::unique_ptr<Tokenizer>* tokenizer) {
  RTNQ_ASSIGN_OR_RETURN(LoadedModel loaded, load_model(path));
  if (tokenizer) {
    auto tok = make_tokenizer(loaded.tokenizer);
    if (!tok) return tok.status().with_context(path);
    *tokenizer = std::move(*tok);
  }
  return LlamaModel::create(std::move(loaded), threads);
}

int run_perplexity(const PerplexityOptions& o) {
  PerplexityParams params;
  if (o.mode == "full") params.mode = PerplexityMode::kFull;
  else if (o.mode == "second-half") params.mode = PerplexityMode::kSecondHalf;
  else return report_error("perplexity", fmt::format("--mode '{}': expected full or second-half", o.mode));
  if (o.limit_chunks < 0) return report_error("perplexity", fmt::format("--limit-chunks {} must be >= 0", o.limit_chunks));
  params.ctx = o.ctx;
  params.limit_chunks = o.limit_chunks;

  auto read = read_file(o.file);
  if (!read) return report_error("perplexity", "--file " + read.status().message());
  const std::string text = std::move(read).value();

  std::unique_ptr<Tokenizer> tok;
  auto model = open_model(o.model, o.threads, &tok);
  if (!model) return report_error("perplexity", model.status().to_string());
  std::unique_ptr<LlamaModel> base;
  if (!o.kl_base.empty()) {
    auto b = open_model(o.kl_base, o.threads, nullptr);
    if (!b) return report_error("perplexity", fmt::format("--kl-base: {}", b.status().to_string()));
    base = std::move(*b);
  }
  // BOS at the start of the text as the model's tokenizer would add it; specials are not parsed,
  // so text that spells "<|endoftext|>" is scored as the text it is.
  const bool add_bos = tok->add_bos_default() && tok->bos_id() >= 0;
  const std::vector<int32_t> tokens = tok->encode(text, add_bos, /*parse_special=*/false);
  params.bos_id = add_bos ? tok->bos_id() : -1;
  std::fprintf(stderr, "rtnq perplexity: %s (%s)\n  text %s: %zu bytes, %zu tokens; convention: %s, ctx %lld\n",
               o.model.c_str(), (*model)->describe().c_str(), o.file.c_str(), text.size(), tokens.size(),
               std::string(perplexity_mode_name(params.mode)).c_str(), static_cast<long long>(o.ctx));

  auto result = evaluate_perplexity(**model, tokens, params, base.get(), [](const PerplexityProgress& p) {
    std::fprintf(stderr, "  [%lld/%lld] ppl %.4f over %lld tokens, %.1f s\n", static_cast<long long>(p.chunk),
                 static_cast<long long>(p.chunks), p.ppl, static_cast<long long>(p.tokens_scored), p.seconds);
  });
  if (!result) return report_error("perplexity", result.status().to_string());
  const PerplexityResult& r = *result;
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["file"] = o.file;
    j["convention"] = perplexity_mode_name(r.mode);
    j["ctx"] = r.ctx;
    j["chunks"] = r.chunks;
    j["text_tokens"] = r.text_tokens;
    j["tokens_scored"] = r.tokens_scored;
    j["ppl"] = r.ppl;
    j["ppl_stderr"] = r.ppl_stderr;
    j["mean_nll"] = r.mean_nll;
    j["seconds"] = r.seconds;
    if (r.has_kl) {
      j["kl_base"] = o.kl_base;
      j["base_ppl"] = r.base_ppl;
      j["kl_mean"] = r.kl_mean;
      j["kl_stderr"] = r.kl_stderr;
      j["kl_p99"] = r.kl_p99;
      j["kl_max"] = r.kl_max;
      j["top1_agreement"] = r.top1_agreement;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("perplexity (%s convention, ctx %lld, %lld chunks, %lld tokens scored): %.4f ± %.4f\n",
                std::string(perplexity_mode_name(r.mode)).c_str(), static_cast<long long>(r.ctx),
                static_cast<long long>(r.chunks), static_cast<long long>(r.tokens_scored), r.ppl, r.ppl_stderr);
    if (r.has_kl)
      std::printf("vs base %s (ppl %.4f): KL mean %.6f ± %.6f, p99 %.6f, max %.4f; top-1 agreement %.2f%%\n",
                  o.kl_base.c_str(), r.base_ppl, r.kl_mean, r.kl_stderr, r.kl_p99, r.kl_max, 100.0 * r.top1_agreement);
  }
  return 0;
}

RegisterCommand reg("perplexity", "Perplexity of a model on a text file (full or llama.cpp convention), optional KL vs a base", 50,
                    [](CLI::App& sub) -> std::function<int()> {
                      auto o = std::make_shared<PerplexityOptions>();
                      sub.add_option("model", o->model, "HF folder, .gguf file or llama2.c .bin checkpoint")->required();
                      sub.add_option("--file", o->file, "Text file to score (e.g. wiki.test.raw)")->required();
                      sub.add_option("--ctx", o->ctx, "Window length in tokens (default 512)");
                      sub.add_option("--mode", o->mode,
                                     "full: every token of each window after the first (papers); second-half: "
                                     "llama.cpp's (BOS first, second half scored). Default full");
                      sub.add_option("--limit-chunks", o->limit_chunks, "Score only the first N windows (0 = all)");
                      sub.add_option("--kl-base", o->kl_base, "Base model: report KL divergence, p99 and top-1 agreement");
                      sub.add_flag("--json", o->json, "Print the result as JSON");
                      sub.add_option("--threads", o->threads, "Worker threads (default: all cores)");
                      return [o] { return run_perplexity(*o); };
                    });

}  // namespace
}  // namespace rtnq::cli
