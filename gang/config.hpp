// gang/: the command line, configuration, the gang of worker processes and
// the frontend that renders their events. It is the only folder that knows
// about all the others (definitions, cache, sandbox); main() stays a thin
// dispatcher into the subcommand table in commands.hpp.
//
// config.hpp: gang's settings, merged from three layers, lowest first:
// `gang.conf` (YAML) in the definitions directory, then GANG_* environment
// variables, then command-line flags (applied by each subcommand). A Config
// is a plain value, computed once per process.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "remote/remote_options.hpp"
#include "util/error.hpp"

namespace gang {

struct Config {
  std::string cache_dir;                       // artifact cache root, always absolute
  std::string instances = "1";                 // a number or "auto"
  int max_jobs = 0;                            // 0 means the number of cores
  std::string arch;                            // empty means the host's arch
  std::map<std::string, std::string> aliases;  // repo alias -> URL prefix, e.g. "upstream" -> "file:///srv/git/"
  bool offline = false;                        // never fetch sources
  std::string base = "host";                   // sandbox base: host, none, or a sysroot path
  bool strict = false;                         // unknown definition fields are errors
  bool retry_failed = false;                   // rebuild components recorded as failed
  RemoteOptions remote;                        // remote cache and Redis leases (none by default)
};

// The default cache root: $XDG_CACHE_HOME/gang, else $HOME/.cache/gang.
[[nodiscard]] std::string default_cache_dir();

// ybd's default repo aliases (baserock, freedesktop, github, gnome,
// upstream), which every Config starts with; `aliases:` in gang.conf and
// GANG_ALIASES override them one by one.
[[nodiscard]] const std::map<std::string, std::string>& default_aliases();

// Builds the Config for a definitions directory (may be empty: no gang.conf).
// Reads `<definitions_dir>/gang.conf` if present, then GANG_* variables:
// GANG_CACHE, GANG_INSTANCES, GANG_MAX_JOBS, GANG_ARCH, GANG_OFFLINE,
// GANG_BASE, GANG_STRICT and GANG_ALIASES ("name=prefix,name=prefix"), and
// for the remote tier GANG_REMOTE_CACHE, GANG_REMOTE_CREDENTIALS,
// GANG_REMOTE_NETRC, GANG_REMOTE_PUSH, GANG_REDIS and GANG_REDIS_CREDENTIALS.
// gang.conf's remote settings: remote-cache (URL), remote-credentials and
// remote-netrc (files, relative to the definitions directory),
// remote-push, remote-connect-timeout, remote-timeout, remote-retry-after
// (seconds), redis (URL), redis-credentials (file), lease-time (seconds).
// Errors name the file, line and field, or the variable.
[[nodiscard]] Result<Config> load_config(const std::string& definitions_dir);

// "auto" -> 1 + cores/10 (ybd's rule); a positive number -> itself.
[[nodiscard]] Result<int> resolve_instances(const std::string& value);

// max_jobs, or the number of online cores when it is 0.
[[nodiscard]] int resolve_max_jobs(int max_jobs);

}  // namespace gang
