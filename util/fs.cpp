#include "util/fs.hpp"

#include <fcntl.h>
#include <ftw.h>
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
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      return make_errno_error("cannot read " + path, saved);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
    if (out.size() > max_size) {
      ::close(fd);
      return make_error(k_too_big);
    }
  }
  ::close(fd);
  return out;
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

static int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
  if (type == FTW_DP || type == FTW_DNR) return ::rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
  return ::unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

// Gives the owner rwx on directories that lack it, including unreadable
// ones (FTW_DNR: e.g. overlayfs's mode-000 work/work), which nftw reports
// but cannot enter; a later pass enters them.
static int make_writable(const char* path, const struct stat* st, int type, struct FTW*) {
  if ((type == FTW_D || type == FTW_DNR) && (st->st_mode & S_IRWXU) != S_IRWXU)
    ::chmod(path, (st->st_mode & 07777) | S_IRWXU);
  return 0;
}

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
  if (::nftw(path.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS) == 0) return {};
  // Retry after making read-only and unreadable directories usable; each
  // pass reaches one more level of directories that were unreadable.
  for (int pass = 0; pass < 16; ++pass) {
    ::nftw(path.c_str(), make_writable, 64, FTW_PHYS);
    if (::nftw(path.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS) == 0) return {};
    if (errno != EACCES && errno != ENOTEMPTY && errno != EPERM) break;
  }
  return make_errno_error("cannot remove " + path);
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
