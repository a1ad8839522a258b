// ArtifactCache::copy_to: a cheap copy of a cache, for runs that must start
// from the same state (`gang build --cache-from`). Immutable files are hard
// links: the blobs (read-only, never written in place, every write path
// makes a new file and renames it) and the git mirrors' object files and
// packs. Everything else a writer could change in place is copied: the LMDB
// index (as a consistent snapshot, mdb_env_copy2), and the mirrors' refs and
// config. The original is left byte for byte as it was.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "cache/artifact_cache.hpp"
#include "cache/file_lock.hpp"
#include "cache/index_names.hpp"
#include "cache/lmdb.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

namespace fs = std::filesystem;

// Copies the regular file from -> to with its mode and times (a blob's
// fixed mtime is its stamp).
Result<void> copy_regular(const std::string& from, const std::string& to, const struct stat& st) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::none, ec);
  if (ec) return make_error("cannot copy " + from + " to " + to + ": " + ec.message());
  if (::chmod(to.c_str(), st.st_mode & 07777) != 0) return make_errno_error("cannot chmod " + to);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, to.c_str(), times, 0) != 0) return make_errno_error("cannot stamp " + to);
  return {};
}

// Mirrors `from` into `to`: directories made, symlinks recreated, regular
// files hard-linked where link_file(relative path) says so (copied where the
// file systems differ), else copied.
template <typename LinkPolicy>
Result<void> mirror_tree(const std::string& from, const std::string& to, LinkPolicy link_file,
                         CacheCopyReport& report) {
  if (!path_exists(from)) return {};
  if (auto made = make_dirs(to, 0700); !made) return made;
  std::error_code ec;
  fs::recursive_directory_iterator it(from, fs::directory_options::none, ec);
  if (ec) return make_error("cannot read " + from + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return make_error("cannot read " + from + ": " + ec.message());
    const std::string source = it->path().string();
    const std::string relative = source.substr(from.size() + 1);
    const std::string dest = to + "/" + relative;
    struct stat st;
    if (::lstat(source.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // a temporary that went meanwhile
      return make_errno_error("cannot stat " + source);
    }
    if (S_ISDIR(st.st_mode)) {
      if (auto made = make_dirs(dest, st.st_mode & 07777); !made) return made;
    } else if (S_ISLNK(st.st_mode)) {
      std::string target = fs::read_symlink(source, ec).string();
      if (ec || ::symlink(target.c_str(), dest.c_str()) != 0)
        return make_errno_error("cannot copy the symlink " + source);
    } else if (S_ISREG(st.st_mode)) {
      if (link_file(relative) && ::link(source.c_str(), dest.c_str()) == 0) {
        ++report.files_linked;
        continue;
      }
      if (errno == ENOENT) continue;
      if (auto copied = copy_regular(source, dest, st); !copied) return copied;
      ++report.files_copied;
      report.bytes_copied += static_cast<std::uint64_t>(st.st_size);
    }
  }
  return {};
}

bool is_git_object_file(const std::string& relative) {
  // gits/<mirror>/objects/...: loose objects and packs, never rewritten.
  return relative.find("/objects/") != std::string::npos;
}

}  // namespace

Result<CacheCopyReport> ArtifactCache::copy_to(const std::string& dest) {
  std::error_code ec;
  if (fs::exists(dest, ec) && !fs::is_empty(dest, ec))
    return make_error("cannot copy the cache into " + dest + ": it exists and is not empty");
  if (auto made = make_dirs(dest, 0700); !made) return pass(made);
  if (::chmod(dest.c_str(), 0700) != 0) return make_errno_error("cannot make " + dest + " private");
  const std::string& from = root();
  // Shared with publishers, exclusive with gc: every blob the index
  // snapshot names exists until the links are made.
  auto gc_lock = FileLock::acquire(from + "/locks/gc.lock", FileLock::Kind::shared, FileLock::Wait::block);
  if (!gc_lock) return pass(gc_lock);
  CacheCopyReport report;
  if (auto made = make_dirs(dest + "/index", 0700); !made) return pass(made);
  if (auto copied = index_env().copy_to(dest + "/index"); !copied) return pass(copied);
  if (auto linked = mirror_tree(from + "/objects", dest + "/objects",
                                [](const std::string&) { return true; },
                                report);
      !linked)
    return pass(linked);
  if (auto mirrored = mirror_tree(from + "/gits", dest + "/gits", is_git_object_file, report); !mirrored)
    return pass(mirrored);
  // Claims belong to the processes of the original: the copy starts with none.
  {
    LmdbEnv::Options options;
    options.databases.assign(std::begin(index_names::all), std::end(index_names::all));
    auto env = LmdbEnv::open(dest + "/index", options);
    if (!env) return pass(env);
    auto cleared = (*env)->write([&](LmdbTxn& txn) -> Result<void> {
      std::vector<std::string> keys;
      auto listed = txn.for_each(index_names::claims, [&](std::string_view key, std::string_view) {
        keys.emplace_back(key);
        return true;
      });
      if (!listed) return listed;
      for (const auto& key : keys) {
        auto gone = txn.del(index_names::claims, key);
        if (!gone) return pass(gone);
      }
      report.claims_dropped = keys.size();
      return {};
    });
    if (!cleared) return pass(cleared);
    auto listed = (*env)->read([&](LmdbTxn& txn) {
      return txn.for_each(index_names::artifacts, [&](std::string_view, std::string_view) {
        ++report.artifacts;
        return true;
      });
    });
    if (!listed) return pass(listed);
  }
  return report;
}

}  // namespace gang
