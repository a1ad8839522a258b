// commands.hpp: the subcommand table. Each subcommand receives its own
// arguments (without the program and subcommand names) and returns the
// process exit status. Subcommands report errors as values up to run_main,
// the single top-level handler that prints "gang: error: ..." and exits
// non-zero. Each subcommand lives in its own cmd_<name>.cpp.
#pragma once

#include <string>
#include <vector>

namespace gang {

using Args = std::vector<std::string>;

int cmd_show(const Args& args);    // gang show TARGET [--arch A] [--json]
int cmd_build(const Args& args);   // gang build TARGET [--arch A] [--instances N] [--max-jobs M] ...
int cmd_cache(const Args& args);   // gang cache ls|show|verify|gc|forget ...
int cmd_shell(const Args& args);   // gang shell COMPONENT [-- CMD...]
int cmd_deploy(const Args& args);    // gang deploy CLUSTER [LABEL...] [-p LABEL.KEY=VALUE] [--force]
int cmd_timeline(const Args& args);  // gang timeline REPORT.json [-o FILE.png|.svg]
int cmd_remote(const Args& args);    // gang remote check [--definitions DIR] [--json]
int cmd_worker(const Args& args);  // internal: one worker instance, exec'd by `gang build`

// Parses argv and dispatches. `gang TARGET ARCH` with no subcommand is
// `gang build TARGET --arch ARCH` (ybd compatibility).
int run_main(int argc, char** argv);

}  // namespace gang
