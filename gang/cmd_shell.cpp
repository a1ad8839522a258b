// gang shell COMPONENT [--cache DIR] [-- CMD...]
//
// Re-enters the sandbox a failed build of COMPONENT left in
// kept_sandbox_dir(cache_dir, COMPONENT), with the same mounts and
// environment, and runs `sh -i` there (or CMD) with the terminal attached.
// The exit status is the shell's or CMD's. The cache directory comes from
// gang.conf / GANG_CACHE in the current directory; --cache wins.
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "gang/cli.hpp"
#include "gang/commands.hpp"
#include "gang/config.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/spec.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

struct ShellOptions {
  std::string component;
  std::string cache_dir;
  std::vector<std::string> command;  // empty: an interactive shell
};

int fail(const Error& error) {
  std::fprintf(stderr, "gang: error: %s\n", error.to_string().c_str());
  return 1;
}

int run_shell(const ShellOptions& options) {
  std::string cache_dir = options.cache_dir;
  if (cache_dir.empty()) {
    auto config = load_config(".");
    if (!config) return fail(config.error());
    cache_dir = config->cache_dir;
  }
  std::string dir = kept_sandbox_dir(cache_dir, options.component);
  if (!path_exists(spec_path(dir))) {
    return fail(Error{"no failed build of \"" + options.component + "\" is kept (looked for " +
                          spec_path(dir) + ")",
                      {},
                      0,
                      0,
                      {}});
  }
  auto spec = load_spec(dir);
  if (!spec) return fail(spec.error());
  if (options.command.empty()) {
    std::fprintf(stderr, "gang: entering the sandbox of %s (cwd /%s.build%s%s); exit to leave\n",
                 spec->name.c_str(), spec->name.c_str(), spec->log_path.empty() ? "" : ", log ",
                 spec->log_path.c_str());
  }
  auto status = run_interactive(*spec, options.command);
  if (!status) return fail(status.error());
  return *status;
}

}  // namespace

int cmd_shell(const Args& args) {
  ShellOptions options;
  auto dashes = std::find(args.begin(), args.end(), "--");
  if (dashes != args.end()) {
    options.command.assign(dashes + 1, args.end());
    if (options.command.empty()) {
      std::fputs("gang: error: gang shell: nothing after --\n", stderr);
      return 2;
    }
  }
  cxxopts::Options parser("gang shell",
                          "Open a shell, or run CMD, in the kept sandbox of a failed build.");
  parser.add_options()("cache",
                       "the artifact cache directory (default: from gang.conf / GANG_CACHE)",
                       cxxopts::value<std::string>(options.cache_dir))("h,help", "print this help")(
      "component", "the component whose build failed",
      cxxopts::value<std::string>(options.component));
  parser.parse_positional({"component"});
  parser.positional_help("COMPONENT [-- CMD...]");
  if (auto result = parse_options(parser, Args(args.begin(), dashes)); !result)
    return result.error();
  if (options.component.empty()) {
    std::fputs("gang: error: gang shell: which component? (gang shell COMPONENT [-- CMD...])\n",
               stderr);
    return 2;
  }
  return run_shell(options);
}

}  // namespace gang
