// extension.hpp: running Baserock deployment extensions exactly as morph and
// ybd run them, so that the definitions' own `extensions/NAME.configure`,
// `NAME.check` and `NAME.write` work unchanged:
//   - the file is `<definitions>/extensions/NAME.STEP`, run through its
//     shebang, from the definitions' root directory;
//   - arguments: configure ROOTDIR; check LOCATION; write ROOTDIR LOCATION;
//   - environment: the caller's, plus UPGRADE=yes|no, PYTHONPATH with the
//     extensions directory appended, and every deploy parameter whose name
//     is upper case (HOSTNAME: foo -> HOSTNAME=foo).
// Parameters are data: they reach the extension as environment values and
// arguments of execve, never through a shell command line.
//
// Concurrency: the functions are thread-compatible; run_extension forks.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "util/error.hpp"

namespace gang {

enum class ExtensionStep { configure, check, write };

[[nodiscard]] std::string_view to_string(ExtensionStep step);

struct Extension {
  std::string name;         // "set-hostname", "tar"
  ExtensionStep step = ExtensionStep::configure;
  std::string path;         // absolute
  std::string interpreter;  // from the shebang, resolved on PATH ("" if the file is a binary)
};

// The extension NAME.STEP under `<definitions_root>/extensions`, or nullopt
// when there is none. NAME may be written as a path ("extensions/tar"): only
// its last component counts, and it must be a safe name.
[[nodiscard]] Result<std::optional<Extension>> find_extension(const std::string& definitions_root,
                                                              const std::string& name,
                                                              ExtensionStep step);

// Checks that the extension can run here: a regular, readable file whose
// shebang interpreter exists (the real definitions' Python extensions ask
// for python2, which Debian 12 lacks). The error names the extension and
// the interpreter. Run it for every extension of a deployment before any
// of them runs, so a deployment that cannot finish writes nothing.
[[nodiscard]] Result<void> check_runnable(const Extension& extension);

struct ExtensionCall {
  std::string definitions_root;                 // the working directory
  std::string rootdir;                          // the unpacked system (configure, write)
  std::string location;                         // the deployment's location (check, write)
  std::map<std::string, std::string> parameters;  // the deployment's, merged over deploy-defaults
  bool upgrade = false;
  int output_fd = -1;                           // stdout and stderr go here (-1: inherited)
};

// Runs the extension and waits for it; an error unless it exits 0.
[[nodiscard]] Result<void> run_extension(const Extension& extension, const ExtensionCall& call);

}  // namespace gang
