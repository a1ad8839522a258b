// cli.hpp: the one way subcommands parse their arguments (cxxopts), so that
// --help, usage errors and stray arguments behave the same everywhere.
#pragma once

#include <cxxopts.hpp>

#include <expected>
#include <string>

#include "gang/commands.hpp"

namespace gang {

// Parses `args` (without program and subcommand names) with `options`, which
// must define "h,help". Returns the parsed result, or the exit status the
// subcommand should return at once: 0 after printing help (`help_text`, or
// the options' own help) to stdout, 2 after printing "gang: error: ..." for
// a bad option or an unexpected argument.
[[nodiscard]] std::expected<cxxopts::ParseResult, int> parse_options(
    cxxopts::Options& options, const Args& args, const std::string& help_text = {});

}  // namespace gang
