// cache/: everything gang keeps between runs under the cache root: the
// artifact store and its index, and the bare git mirrors that sources are
// resolved and checked out from.
//
// git_handles.hpp: the thin RAII layer over libgit2 that the git mirror code
// is written against. `ensure_libgit2()` initialises libgit2 once per process
// (torn down at exit); `GitPtr<T>` owns one libgit2 object and frees it with
// the matching git_*_free; `libgit2_error(what, code)` turns a libgit2 return code
// into a gang::Error carrying git_error_last()'s message.
//
// Concurrency contract: ensure_libgit2() is thread-safe. libgit2 objects must
// not be shared between threads without external locking, and must never be
// used across fork(): a child process must exec before touching libgit2.
#pragma once

#include <git2.h>

#include <memory>
#include <string>

#include "util/error.hpp"

namespace gang {

// Initialises libgit2 on first call; later calls are no-ops. Returns an error
// only if libgit2 itself fails to initialise.
[[nodiscard]] Result<void> ensure_libgit2();

// "what: <libgit2's last error message> (code N)". Used at every call site
// whose return code is negative.
[[nodiscard]] std::unexpected<Error> libgit2_error(const std::string& what, int code);

namespace detail {
template <typename T>
struct GitFree;
#define GANG_GIT_FREE(type, fn) \
  template <>                   \
  struct GitFree<type> {        \
    void operator()(type* p) const { fn(p); } \
  }
GANG_GIT_FREE(git_repository, git_repository_free);
GANG_GIT_FREE(git_remote, git_remote_free);
GANG_GIT_FREE(git_object, git_object_free);
GANG_GIT_FREE(git_commit, git_commit_free);
GANG_GIT_FREE(git_tree, git_tree_free);
GANG_GIT_FREE(git_tree_entry, git_tree_entry_free);
GANG_GIT_FREE(git_reference, git_reference_free);
GANG_GIT_FREE(git_config, git_config_free);
#undef GANG_GIT_FREE
}  // namespace detail

// Sole owner of one libgit2 object.
template <typename T>
using GitPtr = std::unique_ptr<T, detail::GitFree<T>>;

}  // namespace gang
