#include "cache/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gang {

Result<FileLock> FileLock::acquire(const std::string& path, Kind kind, Wait wait) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return make_errno_error("cannot open lock file " + path);
  int op = (kind == Kind::shared ? LOCK_SH : LOCK_EX) | (wait == Wait::try_once ? LOCK_NB : 0);
  while (::flock(fd, op) != 0) {
    if (errno == EINTR) continue;
    int saved = errno;
    ::close(fd);
    if (saved == EWOULDBLOCK) return FileLock{};
    return make_errno_error("cannot lock " + path, saved);
  }
  FileLock lock;
  lock.m_fd = fd;
  return lock;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = other.m_fd;
    other.m_fd = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (m_fd >= 0) ::close(m_fd);
}

void FileLock::touch() const {
  if (m_fd >= 0) ::futimens(m_fd, nullptr);
}

}  // namespace gang
