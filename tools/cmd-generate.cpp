// `rtnq generate MODEL [--prompt TEXT] [-n N] [--temp T] [--top-p P] [--seed S] [--threads N]`:
// streams the continuation of a prompt on the CPU engine, then reports the decode speed.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "command.h"
#include "engine/generate.h"
#include "engine/llama-model.h"
#include "engine/tokenizer.h"
#include "rtnq/model.h"

namespace rtnq::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  int64_t n = 256;
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
};

int run_generate(const GenerateOptions& o) {
  if (o.temperature < 0.0f) return report_error("generate", fmt::format("--temp {} must be >= 0", o.temperature));
  if (o.top_p <= 0.0f || o.top_p > 1.0f) return report_error("generate", fmt::format("--top-p {} must be in (0, 1]", o.top_p));
  if (o.n < 0) return report_error("generate", fmt::format("-n {} must be >= 0", o.n));
  auto loaded = load_model(o.model);
  if (!loaded) return report_error("generate", loaded.status().to_string());
  auto tokenizer = make_tokenizer(loaded->tokenizer);
  if (!tokenizer) return report_error("generate", fmt::format("{}: {}", o.model, tokenizer.status().to_string()));
  auto model = LlamaModel::create(std::move(*loaded), o.threads);
  if (!model) return report_error("generate", model.status().to_string());
  std::fprintf(stderr, "rtnq generate: %s (%s), %d threads\n", o.model.c_str(), (*model)->describe().c_str(),
               (*model)->pool().size());

  GenerateParams p;
  p.prompt = o.prompt;
  p.max_new_tokens = o.n;
  p.sampler = {o.temperature, o.top_p, o.seed};
  auto stats = generate(**model, **tokenizer, p, [](const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  std::fflush(stdout);
  if (!stats) return report_error("generate", stats.status().to_string());
  std::fprintf(stderr, "prompt: %lld tokens in %.3f s; generated %lld tokens; decode %.2f tokens/s\n",
               static_cast<long long>(stats->prompt_tokens), stats->prefill_seconds,
               static_cast<long long>(stats->generated_tokens), stats->decode_tokens_per_second());
  return 0;
}

RegisterCommand reg("generate", "Generate text from a prompt on the CPU (greedy or sampled)", 40,
                    [](CLI::App& sub) -> std::function<int()> {
                      auto o = std::make_shared<GenerateOptions>();
                      sub.add_option("model", o->model, "HF folder, .gguf file or llama2.c .bin checkpoint")->required();
                      sub.add_option("--prompt", o->prompt, "Text to continue (default: start from BOS)");
                      sub.add_option("-n", o->n, "New tokens to generate (default 256)");
                      sub.add_option("--temp", o->temperature, "Sampling temperature; 0 = greedy (default)");
                      sub.add_option("--top-p", o->top_p, "Nucleus sampling mass (default 1 = off)");
                      sub.add_option("--seed", o->seed, "Seed of the sampler's random stream (default 0)");
                      sub.add_option("--threads", o->threads, "Worker threads (default: all cores)");
                      return [o] { return run_generate(*o); };
                    });

}  // namespace
}  // namespace rtnq::cli
