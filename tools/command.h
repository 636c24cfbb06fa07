// Each `rtnq` subcommand lives in its own tools/cmd-*.cpp and registers itself here at start-up,
// so adding a command touches no other file.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace rtnq::cli {

// Adds options to `sub` and returns the action run when the subcommand is chosen (exit code).
using CommandSetup = std::function<std::function<int()>(CLI::App& sub)>;

struct CommandEntry {
  std::string name;
  std::string description;
  CommandSetup setup;
  int order;  // position in --help
};

std::vector<CommandEntry>& command_registry();

struct RegisterCommand {
  RegisterCommand(std::string name, std::string description, int order, CommandSetup setup) {
    command_registry().push_back({std::move(name), std::move(description), std::move(setup), order});
  }
};

// Print a failed Status for the user and return the process exit code for it.
int report_error(const std::string& what, const std::string& message);

}  // namespace rtnq::cli
