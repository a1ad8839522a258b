#include "cache/tree_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <functional>
#include <map>

#include "cache/manifest.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

constexpr std::size_t k_id_length = 20;

bool stamped(const struct stat& st) {
  return st.st_mtim.tv_sec == k_blob_mtime && st.st_mtim.tv_nsec == 0;
}

// Calls fn(dirfd, name, st) for every entry under dirfd, a directory
// before what it holds; false as soon as fn says so or an entry cannot be
// read.
bool walk_tree(int dirfd, const std::function<bool(int, const char*, const struct stat&)>& fn) {
  DIR* dir = ::fdopendir(::dup(dirfd));
  if (dir == nullptr) return false;
  bool ok = true;
  while (ok) {
    dirent* e = ::readdir(dir);
    if (e == nullptr) break;
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    ok = ::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && fn(dirfd, e->d_name, st);
    if (!ok || !S_ISDIR(st.st_mode)) continue;
    int sub = ::openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ok = sub >= 0 && walk_tree(sub, fn);
    if (sub >= 0) ::close(sub);
  }
  ::closedir(dir);
  return ok;
}

// Sets the stamp on every directory and regular file under (and
// including) dirfd that lacks it (files hard-linked to blobs have it; copies
// of set-id files do not); false on an error. Stamping an entry does not
// change its directory's mtime.
bool stamp_tree(int dirfd) {
  const timespec times[2] = {{0, UTIME_OMIT}, {k_blob_mtime, 0}};
  bool ok = walk_tree(dirfd, [&](int at, const char* name, const struct stat& st) {
    if ((!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) || stamped(st)) return true;
    return ::utimensat(at, name, times, AT_SYMLINK_NOFOLLOW) == 0;
  });
  return ok && ::futimens(dirfd, times) == 0;
}

// True if every directory and regular file under (and including) dirfd
// carries the stamp: nothing was added, removed or renamed (a directory's
// mtime) and no file was written (a file's, shared with its blob) since the
// tree was made. One stat per entry.
bool tree_stamped(int dirfd) {
  struct stat self;
  if (::fstat(dirfd, &self) != 0 || !stamped(self)) return false;
  return walk_tree(dirfd, [](int, const char*, const struct stat& st) {
    return (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) || stamped(st);
  });
}

std::string join_keys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += k + "\n";
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    if (nl > start) out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool process_dead(int pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

TreeCache::TreeCache(ArtifactCache& cache) : m_cache(cache), m_trees(cache.root() + "/trees") {}

std::string TreeCache::tree_id(const std::vector<std::string>& keys) {
  return sha256_hex(join_keys(keys)).substr(0, k_id_length);
}

std::string TreeCache::path(const std::vector<std::string>& keys) const {
  return m_trees + "/" + tree_id(keys);
}

Result<std::string> TreeCache::listing(const std::vector<std::string>& keys) {
  auto digests = m_cache.manifest_digests(keys);  // one read transaction for them all
  if (!digests) return std::unexpected(digests.error());
  std::string out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if ((*digests)[i].empty()) return make_error("no artifact " + keys[i] + " in the cache");
    out += keys[i] + " " + (*digests)[i] + "\n";
  }
  return out;
}

Result<TreeCache::Use> TreeCache::tree(const std::vector<std::string>& keys, Verify verify) {
  if (keys.empty()) return make_error("a tree of no artifacts");
  if (auto made = make_dirs(m_trees); !made) return std::unexpected(made.error());
  std::string id = tree_id(keys);
  auto lock = FileLock::acquire(m_cache.root() + "/locks/tree-" + id, FileLock::Kind::shared,
                                FileLock::Wait::block);
  if (!lock) return std::unexpected(lock.error());
  // Its last use, for prune(): once per worker is enough (prune counts days).
  if (m_touched.insert(id).second) lock->touch();
  // The artifacts as they are now: an artifact dropped and published again
  // (a new manifest) makes an older tree of it stale, however intact.
  auto now = listing(keys);
  if (!now) return std::unexpected(now.error());
  std::string final_path = m_trees + "/" + id;
  if (is_dir(final_path)) {
    auto recorded = m_listings.find(id);
    if (recorded == m_listings.end()) {
      auto read = read_file(final_path + ".keys");
      recorded = m_listings.emplace(id, read ? *read : std::string()).first;
    }
    bool current = recorded->second == *now;
    if (current && verify == Verify::no && m_checked.contains(id)) return Use{final_path, std::move(*lock)};
    auto ok = current ? intact(id, verify) : Result<bool>(false);
    if (!ok) return std::unexpected(ok.error());
    if (*ok) {
      m_checked.insert(id);
      return Use{final_path, std::move(*lock)};
    }
    discard(id);
  }
  if (auto made = make(keys, id, *now, verify); !made) return std::unexpected(made.error());
  lock->touch();  // made (again) now: its last use starts here
  m_checked.insert(id);
  m_listings[id] = *now;
  return Use{final_path, std::move(*lock)};
}

Result<bool> TreeCache::intact(const std::string& id, Verify verify) {
  // Re-hashing every file is what staging a fresh tree with Verify::yes
  // does: a verified use always makes the tree again.
  if (verify == Verify::yes) return false;
  int fd = ::open((m_trees + "/" + id).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = tree_stamped(fd);
  ::close(fd);
  return ok;
}

void TreeCache::discard(const std::string& id) {
  // Moved aside, not removed: a sandbox may have it mounted. prune()
  // removes it once nobody holds the tree's lock.
  std::string aside = m_trees + "/.damaged-" + id + "-" + std::to_string(::getpid()) + "-" +
                      std::to_string(++m_counter);
  if (::rename((m_trees + "/" + id).c_str(), aside.c_str()) != 0) (void)remove_tree(m_trees + "/" + id);
  m_checked.erase(id);
  m_listings.erase(id);
}

Result<void> TreeCache::make(const std::vector<std::string>& keys, const std::string& id,
                             const std::string& listed, Verify verify) {
  std::string temp = m_trees + "/.new." + std::to_string(::getpid()) + "." + std::to_string(++m_counter);
  (void)remove_tree(temp);
  auto fail = [&](const Error& e) -> Result<void> {
    (void)remove_tree(temp);
    return std::unexpected(e);
  };
  if (auto made = make_dirs(temp); !made) return fail(made.error());
  for (const auto& key : keys)
    if (auto staged = m_cache.stage(key, temp, StageMode::hardlink, verify); !staged)
      return fail(staged.error());
  int fd = ::open(temp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(make_errno_error("cannot open " + temp).error());
  bool stamped_ok = stamp_tree(fd);
  ::close(fd);
  if (!stamped_ok) return fail(make_errno_error("cannot stamp the tree " + temp).error());
  // The list first: a tree never exists without it. Nothing here is
  // synced: a tree is a cache of the blob store, and one that a crash left
  // incomplete is found by its directories' stamps (or by prune, which
  // removes trees without a readable list) and made again.
  std::string list = m_trees + "/.keys." + std::to_string(::getpid()) + "." + std::to_string(m_counter);
  if (auto written = write_file(list, listed, 0644); !written) return fail(written.error());
  if (::rename(list.c_str(), (m_trees + "/" + id + ".keys").c_str()) != 0) {
    (void)::unlink(list.c_str());
    return fail(make_errno_error("cannot write " + m_trees + "/" + id + ".keys").error());
  }
  std::string final_path = m_trees + "/" + id;
  if (::rename(temp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    (void)remove_tree(temp);
    // Another process made it first (of the same artifacts): use theirs.
    if ((err == ENOTEMPTY || err == EEXIST) && is_dir(final_path) &&
        read_file(final_path + ".keys").value_or("") == listed)
      return {};
    return make_errno_error("cannot move the tree into place at " + final_path, err);
  }
  return {};
}

Result<TreeCache::PruneReport> TreeCache::prune(bool everything, std::int64_t unused_for_s) {
  PruneReport report;
  if (!is_dir(m_trees)) return report;
  auto all = m_cache.list();
  if (!all) return std::unexpected(all.error());
  std::set<std::string> keys;
  for (const auto& info : *all) keys.insert(info.key);
  // Trees a kept failed sandbox names (its spec lists its lower layers).
  std::set<std::string> referenced;
  std::string failed = m_cache.root() + "/failed";
  if (DIR* dir = ::opendir(failed.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      auto spec = read_file(failed + "/" + std::string(name) + "/sandbox.spec");
      if (!spec) continue;
      for (std::size_t at = spec->find("/trees/"); at != std::string::npos;
           at = spec->find("/trees/", at + 1))
        referenced.insert(spec->substr(at + 7, k_id_length));
    }
    ::closedir(dir);
  }
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(m_trees.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(dir);
  }
  auto remove_if_unused = [&](const std::string& id, const std::string& path) {
    auto lock = FileLock::acquire(m_cache.root() + "/locks/tree-" + id, FileLock::Kind::exclusive,
                                  FileLock::Wait::try_once);
    if (!lock || !lock->locked()) {
      ++report.kept_in_use;
      return false;
    }
    return remove_tree(path).has_value();
  };
  for (const auto& name : names) {
    std::string path = m_trees + "/" + name;
    if (name.starts_with(".new.") || name.starts_with(".keys.")) {
      int pid = 0;
      std::string_view digits = std::string_view(name).substr(name.starts_with(".new.") ? 5 : 6);
      digits = digits.substr(0, digits.find('.'));
      std::from_chars(digits.data(), digits.data() + digits.size(), pid);
      if (process_dead(pid) && remove_tree(path)) ++report.temporaries;
      continue;
    }
    if (name.starts_with(".damaged-")) {
      (void)remove_if_unused(name.substr(9, k_id_length), path);
      continue;
    }
    if (name.ends_with(".keys") || !is_dir(path)) continue;
    auto listed = read_file(path + ".keys");
    bool stale = everything || !listed;
    if (listed)
      for (const auto& line : split_lines(*listed))
        stale = stale || !keys.contains(line.substr(0, line.find(' ')));
    if (!stale && unused_for_s > 0) {
      struct stat st;
      if (::stat((m_cache.root() + "/locks/tree-" + name).c_str(), &st) == 0)
        stale = ::time(nullptr) - st.st_mtime > unused_for_s;
    }
    if (!stale) continue;
    if (referenced.contains(name)) {
      ++report.kept_in_use;
      continue;
    }
    if (remove_if_unused(name, path)) {
      (void)::unlink((path + ".keys").c_str());
      m_checked.erase(name);
      m_listings.erase(name);
      ++report.removed;
    }
  }
  return report;
}

Result<TreeCache::CheckReport> TreeCache::check_all() {
  CheckReport report;
  if (!is_dir(m_trees)) return report;
  std::vector<std::string> ids;
  if (DIR* dir = ::opendir(m_trees.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name.size() == k_id_length && is_dir(m_trees + "/" + name)) ids.push_back(name);
    }
    ::closedir(dir);
  }
  for (const auto& id : ids) {
    ++report.trees;
    auto lock = FileLock::acquire(m_cache.root() + "/locks/tree-" + id, FileLock::Kind::shared,
                                  FileLock::Wait::block);
    if (!lock) return std::unexpected(lock.error());
    auto listed = read_file(m_trees + "/" + id + ".keys");
    bool damaged = !listed;
    // What the tree must hold: the manifests applied in order.
    struct Expect {
      ManifestEntry::Type type;
      std::string what;  // digest or link target
    };
    std::map<std::string, Expect> expected;
    if (listed) {
      for (const auto& line : split_lines(*listed)) {
        std::string key = line.substr(0, line.find(' '));
        auto info = m_cache.lookup(key);
        if (!info || !*info || line != key + " " + (*info)->manifest_digest) {
          damaged = true;  // its artifact is gone or was published again
          break;
        }
        auto manifest = m_cache.manifest(key);
        if (!manifest) {
          damaged = true;  // its artifact is gone or damaged: not trustworthy
          break;
        }
        for (const auto& e : manifest->entries) {
          auto it = expected.find(e.path);
          bool was_dir = it != expected.end() && it->second.type == ManifestEntry::Type::directory;
          if (was_dir && e.type != ManifestEntry::Type::directory) {
            // A non-directory replaces a directory and all it held.
            auto end = expected.lower_bound(e.path + "0");  // '/' + 1
            expected.erase(expected.lower_bound(e.path + "/"), end);
          }
          if (e.type == ManifestEntry::Type::hardlink) {
            auto first = expected.find(e.target);
            expected[e.path] = first != expected.end() ? first->second
                                                       : Expect{ManifestEntry::Type::file, {}};
          } else {
            expected[e.path] = {e.type, e.type == ManifestEntry::Type::file ? e.digest : e.target};
          }
        }
      }
    }
    if (!damaged) {
      int fd = ::open((m_trees + "/" + id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      damaged = fd < 0 || !tree_stamped(fd);
      if (fd >= 0) ::close(fd);
    }
    if (!damaged) {
      // Every expected entry present with its type and content; nothing else.
      std::size_t seen = 0;
      for (const auto& [path, want] : expected) {
        std::string full = m_trees + "/" + id + "/" + path;
        struct stat st;
        if (::lstat(full.c_str(), &st) != 0) {
          damaged = true;
          break;
        }
        ++seen;
        if (want.type == ManifestEntry::Type::directory) {
          damaged = !S_ISDIR(st.st_mode);
        } else if (want.type == ManifestEntry::Type::symlink) {
          char target[4096];
          ssize_t n = ::readlink(full.c_str(), target, sizeof target);
          damaged = n < 0 || std::string_view(target, static_cast<std::size_t>(n)) != want.what;
        } else {
          damaged = !S_ISREG(st.st_mode) ||
                    (!want.what.empty() && sha256_file(full).value_or("") != want.what);
        }
        if (damaged) break;
      }
      if (!damaged) {
        std::size_t entries = 0;
        struct Count {
          static std::size_t in(const std::string& dir) {
            std::size_t n = 0;
            DIR* d = ::opendir(dir.c_str());
            if (d == nullptr) return 0;
            while (dirent* e = ::readdir(d)) {
              std::string_view name = e->d_name;
              if (name == "." || name == "..") continue;
              ++n;
              std::string sub = dir + "/" + std::string(name);
              struct stat st;
              if (::lstat(sub.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) n += in(sub);
            }
            ::closedir(d);
            return n;
          }
        };
        entries = Count::in(m_trees + "/" + id);
        damaged = entries != seen;
      }
    }
    if (damaged) {
      report.damaged.push_back(id);
      lock = FileLock();  // discard() may be followed by prune's exclusive lock
      discard(id);
      (void)::unlink((m_trees + "/" + id + ".keys").c_str());
    }
  }
  return report;
}

}  // namespace gang
