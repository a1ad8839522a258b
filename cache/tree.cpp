#include "cache/tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <map>
#include <utility>

#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

// Files at least this big are hashed and copied on worker threads after the
// walk, so that a tree of a few huge files uses every core.
constexpr std::uint64_t k_parallel_min_size = std::uint64_t{1} << 20;

struct Deferred {
  std::size_t entry;  // index into manifest.entries
  std::string path;   // openable path of the source file
  std::pair<dev_t, ino_t> inode{};
};

struct Importer {
  BlobStore& blobs;
  Ownership ownership = Ownership::copy;
  const StagedCopies* copies = nullptr;
  Manifest manifest;

  // The blob of a file staged as a copy and unchanged since, if the store
  // still holds it.
  std::optional<std::string> staged_copy(const struct stat& st) {
    if (copies == nullptr) return std::nullopt;
    auto it = copies->by_inode.find({st.st_dev, st.st_ino});
    if (it == copies->by_inode.end()) return std::nullopt;
    const StagedCopies::Copy& copy = it->second;
    if (copy.size != static_cast<std::uint64_t>(st.st_size) || copy.ctime_sec != st.st_ctim.tv_sec ||
        copy.ctime_nsec != st.st_ctim.tv_nsec)
      return std::nullopt;
    if (!blobs.contains_intact(BlobId{copy.digest, (st.st_mode & 0111) != 0}, copy.size))
      return std::nullopt;
    return copy.digest;
  }

  struct Seen {
    std::string first;        // the path the manifest stores it under
    std::uint64_t links = 0;  // how many of its links are in the tree
  };
  std::map<std::pair<dev_t, ino_t>, Seen> inodes;  // multiply-linked files seen
  std::vector<Deferred> deferred;

  Result<std::string> store(int dirfd, const char* name, std::uint64_t size, bool executable,
                            std::pair<dev_t, ino_t> inode) {
    if (ownership == Ownership::copy) return blobs.put_file(dirfd, name, size, executable);
    auto it = inodes.find(inode);
    return blobs.take_file(dirfd, name, executable, it == inodes.end() ? 1 : it->second.links);
  }

  // Stores the deferred big files, on up to four threads.
  Result<void> store_deferred() {
    std::size_t threads = std::min<std::size_t>(
        {deferred.size(), std::max(1u, std::thread::hardware_concurrency()), 4});
    std::atomic<std::size_t> next{0};
    std::mutex error_mutex;
    std::optional<Error> error;
    auto work = [&] {
      for (;;) {
        std::size_t i = next++;
        if (i >= deferred.size()) return;
        {
          std::lock_guard lock(error_mutex);
          if (error) return;
        }
        ManifestEntry& entry = manifest.entries[deferred[i].entry];
        auto digest = store(AT_FDCWD, deferred[i].path.c_str(), entry.size,
                            (entry.mode & 0111) != 0, deferred[i].inode);
        if (!digest) {
          std::lock_guard lock(error_mutex);
          if (!error) {
            error = digest.error();
            error->message += " (storing " + deferred[i].path + ")";
          }
          return;
        }
        entry.digest = std::move(*digest);
      }
    };
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (error) return std::unexpected(*error);
    return {};
  }

  Result<void> walk(int dirfd, const std::string& prefix, const std::string& shown) {
    int fd = ::dup(dirfd);
    if (fd < 0) return make_errno_error("cannot read " + shown);
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      ::close(fd);
      return make_errno_error("cannot read " + shown);
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(dir)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      std::string rel = prefix.empty() ? name : prefix + "/" + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return make_errno_error("cannot stat " + shown + "/" + name);
      ManifestEntry entry;
      entry.path = rel;
      entry.mode = st.st_mode & 07777;
      if (S_ISDIR(st.st_mode)) {
        entry.type = ManifestEntry::Type::directory;
        manifest.entries.push_back(std::move(entry));
        int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) return make_errno_error("cannot open " + shown + "/" + name);
        auto walked = walk(sub, rel, shown + "/" + name);
        ::close(sub);
        if (!walked) return walked;
      } else if (S_ISREG(st.st_mode)) {
        std::pair<dev_t, ino_t> inode{st.st_dev, st.st_ino};
        if (st.st_nlink > 1) {
          auto [it, fresh] = inodes.try_emplace(inode, Seen{rel, 0});
          ++it->second.links;
          if (!fresh) {
            entry.type = ManifestEntry::Type::hardlink;
            entry.mode = 0;
            entry.target = it->second.first;
            manifest.entries.push_back(std::move(entry));
            continue;
          }
        }
        entry.type = ManifestEntry::Type::file;
        entry.size = static_cast<std::uint64_t>(st.st_size);
        if (auto known = staged_copy(st)) {
          entry.digest = std::move(*known);
          manifest.entries.push_back(std::move(entry));
          continue;
        }
        // Taking a multiply-linked file waits until the walk has counted
        // its links in the tree.
        if (entry.size >= k_parallel_min_size ||
            (ownership == Ownership::take && st.st_nlink > 1)) {
          deferred.push_back({manifest.entries.size(), shown + "/" + name, inode});
          manifest.entries.push_back(std::move(entry));
          continue;
        }
        auto digest = store(dirfd, name.c_str(), static_cast<std::uint64_t>(st.st_size),
                            (st.st_mode & 0111) != 0, inode);
        if (!digest) {
          Error e = digest.error();
          e.message += " (storing " + shown + "/" + name + ")";
          return std::unexpected(e);
        }
        entry.digest = std::move(*digest);
        manifest.entries.push_back(std::move(entry));
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
        ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
        if (n < 0) return make_errno_error("cannot read link " + shown + "/" + name);
        target.resize(static_cast<std::size_t>(n));
        entry.type = ManifestEntry::Type::symlink;
        entry.mode = 0;
        entry.target = std::move(target);
        manifest.entries.push_back(std::move(entry));
      } else {
        return make_error(shown + "/" + name +
                          ": cannot store devices, FIFOs or sockets in an artifact");
      }
    }
    return {};
  }
};

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Removes whatever is at path (a file, link or whole directory).
Result<void> clear(const std::string& path) {
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return {};
  if (errno == EISDIR || errno == EPERM) return remove_tree(path);
  return make_errno_error("cannot replace " + path);
}

Result<void> copy_file(const std::string& from, const std::string& to, std::uint32_t mode,
                       struct stat* written = nullptr) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return make_errno_error("cannot open " + from);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0 && errno == EEXIST) {
    auto cleared = clear(to);
    if (!cleared) {
      ::close(in);
      return cleared;
    }
    out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (out < 0) {
    int saved = errno;
    ::close(in);
    return make_errno_error("cannot create " + to, saved);
  }
  auto fail = [&](const std::string& what) {
    int saved = errno;
    ::close(in);
    ::close(out);
    return make_errno_error(what, saved);
  };
  bool fallback = false;
  for (;;) {
    ssize_t n = fallback ? 0 : ::copy_file_range(in, nullptr, out, nullptr, std::size_t{1} << 30, 0);
    if (!fallback && n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      fallback = true;
    }
    if (fallback) {
      char buffer[1 << 16];
      n = ::read(in, buffer, sizeof buffer);
      if (n < 0) return fail("cannot read " + from);
      if (n == 0) break;
      for (ssize_t done = 0; done < n;) {
        ssize_t w = ::write(out, buffer + done, static_cast<std::size_t>(n - done));
        if (w < 0) return fail("cannot write " + to);
        done += w;
      }
      continue;
    }
    if (n < 0) return fail("cannot copy " + from + " to " + to);
    if (n == 0) break;
  }
  if (::fchmod(out, static_cast<mode_t>(mode)) != 0) return fail("cannot chmod " + to);
  if (written != nullptr && ::fstat(out, written) != 0) return fail("cannot stat " + to);
  ::close(in);
  if (::close(out) != 0) return make_errno_error("cannot write " + to);
  return {};
}

// Hard-links from to `to`, replacing what is there; returns 0 or an errno.
int link_or_replace(const std::string& from, const std::string& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return 0;
  if (errno != EEXIST) return errno;
  if (!clear(to)) return errno != 0 ? errno : EIO;
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  return 0;
}

}  // namespace

Result<Manifest> import_tree(const std::string& dir, BlobStore& blobs, Ownership ownership,
                             const StagedCopies* copies) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot open artifact directory " + dir);
  Importer importer{blobs, ownership, copies, {}, {}, {}};
  auto walked = importer.walk(fd, "", dir);
  ::close(fd);
  if (!walked) return std::unexpected(walked.error());
  auto stored = importer.store_deferred();
  if (!stored) return std::unexpected(stored.error());
  return std::move(importer.manifest);
}

Result<void> stage_tree(const Manifest& manifest, const BlobStore& blobs, const std::string& dest,
                        StageMode mode, Verify verify, std::vector<BlobId>* bad_blobs,
                        StagedCopies* copies) {
  auto made = make_dirs(dest);
  if (!made) return made;
  std::vector<std::pair<std::string, std::uint32_t>> dir_modes;
  bool cross_device = false;
  std::string to;
  for (const auto& e : manifest.entries) {
    to.assign(dest).append("/").append(e.path);
    switch (e.type) {
      case ManifestEntry::Type::directory: {
        if (::mkdir(to.c_str(), 0755) != 0) {
          if (errno != EEXIST) return make_errno_error("cannot create directory " + to);
          if (!is_dir(to)) {
            auto cleared = clear(to);
            if (!cleared) return cleared;
            if (::mkdir(to.c_str(), 0755) != 0) return make_errno_error("cannot create directory " + to);
          }
        }
        // Every directory gets the manifest's mode: a new one whatever the
        // umask made of 0755, an existing one (an earlier manifest staged
        // into `dest`) as the files do, the last manifest staged wins.
        dir_modes.emplace_back(to, e.mode);
        break;
      }
      case ManifestEntry::Type::file: {
        BlobId id{e.digest, (e.mode & 0111) != 0};
        std::string from = blobs.path(id);
        if (verify == Verify::yes) {
          auto intact = blobs.check(id);
          if (!intact) return std::unexpected(intact.error());  // not damage: no drop
          if (!*intact) {
            if (bad_blobs != nullptr) bad_blobs->push_back(id);
            return make_error("blob " + id.name() + " for " + e.path + " is missing or corrupt");
          }
        }
        // One stat on every stage: a blob whose size is not the recorded one
        // is damaged (truncated, torn or overwritten), never staged; one
        // without the blob stamp was written since it was stored (an edit
        // of the same size) and is re-hashed before it is used.
        struct stat st;
        if (::stat(from.c_str(), &st) == 0) {
          if (static_cast<std::uint64_t>(st.st_size) != e.size) {
            if (bad_blobs != nullptr) bad_blobs->push_back(id);
            return make_error("blob " + id.name() + " for " + e.path + " is corrupt (" +
                              std::to_string(st.st_size) + " bytes, recorded " +
                              std::to_string(e.size) + ")");
          }
          if (verify == Verify::no && !has_blob_stamp(st)) {
            auto intact = blobs.recheck_unstamped(id);
            if (!intact) return std::unexpected(intact.error());  // not damage: no drop
            if (!*intact) {
              if (bad_blobs != nullptr) bad_blobs->push_back(id);
              return make_error("blob " + id.name() + " for " + e.path +
                                " was changed since it was stored (hash mismatch)");
            }
          }
        }
        bool copy = mode == StageMode::copy || cross_device || (e.mode & 07000) != 0;
        Result<void> done;
        if (!copy) {
          int err = link_or_replace(from, to);
          if (err == EXDEV) {
            cross_device = true;
            copy = true;
          } else if (err != 0) {
            done = make_errno_error("cannot link " + to, err);
          }
        }
        if (copy) {
          struct stat written {};
          done = copy_file(from, to, e.mode, copies != nullptr ? &written : nullptr);
          if (done && copies != nullptr)
            copies->by_inode[{written.st_dev, written.st_ino}] = {
                e.digest, static_cast<std::uint64_t>(written.st_size), written.st_ctim.tv_sec,
                written.st_ctim.tv_nsec};
        }
        if (!done) {
          if (!path_exists(from)) {
            if (bad_blobs != nullptr) bad_blobs->push_back(id);
            return make_error("blob " + id.name() + " for " + e.path + " is missing");
          }
          return done;
        }
        break;
      }
      case ManifestEntry::Type::symlink: {
        if (::symlink(e.target.c_str(), to.c_str()) != 0) {
          if (errno != EEXIST) return make_errno_error("cannot create symlink " + to);
          auto cleared = clear(to);
          if (!cleared) return cleared;
          if (::symlink(e.target.c_str(), to.c_str()) != 0)
            return make_errno_error("cannot create symlink " + to);
        }
        break;
      }
      case ManifestEntry::Type::hardlink: {
        int err = link_or_replace(dest + "/" + e.target, to);
        if (err != 0) return make_errno_error("cannot link " + to, err);
        break;
      }
    }
  }
  for (auto it = dir_modes.rbegin(); it != dir_modes.rend(); ++it)
    if (::chmod(it->first.c_str(), it->second) != 0)
      return make_errno_error("cannot chmod " + it->first);
  return {};
}

}  // namespace gang
