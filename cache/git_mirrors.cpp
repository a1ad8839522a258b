#include "cache/git_mirrors.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cache/git_handles.hpp"
#include "cache/git_url.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

constexpr int k_max_submodule_depth = 8;
constexpr int k_elocked_retries = 8;
constexpr std::chrono::milliseconds k_elocked_first_wait{25};
constexpr std::chrono::milliseconds k_elocked_max_wait{1000};
constexpr const char* k_mirror_refspec = "+refs/*:refs/*";

// An exclusive flock(2) on a lock file that is never deleted (deleting it
// would let two processes lock two different inodes). flock locks belong to
// the open file description, so they exclude other threads too as long as
// each holder opened the file itself.
class MirrorLock {
 public:
  [[nodiscard]] static Result<MirrorLock> acquire(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return make_errno_error("cannot open lock file " + path);
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      return make_errno_error("cannot lock " + path, saved);
    }
    return MirrorLock(fd);
  }
  MirrorLock(MirrorLock&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  MirrorLock& operator=(MirrorLock&&) = delete;
  MirrorLock(const MirrorLock&) = delete;
  MirrorLock& operator=(const MirrorLock&) = delete;
  ~MirrorLock() {
    if (m_fd >= 0) ::close(m_fd);  // closing releases the flock
  }

 private:
  explicit MirrorLock(int fd) : m_fd(fd) {}
  int m_fd;
};

bool is_full_sha(const std::string& ref) {
  return ref.size() == GIT_OID_HEXSZ &&
         std::all_of(ref.begin(), ref.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string oid_hex(const git_oid* oid) {
  char buffer[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buffer, sizeof buffer, oid);
  return buffer;
}

Result<GitPtr<git_repository>> open_repository(const std::string& path) {
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc < 0) return libgit2_error("cannot open git repository " + path, rc);
  return GitPtr<git_repository>(raw);
}

// The commit `ref` names in `repo`, or nullopt when it names nothing there.
Result<std::optional<GitPtr<git_commit>>> find_commit(git_repository* repo, const std::string& ref) {
  git_object* raw = nullptr;
  int rc;
  if (is_full_sha(ref)) {
    git_oid oid;
    rc = git_oid_fromstr(&oid, ref.c_str());
    if (rc == 0) rc = git_object_lookup(&raw, repo, &oid, GIT_OBJECT_ANY);
  } else {
    rc = git_revparse_single(&raw, repo, ref.c_str());
  }
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC || rc == GIT_EAMBIGUOUS) return std::nullopt;
  if (rc < 0) return libgit2_error("cannot look up \"" + ref + "\"", rc);
  GitPtr<git_object> object(raw);
  git_object* peeled = nullptr;
  rc = git_object_peel(&peeled, object.get(), GIT_OBJECT_COMMIT);
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC || rc == GIT_EPEEL) return std::nullopt;
  if (rc < 0) return libgit2_error("cannot peel \"" + ref + "\" to a commit", rc);
  return GitPtr<git_commit>(reinterpret_cast<git_commit*>(peeled));
}

Resolution resolution_of(git_commit* commit) {
  return Resolution{oid_hex(git_commit_id(commit)), oid_hex(git_commit_tree_id(commit)),
                    static_cast<std::int64_t>(git_commit_time(commit))};
}

// Looks `ref` up in the mirror at `mirror`; nullopt if the mirror or the ref
// is absent.
Result<std::optional<Resolution>> lookup(const std::string& mirror, const std::string& ref) {
  if (!path_exists(mirror)) return std::nullopt;
  auto repo = open_repository(mirror);
  if (!repo) return std::unexpected(repo.error());
  auto commit = find_commit(repo->get(), ref);
  if (!commit) return std::unexpected(commit.error());
  if (!*commit) return std::nullopt;
  return resolution_of((*commit)->get());
}

// Whether a libgit2 failure was another writer's `.lock` file: GIT_ELOCKED,
// or the plain error libgit2's file buffers raise for the same condition
// (e.g. while a fetch updates refs).
bool is_lock_failure(int rc) {
  if (rc == GIT_ELOCKED) return true;
  if (rc >= 0) return false;
  const ::git_error* last = git_error_last();
  return last != nullptr && last->message != nullptr &&
         std::string_view(last->message).starts_with("failed to lock file");
}

// Runs `op` until it stops failing on a lock file, backing off, bounded.
template <typename Op>
int retry_while_locked(Op op) {
  auto wait = k_elocked_first_wait;
  int rc = op();
  for (int attempt = 0; is_lock_failure(rc) && attempt < k_elocked_retries; ++attempt) {
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, k_elocked_max_wait);
    rc = op();
  }
  return rc;
}

// Removes git's `*.lock` files from a mirror (top level and under refs/).
// Only for use under the mirror's flock after libgit2 kept failing with
// GIT_ELOCKED: every gang writer holds that flock, so such files were left
// by a writer that died. Returns how many it removed.
int remove_stale_git_locks(const std::string& mirror) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  auto remove_if_lock = [&](const fs::path& path) {
    if (path.extension() == ".lock" && fs::remove(path, ec)) ++removed;
  };
  for (const auto& entry : fs::directory_iterator(mirror, ec)) remove_if_lock(entry.path());
  for (auto it = fs::recursive_directory_iterator(mirror + "/refs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    remove_if_lock(it->path());
  return removed;
}

// What one clone or fetch has received so far, for a FetchObserver.
struct TransferWatch {
  const FetchObserver* observer = nullptr;
  const std::string* url = nullptr;
  std::uint64_t bytes = 0;
  std::chrono::steady_clock::time_point last_report{};
};

int on_transfer_progress(const git_indexer_progress* stats, void* payload) {
  auto* watch = static_cast<TransferWatch*>(payload);
  watch->bytes = std::max<std::uint64_t>(watch->bytes, stats->received_bytes);
  if (watch->observer == nullptr || !watch->observer->progress) return 0;
  auto now = std::chrono::steady_clock::now();
  if (now - watch->last_report < std::chrono::milliseconds(k_fetch_progress_interval_ms)) return 0;
  watch->last_report = now;
  watch->observer->progress(*watch->url, watch->bytes);
  return 0;
}

// libgit2, like git (CVE-2022-24765), refuses a local repository that
// another user owns, and libgit2 1.5 may report it as a stray "config value
// 'safe.directory' was not found": name the cause and the way through.
std::string ownership_hint(const std::string& url) {
  std::string path = url.starts_with("file://") ? url.substr(7) : url;
  struct stat st {};
  if (!path.starts_with("/") || ::stat(path.c_str(), &st) != 0 || st.st_uid == ::geteuid())
    return "";
  return "; " + path + " belongs to uid " + std::to_string(st.st_uid) + ", not to this user (uid " +
         std::to_string(::geteuid()) +
         "), and git refuses such repositories: to trust it, add its path with `git config "
         "--global --add safe.directory PATH`" +
         (LIBGIT2_VER_MAJOR == 1 && LIBGIT2_VER_MINOR < 6
              ? std::string(" (libgit2 ") + LIBGIT2_VERSION + " takes no '*')"
              : std::string());
}

Result<void> fetch_origin(git_repository* repo, const std::string& url,
                          TransferWatch* watch = nullptr) {
  git_remote* raw = nullptr;
  int rc = git_remote_lookup(&raw, repo, "origin");
  if (rc < 0) return libgit2_error("mirror of " + url + " has no origin remote", rc);
  GitPtr<git_remote> remote(raw);
  git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
  options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
  options.update_fetchhead = 0;
  if (watch != nullptr) {
    options.callbacks.transfer_progress = on_transfer_progress;
    options.callbacks.payload = watch;
  }
  auto fetch = [&] { return git_remote_fetch(remote.get(), nullptr, &options, "gang: fetch"); };
  rc = retry_while_locked(fetch);
  if (is_lock_failure(rc) && remove_stale_git_locks(git_repository_path(repo)) > 0) rc = fetch();
  if (watch != nullptr) {
    if (const git_indexer_progress* stats = git_remote_stats(remote.get()))
      watch->bytes = std::max<std::uint64_t>(watch->bytes, stats->received_bytes);
  }
  if (rc < 0) {
    auto error = libgit2_error("cannot fetch " + url, rc);
    error.error().message += ownership_hint(url);
    return error;
  }
  return {};
}

// Points an unborn HEAD of a fresh mirror at a branch that exists, so that
// clones of the mirror start from something.
void settle_head(git_repository* repo) {
  if (git_repository_head_unborn(repo) != 1) return;
  for (const char* name : {"refs/heads/master", "refs/heads/main"}) {
    git_reference* ref = nullptr;
    if (git_reference_lookup(&ref, repo, name) == 0) {
      git_reference_free(ref);
      (void)git_repository_set_head(repo, name);
      return;
    }
  }
  git_reference_iterator* it = nullptr;
  if (git_reference_iterator_glob_new(&it, repo, "refs/heads/*") != 0) return;
  const char* name = nullptr;
  if (git_reference_next_name(&name, it) == 0) (void)git_repository_set_head(repo, name);
  git_reference_iterator_free(it);
}

// Removes `<name>.tmp-*` directories left by crashed clones. Call under the
// mirror's lock.
void remove_stale_temporaries(const std::string& gits_dir, const std::string& name) {
  DIR* dir = ::opendir(gits_dir.c_str());
  if (dir == nullptr) return;
  std::string prefix = name + ".tmp-";
  std::vector<std::string> stale;
  while (dirent* entry = ::readdir(dir))
    if (std::string(entry->d_name).starts_with(prefix)) stale.push_back(gits_dir + "/" + entry->d_name);
  ::closedir(dir);
  for (const auto& path : stale) (void)remove_tree(path);
}

Result<void> clone_mirror(const std::string& gits_dir, const std::string& name,
                          const std::string& url, TransferWatch* watch) {
  remove_stale_temporaries(gits_dir, name);
  auto tmp = make_temp_dir(gits_dir, name + ".tmp-");
  if (!tmp) return std::unexpected(tmp.error());
  auto fail = [&](Error error) -> Result<void> {
    (void)remove_tree(*tmp);
    return std::unexpected(std::move(error));
  };
  {
    git_repository* raw = nullptr;
    int rc = git_repository_init(&raw, tmp->c_str(), /*is_bare=*/1);
    if (rc < 0) return fail(libgit2_error("cannot create a mirror for " + url, rc).error());
    GitPtr<git_repository> repo(raw);
    git_remote* remote = nullptr;
    rc = git_remote_create_with_fetchspec(&remote, repo.get(), "origin", url.c_str(), k_mirror_refspec);
    if (rc < 0) return fail(libgit2_error("cannot configure the mirror of " + url, rc).error());
    git_remote_free(remote);
    git_config* config_raw = nullptr;
    if (git_repository_config(&config_raw, repo.get()) == 0) {
      GitPtr<git_config> config(config_raw);
      (void)git_config_set_bool(config.get(), "remote.origin.mirror", 1);
    }
    auto fetched = fetch_origin(repo.get(), url, watch);
    if (!fetched) return fail(fetched.error());
    settle_head(repo.get());
  }
  std::string final_path = gits_dir + "/" + name;
  if (::rename(tmp->c_str(), final_path.c_str()) != 0)
    return fail(make_errno_error("cannot move the new mirror into " + final_path).error());
  (void)fsync_dir(gits_dir);
  return {};
}

struct SubmoduleInfo {
  std::string name;
  std::string path;
  std::string url;
};

int collect_submodule(git_submodule* sm, const char* name, void* payload) {
  auto* out = static_cast<std::vector<SubmoduleInfo>*>(payload);
  const char* path = git_submodule_path(sm);
  const char* url = git_submodule_url(sm);
  out->push_back(SubmoduleInfo{name ? name : "", path ? path : "", url ? url : ""});
  return 0;
}

// The commit a gitlink at `path` in `commit`'s tree records, or nullopt when
// `path` is not a gitlink there.
Result<std::optional<std::string>> gitlink_at(git_commit* commit, const std::string& path) {
  git_tree* tree_raw = nullptr;
  int rc = git_commit_tree(&tree_raw, commit);
  if (rc < 0) return libgit2_error("cannot read the tree of " + oid_hex(git_commit_id(commit)), rc);
  GitPtr<git_tree> tree(tree_raw);
  git_tree_entry* entry_raw = nullptr;
  rc = git_tree_entry_bypath(&entry_raw, tree.get(), path.c_str());
  if (rc == GIT_ENOTFOUND) return std::nullopt;
  if (rc < 0) return libgit2_error("cannot look up " + path, rc);
  GitPtr<git_tree_entry> entry(entry_raw);
  if (git_tree_entry_filemode(entry.get()) != GIT_FILEMODE_COMMIT) return std::nullopt;
  return oid_hex(git_tree_entry_id(entry.get()));
}

// Gives the file `name` in dir_fd (shown as `path`) an inode of its own:
// copies it beside itself (copy_file_range: a reflink where the file
// system can, else an in-kernel copy) and renames the copy over it. Mode
// and times are kept.
Result<void> unshare_file(int dir_fd, const char* name, const struct stat& st,
                          const std::string& path) {
  std::string temp = std::string(name) + ".gang-unshare";
  int in = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return make_errno_error("cannot read " + path);
  int out = ::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    int err = errno;
    ::close(in);
    return make_errno_error("cannot copy " + path, err);
  }
  auto fail = [&](int err) -> Result<void> {
    ::close(in);
    ::close(out);
    ::unlinkat(dir_fd, temp.c_str(), 0);
    return make_errno_error("cannot copy " + path, err);
  };
  off_t left = st.st_size;
  bool plain = false;  // copy_file_range unsupported here: read and write
  while (left > 0 && !plain) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(left), 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
      plain = true;
    } else if (n < 0) {
      return fail(errno);
    } else if (n == 0) {
      break;
    } else {
      left -= n;
    }
  }
  if (plain) {
    char buffer[1 << 16];
    for (;;) {
      ssize_t n = ::read(in, buffer, sizeof buffer);
      if (n < 0) return fail(errno);
      if (n == 0) break;
      for (ssize_t done = 0; done < n;) {
        ssize_t w = ::write(out, buffer + done, static_cast<std::size_t>(n - done));
        if (w < 0) return fail(errno);
        done += w;
      }
    }
  }
  const timespec times[2] = {st.st_atim, st.st_mtim};
  if (::fchmod(out, st.st_mode & 07777) != 0 || ::futimens(out, times) != 0) return fail(errno);
  ::close(in);
  if (::close(out) != 0 || ::renameat(dir_fd, temp.c_str(), dir_fd, name) != 0) {
    int err = errno;
    ::unlinkat(dir_fd, temp.c_str(), 0);
    return make_errno_error("cannot copy " + path, err);
  }
  return {};
}

// Gives every multiply-linked regular file below the open directory dir_fd
// an inode of its own (see unshare_file).
Result<void> unshare_tree_below(int dir_fd, const std::string& path) {
  int fd = ::dup(dir_fd);
  DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
  if (dir == nullptr) {
    if (fd >= 0) ::close(fd);
    return make_errno_error("cannot read " + path);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(dir);
  for (const auto& name : names) {
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return make_errno_error("cannot inspect " + path + "/" + name);
    if (S_ISDIR(st.st_mode)) {
      int sub = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) return make_errno_error("cannot read " + path + "/" + name);
      auto done = unshare_tree_below(sub, path + "/" + name);
      ::close(sub);
      if (!done) return done;
    } else if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      if (auto done = unshare_file(dir_fd, name.c_str(), st, path + "/" + name); !done) return done;
    }
  }
  return {};
}

// Clones the local mirror into `dest_dir` without checking anything out.
// The clone shares no inode with the mirror: a build step may write
// anything in its build directory, .git included, and must never change a
// file every later checkout of the mirror reads (ybd clones with
// --no-hardlinks for this reason). Hard-linking and then copying the linked
// files with copy_file_range (a reflink where the file system can) is
// faster than libgit2's own copying clone.
Result<GitPtr<git_repository>> clone_from_mirror(const std::string& mirror, const std::string& dest_dir) {
  int rc = 0;
  for (git_clone_local_t mode : {GIT_CLONE_LOCAL, GIT_CLONE_LOCAL_NO_LINKS}) {
    git_clone_options options = GIT_CLONE_OPTIONS_INIT;
    options.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
    options.local = mode;
    git_repository* raw = nullptr;
    rc = retry_while_locked([&] { return git_clone(&raw, mirror.c_str(), dest_dir.c_str(), &options); });
    if (rc == 0) {
      GitPtr<git_repository> repo(raw);
      std::string objects = dest_dir + "/.git/objects";
      int fd = ::open(objects.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return make_errno_error("cannot read " + objects);
      auto unshared = unshare_tree_below(fd, objects);
      ::close(fd);
      if (!unshared) return std::unexpected(unshared.error());
      return repo;
    }
    (void)remove_tree(dest_dir + "/.git");
  }
  return libgit2_error("cannot clone " + mirror + " into " + dest_dir, rc);
}

// Sets atime and mtime of every entry below the open directory `dir_fd`
// (whose path is `path`, for messages) to `times`, symlinks themselves
// included, in one walk: each directory is read once through its own fd and
// its entries are stamped relative to it. Directories are stamped after
// their contents. A `.git` entry is stamped but not entered.
Result<void> stamp_tree_below(int dir_fd, const std::string& path, const timespec times[2]) {
  int read_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (read_fd < 0) return make_errno_error("cannot open " + path);
  DIR* dir = ::fdopendir(read_fd);
  if (dir == nullptr) {
    int saved = errno;
    ::close(read_fd);
    return make_errno_error("cannot read " + path, saved);
  }
  Result<void> result;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = entry->d_type == DT_DIR;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat st {};
      if (::fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        result = make_errno_error("cannot stat " + path + "/" + entry->d_name);
        break;
      }
      is_dir = S_ISDIR(st.st_mode);
    }
    if (is_dir && name != ".git") {
      int child = ::openat(dir_fd, entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        result = make_errno_error("cannot open " + path + "/" + entry->d_name);
        break;
      }
      result = stamp_tree_below(child, path + "/" + entry->d_name, times);
      ::close(child);
      if (!result) break;
    }
    if (::utimensat(dir_fd, entry->d_name, times, AT_SYMLINK_NOFOLLOW) != 0) {
      result = make_errno_error("cannot set the mtime of " + path + "/" + entry->d_name);
      break;
    }
    errno = 0;
  }
  if (result && errno != 0) result = make_errno_error("cannot read " + path);
  ::closedir(dir);
  return result;
}

// Gives `root` and everything below it (see stamp_tree_below) the mtime
// k_checkout_mtime.
Result<void> stamp_checkout(const std::string& root) {
  const timespec times[2] = {{k_checkout_mtime, 0}, {k_checkout_mtime, 0}};
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot open " + root);
  auto stamped = stamp_tree_below(fd, root, times);
  if (stamped && ::futimens(fd, times) != 0) stamped = make_errno_error("cannot set the mtime of " + root);
  ::close(fd);
  return stamped;
}

}  // namespace

GitMirrors::GitMirrors(std::string gits_dir, std::map<std::string, std::string> aliases, Offline offline,
                       std::string base_dir)
    : m_gits_dir(std::move(gits_dir)),
      m_aliases(std::move(aliases)),
      m_offline(offline),
      m_base_dir(std::move(base_dir)) {}

Result<GitMirrors> GitMirrors::open(const std::string& cache_root, std::map<std::string, std::string> aliases,
                                    Offline offline, std::string base_dir) {
  if (auto ok = ensure_libgit2(); !ok) return std::unexpected(ok.error());
  if (cache_root.empty()) return make_error("no cache directory given for git mirrors");
  std::string gits_dir = cache_root + "/gits";
  if (auto made = make_dirs(gits_dir); !made) return std::unexpected(made.error());
  return GitMirrors(std::move(gits_dir), std::move(aliases), offline, std::move(base_dir));
}

Result<std::string> GitMirrors::expand_url(const std::string& repo, const std::string& base_dir) const {
  return expand_repo_url(repo, m_aliases, base_dir.empty() ? m_base_dir : base_dir);
}

std::string GitMirrors::mirror_path_for_url(const std::string& url) const {
  return m_gits_dir + "/" + mirror_name(url);
}

Result<std::string> GitMirrors::mirror_path(const std::string& repo) const {
  auto url = expand_url(repo);
  if (!url) return std::unexpected(url.error());
  return mirror_path_for_url(*url);
}

Result<void> GitMirrors::fetch_url(const std::string& url) const {
  if (m_offline == Offline::yes) return make_error("cannot fetch " + url + ": gang is offline");
  auto lock = MirrorLock::acquire(mirror_path_for_url(url) + ".gang-lock");
  if (!lock) return std::unexpected(lock.error());
  return clone_or_fetch_locked(url);
}

Result<void> GitMirrors::clone_or_fetch_locked(const std::string& url) const {
  std::string name = mirror_name(url);
  std::string mirror = m_gits_dir + "/" + name;
  const bool cloning = !path_exists(mirror);
  const FetchObserver* observer = m_observer.get();
  TransferWatch watch{observer, &url, 0, std::chrono::steady_clock::now()};
  if (observer != nullptr && observer->started) observer->started(url, cloning);
  auto start = std::chrono::steady_clock::now();
  auto result = [&]() -> Result<void> {
    if (cloning) return clone_mirror(m_gits_dir, name, url, &watch);
    auto repo = open_repository(mirror);
    if (!repo) return std::unexpected(repo.error());
    return fetch_origin(repo->get(), url, &watch);
  }();
  if (observer != nullptr && observer->finished) {
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    observer->finished(url, cloning, watch.bytes, took.count(), result.has_value());
  }
  return result;
}

void GitMirrors::set_fetch_observer(FetchObserver observer) {
  m_observer = std::make_shared<const FetchObserver>(std::move(observer));
}

Result<void> GitMirrors::update(const std::string& repo) const {
  auto url = expand_url(repo);
  if (!url) return std::unexpected(url.error());
  return fetch_url(*url);
}

Result<Resolution> GitMirrors::resolve_url(const std::string& url, const std::string& ref) const {
  std::string mirror = mirror_path_for_url(url);
  auto found = lookup(mirror, ref);
  if (!found) return std::unexpected(found.error());
  if (*found) return **found;
  bool had_mirror = path_exists(mirror);
  if (m_offline == Offline::yes) {
    if (!had_mirror)
      return make_error("no mirror of " + url + " in " + m_gits_dir + " and gang is offline (cannot resolve \"" +
                        ref + "\")");
    return make_error("ref \"" + ref + "\" is not in the mirror of " + url + " and gang is offline");
  }
  {
    // Another process may have fetched the ref while we waited for the lock;
    // look again under it before fetching.
    auto lock = MirrorLock::acquire(mirror + ".gang-lock");
    if (!lock) return std::unexpected(lock.error());
    auto again = lookup(mirror, ref);
    if (!again) return std::unexpected(again.error());
    if (*again) return **again;
    if (auto fetched = clone_or_fetch_locked(url); !fetched)
      return std::unexpected(fetched.error());
  }
  auto fetched = lookup(mirror, ref);
  if (!fetched) return std::unexpected(fetched.error());
  if (!*fetched) return make_error("ref \"" + ref + "\" not found in " + url + " (after fetching all refs)");
  return **fetched;
}

Result<Resolution> GitMirrors::resolve(const std::string& repo, const std::string& ref) const {
  if (ref.empty()) return make_error("no ref given for " + repo);
  auto url = expand_url(repo);
  if (!url) return std::unexpected(url.error());
  return resolve_url(*url, ref);
}

Result<std::optional<Resolution>> GitMirrors::resolve_local_only(const std::string& repo,
                                                                 const std::string& ref) const {
  if (ref.empty()) return std::nullopt;
  auto url = expand_url(repo);
  if (!url) return std::unexpected(url.error());
  return lookup(mirror_path_for_url(*url), ref);
}

Result<void> GitMirrors::checkout(const std::string& repo, const std::string& commit, const std::string& dest_dir,
                                  const std::map<std::string, std::string>& submodule_urls) const {
  auto url = expand_url(repo);
  if (!url) return std::unexpected(url.error());
  if (auto checked = checkout_url(*url, commit, dest_dir, submodule_urls, 0); !checked) return checked;
  return stamp_checkout(dest_dir);
}

Result<void> GitMirrors::checkout_url(const std::string& url, const std::string& commit_ref,
                                      const std::string& dest_dir,
                                      const std::map<std::string, std::string>& submodule_urls, int depth) const {
  if (depth > k_max_submodule_depth) return make_error("submodules of " + url + " nest too deeply");
  auto resolved = resolve_url(url, commit_ref);  // fetches a missing commit unless offline
  if (!resolved) return std::unexpected(resolved.error());
  if (auto made = make_dirs(dest_dir); !made) return std::unexpected(made.error());

  auto repo = clone_from_mirror(mirror_path_for_url(url), dest_dir);
  if (!repo) return std::unexpected(repo.error());
  auto found = find_commit(repo->get(), resolved->commit);
  if (!found) return std::unexpected(found.error());
  if (!*found) return make_error("commit " + resolved->commit + " of " + url + " is missing from the clone in " + dest_dir);
  git_commit* commit = (*found)->get();

  git_checkout_options options = GIT_CHECKOUT_OPTIONS_INIT;
  options.checkout_strategy = GIT_CHECKOUT_FORCE;
  int rc = git_checkout_tree(repo->get(), reinterpret_cast<const git_object*>(commit), &options);
  if (rc < 0) return libgit2_error("cannot check out " + resolved->commit + " of " + url + " into " + dest_dir, rc);
  rc = git_repository_set_head_detached(repo->get(), git_commit_id(commit));
  if (rc < 0) return libgit2_error("cannot detach HEAD at " + resolved->commit + " in " + dest_dir, rc);

  if (!path_exists(dest_dir + "/.gitmodules")) return {};
  std::vector<SubmoduleInfo> submodules;
  rc = git_submodule_foreach(repo->get(), collect_submodule, &submodules);
  if (rc < 0) return libgit2_error("cannot read .gitmodules of " + url + " at " + resolved->commit, rc);
  for (const auto& sm : submodules) {
    auto gitlink = gitlink_at(commit, sm.path);
    if (!gitlink) return std::unexpected(gitlink.error());
    if (!*gitlink) continue;  // listed in .gitmodules but not a gitlink in this commit (ybd skips these)
    std::string sub_repo;
    if (auto it = submodule_urls.find(sm.path); it != submodule_urls.end())
      sub_repo = it->second;
    else if (auto by_name = submodule_urls.find(sm.name); by_name != submodule_urls.end())
      sub_repo = by_name->second;
    else
      sub_repo = resolve_relative_url(url, sm.url);
    if (sub_repo.empty()) return make_error("submodule " + sm.path + " of " + url + " has no URL");
    auto sub_url = expand_url(sub_repo);
    if (!sub_url) return std::unexpected(Error{"submodule " + sm.path + " of " + url + ": " + sub_url.error().message,
                                               {}, 0, 0, {}});
    auto checked = checkout_url(*sub_url, **gitlink, dest_dir + "/" + sm.path, {}, depth + 1);
    if (!checked)
      return std::unexpected(
          Error{"submodule " + sm.path + " of " + url + ": " + checked.error().message, {}, 0, 0, {}});
  }
  return {};
}

}  // namespace gang
