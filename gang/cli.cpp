#include "gang/cli.hpp"

#include <cstdio>
#include <vector>

namespace gang {

std::expected<cxxopts::ParseResult, int> parse_options(cxxopts::Options& options, const Args& args,
                                                       const std::string& help_text) {
  std::vector<std::string> storage{options.program()};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : storage) argv.push_back(arg.data());
  cxxopts::ParseResult parsed;
  try {
    parsed = options.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "gang: error: %s: %s\n", options.program().c_str(), e.what());
    return std::unexpected(2);
  }
  if (parsed.count("help") != 0) {
    std::fputs(help_text.empty() ? options.help().c_str() : help_text.c_str(), stdout);
    return std::unexpected(0);
  }
  if (!parsed.unmatched().empty()) {
    std::fprintf(stderr, "gang: error: %s: unexpected argument %s\n", options.program().c_str(),
                 parsed.unmatched()[0].c_str());
    return std::unexpected(2);
  }
  return parsed;
}

}  // namespace gang
