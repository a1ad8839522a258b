#include "util/fs.hpp"

#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace gang {

// Reads `fd` to its end and closes it. Past `max_size` bytes it fails with
// the message k_too_big (a file that grew while it was read).
constexpr const char* k_too_big = "too big";
static Result<std::string> read_all_and_close(int fd, const std::string& path,
                                              std::size_t max_size) {
  Fd owned(fd);
  std::string out;
  char buffer[1 << 16];
  auto read = read_pieces(fd, path, buffer, sizeof buffer, [&](std::string_view piece) {
    out.append(piece);
    return out.size() <= max_size;
  });
  if (!read) return std::unexpected(read.error());
  if (out.size() > max_size) return make_error(k_too_big);
  return out;
}

Result<void> read_pieces(int fd, const std::string& path, char* buffer, std::size_t size,
                         const std::function<bool(std::string_view)>& piece) {
  for (;;) {
    ssize_t n = ::read(fd, buffer, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_errno_error("cannot read " + path);
    }
    if (n == 0 || !piece(std::string_view(buffer, static_cast<std::size_t>(n)))) return {};
  }
}

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot open " + path);
  return read_all_and_close(fd, path, std::numeric_limits<std::size_t>::max());
}

Result<std::string> read_regular_file(const std::string& path, std::size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return make_errno_error("cannot open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    return make_errno_error("cannot stat " + path, saved);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return make_error(path + ": not a regular file (" + what + "), refused");
  }
  auto too_big = [&] {
    return make_error(path + ": larger than " + std::to_string(max_size) + " bytes, refused");
  };
  if (static_cast<std::size_t>(st.st_size) > max_size) {
    ::close(fd);
    return too_big();
  }
  auto read = read_all_and_close(fd, path, max_size);
  if (!read && read.error().message == k_too_big) return too_big();
  return read;
}

static std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool write_all(int fd, std::string_view contents) {
  const char* data = contents.data();
  std::size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

Result<void> write_file_atomic(const std::string& path, const std::string& contents, int mode) {
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot create a temporary file beside " + path);
  auto fail = [&](const std::string& what) {
    int saved = errno;
    ::close(fd);
    ::unlink(name.data());
    return make_errno_error(what + " " + path, saved);
  };
  if (!write_all(fd, contents)) return fail("cannot write");
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return fail("cannot chmod");
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(name.data());
    return make_errno_error("cannot close " + path, saved);
  }
  if (::rename(name.data(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(name.data());
    return make_errno_error("cannot rename into " + path, saved);
  }
  return fsync_dir(parent_of(path));
}

Result<void> write_file(const std::string& path, const std::string& contents, int mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return make_errno_error("cannot create " + path);
  if (!write_all(fd, contents)) {
    int saved = errno;
    ::close(fd);
    return make_errno_error("cannot write " + path, saved);
  }
  if (::close(fd) != 0) return make_errno_error("cannot close " + path);
  return {};
}

Result<void> make_dirs(const std::string& path, int mode) {
  if (path.empty()) return {};
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    return make_error(path + " exists and is not a directory");
  }
  std::string parent = parent_of(path);
  if (parent != path && parent != "." && parent != "/") {
    auto made = make_dirs(parent, mode);
    if (!made) return made;
  }
  if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST)
    return make_errno_error("cannot create directory " + path);
  return {};
}

Result<std::vector<DirEntry>> read_dir(int dirfd) {
  int copy = ::dup(dirfd);  // (closedir closes its fd)
  if (copy < 0) return make_errno_error("cannot read a directory");
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    int err = errno;
    ::close(copy);
    return make_errno_error("cannot read a directory", err);
  }
  std::vector<DirEntry> out;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = ::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    out.push_back({std::string(name), is_dir});
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return make_errno_error("cannot read a directory", err);
  return out;
}

namespace {

// One directory being emptied by remove_tree: its name in its parent, and
// the entries left to remove, read once.
struct Level {
  std::string name;
  std::vector<DirEntry> entries;
};

// Opens directory `name` under dirfd, first giving its owner rwx if it
// lacks them (overlayfs's mode-000 work/work, a read-only tree). Fails with
// EXDEV, touching nothing, when it is on another file system than `dev`
// (something is mounted there).
int open_subdir(int dirfd, const char* name, dev_t dev) {
  int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::openat(dirfd, name, flags);
  struct stat st;
  if (fd >= 0) {
    if (::fstat(fd, &st) == 0 && st.st_dev == dev) return fd;
    int err = st.st_dev != dev ? EXDEV : errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  if (errno != EACCES) return -1;
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return -1;
  if (st.st_dev != dev) {
    errno = EXDEV;
    return -1;
  }
  ::fchmodat(dirfd, name, (st.st_mode & 07777) | S_IRWXU, 0);
  return ::openat(dirfd, name, flags);
}

// unlinkat, making the directory open at dirfd writable if it was not.
bool unlink_in(int dirfd, const char* name, int flags) {
  if (::unlinkat(dirfd, name, flags) == 0 || errno == ENOENT) return true;
  if (errno != EACCES && errno != EPERM) return false;
  struct stat st;
  if (::fstat(dirfd, &st) != 0 || (st.st_mode & S_IRWXU) == S_IRWXU) return false;
  ::fchmod(dirfd, (st.st_mode & 07777) | S_IRWXU);
  return ::unlinkat(dirfd, name, flags) == 0 || errno == ENOENT;
}

}  // namespace

Result<void> remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return make_errno_error("cannot stat " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return make_errno_error("cannot remove " + path);
    return {};
  }
  // Depth first, by directory fds: no path is ever longer than one name,
  // so a tree whose paths exceed PATH_MAX goes too; one fd is open at a
  // time (a level is left through ".."), so any depth does. Each
  // directory is listed once. It never crosses into another file system:
  // a directory something is mounted on stops it with an error.
  auto fail = [&](int fd, const std::string& what) -> Result<void> {
    int err = errno;
    if (fd >= 0) ::close(fd);
    return make_errno_error("cannot remove " + path + " (" + what + ")", err);
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    ::chmod(path.c_str(), (st.st_mode & 07777) | S_IRWXU);
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) return fail(-1, "cannot open it");
  std::vector<Level> levels(1);
  auto first = read_dir(fd);
  if (!first) return fail(fd, "cannot read it");
  levels.back().entries = std::move(*first);
  while (!levels.empty()) {
    Level& level = levels.back();
    if (!level.entries.empty()) {
      DirEntry entry = std::move(level.entries.back());
      level.entries.pop_back();
      std::string& name = entry.name;
      if (!entry.is_dir) {
        if (!unlink_in(fd, name.c_str(), 0)) return fail(fd, "cannot unlink " + name);
        continue;
      }
      int sub = open_subdir(fd, name.c_str(), st.st_dev);
      if (sub < 0) {
        if (errno == ENOENT) continue;
        if (errno == EXDEV) {
          errno = EBUSY;
          return fail(fd, "something is mounted at " + name + ", left alone");
        }
        if (errno == ENOTDIR || errno == ELOOP) {  // replaced meanwhile
          if (!unlink_in(fd, name.c_str(), 0)) return fail(fd, "cannot unlink " + name);
          continue;
        }
        return fail(fd, "cannot open " + name);
      }
      ::close(fd);
      fd = sub;
      auto entries = read_dir(fd);
      if (!entries) return fail(fd, "cannot read " + name);
      levels.push_back({std::move(name), std::move(*entries)});
      continue;
    }
    // Empty now: leave it for its parent and remove it there.
    if (levels.size() == 1) break;
    int parent = ::openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0) return fail(fd, "cannot go back up");
    ::close(fd);
    fd = parent;
    std::string name = std::move(level.name);
    levels.pop_back();
    if (!unlink_in(fd, name.c_str(), AT_REMOVEDIR)) return fail(fd, "cannot remove " + name);
  }
  ::close(fd);
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return make_errno_error("cannot remove " + path);
  return {};
}

Result<void> fsync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot open directory " + path);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0 && saved != EINVAL) return make_errno_error("cannot fsync " + path, saved);
  return {};
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

Result<std::string> make_temp_dir(const std::string& parent, const std::string& prefix) {
  std::string pattern = parent + "/" + prefix + "XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  if (::mkdtemp(name.data()) == nullptr)
    return make_errno_error("cannot create a temporary directory in " + parent);
  return std::string(name.data());
}

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  auto made = make_temp_dir(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", prefix);
  if (!made) throw std::runtime_error(made.error().to_string());
  m_path = *made;
}

TempDir::~TempDir() {
  if (!m_keep) (void)remove_tree(m_path);
}

}  // namespace gang
