// fs.hpp: small file-system helpers with errors as values. All functions are
// safe to call concurrently from several processes on the same paths in the
// sense that write_file_atomic never exposes a partial file.
#pragma once

#include <unistd.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.hpp"

namespace gang {

// Owns a file descriptor: closed when destroyed or reset; movable.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : m_fd(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return m_fd; }
  int release() { return std::exchange(m_fd, -1); }
  void reset() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }

 private:
  int m_fd = -1;
};

// Reads `fd` to its end (or until `piece` returns false), handing each
// read of up to `size` bytes, made into `buffer`, to `piece`; EINTR is
// retried. Does not close `fd`. An error names `path`.
[[nodiscard]] Result<void> read_pieces(int fd, const std::string& path, char* buffer,
                                       std::size_t size,
                                       const std::function<bool(std::string_view)>& piece);

// Reads a whole file.
[[nodiscard]] Result<std::string> read_file(const std::string& path);

// Reads a whole file that must be a regular file (a symlink to one is
// fine) of at most `max_size` bytes: for the user's input files. A FIFO,
// device, socket or directory is refused at once (opened non-blocking, never
// read), and so is a file past the cap, with an error naming the path.
[[nodiscard]] Result<std::string> read_regular_file(const std::string& path,
                                                    std::size_t max_size = 16u << 20);

// Writes `contents` to a temporary file beside `path`, fsyncs it, and renames
// it over `path`. Readers see the old or the new contents, never a mix.
[[nodiscard]] Result<void> write_file_atomic(const std::string& path, const std::string& contents,
                                             int mode = 0644);

// Writes all of `contents` to fd (retrying short writes and EINTR); false
// with errno set on failure.
[[nodiscard]] bool write_all(int fd, std::string_view contents);

// Writes `contents` to `path` (created or truncated) without syncing: for
// scratch files and logs, never for anything another process relies on.
[[nodiscard]] Result<void> write_file(const std::string& path, const std::string& contents,
                                      int mode = 0644);

// mkdir -p. Succeeds if the directory already exists.
[[nodiscard]] Result<void> make_dirs(const std::string& path, int mode = 0755);

// An entry of a directory: its name, and whether it is a directory (not a
// symlink to one).
struct DirEntry {
  std::string name;
  bool is_dir = false;
};

// The entries of the directory open at dirfd (which stays open), without
// "." and "..", in the order readdir gives them.
[[nodiscard]] Result<std::vector<DirEntry>> read_dir(int dirfd);

// rm -rf, making read-only directories writable as needed. Succeeds if the
// path does not exist. Stays on the file system of `path`: a directory below
// it that something is mounted on is an error (EBUSY, naming it), and
// nothing in the mounted file system is touched.
[[nodiscard]] Result<void> remove_tree(const std::string& path);

// fsyncs a directory so that a rename inside it is durable.
[[nodiscard]] Result<void> fsync_dir(const std::string& path);

// True if the path exists (any type, symlinks not followed).
[[nodiscard]] bool path_exists(const std::string& path);

// A fresh directory "<parent>/<prefix>XXXXXX"; the caller owns its removal.
[[nodiscard]] Result<std::string> make_temp_dir(const std::string& parent,
                                                const std::string& prefix);

// A directory that is removed when the object dies, unless keep() was called.
// Used by tests and for scratch space; never holds anything published.
class TempDir {
 public:
  // Creates a fresh directory under $TMPDIR (else /tmp).
  explicit TempDir(const std::string& prefix = "gang-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return m_path; }
  void keep() { m_keep = true; }

 private:
  std::string m_path;
  bool m_keep = false;
};

}  // namespace gang
