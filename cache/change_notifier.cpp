#include "cache/change_notifier.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gang {

Result<ChangeNotifier> ChangeNotifier::open(const std::string& root) {
  ChangeNotifier n;
  n.m_path = root + "/generation";
  int file = ::open(n.m_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (file < 0) return make_errno_error("cannot create " + n.m_path);
  ::close(file);
  return n;
}

Result<void> ChangeNotifier::watch() {
  if (m_fd >= 0) return {};
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot create an inotify instance");
  if (::inotify_add_watch(fd, m_path.c_str(), IN_ATTRIB | IN_MODIFY) < 0) {
    int saved = errno;
    ::close(fd);
    return make_errno_error("cannot watch " + m_path, saved);
  }
  m_fd = fd;
  return {};
}

int ChangeNotifier::fd() {
  (void)watch();
  return m_fd;
}

ChangeNotifier::ChangeNotifier(ChangeNotifier&& other) noexcept
    : m_path(std::move(other.m_path)), m_fd(other.m_fd) {
  other.m_fd = -1;
}

ChangeNotifier& ChangeNotifier::operator=(ChangeNotifier&& other) noexcept {
  if (this != &other) {
    if (m_fd >= 0) ::close(m_fd);
    m_path = std::move(other.m_path);
    m_fd = other.m_fd;
    other.m_fd = -1;
  }
  return *this;
}

ChangeNotifier::~ChangeNotifier() {
  if (m_fd >= 0) ::close(m_fd);
}

void ChangeNotifier::bump() const { ::utimensat(AT_FDCWD, m_path.c_str(), nullptr, 0); }

Result<bool> ChangeNotifier::wait(std::chrono::milliseconds timeout) {
  auto watching = watch();
  if (!watching) return std::unexpected(watching.error());
  struct pollfd p{m_fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return make_errno_error("cannot wait for cache changes");
  if (rc == 0) return false;
  alignas(struct inotify_event) char buffer[4096];
  bool changed = false;
  while (::read(m_fd, buffer, sizeof buffer) > 0) changed = true;
  return changed;
}

}  // namespace gang
