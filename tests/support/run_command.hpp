// run_command.hpp: runs a shell command line from a test and captures its
// standard output (append "2>&1" to capture errors too). Header-only test
// support, shared by every module's tests.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace gang::testing {

struct CommandResult {
  int status = -1;     // the exit status; -1 if it did not exit normally
  std::string output;  // everything it wrote to stdout
};

inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace gang::testing
