// git_url.hpp: turning a definition's `repo:` field into a URL libgit2 can
// fetch, and a URL into the name of its mirror directory. Pure functions of
// their arguments (no I/O besides reading the current directory to absolutise
// a relative base); thread-safe.
//
// Alias rules (ybd/morph semantics): `upstream:foo` with alias `upstream` ->
// `file:///srv/git/` expands to `file:///srv/git/foo` (prefix + rest); a
// prefix containing `%s` has the rest substituted there instead. A result
// that is neither a URL (`scheme://`) nor an absolute path is a local path
// relative to `base_dir` (the definitions directory), so `gang.conf` may say
// `demo: ../git/` and work from any checkout location.
#pragma once

#include <map>
#include <string>

#include "util/error.hpp"

namespace gang {

// Expands `repo` through `aliases` (alias -> prefix). Errors: an empty repo,
// or an `alias:rest` form whose alias looks like one (letters, digits, '-',
// '_') but is not configured. URLs and scp-like `user@host:path` pass through.
// A relative local result is resolved against `base_dir` (or the current
// directory when `base_dir` is empty) and normalised.
[[nodiscard]] Result<std::string> expand_repo_url(const std::string& repo,
                                                  const std::map<std::string, std::string>& aliases,
                                                  const std::string& base_dir = {});

// Resolves a submodule URL from .gitmodules that is relative to its
// superproject (`../foo.git`, `./bar`) against the superproject's URL; other
// URLs are returned unchanged.
[[nodiscard]] std::string resolve_relative_url(const std::string& super_url,
                                               const std::string& url);

// A readable, filesystem-safe directory name for the mirror of `url`: the
// URL without its scheme, unsafe characters replaced by '_', plus '-' and a
// short hash of the whole URL so that different URLs never share a name.
[[nodiscard]] std::string mirror_name(const std::string& url);

}  // namespace gang
