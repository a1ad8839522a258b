#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "gang/commands.hpp"
#include "gang/version.hpp"

namespace gang {

namespace {

struct Subcommand {
  std::string_view name;
  int (*run)(const Args&);
  const char* help;  // nullptr: internal, not listed
};

constexpr Subcommand k_subcommands[] = {
    {"build", cmd_build, "build a target with a gang of worker instances"},
    {"show", cmd_show, "print what would be built, in order, with cache keys and states"},
    {"cache", cmd_cache, "inspect and maintain the artifact cache (ls, show, verify, gc, forget, clean)"},
    {"shell", cmd_shell, "open a shell, or run a command, in a failed build's sandbox"},
    {"deploy", cmd_deploy, "build a cluster, then deploy its systems with their extensions"},
    {"timeline", cmd_timeline, "draw a run report (build --report) as a timeline picture"},
    {"remote", cmd_remote, "check the remote cache and Redis settings (remote check)"},
    {"worker", cmd_worker, nullptr},
};

void print_usage(std::FILE* out) {
  std::fputs("usage: gang <command> [options]\n       gang TARGET [ARCH]   (same as gang build)\n\ncommands:\n", out);
  for (const auto& sub : k_subcommands)
    if (sub.help != nullptr)
      std::fprintf(out, "  %-7s %s\n", sub.name.data(), sub.help);
  std::fputs("\nRun 'gang <command> --help' for a command's options; gang --version prints the\n"
             "version and the commit gang was built from.\n", out);
}

}  // namespace

int run_main(int argc, char** argv) {
  Args args(argv + 1, argv + argc);
  if (args.empty()) {
    print_usage(stderr);
    return 2;
  }
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    print_usage(stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::printf("%s\n", std::string(version_string()).c_str());
    return 0;
  }
  try {
    for (const auto& sub : k_subcommands) {
      if (args[0] == sub.name) return sub.run(Args(args.begin() + 1, args.end()));
    }
    if (args[0].starts_with("-")) {
      std::fprintf(stderr, "gang: error: unknown option %s\n", args[0].c_str());
      print_usage(stderr);
      return 2;
    }
    // ybd compatibility: gang TARGET [ARCH] [options...]
    Args build_args{args[0]};
    std::size_t rest = 1;
    if (args.size() > 1 && !args[1].starts_with("-")) {
      build_args.push_back("--arch");
      build_args.push_back(args[1]);
      rest = 2;
    }
    build_args.insert(build_args.end(), args.begin() + static_cast<long>(rest), args.end());
    return cmd_build(build_args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gang: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace gang
