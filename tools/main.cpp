// rtnq: selective round-to-nearest quantization of LLMs, and an engine to run them.
#include <malloc.h>

#include <algorithm>
#include <cstdio>

#include "command.h"

namespace rtnq::cli {

std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> registry;
  return registry;
}

int report_error(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "rtnq %s: error: %s\n", what.c_str(), message.c_str());
  return 1;
}

}  // namespace rtnq::cli

int main(int argc, char** argv) {
  using namespace rtnq::cli;
  // Quantization allocates one large output buffer per tensor; keeping freed blocks in the heap
  // instead of returning them to the OS each time avoids re-faulting and zero-filling those pages
  // (measured: INT8 quantization ~45% slower per core without this; docs/perf-notes.md).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{"rtnq: selective round-to-nearest (RTN) quantization of large language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rtnq 0.1.0");
  auto& reg = command_registry();
  std::sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions;
  for (auto& c : reg) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    actions.emplace_back(sub, c.setup(*sub));
  }
  CLI11_PARSE(app, argc, argv);
  for (auto& [sub, run] : actions)
    if (sub->parsed()) return run();
  return 2;
}
