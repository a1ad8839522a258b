// git_mirrors.hpp: the git sources of a build. One bare mirror per upstream
// repository lives under `<cache_root>/gits/<mirror_name(url)>`; refs named
// by definitions are resolved there to a commit and its tree (the tree id
// feeds the cache key; the commit time is SOURCE_DATE_EPOCH), fetching all
// refs from upstream when a ref is missing, and commits are checked out from
// the mirror into build directories, submodules included; a checkout's .git
// shares no inode with the mirror (a build may write anything in its build
// directory, never into the mirror). Like ybd and
// morph, a checkout gives every file, directory and symlink of the working
// tree one fixed mtime, k_checkout_mtime, so that make never sees a generated
// file (configure, aclocal.m4, Makefile.in) as older than its sources just
// because it was written first.
//
// Concurrency contract: several gang processes (and threads, each with its
// own GitMirrors or not) may use the same cache root at once. Every clone or
// fetch of a mirror runs under an exclusive flock on `<mirror>.gang-lock`
// (beside the mirror, never deleted); a new mirror is built in a temporary
// directory and renamed into place, so readers see no mirror or a complete
// one. libgit2's own `.lock` files make it fail at once, so a fetch that
// meets one retries with bounded backoff; if they persist under our flock
// they were left by a writer that died, and are removed. Readers (resolve
// without fetch, checkout) take no lock: git updates refs atomically and
// objects are written before the refs naming them. A
// GitMirrors object itself is immutable after open() (and an optional
// set_fetch_observer() before it is shared) and safe to share between
// threads; the observer is called on whichever thread fetches. libgit2
// state must not cross fork(): exec first.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "util/error.hpp"

namespace gang {

// The mtime of every checked-out entry: 2011-11-11 11:11:11 UTC, ybd's and
// morph's "magic timestamp". SOURCE_DATE_EPOCH stays the commit time.
inline constexpr std::int64_t k_checkout_mtime = 1321009871;

// Whether gang may talk to upstream repositories.
enum class Offline { no, yes };

// What a ref names: the commit, its root tree, and the committer time.
struct Resolution {
  std::string commit;       // 40 hex digits
  std::string tree;         // 40 hex digits
  std::int64_t commit_time; // seconds since the epoch (SOURCE_DATE_EPOCH)
  friend bool operator==(const Resolution&, const Resolution&) = default;
};

// How often FetchObserver::progress is called, at most, during one transfer.
inline constexpr int k_fetch_progress_interval_ms = 500;

// Watches the clones and fetches of mirrors, for progress output. Any member
// may be empty. They run on the thread that fetches, while it holds the
// mirror's lock, and must not call back into GitMirrors.
struct FetchObserver {
  // A clone of a new mirror (cloning) or a fetch into an existing one starts.
  std::function<void(const std::string& url, bool cloning)> started;
  // Bytes received so far (every k_fetch_progress_interval_ms at most).
  std::function<void(const std::string& url, std::uint64_t bytes)> progress;
  // It ended: bytes received, seconds taken, and whether it succeeded.
  std::function<void(const std::string& url, bool cloning, std::uint64_t bytes, double seconds,
                     bool ok)>
      finished;
};

class GitMirrors {
 public:
  // Opens (creating if needed) `<cache_root>/gits`. `aliases` maps repo
  // aliases to URL prefixes (see git_url.hpp); `base_dir` (the definitions
  // directory) anchors relative local paths and relative alias prefixes.
  [[nodiscard]] static Result<GitMirrors> open(const std::string& cache_root,
                                               std::map<std::string, std::string> aliases,
                                               Offline offline, std::string base_dir = {});

  // The URL a definition's `repo:` names, aliases expanded. A non-empty
  // `base_dir` overrides the one given to open().
  [[nodiscard]] Result<std::string> expand_url(const std::string& repo,
                                               const std::string& base_dir = {}) const;

  // The mirror directory for `repo` (whether or not it exists yet).
  [[nodiscard]] Result<std::string> mirror_path(const std::string& repo) const;

  // Resolves `ref` (full SHA, tag or branch) in the mirror of `repo`. If the
  // mirror or the ref is missing, clones/fetches all refs under the mirror's
  // lock and tries again. Offline, a missing mirror or ref is an error that
  // says so. Annotated tags are peeled to their commit.
  [[nodiscard]] Result<Resolution> resolve(const std::string& repo, const std::string& ref) const;

  // Like resolve() but never fetches: returns nullopt when the mirror or the
  // ref is absent (for `gang show`, offline and without sources). Errors only
  // for a bad repo (unknown alias) or a corrupt mirror.
  [[nodiscard]] Result<std::optional<Resolution>> resolve_local_only(const std::string& repo,
                                                                     const std::string& ref) const;

  // Fetches all refs of `repo` into its mirror (cloning it first if absent)
  // under the mirror's lock. An error when offline.
  [[nodiscard]] Result<void> update(const std::string& repo) const;

  // Checks `commit` (a full SHA that resolve() returned) of `repo` out into
  // `dest_dir`, which must not exist or be empty. The result is a git working
  // copy with a `.git` (a local clone of the mirror, HEAD detached at the
  // commit) so builds may run `git describe`. Submodules in the commit's
  // .gitmodules are checked out recursively at the commits their gitlinks
  // record, each from its own mirror; `submodule_urls` (path -> repo, from
  // the definition's `submodules:`) overrides .gitmodules URLs. A submodule
  // commit missing from its mirror is fetched unless offline. Finally every
  // entry of the working tree, submodules included, gets atime and mtime
  // k_checkout_mtime (symlinks themselves, not their targets); the `.git`
  // entries get it too, but nothing inside them is touched (their objects
  // are hard links into the shared mirror).
  [[nodiscard]] Result<void> checkout(const std::string& repo, const std::string& commit,
                                      const std::string& dest_dir,
                                      const std::map<std::string, std::string>& submodule_urls = {}) const;

  [[nodiscard]] const std::string& gits_dir() const { return m_gits_dir; }

  // Reports every later clone or fetch to `observer`. Call before the
  // object is shared between threads (it is the one mutation after open()).
  void set_fetch_observer(FetchObserver observer);

 private:
  GitMirrors(std::string gits_dir, std::map<std::string, std::string> aliases, Offline offline,
             std::string base_dir);

  [[nodiscard]] Result<Resolution> resolve_url(const std::string& url, const std::string& ref) const;
  [[nodiscard]] Result<void> fetch_url(const std::string& url) const;
  // Clones the mirror of `url`, or fetches into it, with the mirror's lock held.
  [[nodiscard]] Result<void> clone_or_fetch_locked(const std::string& url) const;
  [[nodiscard]] Result<void> checkout_url(const std::string& url, const std::string& commit,
                                          const std::string& dest_dir,
                                          const std::map<std::string, std::string>& submodule_urls,
                                          int depth) const;
  [[nodiscard]] std::string mirror_path_for_url(const std::string& url) const;

  std::string m_gits_dir;
  std::map<std::string, std::string> m_aliases;
  Offline m_offline;
  std::string m_base_dir;
  std::shared_ptr<const FetchObserver> m_observer;
};

}  // namespace gang
