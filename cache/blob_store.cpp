#include "cache/blob_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "cache/system.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

constexpr std::size_t k_buffer_size = std::size_t{1} << 20;

// The buffer of a blob being stored (put_stream, take_file). Its bytes stay
// in use while deduplication re-hashes an existing blob, which reads through
// hash_buffer() instead.
char* io_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[k_buffer_size]);
  return buffer.get();
}

char* hash_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[k_buffer_size]);
  return buffer.get();
}

std::unexpected<Error> write_error(const std::string& where, int err) {
  if (err == ENOSPC || err == EDQUOT)
    return make_errno_error("the cache is full: cannot write to " + where, err);
  return make_errno_error("cannot write to " + where, err);
}

Result<void> write_all(FileSystem& fs, int fd, const char* data, std::size_t size,
                       const std::string& where) {
  while (size > 0) {
    ssize_t n = fs.write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return write_error(where, errno);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}

bool is_hex_digest(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

Result<BlobStore> BlobStore::open(const std::string& root, TempFiles temp_files,
                                  std::shared_ptr<FileSystem> fs) {
  BlobStore store;
  store.m_fs = fs ? std::move(fs) : real_file_system();
  store.m_objects = root + "/objects";
  store.m_incoming = root + "/incoming";
  store.m_writers->temp_files = temp_files;
  store.m_start_time = read_process_start_time(static_cast<int>(::getpid())).value_or(0);
  if (!path_exists(store.m_objects + "/ff")) {
    for (int i = 0; i < 256; ++i) {
      char sub[8];
      std::snprintf(sub, sizeof sub, "/%02x", i);
      auto made = make_dirs(store.m_objects + sub);
      if (!made) return std::unexpected(made.error());
    }
  }
  auto made = make_dirs(store.m_incoming);
  if (!made) return std::unexpected(made.error());
  store.m_objects_fd = ::open(store.m_objects.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store.m_objects_fd < 0) return make_errno_error("cannot open " + store.m_objects);
  return store;
}

BlobStore::BlobStore(BlobStore&& other) noexcept
    : m_objects(std::move(other.m_objects)),
      m_incoming(std::move(other.m_incoming)),
      m_objects_fd(other.m_objects_fd),
      m_start_time(other.m_start_time),
      m_fs(std::move(other.m_fs)),
      m_writers(std::move(other.m_writers)) {
  other.m_objects_fd = -1;
}

BlobStore& BlobStore::operator=(BlobStore&& other) noexcept {
  if (this != &other) {
    if (m_objects_fd >= 0) ::close(m_objects_fd);
    m_objects = std::move(other.m_objects);
    m_incoming = std::move(other.m_incoming);
    m_objects_fd = other.m_objects_fd;
    m_start_time = other.m_start_time;
    m_fs = std::move(other.m_fs);
    m_writers = std::move(other.m_writers);
    other.m_objects_fd = -1;
  }
  return *this;
}

BlobStore::~BlobStore() {
  if (m_objects_fd >= 0) ::close(m_objects_fd);
}

std::string BlobStore::path(const BlobId& id) const {
  std::string out;
  out.reserve(m_objects.size() + 72);
  out.append(m_objects).append("/").append(id.digest, 0, 2).append("/").append(id.name());
  return out;
}

bool BlobStore::contains(const BlobId& id) const {
  struct stat st;
  return ::stat(path(id).c_str(), &st) == 0;
}

bool has_blob_stamp(const struct ::stat& st) {
  return st.st_mtim.tv_sec == k_blob_mtime && st.st_mtim.tv_nsec == 0;
}

namespace {

// Sets fd's mtime to the blob stamp (the atime is left alone).
int stamp_fd(int fd) {
  struct timespec times[2] = {{0, UTIME_OMIT}, {k_blob_mtime, 0}};
  return ::futimens(fd, times);
}

}  // namespace

Result<bool> BlobStore::recheck_unstamped(const BlobId& id) const {
  auto intact = check(id);
  if (!intact || !*intact) return intact;
  struct timespec times[2] = {{0, UTIME_OMIT}, {k_blob_mtime, 0}};
  (void)::utimensat(AT_FDCWD, path(id).c_str(), times, 0);  // another owner's: re-hash next time
  return true;
}

bool BlobStore::contains_intact(const BlobId& id, std::uint64_t size) {
  std::string p = path(id);
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return false;
  if (static_cast<std::uint64_t>(st.st_size) == size) {
    if (has_blob_stamp(st)) return true;
    // Written since it was stored (or stored by an older gang): trust it
    // only after re-hashing; keep it if it is good (others may be staging it).
    // An unreadable blob (EIO...) is not known to be damaged: it stays, and
    // the caller's copy then loses the race to it (EEXIST).
    auto intact = recheck_unstamped(id);
    if (!intact) return false;
    if (*intact) return true;
  }
  // A blob's name is the hash of its bytes, so a wrong size or hash is
  // verified damage (a torn write, a truncation, an edit): make way for the
  // good copy.
  (void)::unlink(p.c_str());
  return false;
}

Result<int> BlobStore::create_temp(bool executable, std::string& temp_name) {
  mode_t mode = executable ? 0555 : 0444;
  TempFiles temp_files;
  {
    std::lock_guard lock(m_writers->mutex);
    temp_files = m_writers->temp_files;
  }
  if (temp_files == TempFiles::anonymous) {
    int fd = ::openat(m_objects_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    if (fd >= 0) {
      temp_name.clear();
      return fd;
    }
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
      return write_error(m_objects, errno);
  }
  std::uint64_t n;
  {
    std::lock_guard lock(m_writers->mutex);
    if (temp_files == TempFiles::anonymous) m_writers->temp_files = TempFiles::named;  // no O_TMPFILE here
    n = m_writers->counter++;
  }
  temp_name = m_incoming + "/" + std::to_string(::getpid()) + "." + std::to_string(m_start_time) +
              "." + std::to_string(n);
  int fd = ::open(temp_name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) return write_error(temp_name, errno);
  return fd;
}

Result<void> BlobStore::link_temp(int fd, const std::string& temp_name, const BlobId& id) {
  std::string final_path = path(id);
  // Durable before visible: the name must never point at bytes a power loss
  // could tear. Stamped first, so that the stamp is durable too.
  if (stamp_fd(fd) != 0 || m_fs->fsync(fd) != 0) {
    int err = errno;
    if (!temp_name.empty()) ::unlink(temp_name.c_str());
    return write_error(final_path, err);
  }
  int rc;
  if (temp_name.empty()) {
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    rc = m_fs->linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, final_path.c_str(), AT_SYMLINK_FOLLOW);
  } else {
    rc = m_fs->linkat(AT_FDCWD, temp_name.c_str(), AT_FDCWD, final_path.c_str(), 0);
  }
  int err = errno;
  if (!temp_name.empty()) ::unlink(temp_name.c_str());
  if (rc != 0 && err != EEXIST) return write_error(final_path, err);
  // EEXIST: another writer published the same bytes first, and syncs them.
  if (rc == 0) {
    std::lock_guard lock(m_writers->mutex);
    m_writers->unsynced.push_back(std::move(final_path));
  }
  return {};
}

// Hashes and stores either the contents of src_fd (when >= 0) or `bytes`.
// Small inputs are hashed before anything is written, so that a blob already
// present costs no write; large ones are hashed while being copied.
Result<std::string> BlobStore::put_stream(int src_fd, std::string_view bytes, bool executable,
                                          const std::string& what) {
  Sha256 hasher;
  char* buffer = io_buffer();
  std::size_t first = 0;  // bytes read into buffer before deciding
  bool eof = src_fd < 0;
  if (src_fd >= 0) {
    while (first < k_buffer_size) {
      ssize_t n = ::read(src_fd, buffer + first, k_buffer_size - first);
      if (n < 0) {
        if (errno == EINTR) continue;
        return make_errno_error("cannot read " + what);
      }
      if (n == 0) {
        eof = true;
        break;
      }
      first += static_cast<std::size_t>(n);
    }
    bytes = std::string_view(buffer, first);
  }
  hasher.update(bytes.data(), bytes.size());
  if (eof) {
    BlobId id{hasher.hex_digest(), executable};
    if (contains_intact(id, bytes.size())) return id.digest;
    std::string temp_name;
    auto fd = create_temp(executable, temp_name);
    if (!fd) return std::unexpected(fd.error());
    auto written = write_all(*m_fs, *fd, bytes.data(), bytes.size(), m_objects);
    if (!written) {
      ::close(*fd);
      if (!temp_name.empty()) ::unlink(temp_name.c_str());
      return std::unexpected(written.error());
    }
    auto linked = link_temp(*fd, temp_name, id);
    ::close(*fd);
    if (!linked) return std::unexpected(linked.error());
    return id.digest;
  }
  // Large file: copy while hashing.
  std::uint64_t total = bytes.size();
  std::string temp_name;
  auto fd = create_temp(executable, temp_name);
  if (!fd) return std::unexpected(fd.error());
  auto fail = [&](std::unexpected<Error> e) -> std::unexpected<Error> {
    ::close(*fd);
    if (!temp_name.empty()) ::unlink(temp_name.c_str());
    return e;
  };
  auto written = write_all(*m_fs, *fd, bytes.data(), bytes.size(), m_objects);
  if (!written) return fail(std::unexpected(written.error()));
  for (;;) {
    ssize_t n = ::read(src_fd, buffer, k_buffer_size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(make_errno_error("cannot read " + what));
    }
    if (n == 0) break;
    hasher.update(buffer, static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
    written = write_all(*m_fs, *fd, buffer, static_cast<std::size_t>(n), m_objects);
    if (!written) return fail(std::unexpected(written.error()));
  }
  BlobId id{hasher.hex_digest(), executable};
  if (contains_intact(id, total)) {
    ::close(*fd);
    if (!temp_name.empty()) ::unlink(temp_name.c_str());
    return id.digest;
  }
  auto linked = link_temp(*fd, temp_name, id);
  ::close(*fd);
  if (!linked) return std::unexpected(linked.error());
  return id.digest;
}

Result<std::string> BlobStore::put_file(int dirfd, const char* name, std::uint64_t,
                                        bool executable) {
  int fd = ::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_errno_error(std::string("cannot open ") + name);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    return make_errno_error(std::string("cannot stat ") + name, saved);
  }
  Result<std::string> result;
  std::size_t size = static_cast<std::size_t>(st.st_size);
  void* map = size >= k_buffer_size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  if (map != MAP_FAILED) {
    // Big file: hash and write straight from the page cache, one copy fewer.
    ::madvise(map, size, MADV_SEQUENTIAL);
    result = put_mapped(std::string_view(static_cast<const char*>(map), size), executable);
    ::munmap(map, size);
  } else {
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    result = put_stream(fd, {}, executable, name);
  }
  ::close(fd);
  return result;
}

Result<std::string> BlobStore::put_mapped(std::string_view bytes, bool executable) {
  std::string temp_name;
  auto fd = create_temp(executable, temp_name);
  if (!fd) return std::unexpected(fd.error());
  Sha256 hasher;
  for (std::size_t done = 0; done < bytes.size();) {
    std::size_t n = std::min(k_buffer_size, bytes.size() - done);
    hasher.update(bytes.data() + done, n);
    auto written = write_all(*m_fs, *fd, bytes.data() + done, n, m_objects);
    if (!written) {
      ::close(*fd);
      if (!temp_name.empty()) ::unlink(temp_name.c_str());
      return std::unexpected(written.error());
    }
    done += n;
  }
  BlobId id{hasher.hex_digest(), executable};
  Result<void> linked;
  if (!contains_intact(id, bytes.size())) linked = link_temp(*fd, temp_name, id);
  else if (!temp_name.empty()) ::unlink(temp_name.c_str());
  ::close(*fd);
  if (!linked) return std::unexpected(linked.error());
  return id.digest;
}

Result<void> BlobStore::write_blob(std::string_view bytes, const BlobId& id) {
  std::string temp_name;
  auto fd = create_temp(id.executable, temp_name);
  if (!fd) return std::unexpected(fd.error());
  auto written = write_all(*m_fs, *fd, bytes.data(), bytes.size(), m_objects);
  if (!written) {
    ::close(*fd);
    if (!temp_name.empty()) ::unlink(temp_name.c_str());
    return written;
  }
  auto linked = link_temp(*fd, temp_name, id);
  ::close(*fd);
  return linked;
}

// Links the inode open as fd (found as `name` in dirfd) into place as id:
// true if it is in place (or an identical blob won the race), false if this
// file cannot be linked there (another file system, link limits).
Result<bool> BlobStore::link_inode(int fd, int dirfd, const char* name, const BlobId& id) {
  std::string rel;
  rel.reserve(72);
  rel.append(id.digest, 0, 2).append("/").append(id.name());
  // Through /proc, so that exactly the inode we hashed is linked, even if
  // somebody renamed another file to `name` meanwhile.
  char proc[32];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int rc = m_fs->linkat(AT_FDCWD, proc, m_objects_fd, rel.c_str(), AT_SYMLINK_FOLLOW);
  if (rc != 0 && errno == ENOENT && !path_exists("/proc/self/fd"))
    rc = m_fs->linkat(dirfd, name, m_objects_fd, rel.c_str(), 0);
  if (rc != 0) {
    int err = errno;
    if (err == EEXIST) return true;  // the same bytes, published by another writer
    if (err == EXDEV || err == EMLINK || err == EPERM || err == ENOTSUP) return false;
    return write_error(path(id), err);
  }
  std::lock_guard lock(m_writers->mutex);
  m_writers->unsynced.push_back(path(id));
  return true;
}

Result<std::string> BlobStore::take_file(int dirfd, const char* name, bool executable,
                                         std::uint64_t links_owned) {
  int fd = ::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_errno_error(std::string("cannot open ") + name);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return make_errno_error(std::string("cannot stat ") + name);
  if (!S_ISREG(st.st_mode)) return make_error(std::string(name) + " is not a regular file");
  // Only a file nobody else can reach, whose blob would be exactly what a
  // copy makes: our own, no set-id bits, no file capabilities.
  bool takeable = (st.st_mode & (S_ISUID | S_ISGID)) == 0 && st.st_uid == ::geteuid() &&
                  static_cast<std::uint64_t>(st.st_nlink) <= links_owned &&
                  ::fgetxattr(fd, "security.capability", nullptr, 0) < 0;

  std::size_t size = static_cast<std::size_t>(st.st_size);
  std::string_view bytes;
  struct Unmap {
    void* map = MAP_FAILED;
    std::size_t size = 0;
    ~Unmap() {
      if (map != MAP_FAILED) ::munmap(map, size);
    }
  } mapping;
  if (size >= k_buffer_size) {
    mapping.map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping.map == MAP_FAILED) return put_file(dirfd, name, size, executable);
    mapping.size = size;
    ::madvise(mapping.map, size, MADV_SEQUENTIAL);
    bytes = std::string_view(static_cast<const char*>(mapping.map), size);
  } else {
    char* buffer = io_buffer();
    std::size_t got = 0;
    for (;;) {
      ssize_t n = ::read(fd, buffer + got, k_buffer_size - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        return make_errno_error(std::string("cannot read ") + name);
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
      if (got == k_buffer_size) return put_file(dirfd, name, size, executable);  // it grew
    }
    bytes = std::string_view(buffer, got);
  }
  Sha256 hasher;
  hasher.update(bytes.data(), bytes.size());
  BlobId id{hasher.hex_digest(), executable};
  if (contains_intact(id, bytes.size())) return id.digest;
  if (takeable) {
    // Read-only and durable before it becomes visible as a blob.
    if (::fchmod(fd, executable ? 0555 : 0444) != 0)
      return make_errno_error(std::string("cannot chmod ") + name);
    if (stamp_fd(fd) != 0) return make_errno_error(std::string("cannot set the time of ") + name);
    if (m_fs->fsync(fd) != 0) return write_error(path(id), errno);
    auto linked = link_inode(fd, dirfd, name, id);
    if (!linked) return std::unexpected(linked.error());
    if (*linked) return id.digest;
    // Cannot link it: copy, as if never touched.
    (void)::fchmod(fd, st.st_mode & 07777);
    struct timespec times[2] = {{0, UTIME_OMIT}, st.st_mtim};
    (void)::futimens(fd, times);
  }
  auto written = write_blob(bytes, id);
  if (!written) return std::unexpected(written.error());
  return id.digest;
}

Result<std::string> BlobStore::put_bytes(std::string_view bytes) {
  return put_stream(-1, bytes, false, "manifest");
}

namespace {

// Reads path whole, hashing it: nullopt if it does not exist, an error for
// any other failure (EMFILE, EIO, EACCES...: not evidence of damage).
Result<std::optional<std::pair<std::string, std::string>>> read_hashed(const std::string& path,
                                                                       bool keep_bytes) {
  using Out = std::optional<std::pair<std::string, std::string>>;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Out{};
    return make_errno_error("cannot open " + path);
  }
  Fd owned(fd);
  Sha256 hasher;
  std::string bytes;
  auto read = read_pieces(fd, path, hash_buffer(), k_buffer_size, [&](std::string_view piece) {
    hasher.update(piece.data(), piece.size());
    if (keep_bytes) bytes.append(piece);
    return true;
  });
  if (!read) return std::unexpected(read.error());
  return Out{std::pair{hasher.hex_digest(), std::move(bytes)}};
}

}  // namespace

Result<std::optional<std::string>> BlobStore::read_checked(const std::string& digest) const {
  auto read = read_hashed(path(BlobId{digest, false}), true);
  if (!read) return std::unexpected(read.error());
  if (!*read || (*read)->first != digest) return std::optional<std::string>{};
  return std::optional<std::string>(std::move((*read)->second));
}

Result<bool> BlobStore::check(const BlobId& id) const {
  auto read = read_hashed(path(id), false);
  if (!read) return std::unexpected(read.error());
  return *read && (*read)->first == id.digest;
}

Result<void> BlobStore::remove(const BlobId& id) {
  std::string p = path(id);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) return make_errno_error("cannot remove " + p);
  return {};
}

Result<void> BlobStore::for_each(
    const std::function<void(const BlobId&, std::uint64_t)>& fn) const {
  for (int i = 0; i < 256; ++i) {
    char sub[8];
    std::snprintf(sub, sizeof sub, "%02x", i);
    int dfd = ::openat(m_objects_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      if (errno == ENOENT) continue;
      return make_errno_error("cannot open " + m_objects + "/" + sub);
    }
    DIR* dir = ::fdopendir(dfd);
    if (dir == nullptr) {
      ::close(dfd);
      return make_errno_error("cannot read " + m_objects + "/" + sub);
    }
    while (struct dirent* e = ::readdir(dir)) {
      std::string_view name = e->d_name;
      BlobId id;
      if (name.size() == 66 && name.ends_with(".x")) {
        id = BlobId{std::string(name.substr(0, 64)), true};
      } else if (name.size() == 64) {
        id = BlobId{std::string(name), false};
      } else {
        continue;
      }
      if (!is_hex_digest(id.digest)) continue;
      struct stat st;
      if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      fn(id, static_cast<std::uint64_t>(st.st_blocks) * 512);
    }
    ::closedir(dir);
  }
  return {};
}

Result<void> BlobStore::sync() {
  constexpr std::size_t k_fsync_each_limit = 64;
  std::vector<std::string> paths;
  {
    std::lock_guard lock(m_writers->mutex);
    paths.swap(m_writers->unsynced);
  }
  if (paths.empty()) return {};
  if (paths.size() > k_fsync_each_limit) {
    // One flush for the lot beats thousands of fsyncs (it also flushes
    // other writers' data on this file system; that is the price).
    if (m_fs->syncfs(m_objects_fd) != 0) return write_error(m_objects, errno);
    return {};
  }
  std::vector<std::string> dirs;
  for (const auto& p : paths) {
    // The blobs' data was fsynced before they were linked; their names remain.
    std::string dir = p.substr(0, p.rfind('/'));
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  for (const auto& d : dirs) {
    int dfd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return make_errno_error("cannot open " + d);
    int rc = m_fs->fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (rc != 0) return write_error(d, err);
  }
  return {};
}

Result<std::uint64_t> BlobStore::remove_orphans(std::int64_t max_age_s) {
  DIR* dir = ::opendir(m_incoming.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return std::uint64_t{0};
    return make_errno_error("cannot read " + m_incoming);
  }
  std::uint64_t removed = 0;
  std::int64_t now = static_cast<std::int64_t>(::time(nullptr));
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    // "<pid>.<start time>.<counter>"
    int pid = 0;
    std::uint64_t start = 0;
    auto dot = name.find('.');
    auto dot2 = dot == std::string_view::npos ? dot : name.find('.', dot + 1);
    bool parsed = dot2 != std::string_view::npos &&
                  std::from_chars(name.data(), name.data() + dot, pid).ec == std::errc() &&
                  std::from_chars(name.data() + dot + 1, name.data() + dot2, start).ec == std::errc();
    std::string full = m_incoming + "/" + e->d_name;
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0) continue;
    bool writer_dead = parsed && read_process_start_time(pid) != std::optional<std::uint64_t>(start);
    bool old = now - static_cast<std::int64_t>(st.st_mtime) > max_age_s;
    if (writer_dead || old) {
      if (::unlink(full.c_str()) == 0) ++removed;
    }
  }
  ::closedir(dir);
  return removed;
}

}  // namespace gang
